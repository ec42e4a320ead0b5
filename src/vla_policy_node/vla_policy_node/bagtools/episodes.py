"""Episode marks: the vla_msgs/EpisodeEvent codes and the one set of rules that turns marks into episodes.

The recorder applies the rules live (to answer a bad mark with an error), the replay and the converter apply
them to a bag's marks in time order; all three agree because they share `EpisodeTracker`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.stamps import header_stamp, make_header

Outcome = Literal["unknown", "success", "failure", "discarded"]


class EventKind(IntEnum):
    """The constants of vla_msgs/msg/EpisodeEvent (and the `event` field of vla_msgs/srv/MarkEpisode)."""

    START = 0
    STOP = 1
    SUCCESS = 2
    FAILURE = 3
    DISCARD = 4

    @classmethod
    def parse(cls, value: int | str) -> EventKind:
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"unknown episode event {value!r}; use one of {[k.name for k in cls]}") from None
        try:
            return cls(int(value))
        except ValueError:
            raise ValueError(f"unknown episode event code {value}; codes are {[int(k) for k in cls]}") from None


_OUTCOMES: dict[EventKind, Outcome] = {
    EventKind.SUCCESS: "success",
    EventKind.FAILURE: "failure",
    EventKind.DISCARD: "discarded",
}


@dataclass
class Episode:
    """One demonstration: [start, end] in bag time (seconds). `end` is None while it is open."""

    index: int
    start: float
    end: float | None = None
    outcome: Outcome = "unknown"
    instruction: str = ""
    note: str = ""
    implicit: bool = False  # not marked: the whole bag, or closed by the end of the bag

    def contains(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t <= self.end)

    @property
    def duration(self) -> float:
        return math.nan if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "end": self.end, "outcome": self.outcome,
                "instruction": self.instruction, "note": self.note, "implicit": self.implicit}


@dataclass(frozen=True)
class EpisodeEventData:
    stamp: float
    kind: EventKind
    episode_index: int
    instruction: str
    note: str


def decode_episode_event(msg: Any) -> EpisodeEventData:
    return EpisodeEventData(header_stamp(msg), EventKind.parse(int(msg.event)), int(msg.episode_index),
                            str(msg.instruction), str(msg.note))


def encode_episode_event(new: MessageFactory, kind: EventKind, stamp: float, episode_index: int = 0,
                         instruction: str = "", note: str = "") -> Any:
    return new("vla_msgs/msg/EpisodeEvent", header=make_header(new, stamp), event=int(kind),
               episode_index=int(episode_index), instruction=instruction, note=note)


class EpisodeTracker:
    """Applies marks in time order (rules in EpisodeEvent.msg).

    instruction: the task in effect (from /vla/instruction); an episode takes the one in effect at its START
    unless the START mark names its own.
    """

    def __init__(self) -> None:
        self.episodes: list[Episode] = []
        self.open: Episode | None = None
        self.instruction = ""
        self.first_instruction = ""
        self.warnings: list[str] = []

    @property
    def marked(self) -> bool:
        return bool(self.episodes)

    def set_instruction(self, text: str) -> None:
        self.instruction = text
        self.first_instruction = self.first_instruction or text

    def apply(self, kind: EventKind, stamp: float, instruction: str = "", note: str = "") -> tuple[bool, str]:
        """Apply one mark; (False, why) when it does not fit the session (nothing changes then)."""
        if kind == EventKind.START:
            message = ""
            if self.open is not None:
                self.open.end = stamp
                message = f"episode {self.open.index} stopped by the next START; "
            episode = Episode(len(self.episodes), stamp, instruction=instruction or self.instruction, note=note)
            self.episodes.append(episode)
            self.open = episode
            return True, message + f"episode {episode.index} started"
        if self.open is not None:
            episode, self.open = self.open, None
            episode.end = stamp
            if kind != EventKind.STOP:
                episode.outcome = _OUTCOMES[kind]
            if note:
                episode.note = note
            return True, f"episode {episode.index} ended ({episode.outcome})"
        if kind == EventKind.STOP:
            return False, "STOP without an open episode"
        if not self.episodes:
            return False, f"{kind.name} before any episode was started"
        last = self.episodes[-1]
        last.outcome = _OUTCOMES[kind]
        if note:
            last.note = note
        return True, f"episode {last.index} marked {last.outcome}"

    def apply_event(self, event: EpisodeEventData) -> tuple[bool, str]:
        ok, message = self.apply(event.kind, event.stamp, event.instruction, event.note)
        if not ok:
            self.warnings.append(f"t={event.stamp:.3f}: ignored {event.kind.name}: {message}")
        return ok, message

    def current(self, t: float) -> Episode | None:
        """The episode `t` falls in, among those marked so far (the open one included)."""
        if self.open is not None and self.open.start <= t:
            return self.open
        for episode in reversed(self.episodes):
            if episode.contains(t):
                return episode
            if episode.end is not None and episode.end < t:
                break
        return None

    def finish(self, start: float, end: float) -> list[Episode]:
        """All episodes once the bag [start, end] is read: an open one ends with the bag; a bag without marks is
        one implicit episode over its whole length."""
        if self.open is not None:
            self.open.end = end
            self.open.implicit = True
            self.warnings.append(f"episode {self.open.index} was never stopped: it ends with the bag")
            self.open = None
        if not self.episodes:
            instruction = self.first_instruction or self.instruction
            self.episodes.append(Episode(0, start, end, instruction=instruction, implicit=True))
        return self.episodes
