"""Periodic work for the nodes: a thread with a fixed-rate schedule, or an rclpy timer under ROS.

Without ROS (DDS transport) each periodic job gets its own thread, so a slow status encode never delays a
control tick. Under rclpy a job is a node timer in its own mutually exclusive callback group: the
MultiThreadedExecutor that `RclpyTransport.create` spins runs it alongside the services, and the timer
follows the node's clock (so `use_sim_time` and `ros2 bag play --clock` drive it). Except the nodes' control
and status timers (`ControlTimers`): on wall time they are threads under rclpy too, as ros2_control runs its
loop on a thread of its own. Called by the executor (Python code that takes the GIL between waits), a 250 Hz
tick missed its period by 2.4-3.2 ms at p99 with 8-44 gaps over two periods per 30 s (model out of process,
SCHED_FIFO); on threads, 0.84-2.04 ms and 0-17 gaps; with the subscriptions also off the executor (a wait loop
of their own, transport/rclpy_executor.py), 0.56-0.79 ms and 0-2 gaps (`bench_control_jitter.py --transport
rclpy`; the README has the runs). On sim time (use_sim_time) they stay node timers, which the simulated clock
drives.

The *time stamp* a job works with is always the node's clock (`Transport.now`): wall time over DDS, the ROS
clock (sim time included) under rclpy. Tests skip both and call the jobs with a scripted clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from vla_policy_node.transport.threads import join_started

log = logging.getLogger(__name__)

Job = Callable[[], object]


class Ticker(Protocol):
    period: float

    def start(self) -> None: ...

    def stop(self) -> None: ...


class GuardedJob:
    """`job()` that logs (once per distinct message) and counts exceptions instead of raising them: a periodic
    job must never take the node down (an exception would also end an rclpy executor's spin)."""

    def __init__(self, job: Job, name: str) -> None:
        self.job = job
        self.name = name
        self.failures = 0
        self._logged: set[str] = set()

    def __call__(self) -> None:
        try:
            self.job()
        except Exception as error:
            self.failures += 1
            key = f"{type(error).__name__}: {error}"
            if key not in self._logged:
                self._logged.add(key)
                log.exception("%s: periodic job raised (logged once per message)", self.name)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_CLOCK_MONOTONIC, _TIMER_ABSTIME = 1, 1  # <time.h> on Linux; time.monotonic() reads CLOCK_MONOTONIC there


def _libc_clock_nanosleep() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).clock_nanosleep
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.POINTER(_Timespec)]
    function.restype = ctypes.c_int
    return function


_clock_nanosleep = _libc_clock_nanosleep()


def sleep_until(deadline: float) -> None:
    """Sleep until `time.monotonic()` reaches `deadline`: an absolute deadline (clock_nanosleep TIMER_ABSTIME;
    ctypes releases the GIL for the call), so time lost between computing it and going to sleep (the GIL held by
    another thread, a preemption) does not push the wake-up back, as a relative `sleep(deadline - now)` would."""
    if _clock_nanosleep is None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        return
    seconds = math.floor(deadline)
    spec = _Timespec(seconds, min(999_999_999, round((deadline - seconds) * 1e9)))
    while _clock_nanosleep(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ctypes.byref(spec), None) == errno.EINTR:
        pass  # a signal handler ran; the deadline stands


class ThreadTicker:
    """Runs `job` every `period` seconds on a thread of its own: absolute deadlines on one monotonic grid (no
    drift; a late start does not shift later ticks), missed ticks skipped, not bunched (more than a period
    behind: the grid restarts from now). `first_tick`: the grid's first deadline (monotonic time; default: when
    the thread starts), so two tickers can be put out of phase. `clock` / `sleep_until` are replaceable for
    tests."""

    STOP_CHECK = 0.02  # s: the longest sleep between looks at stop()

    def __init__(self, period: float, job: Job, name: str, clock: Callable[[], float] = time.monotonic,
                 sleep_until: Callable[[float], None] = sleep_until, first_tick: float | None = None) -> None:
        if not period > 0:
            raise ValueError(f"ticker period must be positive, got {period}")
        self.period = float(period)
        self.first_tick = first_tick
        self.next_deadline: float | None = None  # of the tick due next (or running now); None until started
        self.name = name
        self.overruns = 0
        self.job = GuardedJob(job, name)
        self._clock, self._sleep_until = clock, sleep_until
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"ticker {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        join_started(self._thread, timeout)

    def _run(self) -> None:
        clock, stop = self._clock, self._stop
        deadline = clock() if self.first_tick is None else self.first_tick
        now = clock()
        while not stop.is_set():
            self.next_deadline = deadline
            while now < deadline and not stop.is_set():
                self._sleep_until(min(deadline, now + self.STOP_CHECK))
                now = clock()
            if stop.is_set():
                break
            self.job()
            deadline += self.period
            now = clock()
            if now - deadline > self.period:  # fell more than a period behind: restart the schedule from now
                self.overruns += 1
                deadline = now


class RclpyTicker:
    """An rclpy timer in its own callback group (see the module docstring). After `stop()` returns the job
    does not run again: a call the executor had already taken from the timer (and queued on one of its
    threads) is skipped, one in progress is waited for. Without that, a control tick queued before shutdown
    ran after the node was destroyed ("cannot use Destroyable because destruction was requested")."""

    def __init__(self, node: Any, period: float, job: Job, name: str) -> None:
        self.node = node
        self.period = float(period)
        self.name = name
        self.job = GuardedJob(job, name)
        self._timer: Any = None
        self._running = threading.RLock()  # reentrant: a job may stop its own ticker
        self._stopped = False

    def start(self) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

        self._stopped = False
        self._timer = self.node.create_timer(self.period, self._tick, callback_group=MutuallyExclusiveCallbackGroup())

    def _tick(self) -> None:
        with self._running:
            if not self._stopped:
                self.job()

    def stop(self) -> None:
        with self._running:
            self._stopped = True
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None


def set_realtime_priority(priority: int, exclude: Iterable[int] = ()) -> str:
    """SCHED_FIFO at `priority` (1-99) for every thread of this process now running except `exclude` (native thread
    ids: a thread that runs a model), as ros2_control runs its controller manager. All of them, because they all
    take the GIL: a normal-priority thread that holds it when the OS preempts it stalls a real-time control thread
    (priority inversion). Threads and processes started later begin at normal priority (SCHED_RESET_ON_FORK).
    Returns '' on success, else why not (no permission: CAP_SYS_NICE or an rtprio limit is needed; not Linux)."""
    if not hasattr(os, "SCHED_FIFO") or not os.path.isdir("/proc/self/task"):
        return "real-time scheduling is not available on this OS"
    if not 1 <= priority <= 99:
        return f"real-time priority must be 1..99, got {priority}"
    skip = set(exclude)
    try:
        for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
            if tid not in skip:
                with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                    os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as error:
        return f"cannot set SCHED_FIFO {priority}: {error.strerror} (needs CAP_SYS_NICE or an rtprio limit)"
    return ""


CONTROL_SWITCH_INTERVAL = 0.0005  # s; CPython's default (5 ms) is longer than a 250 Hz control period
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
HEAP_MMAP_THRESHOLD = 32 << 20  # bytes: glibc's largest; blocks below it (camera frames) come from the heap
HEAP_TRIM_THRESHOLD = 128 << 20  # bytes of free heap top kept instead of returned to the OS


def keep_heap_memory() -> str:
    """Large blocks (a camera frame as cyclonedds' take copies it, ~1 MB at 640x480) from a heap that keeps its
    pages, instead of glibc's default: a fresh mmap per block and a munmap when it is freed, so every frame
    page-faults its memory in again (~870 minor faults and 2.2 ms per 640x480 frame, measured, in a C call that
    holds the GIL; 0.4 ms and no faults with this). The price: up to HEAP_TRIM_THRESHOLD of freed heap stays
    mapped. Returns '' or why not (not glibc)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "mallopt is not available (not glibc)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)):
        return "mallopt refused the thresholds"
    return ""


def tune_control_process(model_thread_ids: Iterable[int], out_of_process: bool, realtime_priority: int) -> str:
    """What the policy node does once its threads run, for steady control ticks (the jitter benchmark does the
    same): start-up objects frozen out of the garbage collector's scans; optionally real-time priority for every
    thread but the model's, and then, with the model out of process (only light threads left), a GIL that changes
    hands every 0.5 ms instead of 5. Not without real-time priority: a forced GIL hand-over waits until the other
    thread runs, which on a loaded machine can take longer than the interval saves. Always: large buffers from a
    heap that keeps its pages (`keep_heap_memory`). Returns '' or why real-time priority could not be set."""
    gc.freeze()
    problem = keep_heap_memory()
    if problem:
        log.info("%s: camera frames page-fault their memory in each time", problem)
    if not realtime_priority:
        return ""
    problem = set_realtime_priority(realtime_priority, exclude=model_thread_ids)
    if not problem and out_of_process:
        sys.setswitchinterval(CONTROL_SWITCH_INTERVAL)
    return problem


def drop_realtime_priority() -> None:
    """The calling thread back to normal scheduling (a model must never run at real-time priority)."""
    if hasattr(os, "SCHED_FIFO") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def make_ticker(transport: object, period: float, job: Job, name: str, own_thread: bool = False,
                first_tick: float | None = None) -> Ticker:
    """An rclpy timer when the transport wraps an rclpy node, else a thread. `own_thread`: always one thread
    of its own, for jobs bound to a thread (an EGL context is current in one thread only: a renderer driven by
    a MultiThreadedExecutor, which runs each timer call on whichever thread is free, fails with
    EGL_BAD_ACCESS) or that must not follow a simulated clock. `first_tick` (monotonic time) places a thread's
    grid; an rclpy timer starts its grid when created, on the node's clock."""
    node = getattr(transport, "node", None)
    if node is not None and not own_thread:
        return RclpyTicker(node, period, job, name)
    return ThreadTicker(period, job, name, first_tick=first_tick)


def follows_sim_clock(transport: object) -> bool:
    """Whether the transport's node runs on simulated time (rclpy's use_sim_time parameter is true)."""
    node = getattr(transport, "node", None)
    if node is None:
        return False
    try:
        return bool(node.get_parameter("use_sim_time").value)
    except Exception:  # a node without the parameter runs on wall time
        return False


TICK_CLEARANCE = 0.0005  # s after a control tick's deadline by which the tick has (nearly always) run


class ControlTimers:
    """A node's control tick and status timer, started and stopped together; the status rate changes live.

    The policy node and the command mux both run this pair; one place keeps their start/stop/rate rules equal.
    Both are threads of their own unless the node runs on simulated time under rclpy (see the module docstring;
    decided at each `start()`). With threads, the status grid lies half a control period after the control grid:
    a status publish (0.3 ms median, 2 ms p99, GIL held) that began with a tick delayed it by about a GIL hand-over
    (measured: 83% of the status publishes of a 250 Hz jitter run overlapped a tick's start). The phase holds
    until the control ticker falls more than a period behind and restarts its grid."""

    def __init__(self, transport: object, name: str, control_period: float, control_step: Job,
                 status_hz: float, status_step: Job) -> None:
        self._transport, self._name = transport, name
        self._control_period, self._control_step = control_period, control_step
        self._status_step = status_step
        self.status_hz = check_rate(status_hz)
        self._tickers: list[Ticker] = []
        self._control_grid = 0.0  # monotonic time of the control ticker's first deadline
        self._own_threads = True  # threads, or rclpy timers on simulated time

    @property
    def running(self) -> bool:
        return bool(self._tickers)

    def start(self) -> None:
        if self._tickers:
            raise RuntimeError("already started")
        self._own_threads = not follows_sim_clock(self._transport)
        self._control_grid = time.monotonic() + self._control_period  # a period for the thread to start
        self._tickers = [
            make_ticker(self._transport, self._control_period, self._control_step, f"{self._name}-control",
                        own_thread=self._own_threads, first_tick=self._control_grid),
            self._status_ticker(),
        ]
        for ticker in self._tickers:
            ticker.start()

    def _status_ticker(self) -> Ticker:
        """The status ticker, its first deadline midway between two control deadlines from now on."""
        period = self._control_period
        ahead = max(0, math.ceil((time.monotonic() - self._control_grid) / period))
        first = self._control_grid + (ahead + 0.5) * period
        return make_ticker(self._transport, 1.0 / self.status_hz, self._status_step, f"{self._name}-status",
                           own_thread=self._own_threads, first_tick=first)

    def wait_for_room(self, room: float) -> float:
        """Before a stretch of GIL-holding work on another thread (a chunk landing, the next request): if the
        next control tick is due within `room` seconds, or is running, wait until TICK_CLEARANCE after it
        began, so the work starts with a whole period ahead instead of delaying the tick. Returns the seconds
        waited (0 on rclpy timers, sim time: they do not say when they fire next)."""
        control = self._tickers[0] if self._tickers else None
        deadline = getattr(control, "next_deadline", None)
        if deadline is None:
            return 0.0
        now = time.monotonic()
        if deadline - now >= room or now - deadline > self._control_period:
            return 0.0  # room enough, or the ticker is far behind (it restarts its grid; waiting cannot help)
        until = deadline + TICK_CLEARANCE
        if until <= now:
            return 0.0
        sleep_until(until)
        return until - now

    def stop(self) -> None:
        """Stop both; a later `start()` runs them again (a lifecycle deactivate / activate)."""
        for ticker in self._tickers:
            ticker.stop()
        self._tickers = []

    def set_status_rate(self, hz: float) -> None:
        """The status timer's rate, applied at once when running."""
        self.status_hz = check_rate(hz)
        if self._tickers:
            self._tickers[1].stop()
            self._tickers[1] = self._status_ticker()
            self._tickers[1].start()


def check_rate(hz: float) -> float:
    """A timer rate as a float; ValueError unless positive and finite."""
    if not (hz > 0 and math.isfinite(hz)):
        raise ValueError(f"status rate must be positive, got {hz}")
    return float(hz)
