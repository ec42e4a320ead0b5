"""The safety filter's per-joint limit step (see safety.py for what each clamp means and why they nest).

It is the arithmetic that runs for every joint on every control tick (250-1000 times a second), kept apart in a
module of plain floats and lists, without numpy, so that it can be compiled to C with mypyc
(`scripts/build_native.py`, run by `scripts/setup_env.sh`). Compiled or not, it is this same source, and
`vla_policy_node.control.native` runs the Python source whenever the compiled module is not built from exactly it.
"""

from __future__ import annotations

import math

from vla_policy_node.control.braking import braking_velocity, stopping_distance


def limit_joint_step(
    target: list[float] | None,
    measured: list[float] | None,
    flags: set[str],
    qs: list[float],
    vs: list[float],
    accs: list[float],
    prev_targets: list[float],
    last_steps: list[float],
    on_targets: list[bool],
    los: list[float],
    his: list[float],
    vmaxs: list[float],
    amaxs: list[float],
    a_ts: list[float],
    a_tols: list[float],
    j_ts: list[float],
    brake_zones: list[float],
    period: float,
    step: float,
) -> None:
    """One control period for every joint: the step towards `target` (None: hold, i.e. stop as fast as the
    limits allow) within all limits. Updates the state lists (position, velocity, acceleration of the sent
    commands; the target's last value and step; whether each joint is on its target) in place and adds the name
    of every clamp that bound to `flags`. `measured`: the joints' measured positions for the relative-target
    limit (None: relative to the last command); `step`: that limit (inf: none)."""
    inv_t = 1.0 / period
    inf = math.inf
    for j in range(len(qs)):
        q, v, a_prev = qs[j], vs[j], accs[j]
        vmax, amax, a_t, j_t = vmaxs[j], amaxs[j], a_ts[j], j_ts[j]
        lo, hi = los[j], his[j]
        if target is None:
            x = 0.0  # hold: stop as fast as the limits allow, then stay
        else:
            tj = target[j]
            x = (tj - q) * inv_t
            if tj > hi or tj < lo:
                flags.add("position")
            if j_t != inf:
                hi_j, lo_j = v + (a_prev + j_t) * period, v + (a_prev - j_t) * period
                # Like every clamp, jerk restricts motion and never creates it: its result stays between
                # standing still and the step asked for. It smooths how motion starts and speeds up, never
                # how it stops (a stop it delayed would carry the command past its target).
                if x > hi_j:
                    if x > 0.0:
                        x = hi_j if hi_j > 0.0 else 0.0
                        flags.add("jerk")
                elif x < lo_j and x < 0.0:
                    x = lo_j if lo_j < 0.0 else 0.0
                    flags.add("jerk")
            # Its velocity: the last step, or where that step is more than acceleration allows away from the
            # one before (a message that came a tick late looks like a pause, then a double step: neither is
            # its speed), the smaller of the two.
            pt = prev_targets[j]
            step_now = (tj - pt if pt == pt else tj - q) * inv_t  # after a reset or hold: from where it stands
            last_step = last_steps[j]
            last_steps[j] = step_now
            a_tol = a_tols[j]
            feasible = -a_tol <= step_now - last_step <= a_tol
            if not (feasible and on_targets[j]):
                # Off the target (a clamp happened) or behind a stream that is not one an arm can follow:
                # approach without passing the point where the target itself would stop if it braked now at
                # max deceleration (a stream filtered with these limits can do no better). Like the jerk
                # clamp, this restricts the step between standing still and what was asked.
                if feasible:
                    vt = step_now
                elif step_now > 0.0 < last_step:
                    vt = min(step_now, last_step)
                elif step_now < 0.0 > last_step:
                    vt = max(step_now, last_step)
                else:
                    vt = 0.0
                vt = min(vmax, max(-vmax, vt))
                stop = tj - q
                if abs(vt) > a_t:  # its steps from here: |vt| - aT, |vt| - 2aT, ..., 0
                    stop += math.copysign(stopping_distance(abs(vt) - a_t, amax, period), vt)
                if x > 0.0:
                    x = min(x, max(braking_velocity(stop, amax, period), 0.0))
                elif x < 0.0:
                    x = max(x, min(braking_velocity(stop, amax, period), 0.0))
            if step != inf:
                ref = measured[j] if measured is not None else q
                # never an interval that excludes standing still: the clamp must not create motion
                hi_m, lo_m = max((ref + step - q) * inv_t, 0.0), min((ref - step - q) * inv_t, 0.0)
                if x > hi_m:
                    x = hi_m
                    flags.add("relative_target")
                elif x < lo_m:
                    x = lo_m
                    flags.add("relative_target")
        # Braking-aware position limits (holding outside them stays put: no motion of their own).
        zone = brake_zones[j]
        d_hi = hi - q
        if d_hi < zone:
            cap = braking_velocity(d_hi, amax, period)
            if target is None:
                cap = max(cap, 0.0)
            if x > cap:
                x = cap
                flags.add("position")
        d_lo = q - lo
        if d_lo < zone:
            cap = -braking_velocity(d_lo, amax, period)
            if target is None:
                cap = min(cap, 0.0)
            if x < cap:
                x = cap
                flags.add("position")
        # Velocity and acceleration: physically binding, so applied last. Above a (just tightened) velocity
        # limit, the velocity bound is as far down as the acceleration allows: braking to it at max decel.
        up, down = v + a_t, v - a_t
        v_hi = vmax if v <= vmax else max(vmax, down)
        v_lo = -vmax if v >= -vmax else min(-vmax, up)
        if x > up or x > v_hi:
            if up < v_hi:
                x = up
                flags.add("acceleration")
            else:
                x = v_hi
                flags.add("velocity")
        elif x < down or x < v_lo:
            if down > v_lo:
                x = down
                flags.add("acceleration")
            else:
                x = v_lo
                flags.add("velocity")
        qn = q + x * period
        if qn > hi >= q:
            qn = hi
        elif qn < lo <= q:
            qn = lo
        vn = (qn - q) * inv_t
        an = (vn - v) * inv_t
        if target is not None and j_t != inf and abs(an - a_prev) > j_t * (1 + 1e-6) + 1e-9:
            flags.add("jerk_yielded")
        qs[j], vs[j], accs[j] = qn, vn, an
        if target is None:
            prev_targets[j] = math.nan
            on_targets[j] = False
            last_steps[j] = 0.0
        else:
            prev_targets[j] = tj
            on_targets[j] = abs(qn - tj) <= 1e-9
