"""Soak: the policy node (tiny VLA on the CPU), the command mux and the fake arm driver at real rates for a long
time, over DDS on loopback, as the fault-injection suite runs them (test/faults), without faults.

    python benchmarks/soak.py [--minutes 60] [--robot config/robots/sim_arm.yaml] [--json soak.json]

Sampled all along, in this process (the monitor, a DDS subscriber):
- RSS of each node process, of its children (the policy node's inference process) and of this one, every
  --sample seconds, from /proc/<pid>/status;
- command gap: time between consecutive commands arriving on the robot's controller topic while a source drives
  (the mux stops publishing once a hold has settled: gaps with a hold in them are left out, and the share of
  time the mux held is reported);
- command latency (obs -> robot): from an observation's stamp (the driver's publication time, carried by the
  ActionChunk that answers it) to the first controller command that arrives after that chunk (as
  bench_node_latency.py measures it);
- obs -> chunk (the chunk's arrival minus its stamp) and the model's own inference time (the chunk's field).

Prints RSS growth per hour (least-squares slope after a warm-up) and p50/p99 of each latency for the first vs
the last --window minutes (a third of the run each when the run is shorter than three windows), and writes all
figures to --json. Exit 1 if a node died.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the node-process helper the multi-process tests use (test/system/processes.py)

from test.system.processes import NodeProcess, build_tiny_checkpoint  # noqa: E402

NODES = {"fake_arm_driver": "vla_policy_node.nodes.fake_arm_driver",
         "command_mux": "vla_policy_node.nodes.command_mux_node",
         "policy_node": "vla_policy_node.nodes.policy_node"}


def children(pid: int) -> list[int]:
    """Every descendant of a process (e.g. the policy node's inference process), from /proc."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out + [grandchild for child in out for grandchild in children(child)]


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (nan if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


class Listener:
    """Arrival times of controller commands; (arrival, stamp, inference latency) of action chunks (wall clock)."""

    def __init__(self, transport, controller_topic: str, controller_type: str) -> None:
        self.commands = array("d")
        self.chunks: list[tuple[float, float, float]] = []
        self.holds = array("d")  # arrival times of mux statuses saying "hold"
        self.statuses = array("d")  # arrival times of every mux status
        self._lock = threading.Lock()
        self._subs = [
            transport.subscribe(controller_topic, controller_type, self._on_command),
            transport.subscribe("/vla/action_chunk", "vla_msgs/msg/ActionChunk", self._on_chunk),
            transport.subscribe("/vla/mux_status", "vla_msgs/msg/PolicyStatus", self._on_mux_status),
        ]

    def _on_command(self, msg) -> None:
        now = time.time()
        with self._lock:
            self.commands.append(now)

    def _on_chunk(self, msg) -> None:
        from vla_policy_node.msgs.stamps import header_stamp

        now = time.time()
        with self._lock:
            self.chunks.append((now, header_stamp(msg), float(msg.inference_latency)))

    def _on_mux_status(self, msg) -> None:
        now = time.time()
        with self._lock:
            self.statuses.append(now)
            if str(msg.active_source) == "hold":
                self.holds.append(now)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return np.frombuffer(self.commands, dtype=np.float64).copy(), np.array(self.chunks).reshape(-1, 3)

    def hold_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times of the mux statuses saying hold, and of all of them."""
        with self._lock:
            return (np.frombuffer(self.holds, dtype=np.float64).copy(),
                    np.frombuffer(self.statuses, dtype=np.float64).copy())

    def close(self) -> None:
        for sub in self._subs:
            sub.close()


def percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {"n": len(values), "p50_ms": float(np.percentile(values, 50) * 1e3),
            "p99_ms": float(np.percentile(values, 99) * 1e3), "max_ms": float(np.max(values) * 1e3)}


def window_figures(commands: np.ndarray, chunks: np.ndarray, holds: np.ndarray, t0: float, t1: float
                   ) -> dict[str, dict[str, float]]:
    """Latency figures of what arrived in [t0, t1) (wall clock). Command gaps during which the mux reported a
    hold are left out: the mux stops publishing once a hold has settled (control/output_gate.py)."""
    cmd = commands[(commands >= t0) & (commands < t1)]
    gaps = np.diff(cmd)
    if len(gaps):
        held = np.searchsorted(holds, cmd[1:]) > np.searchsorted(holds, cmd[:-1])  # a hold status inside
        gaps = gaps[~held]
    ch = chunks[(chunks[:, 0] >= t0) & (chunks[:, 0] < t1)] if len(chunks) else chunks
    first_after = np.searchsorted(commands, ch[:, 0], side="right") if len(ch) else np.array([], dtype=int)
    ok = first_after < len(commands)
    robot = commands[first_after[ok]] - ch[ok, 1] if len(ch) else np.array([])
    return {
        "command_gap": percentiles(gaps),
        "command_latency_obs_to_robot": percentiles(robot),
        "obs_to_chunk": percentiles(ch[:, 0] - ch[:, 1] if len(ch) else np.array([])),
        "inference": percentiles(ch[:, 2] if len(ch) else np.array([])),
    }


def growth_per_hour(times: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of `values` (MiB) over `times` (s), in MiB per hour."""
    good = np.isfinite(values)
    if good.sum() < 3:
        return float("nan")
    return float(np.polyfit(times[good], values[good], 1)[0] * 3600.0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--robot", type=Path, default=REPO / "config" / "robots" / "sim_arm.yaml")
    parser.add_argument("--checkpoint", type=Path, help="default: a tiny random VLA built for --robot")
    parser.add_argument("--window", type=float, default=10.0, help="minutes compared at the start and the end")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the RSS slope")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--json", type=Path, default=Path("soak.json"), help="where to write the figures")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.minutes > 0 and args.window > 0 and args.sample > 0):
        print("soak: --minutes, --window and --sample must be positive", file=sys.stderr)
        return 2
    from vla_policy_node.msgs.commands import CONTROLLER_MSGTYPES
    from vla_policy_node.spec import load_embodiment
    from vla_policy_node.spec.embodiment import ConfigError
    from vla_policy_node.transport import DdsConfig, DdsTransport

    try:
        robot = load_embodiment(args.robot)
    except ConfigError as error:
        print(f"soak: {error}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="soak_"))
    checkpoint = args.checkpoint or build_tiny_checkpoint(robot, work / "tiny_vla")
    domain = random.SystemRandom().randint(1, 230)
    transport = DdsTransport(DdsConfig(node_name="soak_monitor", loopback=True, domain_id=domain))
    listener = Listener(transport, robot.controller.topic, CONTROLLER_MSGTYPES[robot.controller.interface])
    base = ["--transport", "dds", "--robot-config", str(args.robot)]
    extra = {"policy_node": ["--checkpoint", str(checkpoint), "--instruction", "put the red block in the bowl",
                             "--no-dry-run", "--torch-threads", "1"]}
    nodes = {name: NodeProcess(module, base + extra.get(name, []), domain, work / f"{name}.log")
             for name, module in NODES.items()}
    print(f"soak: {robot.name}, {args.minutes:g} min, {os.cpu_count()} CPUs, logs in {work}", flush=True)
    samples: list[tuple[float, dict[str, float]]] = []
    died = ""
    try:
        deadline = time.time() + 120.0
        while len(listener.snapshot()[1]) == 0:  # the first chunk: every node is up and the policy drives
            if time.time() > deadline or not all(n.alive() for n in nodes.values()):
                died = "the nodes did not start (no action chunk within 120 s)"
                break
            time.sleep(0.5)
        start = time.time()
        end = start + args.minutes * 60.0
        next_report = start + 60.0
        while not died and time.time() < end:
            now = time.time()
            rss = {}
            for name, node in nodes.items():
                rss[name] = rss_mb(node.process.pid)
                kids = children(node.process.pid)  # the policy node's inference process (restarts: new pid)
                if kids:
                    rss[f"{name} children"] = sum(rss_mb(kid) for kid in kids)
            rss["monitor"] = rss_mb(os.getpid())
            samples.append((now - start, rss))
            dead = [name for name, node in nodes.items() if not node.alive()]
            if dead:
                died = f"{', '.join(dead)} died"
                break
            if now >= next_report:
                commands, chunks = listener.snapshot()
                print(f"  {(now - start) / 60:5.1f} min: {len(commands)} commands, {len(chunks)} chunks, RSS "
                      + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()) + " MiB", flush=True)
                next_report += 60.0
            time.sleep(max(0.0, min(args.sample, end - time.time())))
        commands, chunks = listener.snapshot()
    finally:
        for node in reversed(list(nodes.values())):
            node.stop()
        listener.close()
        transport.close()
    if died:
        print(f"soak: {died}\n" + "\n".join(node.tail() for node in nodes.values()), file=sys.stderr)
        return 1
    return report(args, robot.name, start, samples, commands, chunks, *listener.hold_times())


def report(args: argparse.Namespace, robot: str, start: float, samples: list, commands: np.ndarray,
           chunks: np.ndarray, holds: np.ndarray, statuses: np.ndarray) -> int:
    duration = samples[-1][0] if samples else 0.0
    commands = commands[commands >= start]
    chunks = chunks[chunks[:, 0] >= start] if len(chunks) else chunks
    window = min(args.window * 60.0, duration / 3.0)
    first = window_figures(commands, chunks, holds, start, start + window)
    last = window_figures(commands, chunks, holds, start + duration - window, start + duration)
    held = len(holds[holds >= start]) / max(len(statuses[statuses >= start]), 1)
    times = np.array([t for t, _ in samples])
    warm = times >= min(args.warmup * 60.0, duration / 3.0)
    rss = {}
    for name in dict.fromkeys(key for _, sample in samples for key in sample):
        values = np.array([s.get(name, np.nan) for _, s in samples])
        finite = values[np.isfinite(values)]
        rss[name] = {"start_mib": float(finite[0]), "end_mib": float(finite[-1]),
                     "growth_mib_per_hour": growth_per_hour(times[warm], values[warm])}
    load = os.getloadavg()
    figures = {"robot": robot, "minutes": duration / 60.0, "window_minutes": window / 60.0, "cpus": os.cpu_count(),
               "loadavg_end": load, "commands": len(commands), "chunks": len(chunks),
               "command_rate_hz": len(commands) / duration if duration else 0.0, "mux_hold_fraction": held,
               "rss": rss, "first_window": first, "last_window": last}
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"\nsoak: {robot}, {duration / 60:.1f} min on {os.cpu_count()} CPUs (load {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}); {len(commands)} commands ({figures['command_rate_hz']:.1f} Hz), {len(chunks)} chunks; "
          f"the mux held {100 * held:.1f}% of the time")
    print(f"\n{'RSS (MiB)':24s}{'start':>9s}{'end':>9s}{'growth/h':>11s}  (slope after {args.warmup:g} min)")
    for name, r in rss.items():
        print(f"  {name:22s}{r['start_mib']:9.1f}{r['end_mib']:9.1f}{r['growth_mib_per_hour']:+11.2f}")
    print(f"\n{'(ms)':34s}{'first ' + f'{window / 60:.1f} min':>22s}{'last ' + f'{window / 60:.1f} min':>22s}")
    print(f"{'':34s}{'p50 / p99 / max':>22s}{'p50 / p99 / max':>22s}")
    for key, label in (("command_gap", "command gap"), ("command_latency_obs_to_robot", "command latency obs->robot"),
                       ("obs_to_chunk", "obs -> chunk"), ("inference", "inference")):
        cells = [f"{w[key]['p50_ms']:.1f} / {w[key]['p99_ms']:.1f} / {w[key]['max_ms']:.0f}" for w in (first, last)]
        print(f"  {label:32s}{cells[0]:>22s}{cells[1]:>22s}")
    print(f"\nfigures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
