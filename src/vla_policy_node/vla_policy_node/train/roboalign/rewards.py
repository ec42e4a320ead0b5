"""GRPO rewards (RoboAlign): r = (format + accuracy) / 2, over decoded completion text.

Pluggable: any callable `(completion: str, target: Sequence[str]) -> float` is a `Reward`; the target is the list
of action-token strings of the ground-truth chunk (e.g. ["<fast_3>", "<fast_17>"]), without START/END.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from vla_policy_node.model.asa.fast import ACTION_END, ACTION_START

# The whole completion must be exactly this, nothing before or after (whitespace at the ends tolerated).
FORMAT_RE = re.compile(
    r"\s*<think>(?P<think>.*?)</think>\s*<answer>\s*" + re.escape(ACTION_START)
    + r"(?P<actions>.*?)" + re.escape(ACTION_END) + r"\s*</answer>\s*",
    re.DOTALL,
)
ACTIONS_RE = re.compile(re.escape(ACTION_START) + r"(?P<actions>.*?)(?:" + re.escape(ACTION_END) + r"|$)", re.DOTALL)
TOKEN_RE = re.compile(r"<[^<>\s]+>")


class Reward(Protocol):
    def __call__(self, completion: str, target: Sequence[str]) -> float: ...


def action_tokens(completion: str) -> list[str]:
    """Action tokens after the first <ACTION_START> (up to <ACTION_END> or the end of the text)."""
    match = ACTIONS_RE.search(completion)
    return TOKEN_RE.findall(match.group("actions")) if match else []


def format_reward(completion: str, target: Sequence[str] = ()) -> float:
    """1 when the completion is exactly <think>...</think><answer><ACTION_START>...<ACTION_END></answer>."""
    return 1.0 if FORMAT_RE.fullmatch(completion) else 0.0


def accuracy_reward(completion: str, target: Sequence[str]) -> float:
    """Longest correct prefix of action tokens / target length (0 when the first is wrong; extras add nothing)."""
    if not target:
        return 0.0
    correct = 0
    for got, want in zip(action_tokens(completion), target, strict=False):
        if got != want:
            break
        correct += 1
    return correct / len(target)


def roboalign_reward(completion: str, target: Sequence[str]) -> float:
    return (format_reward(completion, target) + accuracy_reward(completion, target)) / 2.0


REWARDS: dict[str, Reward] = {"roboalign": roboalign_reward, "format": format_reward, "accuracy": accuracy_reward}
