"""Observation sync: decoded camera images and joint states in, one consistent Observation out.

Contract with the message layer: it decodes every ROS image to an HxWx3 uint8 RGB array (whatever the source
layout) and passes along the encoding it decoded *from* (`Image.encoding`, or `CompressedImage.format`). Frames
are kept at the resolution they came in; an observation's images are fitted to each camera's model resolution
when the policy first reads them (`FittedImages`), so frames that never reach the model are never resized. The
sync accepts only arrays of that layout and encodings in `SyncConfig.accepted_encodings`; anything else
(depth, bayer, a decoder that gave up and passes None) is counted and reported, never used. Joint states come
as names + positions and are reordered into the embodiment's `state_names` (arm joints, then the gripper);
extra names are ignored, missing ones reject the message.

Every input has a staleness limit (CameraSpec.max_age, JointStateInput.max_age). A stale input, or a matched
set that is too old, blocks new observations and shows in `stale_inputs`.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from vla_policy_node.control.config import SyncConfig
from vla_policy_node.control.inputs import InputStats, StampOrder
from vla_policy_node.control.joints import JointStateGate
from vla_policy_node.control.pairing import ApproximateTimePairing, MatchedSet, TriggerPairing
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.types import Observation

JOINT_STATES = "joint_states"
SYNC = "sync"  # pseudo-input: the newest matched set

__all__ = ["JOINT_STATES", "SYNC", "InputStats", "ObservationSync"]


class ObservationSync:
    def __init__(self, embodiment: Embodiment, config: SyncConfig | None = None) -> None:
        self.embodiment = embodiment
        self.config = config or SyncConfig()
        cams = embodiment.camera_names
        if JOINT_STATES in cams or SYNC in cams:
            raise ValueError(f"camera names {JOINT_STATES!r}/{SYNC!r} are reserved")
        self.inputs: tuple[str, ...] = (*cams, JOINT_STATES)
        self.max_age = {c.name: c.max_age for c in embodiment.cameras}
        self.max_age[JOINT_STATES] = embodiment.joint_states.max_age
        # A matched set is as old as its oldest member; it may be as old as the most tolerant input allows
        # (joint states are fresher than that, but a set is only renewed at the cameras' rate).
        self.set_max_age = max(self.max_age.values())
        self._accepted = {e.lower() for e in self.config.accepted_encodings}
        self._cameras = {c.name: c for c in embodiment.cameras}
        self.stats = {name: InputStats() for name in self.inputs}
        self.unknown_inputs: Counter[str] = Counter()
        self._order = StampOrder(self.inputs, self.config.future_tolerance)
        self._last_stamp = self._order.last
        self.joints = JointStateGate(embodiment.state_names, JOINT_STATES, self.stats[JOINT_STATES], self._order)
        self._ready: MatchedSet | None = None
        self._ready_oldest = math.inf  # the oldest stamp of `_ready` (read on every tick)
        self._ready_stamp = -math.inf
        self._emitted_stamp = -math.inf
        self.sets_matched = 0
        self.instruction = ""
        # Subscription callbacks may run on several threads; the tick's staleness checks only read values
        # that are replaced whole (floats, the matched-set dict), so they do not take this lock.
        self._lock = threading.Lock()
        if self.config.mode != "approximate":
            trigger = self.config.trigger_camera or cams[0]
            if trigger not in cams:
                raise ValueError(f"sync.trigger_camera {trigger!r} is not a camera of {embodiment.name}: {cams}")
        self._pairing = self._new_pairing()

    def _new_pairing(self) -> ApproximateTimePairing | TriggerPairing:
        cfg = self.config
        if cfg.mode == "approximate":
            return ApproximateTimePairing(self.inputs, cfg.queue_size, cfg.slop)
        trigger = cfg.trigger_camera or self.embodiment.camera_names[0]
        return TriggerPairing(self.inputs, trigger, (JOINT_STATES,), max(cfg.joint_history, cfg.queue_size), cfg.slop)

    def reset(self) -> None:
        """Forget every stamp and queued message (the clock jumped: they belong to another timeline). Counters
        are kept: they are the history the status reports."""
        with self._lock:
            self._order.reset()
            self.joints.reset()
            self._pairing = self._new_pairing()
            self._ready, self._ready_stamp, self._emitted_stamp = None, -math.inf, -math.inf
            self._ready_oldest = math.inf

    def set_instruction(self, text: str) -> None:
        self.instruction = text

    # ---------------------------------------------------------------------------------------------- inputs
    def add_image(self, camera: str, stamp: float, image: np.ndarray | None, encoding: str, now: float) -> bool:
        """An image decoded to HxWx3 uint8 RGB from `encoding`; False (and counted) if it cannot be used."""
        with self._lock:
            return self._add_image(camera, stamp, image, encoding, now)

    def _add_image(self, camera: str, stamp: float, image: np.ndarray | None, encoding: str, now: float) -> bool:
        stats = self.stats.get(camera)
        if stats is None or camera == JOINT_STATES:
            self.unknown_inputs[camera] += 1
            return False
        stats.received += 1
        base = encoding.split(";")[0].strip().lower()
        if base not in self._accepted:
            return self._reject(stats, "unsupported_encoding", f"{camera}: unsupported encoding {encoding!r}")
        if not (
            isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        ):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", None)
            return self._reject(stats, "bad_image", f"{camera}: expected HxWx3 uint8 RGB, got {shape} {dtype}")
        if not self._order.check(camera, stamp, stats, now):
            return False
        stats.accepted += 1
        self._offer(camera, stamp, image)
        return True

    def add_joint_state(self, stamp: float, names: Sequence[str], positions: Sequence[float] | np.ndarray,
                        now: float) -> bool:
        """A joint state message; reordered by name into `state_names`. False (and counted) if unusable."""
        with self._lock:
            state = self.joints.accept(stamp, names, positions, now)
            if state is None:
                return False
            self._offer(JOINT_STATES, stamp, state)
            return True

    def _reject(self, stats: InputStats, reason: str, message: str) -> bool:
        return stats.reject(reason, message)

    def _offer(self, name: str, stamp: float, payload: object) -> None:
        matched = self._pairing.add(name, stamp, payload)
        if matched is None:
            return
        newest = max(s for s, _ in matched.values())
        if newest > self._ready_stamp:
            self._ready, self._ready_stamp = matched, newest
            self._ready_oldest = min(s for s, _ in matched.values())
            self.sets_matched += 1

    # --------------------------------------------------------------------------------------------- output
    def poll(self, now: float) -> Observation | None:
        """The newest matched set as an Observation, once; None while any input is stale or nothing is new."""
        with self._lock:
            return self._poll(now)

    def _poll(self, now: float) -> Observation | None:
        ready = self._ready
        if ready is None or self._ready_stamp <= self._emitted_stamp or self.any_stale(now):
            return None
        self._emitted_stamp = self._ready_stamp
        stamps = {name: s for name, (s, _) in ready.items()}
        images = FittedImages({cam: ready[cam][1] for cam in self.embodiment.camera_names}, self._cameras)
        state = np.array(ready[JOINT_STATES][1])
        return Observation(
            stamp=self._ready_stamp,
            images=images,
            state=state,
            instruction=self.instruction,
            meta={"stamps": stamps, "sync_mode": self.config.mode},
        )

    def latest_state(self) -> tuple[float, np.ndarray] | None:
        """(stamp, state in state_names order) of the newest accepted joint state."""
        latest = self.joints.latest
        return None if latest is None else (latest.stamp, latest.state)

    def input_ages(self, now: float) -> dict[str, float]:
        """Age of each input's newest accepted message (inf if none), plus "sync": the age of the oldest member
        of the newest matched set (stale beyond `set_max_age`). Never negative: a stamp a little ahead of the
        node's clock (within `future_tolerance`) is as fresh as it gets."""
        ages = {name: max(now - self._last_stamp[name], 0.0) for name in self.inputs}
        ages[SYNC] = max(self._set_age(now), 0.0)
        return ages

    def _set_age(self, now: float) -> float:
        if self._ready is None:
            return math.inf
        return now - self._ready_oldest

    def _set_stale(self, now: float) -> bool:
        return self._set_age(now) > self.set_max_age

    def stale_inputs(self, now: float) -> list[str]:
        stale = [name for name in self.inputs if now - self._last_stamp[name] > self.max_age[name]]
        if self._set_stale(now):
            stale.append(SYNC)
        return stale

    def any_stale(self, now: float) -> bool:
        """Tick-path check: any input too old, or no matched set fresh enough to use."""
        last = self._last_stamp
        for name, limit in self.max_age.items():
            if now - last[name] > limit:
                return True
        return self._set_stale(now)

    @property
    def dropped(self) -> int:
        return self._pairing.dropped if isinstance(self._pairing, ApproximateTimePairing) else 0

    @property
    def unmatched(self) -> int:
        return self._pairing.unmatched if isinstance(self._pairing, TriggerPairing) else 0
