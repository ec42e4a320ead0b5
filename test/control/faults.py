"""Builders for the fault tests (issue 13): the command mux's loop over a command stream, driven tick by tick."""

from __future__ import annotations

import numpy as np

from vla_policy_node.control import CommandSpace, CommandStream, ControlConfig, ControlLoop, MuxConfig
from vla_policy_node.spec import Embodiment


def mux_loop(emb: Embodiment, config: ControlConfig | None = None, **mux) -> ControlLoop:
    """The command mux's loop: policy commands arrive as a stream with a 0.5 s timeout."""
    config = config or ControlConfig(mux=MuxConfig(**mux))
    return ControlLoop(emb, config, CommandStream(CommandSpace.from_embodiment(emb), 0.5))


class MuxDriver:
    """Ticks a mux loop at its rate; the policy streams `policy` (None: silent), the arm reports `reading`
    (None: silent). Every command is recorded."""

    def __init__(self, loop: ControlLoop, reading: np.ndarray, now: float = 100.0) -> None:
        self.loop = loop
        self.emb = loop.embodiment
        self.now = now
        self.reading: np.ndarray | None = np.array(reading, dtype=np.float64)
        self.policy: np.ndarray | None = None
        self.stamp_offset = 0.0
        self.commands = []

    def step(self, n: int = 1):
        for _ in range(n):
            self.now = round(self.now + self.loop.period, 9)
            if self.reading is not None:
                self.loop.on_joint_state(self.now + self.stamp_offset, self.emb.state_names, self.reading, self.now)
            if self.policy is not None:
                self.loop.on_policy_command(self.policy, self.now)
            self.commands.append(self.loop.tick(self.now))
        return self.commands[-1]

    def arms(self) -> np.ndarray:
        return np.stack([c.arm for c in self.commands if c is not None])

    def status(self):
        return self.loop.status(self.now)
