"""What a checkpoint knows about each embodiment it was trained for: its slot in the head's per-embodiment
encoders/decoders, its state/action names, and the cameras (and their resolution) it was fed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.remap import camera_hint


class UnknownEmbodimentError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class EmbodimentSlot:
    """What the model knows about one embodiment it was built or trained for.

    camera_sizes: (height, width) the model was trained at, per camera of `camera_names`; the input pipeline
    resizes frames to it. None in checkpoints written before it was recorded (and for agents built without a
    robot config): frames are then fed at the size the robot config gives, as before.
    """

    tag: str
    index: int
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    camera_names: tuple[str, ...]
    dt: float
    camera_sizes: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.camera_sizes is not None:
            sizes = tuple((int(h), int(w)) for h, w in self.camera_sizes)
            if len(sizes) != len(self.camera_names) or any(h < 1 or w < 1 for h, w in sizes):
                raise ValueError(f"embodiment {self.tag!r}: camera_sizes {list(sizes)} must give a positive "
                                 f"(height, width) for each of the cameras {list(self.camera_names)}")
            object.__setattr__(self, "camera_sizes", sizes)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment, index: int) -> EmbodimentSlot:
        return cls(
            tag=embodiment.tag,
            index=index,
            state_names=embodiment.state_names,
            action_names=embodiment.action_names,
            camera_names=embodiment.camera_names,
            dt=embodiment.rates.action_dt,
            camera_sizes=tuple((c.height, c.width) for c in embodiment.cameras),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.camera_sizes is None:  # the format of checkpoints written before sizes were recorded
            del data["camera_sizes"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbodimentSlot:
        sizes = data.get("camera_sizes")
        return cls(
            tag=str(data["tag"]),
            index=int(data["index"]),
            state_names=tuple(data["state_names"]),
            action_names=tuple(data["action_names"]),
            camera_names=tuple(data["camera_names"]),
            dt=float(data["dt"]),
            camera_sizes=None if sizes is None else tuple(tuple(s) for s in sizes),
        )

    def check_matches(self, embodiment: Embodiment) -> None:
        """A robot config must describe the same state/action layout the slot was trained with, and have every
        camera it was trained with (a robot may have more cameras than a policy uses: those are not fed)."""
        for what, mine, theirs in (
            ("state names", self.state_names, embodiment.state_names),
            ("action names", self.action_names, embodiment.action_names),
        ):
            if tuple(mine) != tuple(theirs):
                raise ValueError(
                    f"embodiment {embodiment.tag!r}: the checkpoint was trained with {what} {list(mine)}, "
                    f"but the robot config has {list(theirs)}"
                )
        missing = [name for name in self.camera_names if name not in embodiment.camera_names]
        if missing:
            raise ValueError(
                f"embodiment {embodiment.tag!r}: the checkpoint was trained with cameras {list(self.camera_names)}, "
                f"but the robot config has no camera {missing} (it has {list(embodiment.camera_names)}); "
                + camera_hint(missing, embodiment)
            )


def make_slots(embodiments: list[Embodiment]) -> tuple[EmbodimentSlot, ...]:
    return tuple(EmbodimentSlot.from_embodiment(e, i) for i, e in enumerate(embodiments))
