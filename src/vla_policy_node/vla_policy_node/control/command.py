"""What leaves the control runtime, and the one place that maps an action space onto it.

A policy's action space (joint position / joint delta / EE delta / EE pose) is converted once, when a chunk
arrives, into a *command space* the controllers understand; executor, mux and safety filter then work on
command-space vectors only:

- joint_position and joint_delta -> "joint_position": absolute joint positions (deltas are added to the state
  of the observation the chunk answers, openpi's convention: every action of the chunk is relative to it).
- ee_pose -> "ee_pose": absolute [x, y, z, roll, pitch, yaw] targets in the action frame.
- ee_delta -> "ee_twist": the delta per action step divided by the step, i.e. a velocity [vx, vy, vz, wx, wy, wz]
  that MoveIt Servo's TwistStamped takes. Holding a twist means zero velocity, not repeating the last one.

The gripper is always an absolute position and travels separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk

CommandKind = Literal["joint_position", "ee_pose", "ee_twist"]


class ChunkError(ValueError):
    """A chunk that cannot be executed (wrong names, non-finite values, missing reference state): a fault."""


class LateChunkError(ChunkError):
    """A well-formed chunk that came too late or out of order: dropped and counted, not a fault."""


class Command(NamedTuple):
    """One control-tick output: what was actually sent after mux and safety filter.

    arm: command-space values in `names` order (joint positions, EE pose, or EE twist, see `kind`).
    gripper: gripper position, None when the robot has no gripper.
    source: "policy", "teleop" or "hold". hold: the safe state is being commanded (stopping at / holding the
    last command), whatever the reason; the status says why.
    Immutable, as a frozen dataclass, and made on every control tick: a named tuple is built in a third of the
    time.
    """

    stamp: float
    kind: CommandKind
    names: tuple[str, ...]
    arm: np.ndarray
    gripper: float | None
    source: str
    hold: bool

    @property
    def values(self) -> np.ndarray:
        """arm followed by the gripper, i.e. the embodiment's action order for absolute spaces."""
        if self.gripper is None:
            return self.arm.copy()
        return np.append(self.arm, self.gripper)


@dataclass(frozen=True)
class ArmTarget:
    """A command-space target from a non-policy source (teleop): same layout as Command.arm/gripper."""

    arm: np.ndarray
    gripper: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "arm", np.array(self.arm, dtype=np.float64).reshape(-1))


@dataclass(frozen=True)
class CommandSpace:
    """The command layout of one embodiment and the conversion of its chunks into it."""

    kind: CommandKind
    arm_names: tuple[str, ...]
    gripper_name: str | None
    action_type: str
    action_names: tuple[str, ...]

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment) -> CommandSpace:
        action_type = embodiment.action_space.type
        gripper = embodiment.gripper.name if embodiment.gripper else None
        kind: CommandKind
        if action_type in ("joint_position", "joint_delta"):
            kind, arm_names = "joint_position", embodiment.joint_names
        elif action_type == "ee_pose":
            kind, arm_names = "ee_pose", embodiment.action_names[:6]
        else:
            kind, arm_names = "ee_twist", embodiment.action_names[:6]
        return cls(kind, tuple(arm_names), gripper, action_type, embodiment.action_names)

    @property
    def arm_dim(self) -> int:
        return len(self.arm_names)

    @property
    def is_velocity(self) -> bool:
        return self.kind == "ee_twist"

    def convert_chunk(
        self, chunk: ActionChunk, reference_state: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Chunk actions -> (arm [H, arm_dim], gripper [H] or None) in command space.

        Dims are matched by name (a chunk may list them in any order, extra dims are ignored); a missing dim,
        a non-finite value or a joint_delta chunk without the reference state raises ChunkError.
        """
        index = {name: i for i, name in enumerate(chunk.names)}
        missing = [n for n in self.action_names if n not in index]
        if missing:
            raise ChunkError(f"chunk lacks action dims {missing}; it has {list(chunk.names)}")
        actions = chunk.actions[:, [index[n] for n in self.action_names]]
        if not np.all(np.isfinite(actions)):
            raise ChunkError("chunk contains NaN or Inf actions")
        arm = np.array(actions[:, : self.arm_dim], dtype=np.float64)
        gripper = np.array(actions[:, self.arm_dim]) if self.gripper_name is not None else None
        if self.action_type == "joint_delta":
            if reference_state is None:
                raise ChunkError("joint_delta chunk needs the state of the observation it answers")
            ref = np.asarray(reference_state, dtype=np.float64)[: self.arm_dim]
            arm += ref
        elif self.kind == "ee_twist":
            arm /= chunk.dt
        return arm, gripper

    def to_actions(self, values: np.ndarray, dt: float, reference_state: np.ndarray | None = None) -> np.ndarray:
        """Inverse of `convert_chunk`: command-space rows [H, arm_dim (+1)] -> actions in `action_names` order."""
        actions = np.array(values, dtype=np.float64)
        if self.action_type == "joint_delta":
            if reference_state is None:
                raise ChunkError("joint_delta actions need the reference state of the observation")
            actions[:, : self.arm_dim] -= np.asarray(reference_state, dtype=np.float64)[: self.arm_dim]
        elif self.kind == "ee_twist":
            actions[:, : self.arm_dim] *= dt
        return actions
