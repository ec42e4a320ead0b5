"""How a checkpoint asks to be run: `<checkpoint>/deployment.json`, written by whoever evaluated it (a training
recipe's `deploy:` section, or by hand) and read by the policy node, the replay and the sim evaluation.

A chunk execution strategy is a property of the policy as much as of the robot: the shipped pick-and-place
checkpoint succeeds on 94% of unseen layouts with temporal ensembling and 72% with RTC (its README). The file is
optional and small:

    {"strategy": "ensemble", "why": "chosen on validation layouts 100..139: ensemble 90%, rtc 65%"}

Unknown keys are errors (a misspelt key would otherwise be ignored silently and the policy run another way).
`control.deployment.resolve_strategy` turns it into the strategy a node runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

Strategy = Literal["synchronous", "ensemble", "rtc"]  # the chunk executor's strategies (control/executor.py)
STRATEGIES: tuple[str, ...] = get_args(Strategy)


def as_strategy(value: str) -> Strategy:
    """`value` as a Strategy; ValueError naming the choices for anything else."""
    if value not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {value!r}")
    return cast(Strategy, value)
DEPLOYMENT_FILE = "deployment.json"
_KEYS = ("strategy", "why")


@dataclass(frozen=True)
class Deployment:
    """What a checkpoint recommends (None: no recommendation) and why, as its author wrote it."""

    strategy: str | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.strategy is not None:
            as_strategy(self.strategy)


def read_deployment(checkpoint: str | Path) -> Deployment:
    """The checkpoint's deployment.json; an empty Deployment when there is none (a model-hub id, a remote
    policy, an older checkpoint). ValueError naming the file for one that cannot be used."""
    path = Path(checkpoint) / DEPLOYMENT_FILE
    if not str(checkpoint) or not path.is_file():
        return Deployment()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with {', '.join(_KEYS)}")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    try:
        return Deployment(strategy=data.get("strategy"), why=str(data.get("why", "")))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def write_deployment(checkpoint: str | Path, deployment: Deployment) -> Path:
    """Write `deployment` next to a checkpoint's weights (what `read_deployment` reads back)."""
    data: dict[str, str] = {}
    if deployment.strategy is not None:
        data["strategy"] = deployment.strategy
    if deployment.why:
        data["why"] = deployment.why
    path = Path(checkpoint) / DEPLOYMENT_FILE
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
