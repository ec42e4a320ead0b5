"""What happened around each control-tick gap: `bench_control_jitter.py --trace DIR` records it, this explains it.

Recorded in the measuring process while it runs (cheap, but not free: use it to find causes, not for figures):
- per tick, on the control thread: start and end (perf_counter), the thread's minor/major page faults and
  voluntary/involuntary context switches (getrusage RUSAGE_THREAD), the per-CPU steal time (/proc/stat);
- events from the other threads with start and end: garbage collections (gc.callbacks, with the generation),
  each DDS subscription callback batch (topic), the status step, each inference step, log records;
- optionally (`perf` present, root): the kernel's scheduler switches of real-time threads and of the inference
  process on both CPUs (`perf record -e sched:sched_switch`, CLOCK_MONOTONIC like perf_counter), so a gap
  shows who ran on each CPU while the control thread waited.
For each gap over two periods the report lists the tick before it (a long tick is the tick's own work), what
overlapped the gap, the control thread's fault and switch counts across it, steal, and the perf switches.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

_STAT_BYTES = 512


class GapTracer:
    """Collects the records above; `install(runtime)` wraps the runtime's callbacks, `tick_begin/tick_end` are
    called by the benchmark's control step."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ends = np.zeros(capacity)
        self.usage = np.zeros((capacity, 4), dtype=np.int64)  # minflt, majflt, nvcsw, nivcsw at tick start
        self.steal = np.zeros((capacity, 2), dtype=np.int64)  # cpu0, cpu1 steal (USER_HZ ticks) at tick start
        self.events: list[tuple[str, str, float, float]] = []  # kind, label, start, end (list.append is atomic)
        self._stat = os.open("/proc/stat", os.O_RDONLY)
        self._gc_start = 0.0
        self.control_tid = 0
        self.inference_pid = 0
        self._perf: subprocess.Popen | None = None
        self._perf_file = ""
        self.thread_names: dict[int | None, str] = {}

    # ---------------------------------------------------------------------------------------- recording
    def tick_begin(self, i: int) -> None:
        if i >= self.capacity:
            return
        if not self.control_tid:
            self.control_tid = threading.get_native_id()
        r = resource.getrusage(resource.RUSAGE_THREAD)
        self.usage[i] = (r.ru_minflt, r.ru_majflt, r.ru_nvcsw, r.ru_nivcsw)
        lines = os.pread(self._stat, _STAT_BYTES, 0).split(b"\n")
        for cpu, line in enumerate(lines[1:3]):
            fields = line.split()
            if len(fields) > 8:
                self.steal[i, cpu] = int(fields[8])

    def tick_end(self, i: int) -> None:
        if i < self.capacity:
            self.ends[i] = time.perf_counter()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.events.append(("gc", f"gen{info['generation']} collected {info['collected']}", self._gc_start,
                                time.perf_counter()))

    def _timed(self, kind: str, label: str, fn: Any) -> Any:
        events = self.events

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                events.append((kind, label, t0, time.perf_counter()))

        return wrapper

    def _timed_take(self, topic: str, take: Any) -> Any:
        """cyclonedds' take (C, holds the GIL while it copies each sample): wall and thread CPU time, faults."""
        events = self.events

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            r0, c0, t0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt, time.thread_time(), time.perf_counter()
            samples = take(*args, **kwargs)
            t1, c1, r1 = time.perf_counter(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            if samples:
                events.append(("take", f"{topic} x{len(samples)} cpu {(c1 - c0) * 1e3:.2f} ms minflt {r1 - r0}",
                               t0, t1))
            return samples

        return wrapper

    def install(self, runtime: Any) -> None:
        """Wrap the DDS callbacks, the status and inference steps; gc and logging hooks."""
        gc.callbacks.append(self._on_gc)
        for sub in runtime._subscriptions:
            entry = getattr(sub, "entry", None)
            if entry is not None:
                entry.on_samples = self._timed("dds", sub.topic, entry.on_samples)
                entry.reader.take = self._timed_take(sub.topic, entry.reader.take)
        runtime.status_output.publish = self._timed("status", "publish", runtime.status_output.publish)
        runtime.inference.step = self._timed("inference", "step", runtime.inference.step)
        tracer = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                now = time.perf_counter()
                tracer.events.append(("log", record.getMessage()[:80], now, now))

        logging.getLogger().addHandler(_Handler())

    def start_perf(self, directory: Path, seconds: float) -> str:
        """`perf record` of scheduler switches (real-time threads and the inference process) for `seconds`."""
        self.thread_names = {t.native_id: t.name for t in threading.enumerate()}
        perf = shutil.which("perf")
        if perf is None or os.geteuid() != 0:
            return "perf not available (or not root): no scheduler trace"
        self._perf_file = str(directory / "sched.data")
        switch_filter = "prev_prio < 100 || next_prio < 100"
        if self.inference_pid:
            switch_filter += f" || prev_pid == {self.inference_pid} || next_pid == {self.inference_pid}"
        command = [perf, "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-o", self._perf_file,
                   "-e", "sched:sched_switch", "--filter", switch_filter,
                   "-e", "sched:sched_wakeup", "--filter", "prio < 100",
                   "--", "sleep", f"{seconds:.0f}"]
        self._perf = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return ""

    def stop_perf(self) -> None:
        if self._perf is not None:
            self._perf.wait()

    # ------------------------------------------------------------------------------------------ report
    def save(self, directory: Path, starts: np.ndarray, first: int, last: int, period: float) -> None:
        gc.callbacks.remove(self._on_gc)
        np.savez(directory / "ticks.npz", starts=starts[first:last], ends=self.ends[first:last],
                 usage=self.usage[first:last], steal=self.steal[first:last], period=period)
        (directory / "events.json").write_text(json.dumps({
            "events": self.events, "control_tid": self.control_tid, "inference_pid": self.inference_pid,
            "threads": self.thread_names}))
        if self._perf_file and os.path.exists(self._perf_file):
            with open(directory / "sched.txt", "w") as out:
                subprocess.run(["perf", "script", "-i", self._perf_file, "-F", "comm,tid,cpu,time,event,trace"],
                               stdout=out, stderr=subprocess.DEVNULL, check=False)


def _perf_lines(directory: Path) -> list[tuple[float, str]]:
    """(time, "[cpu] tid(comm running there) event: fields") from `perf script -F comm,tid,cpu,time,event,trace`."""
    path = directory / "sched.txt"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        head, sep, rest = line.partition(": ")
        parts = head.split()
        if not sep or len(parts) < 4 or not parts[-2].startswith("["):
            continue
        try:
            out.append((float(parts[-1]), f"{parts[-2]} {parts[-3]}({' '.join(parts[:-3])}) {rest}"))
        except ValueError:
            continue
    return out


def explain(directory: Path, limit: int = 40, over: float = 0.0) -> str:
    """A text report of every gap over two periods in a `--trace` directory (`over` > 0: of every period that is
    off by more than `over` seconds instead)."""
    ticks = np.load(directory / "ticks.npz")
    starts, ends, usage, steal = ticks["starts"], ticks["ends"], ticks["usage"], ticks["steal"]
    period = float(ticks["period"])
    meta = json.loads((directory / "events.json").read_text())
    events = meta["events"]
    perf = _perf_lines(directory)
    periods = np.diff(starts)
    gaps = np.flatnonzero(np.abs(periods - period) > over if over > 0 else periods > 2 * period)
    durations = (ends - starts) * 1e3
    what = f"periods off by over {over * 1e3:g} ms" if over > 0 else "gaps over 2 periods"
    lines = [f"{gaps.size} {what} of {periods.size}; tick duration p50 {np.median(durations):.3f} ms "
             f"p99 {np.percentile(durations, 99):.3f} ms max {durations.max():.2f} ms; control tid "
             f"{meta['control_tid']}, inference pid {meta['inference_pid']}"]
    steal_any = np.diff(steal, axis=0).sum(axis=1) > 0
    lines.append(f"steal counter moved during {int(steal_any.sum())} of {steal_any.size} periods "
                 f"({int(steal_any[gaps].sum()) if gaps.size else 0} of the gaps)")
    kinds: dict[str, int] = {}
    for g in gaps[:limit]:
        t0, t1 = starts[g], starts[g + 1]
        d, stolen = usage[g + 1] - usage[g], list(steal[g + 1] - steal[g])
        lines.append(f"\ngap {periods[g] * 1e3:.2f} ms at {t0:.4f}: previous tick took {durations[g]:.2f} ms; control "
                     f"thread minflt {d[0]} majflt {d[1]} vcsw {d[2]} ivcsw {d[3]}; steal {stolen}")
        for kind, label, e0, e1 in events:
            if e1 >= t0 - 0.002 and e0 <= t1:
                kinds[kind] = kinds.get(kind, 0) + 1
                lines.append(f"  {kind:9} {label:40} {(e0 - t0) * 1e3:+8.2f} .. {(e1 - t0) * 1e3:+8.2f} ms "
                             f"({(e1 - e0) * 1e3:.2f} ms)")
        for t, text in perf:
            if t0 - 0.001 <= t <= t1 + 0.0005:
                lines.append(f"  sched {(t - t0) * 1e3:+8.2f} ms {text[:150]}")
    lines.insert(1, f"overlapping event kinds over the first {min(limit, gaps.size)} gaps: {kinds}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    # control_gap_trace.py DIR [LIMIT] [OVER_MS]
    print(explain(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40,
                  float(sys.argv[3]) / 1e3 if len(sys.argv) > 3 else 0.0))
