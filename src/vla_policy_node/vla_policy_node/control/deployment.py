"""The chunk strategy a node runs: an explicit setting as given; `auto` (the policy node's and the replay's
default) what the checkpoint's deployment.json recommends (spec/deployment.py), else the executor's default."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from vla_policy_node.control.config import ExecutorConfig
from vla_policy_node.spec.deployment import DEPLOYMENT_FILE, STRATEGIES, Strategy, read_deployment

AUTO = "auto"  # the strategy setting that defers to the checkpoint
STRATEGY_SETTINGS: tuple[str, ...] = (AUTO, *STRATEGIES)


def resolve_strategy(setting: str, checkpoint: str | Path) -> tuple[Strategy, str]:
    """(the strategy to run, where it came from) for a `strategy` setting. ValueError for an unknown setting or
    a deployment.json that cannot be used (never a silent fallback to another strategy)."""
    if setting != AUTO:
        if setting not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGY_SETTINGS)}, got {setting!r}")
        return cast(Strategy, setting), "set explicitly"
    recommended = read_deployment(checkpoint).strategy
    if recommended is not None:
        return cast(Strategy, recommended), f"the checkpoint's {DEPLOYMENT_FILE}"
    return ExecutorConfig().strategy, f"the default (no {DEPLOYMENT_FILE} in the checkpoint)"
