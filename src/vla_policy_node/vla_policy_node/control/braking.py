"""Discrete-time braking: the fastest step that can still stop before a limit.

The command stream is q[k+1] = q[k] + v[k+1]*T with |v[k+1] - v[k]| <= a*T. If the joint moves one step at v
and then brakes as hard as allowed (v - aT, v - 2aT, ..., 0), it travels

    S(v) = T * ((n+1) v - a T n (n+1) / 2),   n = floor(v / (a T)),

which is continuous, piecewise linear and increasing in v. `braking_velocity(d)` inverts it: the largest v
with S(v) <= d. Bounding every step's velocity by it keeps the set of states "can still stop inside the
limit" invariant: from such a state, braking by a*T is always allowed and always stays in the set. That is why
clamping position, velocity and acceleration this way never runs out of room, whatever the input.
"""

from __future__ import annotations

import math


def braking_velocity(distance: float, accel: float, period: float) -> float:
    """Largest velocity for the next step that still allows a stop within `distance` (>= 0).

    A negative distance (already beyond the limit) gives the negative velocity that heads back inside as fast
    as it can while still able to stop *at* the limit, so a recovery does not overshoot into the range.
    """
    if distance < 0.0:
        return -braking_velocity(-distance, accel, period)
    if distance == 0.0:
        return 0.0
    a_t = accel * period
    c = a_t * period  # distance of one braking "triangle" unit: S(m*aT) = c*m*(m+1)/2
    m = math.floor((math.sqrt(1.0 + 8.0 * distance / c) - 1.0) * 0.5)
    if c * m * (m + 1) * 0.5 > distance:
        m -= 1
    elif c * (m + 1) * (m + 2) * 0.5 <= distance:
        m += 1
    return m * a_t + (distance - c * m * (m + 1) * 0.5) / (period * (m + 1))


def stopping_distance(velocity: float, accel: float, period: float) -> float:
    """S(v): one step at `velocity` (>= 0), then maximal braking to standstill."""
    a_t = accel * period
    n = math.floor(velocity / a_t)
    return period * ((n + 1) * velocity - a_t * n * (n + 1) * 0.5)
