"""Test-only: the real policy node process with its policy wrapped, so a test can make the model fail.

    VLA_FAULT_POLICY_CONTROL=FILE python -m test.faults.fault_policy <policy_node arguments>

FILE holds a mode, re-read whenever it changes: "ok", "raise" (infer raises), "stall SECONDS" (infer sleeps
that long, then answers), "nan" (the chunk's actions are NaN). Each faulted call appends
"<mode> <start> <end>" (time.monotonic(), which is system-wide on Linux, so the test can compare it with its
own clock) to FILE.events; a stalled call also "stalling <start> <start>" when it begins.

The hook is this module: it lives in test/, which is not installed, and replaces `policy_node.PolicyLoader`
before the node runs (the wrapped loader is picklable, so it also runs in the node's spawned inference process),
so no production code path can reach it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla_policy_node.nodes import policy_node

CONTROL_ENV = "VLA_FAULT_POLICY_CONTROL"


class InjectedModelFault(RuntimeError):
    """What the wrapped model raises in mode "raise"."""


class FaultInjectingPolicy:
    def __init__(self, inner: Any, control: Path) -> None:
        self.inner = inner
        self.control = control
        self.events = control.with_name(control.name + ".events")
        self._stamp: float | None = None
        self._mode = "ok"

    def mode(self) -> str:
        try:
            stamp = self.control.stat().st_mtime_ns
        except FileNotFoundError:
            return "ok"
        if stamp != self._stamp:
            self._stamp = stamp
            self._mode = self.control.read_text().strip() or "ok"
        return self._mode

    def _event(self, mode: str, start: float) -> None:
        with self.events.open("a") as out:
            out.write(f"{mode} {start:.6f} {time.monotonic():.6f}\n")

    def infer(self, observation: Any, *, prefix: Any = None) -> Any:
        mode = self.mode()
        start = time.monotonic()
        if mode == "raise":
            self._event(mode, start)
            raise InjectedModelFault("injected model fault")
        if mode.startswith("stall"):
            self._event("stalling", start)  # now: the stalled call may never return (its process killed)
            time.sleep(float(mode.split()[1]))
            self._event(mode, start)
        chunk = self.inner.infer(observation, prefix=prefix)
        if mode == "nan":
            self._event(mode, start)
            chunk = dataclasses.replace(chunk, actions=np.full_like(chunk.actions, np.nan))
        return chunk

    def __getattr__(self, name: str) -> Any:  # last_timings and the like
        return getattr(self.inner, name)


class FaultPolicyLoader(policy_node.PolicyLoader):
    """The node's PolicyLoader with the model wrapped. Picklable under its own name, so the wrapper also reaches
    the spawned inference process (the policy node's default, --inference process), which inherits the
    environment and so the control file's path."""

    def __call__(self) -> FaultInjectingPolicy:
        return FaultInjectingPolicy(super().__call__(), Path(os.environ[CONTROL_ENV]))


def main(argv: Sequence[str] | None = None) -> int:
    if CONTROL_ENV not in os.environ:  # fail here, not in the inference process
        raise SystemExit(f"fault_policy: set {CONTROL_ENV} to the model mode file")
    policy_node.PolicyLoader = FaultPolicyLoader
    return policy_node.main(argv)


if __name__ == "__main__":
    sys.exit(main())
