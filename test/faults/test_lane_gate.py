"""The campaign's LaneGate: a solo scenario never overlaps another lane's step, and steps asked for while it
waits queue behind it (otherwise a busy lane could keep it waiting for ever)."""

from __future__ import annotations

import threading
import time

from test.faults.campaign import LaneGate


def test_a_solo_scenario_waits_for_running_steps_and_new_steps_wait_for_it():
    gate = LaneGate()
    events: list[str] = []
    step_running, release_step = threading.Event(), threading.Event()

    def long_step() -> None:
        with gate.step():
            events.append("step A begins")
            step_running.set()
            release_step.wait(5.0)
            events.append("step A ends")

    def solo() -> None:
        with gate.solo():
            events.append("solo begins")
            time.sleep(0.05)
            events.append("solo ends")

    def later_step() -> None:
        with gate.step():
            events.append("step C begins")

    a = threading.Thread(target=long_step)
    a.start()
    assert step_running.wait(5.0)
    b = threading.Thread(target=solo)
    b.start()
    time.sleep(0.05)  # b is now waiting for step A
    c = threading.Thread(target=later_step)
    c.start()
    time.sleep(0.05)
    assert events == ["step A begins"], "the solo scenario or the later step started while step A ran"
    release_step.set()
    for thread in (a, b, c):
        thread.join(5.0)
    assert events == ["step A begins", "step A ends", "solo begins", "solo ends", "step C begins"]


def test_steps_of_different_lanes_run_at_once():
    gate = LaneGate()
    inside = threading.Barrier(2, timeout=5.0)

    def step() -> None:
        with gate.step():
            inside.wait()  # both steps inside at the same time, or a BrokenBarrierError

    threads = [threading.Thread(target=step) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    assert not inside.broken
