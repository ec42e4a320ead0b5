"""How a checkpoint asks to be run: `<checkpoint>/deployment.json`, read by the policy node and the replay.

A chunk execution strategy is a property of the policy as much as of the robot: the shipped pick-and-place
checkpoint succeeds on 94% of unseen layouts with temporal ensembling and 72% with RTC (its README). Whoever
chose the strategy on validation layouts writes it next to the weights, and `strategy: auto` (the node's default)
runs it; an explicit strategy always wins. The file is optional and small:

    {"strategy": "ensemble", "why": "chosen on validation layouts 100..139: ensemble 90%, rtc 65%"}

Unknown keys are errors (a misspelt key would otherwise be ignored silently and the policy run another way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vla_policy_node.control.config import ExecutorConfig
from vla_policy_node.control.executor import STRATEGIES

DEPLOYMENT_FILE = "deployment.json"
AUTO = "auto"  # the strategy setting that defers to the checkpoint
STRATEGY_SETTINGS: tuple[str, ...] = (AUTO, *STRATEGIES)
_KEYS = ("strategy", "why")


@dataclass(frozen=True)
class Deployment:
    """What a checkpoint recommends (None: no recommendation) and why, as its author wrote it."""

    strategy: str | None = None
    why: str = ""


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
    strategy = data.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"{path}: strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    return Deployment(strategy=strategy, why=str(data.get("why", "")))


def resolve_strategy(setting: str, checkpoint: str | Path) -> tuple[str, str]:
    """(the strategy to run, where it came from) for a `strategy` setting: an explicit one as given; `auto` the
    checkpoint's recommendation, else the executor's default."""
    if setting != AUTO:
        if setting not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGY_SETTINGS)}, got {setting!r}")
        return setting, "set explicitly"
    recommended = read_deployment(checkpoint).strategy
    if recommended is not None:
        return recommended, f"the checkpoint's {DEPLOYMENT_FILE}"
    return ExecutorConfig().strategy, f"the default (no {DEPLOYMENT_FILE} in the checkpoint)"


def write_deployment(checkpoint: str | Path, deployment: Deployment) -> Path:
    """Write `deployment` next to a checkpoint's weights (what `read_deployment` reads back)."""
    if deployment.strategy is not None and deployment.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {deployment.strategy!r}")
    data: dict[str, str] = {}
    if deployment.strategy is not None:
        data["strategy"] = deployment.strategy
    if deployment.why:
        data["why"] = deployment.why
    path = Path(checkpoint) / DEPLOYMENT_FILE
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
