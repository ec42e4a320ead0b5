"""What every fault scenario asserts, on what the monitor heard:

- no command outside the position / velocity / acceleration limits (`assert_within_limits`);
- the hold: the commands come to rest no later than one control period plus the configured timeout after
  the fault began (plus braking from the speed they had then, the filter's settling, and SLACK), and stay at
  rest while the fault lasts (`assert_hold`);
- the reason in the status (`assert_reason`): the status topics and /diagnostics say why;
- recovery without a jump once the inputs are healthy (`assert_recovers`): the policy drives again within
  RECOVERY (plus what the machine's inference latency adds), planning from fresh observations, and the limits
  hold through the hand-over.
"""

from __future__ import annotations

import time

import numpy as np

from test.faults.monitor import REST_TRAVEL, beyond_path, status_text
from test.faults.nodeset import NodeSet

# Delivery and scheduling on a 2-core machine: DDS loopback latency from the nodes to the monitor and the thread
# wake-ups of two nodes in a row (a hold in the policy node is forwarded by the mux). Never a model or a timeout:
# those are the `timeout` of each check.
SLACK = 0.1
# After the inputs are healthy again: a fresh matched observation (cameras at 30 Hz), an inference of the tiny
# model, and the mux's hand-over ramp. The inference is what a busy machine slows most: `recovery_time` adds
# three times the p99 inference latency the policy node reports (RECOVERY itself assumes ~0.15 s).
RECOVERY = 2.0


def recovery_time(ns: NodeSet, before: float, extra: float = 0.0) -> float:
    """RECOVERY plus three times the slowest p99 inference latency the policy reported in the 10 s before."""
    p99 = [s["inference_latency_p99"] for _, s in ns.monitor.status.window(before - 10.0, before)
           if np.isfinite(s["inference_latency_p99"])]
    return RECOVERY + extra + 3.0 * max(p99 or [0.0])


def assert_within_limits(ns: NodeSet, t0: float, t1: float, what: str) -> None:
    problems = ns.monitor.violations(t0, t1)
    assert not problems, f"{what}: commands broke the limits:\n" + "\n".join(problems) + "\n" + ns.logs()


def assert_hold(ns: NodeSet, t_fault: float, timeout: float, t_end: float, what: str,
                decided_by: str = "mux") -> float:
    """The node that decides the hold (`decided_by`: "mux", or "policy" for faults only the policy node sees)
    commands the arm to stand still by t_fault + timeout + one control period (+ braking, settling and SLACK),
    and until t_end. Returns when that node's commands came to rest.

    The filters brake per control tick, and a filter following a held command (the mux behind a policy that
    holds, hearing it between its own ticks) settles on it within a few periods: the allowance is three times
    a/j + T, the time constant of a jerk-limited approach (margin: jerk never delays a stop). On a machine
    that runs the control loops slower than their nominal rate (the commands' arrival rate, the nodes' own
    control_rate), those ticks take that much longer. A stall (no command heard for longer than a period
    before the rest: the nodes or the monitor did not run) shifts every arrival time by its length. Both are
    added to the allowance and reported.

    A hold the policy node decides is timed on its own commands; the mux, which follows them with its own
    filter, must then bring the controller to rest on the same position before the fault ends (how long that
    following takes is the mux's tracking, reported in figures, not a hold of its own)."""
    m = ns.monitor
    log = m.policy_commands if decided_by == "policy" else m.commands
    t_detect = t_fault + timeout + ns.period
    brake = m.limits.braking_time(m.velocity_at(t_detect, log))
    settle = 3.0 * float(np.max(m.limits.max_acceleration / m.limits.max_jerk)) + 3.0 * ns.period
    if decided_by == "policy":
        settle = 0.0  # the policy node's own filter brakes the hold: nothing to follow
    rest = m.rest_time(t_fault, t_end, log)
    until = rest if rest is not None else t_end
    stall = max(0.0, m.largest_gap(t_fault, until, log) - ns.period)
    slowdown = _slowdown(ns, t_fault - 0.5, until)
    allowed = t_fault + timeout + (ns.period + brake + settle) * slowdown + SLACK + stall
    heard = (f"{decided_by}: {len(log.window(t_fault, t_end))} commands, stall {stall:.3f} s, loops "
             f"{slowdown:.2f}x slow")
    assert rest is not None, (f"{what}: the commands were still changing when the fault ended "
                              f"({m.motion(t_detect + brake + settle + SLACK, t_end, log):.4f} rad over the last "
                              f"{t_end - t_detect - brake - settle - SLACK:.2f} s of it; {heard})\n"
                              f"{summary(ns, t_fault, t_end)}")
    assert rest <= allowed, (
        f"{what}: the commands came to rest {rest - t_fault:.3f} s after the fault; allowed {allowed - t_fault:.3f} "
        f"s: timeout {timeout} s + (period {ns.period} s + braking {brake:.3f} s + settling {settle:.3f} s) x "
        f"{slowdown:.2f} + slack {SLACK} s + stall {stall:.3f} s ({heard})\n{summary(ns, t_fault, t_end)}")
    if decided_by == "policy":
        arm = m.rest_time(t_fault, t_end)
        assert arm is not None, f"{what}: the controller's commands still moved when the fault ended"
        # The mux holds on its own when the policy's stream is silent for longer than its timeout (a stalled
        # machine). Seen in its status, or (a hold between two status messages) in the policy's stream itself.
        # It then brakes from where its own filter stood when it stopped listening, and its filter always kept
        # able to stop short of where the policy's stream could stop, late messages included
        # (test_control_mux_following.py): so it rests inside the range of positions the policy commanded.
        held, reached, start = m.position_at(t_end, log), m.position_at(t_end), m.position_at(t_fault)
        assert held is not None and reached is not None and start is not None
        if (any(s["active_source"] == "hold" for _, s in m.mux_status.window(t_fault, t_end))
                or m.largest_gap(t_fault, t_end, log) > ns.mux_policy_timeout()):
            _, path, _ = m.command_arrays(t_fault, t_end, log)
            beyond = beyond_path(reached, start, path)
            j = int(np.argmax(beyond))
            low, high = min(start[j], path[:, j].min(initial=start[j])), max(start[j], path[:, j].max(initial=start[j]))
            assert np.all(beyond <= REST_TRAVEL), (
                f"{what}: the mux held on its own and the controller came to rest {beyond[j]:.4f} rad beyond every "
                f"position the policy commanded ({m.limits.names[j]} at {reached[j]:.4f}, the policy's between "
                f"{low:.4f} and {high:.4f}); allowed {REST_TRAVEL} rad")
            return rest
        assert np.max(np.abs(reached - held)) <= REST_TRAVEL, (
            f"{what}: the controller came to rest {np.max(np.abs(reached - held)):.4f} rad away from where the "
            "policy held")
    return rest


def _slowdown(ns: NodeSet, t0: float, t1: float) -> float:
    """How much slower than nominal the control loops ran over [t0, t1] (>= 1): the mux's commands' arrival
    rate, and the control_rate both nodes report."""
    nominal = ns.robot.rates.control_hz
    rates = [s["control_rate"] for recorder in (ns.monitor.status, ns.monitor.mux_status)
             for _, s in recorder.window(t0, t1 + 0.2) if s["control_rate"] > 0]
    times, _, _ = ns.monitor.command_arrays(t0, t1)
    if len(times) > 10:
        rates.append((len(times) - 1) / (times[-1] - times[0]))
    return max([1.0] + [nominal / rate for rate in rates])


# A machine running other work delays the nodes' inputs now and then: an input goes stale for a moment and the
# policy holds until the next fresh observation. Such a hold, saying only that inputs are late, may last this
# long where a scenario expects the policy to keep driving; a fault, or an input kept stale (a poisoned stamp
# order, garbage taken for data), does not pass.
TRANSIENT_HOLD = 1.0


# Faults that only say the machine was slow (an inference that took longer than its deadline): like an input
# that arrives late, a short hold for them is not the scenario's doing.
SLOW_MACHINE = ("inference deadline missed", "inference timeout", "no inference result")


def assert_no_hold(ns: NodeSet, t0: float, t1: float, what: str, explained_by: tuple[str, ...] = ()) -> None:
    """The policy kept driving over [t0, t1]: a hold of either node is only allowed when its status says one of
    `explained_by` (what the scenario expects), or for at most TRANSIENT_HOLD when it says only that inputs are
    late or the machine slow; both nodes drive at t1."""
    problems = []
    for who, recorder in (("policy", ns.monitor.status), ("mux", ns.monitor.mux_status)):
        items = recorder.window(t0, t1)
        if len(items) < 5:
            problems.append(f"{who}: only {len(items)} statuses heard")
            continue
        held_since = None
        for t, s in items:
            text = status_text(s)
            if s["active_source"] == "policy" or any(w in text for w in explained_by):
                held_since = None
                continue
            fault = s["fault"] or s.get("sensor_fault", "")
            if fault and not any(w in fault for w in SLOW_MACHINE):
                problems.append(f"{who} held at {t - t0:.2f} s with a fault: {fault}")
            held_since = t if held_since is None else held_since
            if t - held_since > TRANSIENT_HOLD:
                problems.append(f"{who} held from {held_since - t0:.2f} s to {t - t0:.2f} s: {text}")
        last = items[-1][1]
        if held_since is not None and not any(w in status_text(last) for w in explained_by):
            # a short hold at the very end: it must be over within TRANSIENT_HOLD of its start
            deadline = held_since + TRANSIENT_HOLD + 0.2
            while time.monotonic() < deadline and recorder.latest()["active_source"] != "policy":
                time.sleep(0.05)
            if recorder.latest()["active_source"] != "policy":
                problems.append(f"{who} holds at the end: {status_text(recorder.latest())}")
    assert not problems, f"{what}: the policy lost control: {sorted(set(problems))[:5]}\n{summary(ns, t0, t1)}"


# An action chunk answers an observation at most this old when it arrives: observation -> chunk takes ~50 ms
# (p99 ~0.5 s on a loaded 2-core machine, benchmarks/soak.py); a node blinded by a wrong stamp or a clock step
# is off by that error (seconds) or plans nothing.
CHUNK_MAX_AGE = 2.0


def assert_fresh_chunks(ns: NodeSet, t0: float, t1: float, what: str, max_age: float = CHUNK_MAX_AGE) -> None:
    """The policy sees: over [t0, t1] it answered observations taken at most `max_age` before each answer
    arrived, on the nodes' current clock (a node blinded by a stamp from the future, or by a clock jump, would
    plan from old data or not at all while its status may still say "policy")."""
    chunks = ns.monitor.chunks.window(t0, t1)
    assert chunks, f"{what}: no action chunk at all"
    lag = [arrived - stamp for _, (stamp, arrived) in chunks]
    stale = [round(x, 2) for x in lag if not -0.05 <= x <= max_age]
    assert not stale, f"{what}: chunks answered observations this old (s, negative: from the future): {stale[:8]}"


# A status delivered this late still describes the moment it was made (a busy machine delays delivery).
LATE_STATUS = 0.5


def assert_reason(ns: NodeSet, t0: float, t1: float, what: str, *words: str) -> None:
    """Each of `words` (case-insensitive) appears in what the nodes reported over [t0, t1] (+ LATE_STATUS)."""
    text = ns.monitor.texts(t0, t1 + LATE_STATUS).lower()
    missing = [w for w in words if w.lower() not in text]
    assert not missing, f"{what}: the status never said {missing}\n{summary(ns, t0, t1)}"


def assert_counted(ns: NodeSet, t0: float, t1: float, what: str, *words: str) -> None:
    """A rejection counter naming all of `words` (an input, a reason) grew over [t0, t1] (diagnostics come once
    a second: t1 a second after the event)."""
    grown = ns.monitor.counted(t0, t1, *words)
    assert grown, (f"{what}: no counter of {list(words)} grew; counters now: "
                   f"{sorted(k for k in ns.monitor.counters(t1) if any(w.lower() in k.lower() for w in words))}")


def assert_any_reason(ns: NodeSet, t0: float, t1: float, what: str, *words: str) -> None:
    text = ns.monitor.texts(t0, t1 + LATE_STATUS).lower()
    assert any(w.lower() in text for w in words), (f"{what}: the status said none of {list(words)}\n"
                                                   f"{summary(ns, t0, t1)}")


def assert_recovers(ns: NodeSet, t_healthy: float, t_start: float, what: str, timeout: float | None = None,
                    extra: float = 0.0) -> float:
    """The policy drives again, and moves the arm, within `timeout` (default: `recovery_time` + extra) of
    t_healthy; every command since t_start (the fault and the hand-over back) kept the limits. Returns when it
    drove again."""
    timeout = recovery_time(ns, t_start, extra) if timeout is None else timeout
    deadline = t_healthy + timeout
    while not ns.driving(since=t_healthy):
        ns.check_alive()
        assert time.monotonic() < deadline, (f"{what}: the policy did not drive again within {timeout} s of "
                                             f"healthy inputs\n{summary(ns, t_healthy, time.monotonic())}")
        time.sleep(0.02)
    t_back = time.monotonic()
    while ns.monitor.motion(t_back) <= 1e-4 or not ns.monitor.chunks.window(t_back):
        assert time.monotonic() < max(deadline, t_back + 0.5), (f"{what}: driving again, but the arm does not "
                                                               "move or the policy plans nothing")
        time.sleep(0.02)
    assert_fresh_chunks(ns, t_back, time.monotonic(), what)
    assert_within_limits(ns, t_start, time.monotonic(), what)
    return t_back


def assert_moving(ns: NodeSet, what: str, window: float = 0.5) -> None:
    """Precondition of a hold check: the policy moves the arm (else 'held' would prove nothing)."""
    deadline = time.monotonic() + 10.0
    while ns.monitor.motion(time.monotonic() - window) <= 1e-4:
        assert time.monotonic() < deadline, f"{what}: precondition: the policy does not move the arm\n{ns.logs()}"
        time.sleep(0.05)


def summary(ns: NodeSet, t0: float, t1: float) -> str:
    """What the nodes reported over [t0, t1] (distinct lines) and the tail of each node's log."""
    lines = sorted(set(ns.monitor.texts(t0, t1).splitlines()))
    return "reported:\n  " + "\n  ".join(lines[:40]) + "\n" + ns.logs()
