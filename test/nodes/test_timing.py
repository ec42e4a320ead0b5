"""nodes/timing.py: the ticker thread's absolute deadlines, the absolute sleep, the heap setting for frames."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from vla_policy_node.nodes.timing import TICK_CLEARANCE, ControlTimers, ThreadTicker, sleep_until


class FakeTime:
    """A clock that moves only when the ticker sleeps (to the deadline it asks for) or a job stalls."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(deadline)
        self.now = max(self.now, deadline)


def run_ticker(stalls: dict[int, float], ticks: int, period: float = 0.004,
               first_tick: float | None = None) -> tuple[ThreadTicker, list[float]]:
    """Run a ticker on fake time for `ticks` jobs; job k stalls (advances the clock) by stalls[k] seconds."""
    fake, starts, done = FakeTime(), [], threading.Event()
    ticker: ThreadTicker

    def job() -> None:
        starts.append(fake.now)
        fake.now += 0.0001 + stalls.get(len(starts) - 1, 0.0)
        if len(starts) >= ticks:
            ticker._stop.set()
            done.set()

    ticker = ThreadTicker(period, job, "test", clock=fake.clock, sleep_until=fake.sleep_until, first_tick=first_tick)
    ticker.start()
    assert done.wait(10)
    ticker.stop()
    return ticker, starts


def test_ticker_keeps_absolute_deadlines_after_a_stall_shorter_than_a_period():
    period = 0.004
    ticker, starts = run_ticker({3: 0.6 * period}, ticks=8, period=period)
    expected = [100.0 + k * period for k in range(8)]
    assert starts == pytest.approx(expected, abs=1e-9)  # tick 4 is not pushed back by tick 3's stall
    assert ticker.overruns == 0


def test_ticker_runs_a_late_tick_at_once_and_then_returns_to_the_grid():
    period = 0.004
    _, starts = run_ticker({2: 1.5 * period}, ticks=6, period=period)
    # tick 3 was due at 100.012 but tick 2 ran until 100.0142: it runs at once, tick 4 is back on the grid
    assert starts[3] == pytest.approx(100.0 + 2 * period + 0.0001 + 1.5 * period)
    assert starts[4:] == pytest.approx([100.0 + 4 * period, 100.0 + 5 * period], abs=1e-9)


def test_ticker_skips_missed_ticks_after_a_stall_over_a_period_instead_of_bunching_them():
    period = 0.004
    ticker, starts = run_ticker({1: 3.2 * period}, ticks=5, period=period)
    restart = 100.0 + period + 0.0001 + 3.2 * period
    assert starts[2] == pytest.approx(restart)  # at once, once, not three catch-up ticks
    assert starts[3:] == pytest.approx([restart + period, restart + 2 * period], abs=1e-9)
    assert ticker.overruns == 1


def test_ticker_waits_for_its_first_tick_and_keeps_that_grid():
    period = 0.004
    _, starts = run_ticker({}, ticks=4, period=period, first_tick=100.0021)
    assert starts == pytest.approx([100.0021 + k * period for k in range(4)], abs=1e-9)


def test_the_status_grid_lies_half_a_control_period_after_the_control_grid():
    """So a status publish does not start with a control tick (and delay it), also after a rate change."""
    period = 0.004
    timers = ControlTimers(object(), "test", period, lambda: None, 10.0, lambda: None)
    timers.start()
    try:
        for _ in range(2):
            control, status = (ticker.first_tick for ticker in timers._tickers)
            assert control is not None and status is not None
            assert status > time.monotonic() - period  # from now on, not on the past grid
            assert (status - control) % period == pytest.approx(period / 2, abs=1e-9)
            time.sleep(0.013)
            timers.set_status_rate(5.0)
    finally:
        timers.stop()


def test_ticker_stops_within_its_stop_check_even_with_a_long_period():
    ticker = ThreadTicker(60.0, lambda: None, "slow")
    ticker.start()
    time.sleep(0.05)
    start = time.monotonic()
    ticker.stop()
    assert ticker._thread is not None and not ticker._thread.is_alive()
    assert time.monotonic() - start < 1.0  # not the 60 s period


def test_sleep_until_is_absolute():
    deadline = time.monotonic() + 0.05
    time.sleep(0.1)  # stalled past the deadline after computing it: no further sleep
    start = time.monotonic()
    sleep_until(deadline)
    assert time.monotonic() - start < 0.04
    deadline = time.monotonic() + 0.02
    sleep_until(deadline)
    assert time.monotonic() >= deadline  # never early


FRAME_FAULTS = """
import resource, sys
from vla_policy_node.nodes.timing import keep_heap_memory
if sys.argv[1] == "keep":
    assert keep_heap_memory() == ""
size = 640 * 480 * 3

def one_take():  # as cyclonedds' take of a frame: a few frame-sized copies alive at once, then all freed
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    blocks = [bytearray(size) for _ in range(4)]
    for block in blocks:
        block[::4096] = bytes(len(block[::4096]))
    del blocks
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

for _ in range(3):
    one_take()  # the heap grows to fit once
print(max(one_take() for _ in range(5)))
"""


@pytest.mark.parametrize("mode", ["keep", "default"])
def test_keep_heap_memory_reuses_frame_sized_blocks_without_page_faults(mode):
    """A take copies a 640x480 frame a few times; with glibc's default those blocks are fresh mmaps (or a
    trimmed heap) and page-fault in again every frame (~225 faults per copy); kept on the heap they do not."""
    out = subprocess.run([sys.executable, "-c", FRAME_FAULTS, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    faults = int(out.stdout.split()[-1])
    pages = 640 * 480 * 3 // 4096
    if mode == "keep":
        assert faults < pages // 2
    else:  # the case keep_heap_memory is for (this test would prove nothing if the default did not fault)
        assert faults > pages


def test_work_waits_for_a_control_tick_due_within_its_room_and_starts_just_after_it():
    """The inference thread's chunk landing asks for room before it takes the GIL for a while: a tick due
    sooner runs first (wait_for_room returns just after it), a tick further away than the room is not waited for."""
    period = 0.05
    timers = ControlTimers(object(), "test", period, lambda: None, 1.0, lambda: None)
    assert timers.wait_for_room(period) == 0.0  # not started: nothing to wait for
    timers.start()
    try:
        time.sleep(2.2 * period)
        due = timers._tickers[0].next_deadline
        assert due is not None
        waited = timers.wait_for_room(period)  # the next tick is always within a whole period
        after = time.monotonic()
        assert waited > 0.0 and after >= due + TICK_CLEARANCE - 1e-6
        assert timers.wait_for_room(0.2 * period) == 0.0  # just after a tick: a period ahead, room enough
    finally:
        timers.stop()


def test_ticker_stops_quietly_after_a_start_cut_by_sigint(cut_thread_start):
    """A SIGINT landing inside Thread.start() (a launch stopped while the node starts; seen in CI as the mux's
    'cannot join thread before it is started', exit 2) leaves a thread that join() refuses. stop() returns
    quietly, so the node ends as asked, and the thread, should it get going after the stop, ends without a tick."""
    cut, real_start = cut_thread_start
    ticks: list[int] = []
    ticker = ThreadTicker(0.001, lambda: ticks.append(1), "cut")
    with pytest.raises(KeyboardInterrupt):
        ticker.start()
    ticker.stop()
    real_start(cut[0])
    cut[0].join(1.0)
    assert not cut[0].is_alive() and ticks == []
