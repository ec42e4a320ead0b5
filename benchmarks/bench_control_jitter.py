"""Control-tick period jitter of the policy node at the robot's control rate while inference runs flat out.

    python benchmarks/bench_control_jitter.py [--inference thread process] [--seconds 60] [--robot franka_fr3]
                                              [--camera-size 480x640] [--torch-threads 1] [--realtime 50]
                                              [--runs 5] [--trace DIR] [--transport dds|rclpy]

A child process plays the arm driver and the cameras over DDS on loopback: joint states at the control rate
and every camera of the robot as rgb8 frames at 30 Hz. This process is the policy node: `PolicyRuntime` on a
`DdsTransport` (its subscriptions run on cyclonedds' threads, the control and status timers on their own), with
the tiny VLA (random weights; CPU) asked for a new chunk as soon as the previous one landed, so the model never
rests. The start time of every control tick is recorded; a period is the time between two starts. Each mode
runs in a fresh process, as a node starts.

--transport rclpy: the node runs on rclpy (rmw_cyclonedds_cpp, a sourced ROS 2), as `ros2 launch` starts it
(`RclpyTransport.create`): its subscriptions are rclpy's, taken by the transport's subscription loop, its services
on the node's MultiThreadedExecutor, its control and status timers threads (on wall time). The sensors still come
from a DDS participant, on the same loopback domain (the wire is the same). Default: dds (the node's own DDS
transport, timers on threads of their own).

--inference thread: the model runs on the node's inference thread, as the node did so far (the model, the DDS
callbacks and the timers share one interpreter and its GIL). --inference process: the model runs in its own
process behind the shared-memory boundary (`inference.process`); the node only sends observations.
--realtime N runs the node's threads (DDS, timers, callbacks; never the model) at SCHED_FIFO priority N, as
ros2_control runs its controller manager; when that is not allowed here (no CAP_SYS_NICE, no rtprio limit) the
run goes on at normal priority and every line says "real-time priority NOT available".
A witness process lists other processes' real-time tasks that ran meanwhile (they out-rank or preempt the
node's threads: on a shared machine a run with one is not a measurement of this node) and the report names them.
Gaps are also matched against the hypervisor's steal counter (/proc/stat, read 20 times a second by the
otherwise idle main thread): a gap next to a moment when the virtual CPUs were not running is the host's.
--runs N: N runs per mode (each in a fresh process, modes interleaved so the load falls on both alike) and a
summary per mode. --trace DIR: also record what happened around each gap (`control_gap_trace.py`).
Printed per run: period p50, |period - nominal| p99 / p99.9 / max, the longest gap in periods, gaps over two
periods and over 50 ms, the inference rate reached, the machine's load (others share it; figures move with it)
and whether the run met the target.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROBOTS = REPO / "config" / "robots"


def _steal_seconds() -> float:
    """CPU time the hypervisor took from this machine's CPUs so far (all CPUs; /proc/stat, 10 ms resolution):
    a virtual CPU that is not running cannot run a real-time thread either."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else 0.0
    except (OSError, ValueError):
        return 0.0


STEAL_SAMPLE = 0.05  # s between readings of the steal counter during a run


def _with_steal(samples: list[tuple[float, float]], gap_starts: np.ndarray, gap_ends: np.ndarray) -> int:
    """How many of the gaps fall in a sampling interval (or next to one) in which the hypervisor's steal counter
    moved: the virtual CPUs were not running, so no thread of this machine was."""
    if len(samples) < 2:
        return 0
    times = np.array([t for t, _ in samples])
    steal = np.array([s for _, s in samples])
    moved = np.diff(steal) > 0  # interval i: times[i] .. times[i + 1]
    count = 0
    for begin, end in zip(gap_starts, gap_ends, strict=True):
        first = max(0, int(np.searchsorted(times, begin)) - 2)
        last = min(moved.size, int(np.searchsorted(times, end)) + 1)
        count += bool(moved[first:last].any())
    return count


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min), {os.cpu_count()} CPUs"


# ------------------------------------------------------------------------------------------ sensor process
def publish_sensors(domain: int, robot: str, height: int, width: int, seconds: float) -> None:
    """Joint states at the control rate, every camera at 30 Hz (640x480 rgb8 by default), stamped now."""
    from vla_policy_node.msgs import encode_image, encode_joint_state
    from vla_policy_node.spec import load_embodiment
    from vla_policy_node.transport import DdsConfig, DdsTransport

    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    t = DdsTransport(DdsConfig(node_name="bench_sensors", loopback=True, domain_id=domain))
    joints = t.publisher(emb.joint_states.topic, "sensor_msgs/msg/JointState")
    cams = [(c, t.publisher(c.topic, "sensor_msgs/msg/Image")) for c in emb.cameras]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in cams]
    lo = np.array([j.lower for j in emb.joints])
    hi = np.array([j.upper for j in emb.joints])
    grip = [emb.gripper.upper] if emb.gripper is not None else []
    period = 1.0 / emb.rates.control_hz
    camera_every = max(1, round(emb.rates.control_hz / 30.0))
    end = time.monotonic() + seconds
    next_t, k = time.monotonic(), 0
    while time.monotonic() < end:
        now = time.time()
        state = np.concatenate([(lo + hi) / 2 + 0.05 * np.sin(0.5 * now + np.arange(lo.size)), grip])
        joints.publish(encode_joint_state(t.new_message, emb.state_names, state, stamp=now))
        if k % camera_every == 0:
            for (_cam, pub), frame in zip(cams, frames, strict=True):
                pub.publish(encode_image(t.new_message, frame, "rgb8", stamp=now))
        k += 1
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    t.close()


# ---------------------------------------------------------------------------------------- witness process
def _rt_tasks(skip: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """{(pid, tid): (rt_priority, utime + stime clock ticks)} of user-space tasks in a real-time class, except
    the processes in `skip`."""
    tasks = {}
    for pid_name in os.listdir("/proc"):
        if not pid_name.isdigit() or int(pid_name) in skip:
            continue
        try:
            if not Path(f"/proc/{pid_name}/cmdline").read_bytes():
                continue  # a kernel thread (irq threads, watchdogd, migration run at real-time priority by design)
            for tid_name in os.listdir(f"/proc/{pid_name}/task"):
                with open(f"/proc/{pid_name}/task/{tid_name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[38]) in (1, 2):  # SCHED_FIFO, SCHED_RR (fields after the name: policy is the 41st)
                    tasks[(int(pid_name), int(tid_name))] = (int(fields[37]), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return tasks


def watch_other_realtime(own_pid: int, seconds: float, out: str) -> None:
    """Every 0.5 s, the real-time tasks of other processes (they preempt or out-rank the node's SCHED_FIFO
    threads); writes {pid: [command, highest priority, CPU seconds they used while watched]} to `out`. Runs in
    its own process at normal priority, so its reading of /proc costs the node nothing."""
    seen: dict[int, list] = {}
    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    end = time.monotonic() + seconds
    skip = {own_pid, os.getpid()}
    while time.monotonic() < end:
        for (pid, tid), (priority, ticks) in _rt_tasks(skip).items():
            if pid not in seen:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    command = command.strip()[:120]
                except OSError:
                    command = "?"
                seen[pid] = [command, priority, 0.0]
            seen[pid][1] = max(seen[pid][1], priority)
            first.setdefault((pid, tid), ticks)
            last[(pid, tid)] = ticks
        Path(out).write_text(json.dumps({pid: [c, p, sum(last[k] - first[k] for k in last if k[0] == pid)
                                               / os.sysconf("SC_CLK_TCK")] for pid, (c, p, _) in seen.items()}))
        time.sleep(0.5)


# ------------------------------------------------------------------------------------------- node process
def build_policy_factory(robot: str, threads: int):
    """(embodiment, factory() -> VLAPolicy): the tiny VLA for `robot`, random weights, CPU."""
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    # Ask for a chunk as soon as the previous one landed: inference never rests.
    emb = dataclasses.replace(emb, rates=dataclasses.replace(emb.rates, inference_hz=1000.0))
    return emb, TinyPolicyFactory(robot, threads)


@dataclasses.dataclass(frozen=True)
class TinyPolicyFactory:
    """Builds the tiny VLA (seeded random weights) wherever it is called: here, or in the inference process."""

    robot: str
    threads: int

    def __call__(self):
        import torch

        from vla_policy_node.model.tiny import build_tiny_vla
        from vla_policy_node.model.vla_policy import VLAPolicy
        from vla_policy_node.spec import load_embodiment
        from vla_policy_node.spec.normalization import normalization_from_limits

        if self.threads:
            torch.set_num_threads(self.threads)
        emb = load_embodiment(ROBOTS / f"{self.robot}.yaml")
        torch.manual_seed(0)
        return VLAPolicy(build_tiny_vla([emb]), normalization_from_limits(emb), emb)


def measure(mode: str, args: argparse.Namespace, domain: int) -> dict:
    from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
    from vla_policy_node.nodes.timing import drop_realtime_priority, tune_control_process
    from vla_policy_node.transport import DdsConfig, DdsTransport

    emb, factory = build_policy_factory(args.robot, args.torch_threads)
    closer = None
    switch = sys.getswitchinterval()
    if mode == "thread":
        policy = factory()
    else:
        from vla_policy_node.inference.process import ProcessPolicy

        policy = closer = ProcessPolicy(factory, emb)
        policy.start(timeout=120.0)
    if args.transport == "rclpy":
        from vla_policy_node.transport.dds_config import loopback_config_xml
        from vla_policy_node.transport.rclpy_backend import RclpyTransport

        os.environ.update(ROS_DOMAIN_ID=str(domain), CYCLONEDDS_URI=loopback_config_xml())
        transport = RclpyTransport.create("bench_policy", args=["bench_control_jitter"],
                                          threads=args.executor_threads or None)
    else:
        transport = DdsTransport(DdsConfig(node_name="bench_policy", loopback=True, domain_id=domain))
    period = 1.0 / emb.rates.control_hz
    capacity = int((args.seconds + args.warmup + 60) / period) + 1000
    starts = np.zeros(capacity)
    count = [0]
    tracer = None
    if args.trace:
        from control_gap_trace import GapTracer

        tracer = GapTracer(capacity)
        tracer.inference_pid = getattr(policy, "pid", None) or 0

    class TimedRuntime(PolicyRuntime):
        """Records the start of every control tick (the timers call this class's `control_step`)."""

        def control_step(self):
            i = count[0]
            if i < capacity:
                starts[i] = time.perf_counter()
                count[0] = i + 1
            if tracer is None:
                return super().control_step()
            tracer.tick_begin(i)
            try:
                return super().control_step()
            finally:
                tracer.tick_end(i)

    runtime = TimedRuntime(transport, emb, policy, PolicyNodeParams(instruction="pick up the red block"))
    period = runtime.loop.period
    if tracer is not None:
        tracer.install(runtime)
    sensors = subprocess.Popen([sys.executable, __file__, "--publisher", str(domain), args.robot,
                                str(args.height), str(args.width), str(args.seconds + args.warmup + 60)],
                               env=dict(os.environ, VLA_DDS_LOOPBACK="1"))
    try:
        runtime.start()
        # as the policy node does: gc.freeze, a short GIL switch interval with the model out of process, and
        # --realtime: SCHED_FIFO for DDS, timers, callbacks, the inference thread when it only waits; never a model
        problem = tune_control_process(runtime.model_thread_ids, mode != "thread" and args.switch_interval > 0,
                                       args.realtime)
        realtime = (f"SCHED_FIFO {args.realtime}" if args.realtime and not problem
                    else f"NOT available ({problem}); measured at normal priority" if args.realtime else "off")
        if problem:
            print(f"--realtime {args.realtime}: real-time priority is NOT available: {problem}", file=sys.stderr)
        begin = time.monotonic()
        while runtime.inferences == 0:
            if time.monotonic() - begin > 120:
                raise RuntimeError(f"{mode}: no chunk within 120 s")
            time.sleep(0.1)
        time.sleep(args.warmup)
        if tracer is not None:
            trace_dir = Path(args.trace) / mode
            trace_dir.mkdir(parents=True, exist_ok=True)
            note = tracer.start_perf(trace_dir, args.seconds + 0.5)
            if note:
                print(note, file=sys.stderr)
        witness_file = Path(tempfile.mkdtemp(prefix="jitter-witness-")) / "realtime.json"
        witness = subprocess.Popen([sys.executable, __file__, "--witness", str(os.getpid()), str(args.seconds),
                                    str(witness_file)])
        first, inferences0, load_before, steal0 = count[0], runtime.inferences, os.getloadavg()[0], _steal_seconds()
        steal_samples = []  # (perf_counter, steal seconds): this thread only waits meanwhile; 20 reads a second
        end = time.perf_counter() + args.seconds
        while (now := time.perf_counter()) < end:
            steal_samples.append((now, _steal_seconds()))
            time.sleep(min(STEAL_SAMPLE, max(0.0, end - now)))
        last, inferences1, steal1 = count[0], runtime.inferences, _steal_seconds()
        steal_samples.append((time.perf_counter(), steal1))
        witness.wait(30)
        others = json.loads(witness_file.read_text()) if witness_file.exists() else {}
        shutil.rmtree(witness_file.parent, ignore_errors=True)
        if tracer is not None:
            tracer.stop_perf()
        status = runtime.loop.status(runtime.clock())
    finally:
        runtime.stop()
        runtime.close()
        transport.close()
        if closer is not None:
            closer.close()
        sensors.terminate()
        sensors.wait(10)
        drop_realtime_priority()
        sys.setswitchinterval(switch)
        gc.unfreeze()
    if tracer is not None:
        tracer.save(trace_dir, starts, first, last, period)
    periods = np.diff(starts[first:last])
    jitter = np.abs(periods - period) * 1e3
    gap_starts = starts[first:last - 1][periods > 2 * period]
    gap_ends = gap_starts + periods[periods > 2 * period]
    with_steal = _with_steal(steal_samples, gap_starts, gap_ends)
    return {
        "mode": mode, "transport": args.transport, "ticks": int(periods.size + 1), "nominal_ms": period * 1e3,
        "period_p50_ms": float(np.percentile(periods, 50) * 1e3),
        "jitter_p50_ms": float(np.percentile(jitter, 50)), "jitter_p99_ms": float(np.percentile(jitter, 99)),
        "jitter_p999_ms": float(np.percentile(jitter, 99.9)), "jitter_max_ms": float(jitter.max()),
        "max_gap_ms": float(periods.max() * 1e3), "max_gap_periods": float(periods.max() / period),
        "gaps_over_2_periods": int(np.count_nonzero(periods > 2 * period)),
        "gaps_over_50ms": int(np.count_nonzero(periods > 0.05)),
        "inference_hz": (inferences1 - inferences0) / args.seconds,
        "inference_p50_ms": status.inference_latency_p50 * 1e3,
        "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0], "realtime": realtime,
        "steal_ms": (steal1 - steal0) * 1e3,
        "gaps_with_steal": with_steal,
        "other_realtime": [f"pid {pid} at real-time priority {prio}, {cpu:.1f} s CPU: {command}"
                           for pid, (command, prio, cpu) in others.items() if prio >= args.realtime],
    }


TARGET_P99_MS = 1.0


def met(r: dict) -> bool:
    return r["jitter_p99_ms"] <= TARGET_P99_MS and r["gaps_over_2_periods"] == 0


def summary(runs: list[dict]) -> str:
    """One line per mode over its runs: ranges of the figures and how many runs met the target."""

    def span(key: str, fmt: str) -> str:
        values = [r[key] for r in runs]
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    return (f"{runs[0]['mode']:>7}, {len(runs)} runs: p99 {span('jitter_p99_ms', '.3f')} ms, p99.9 "
            f"{span('jitter_p999_ms', '.3f')} ms, longest gap {span('max_gap_ms', '.2f')} ms, gaps > 2 periods "
            f"{span('gaps_over_2_periods', 'd')} (total {sum(r['gaps_over_2_periods'] for r in runs)}, "
            f"{sum(r.get('gaps_with_steal', 0) for r in runs)} next to host steal); target met in "
            f"{sum(met(r) for r in runs)} of {len(runs)}; load {span('load_1min_before', '.1f')}")


def report(r: dict) -> str:
    mode = f"{r['mode']} on rclpy" if r.get("transport") == "rclpy" else r["mode"]
    name = f"{mode} run {r['run']}" if "run" in r else mode
    return (f"{name:>7}: {r['ticks']} ticks, period p50 {r['period_p50_ms']:.3f} ms (nominal {r['nominal_ms']:.1f}); "
            f"|period - nominal| p50 {r['jitter_p50_ms']:.3f} / p99 {r['jitter_p99_ms']:.3f} / "
            f"p99.9 {r['jitter_p999_ms']:.3f} / max {r['jitter_max_ms']:.2f} ms; longest gap {r['max_gap_ms']:.2f} ms "
            f"({r['max_gap_periods']:.2f} periods), {r['gaps_over_2_periods']} gaps > 2 periods "
            f"({r.get('gaps_with_steal', 0)} next to host steal), "
            f"{r['gaps_over_50ms']} > 50 ms; inference {r['inference_hz']:.1f} Hz (p50 {r['inference_p50_ms']:.1f} "
            f"ms); load {r['load_1min_before']:.1f} -> {r['load_1min_after']:.1f}, steal {r.get('steal_ms', 0):.0f} "
            f"ms; real-time priority {r['realtime']}; target {'met' if met(r) else 'NOT met'}"
            + "".join(f"\n    OTHER REAL-TIME TASK on this machine during the run: {other}"
                      for other in r.get("other_realtime", ())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inference", nargs="+", choices=("thread", "process"), default=["thread", "process"])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per mode")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first chunk before measuring")
    parser.add_argument("--robot", default="franka_fr3")
    parser.add_argument("--camera-size", default="480x640", help="HxW of the published frames")
    parser.add_argument("--torch-threads", dest="torch_threads", type=int, default=1)
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                        help="SCHED_FIFO priority (1-99) for the node's threads except the model's (0: off)")
    parser.add_argument("--switch-interval", dest="switch_interval", type=float, default=0.0005,
                        help="0: keep CPython's 5 ms GIL switch interval with the model out of process (the node "
                             "uses 0.5 ms)")
    parser.add_argument("--runs", type=int, default=1, help="runs per mode (each in a fresh process)")
    parser.add_argument("--transport", choices=("dds", "rclpy"), default="dds",
                        help="the node's transport: its own DDS participant, or rclpy as under ros2 launch")
    parser.add_argument("--executor-threads", dest="executor_threads", type=int, default=0,
                        help="rclpy: the MultiThreadedExecutor's threads (0: the node's default)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--trace", metavar="DIR", help="record what happens around each gap into DIR/<mode> "
                        "(control_gap_trace.py; perturbs the figures a little): explain with "
                        "`python benchmarks/control_gap_trace.py DIR/<mode>`")
    parser.add_argument("--publisher", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("thread", "process"), help=argparse.SUPPRESS)
    parser.add_argument("--witness", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.witness:
        own, seconds, out = args.witness
        watch_other_realtime(int(own), float(seconds), out)
        return 0
    if args.publisher:
        domain, robot, height, width, seconds = args.publisher
        publish_sensors(int(domain), robot, int(height), int(width), float(seconds))
        return 0
    try:
        args.height, args.width = (int(v) for v in args.camera_size.lower().split("x"))
    except ValueError:
        parser.error(f"--camera-size must be HxW, got {args.camera_size!r}")
    if args.measure:
        print(json.dumps(measure(args.measure, args, random.SystemRandom().randint(1, 230))))
        return 0
    if args.transport == "rclpy" and importlib.util.find_spec("rclpy") is None:
        parser.error("--transport rclpy needs rclpy: source /opt/ros/jazzy/setup.bash first")
    if args.transport == "rclpy" and importlib.util.find_spec("vla_msgs") is None:
        parser.error("--transport rclpy needs the vla_msgs interfaces: build the workspace as the README says "
                     "(python -m colcon build ...) and source install/setup.bash")
    over = "rclpy (rmw_cyclonedds_cpp)" if args.transport == "rclpy" else "its DDS transport"
    print(f"policy node at {args.robot}'s control rate on {over} (loopback), tiny VLA on CPU ({args.torch_threads} "
          f"torch thread(s)) asked for chunks back to back, cameras {args.height}x{args.width} rgb8 at 30 Hz; "
          f"{_load()}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results = []
    for run in range(args.runs):
        for mode in args.inference:  # each run in a fresh process, as a node starts: nothing left from the last
            command = [sys.executable, __file__, "--measure", mode, *sys.argv[1:]]
            proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f"{mode}: the measuring process failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["run"] = run + 1
            results.append(result)
            print(report(result), flush=True)
    print(f"target: |period - nominal| p99 <= {TARGET_P99_MS} ms and no gap over 2 periods")
    if args.runs > 1:
        for mode in args.inference:
            print(summary([r for r in results if r["mode"] == mode]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
