"""Fitting camera frames to the resolution a policy expects (numpy + Pillow, no torch)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
from PIL import Image

from vla_policy_node.spec.embodiment import CameraSpec


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWx3 uint8 RGB frame to height x width (bilinear; no-op when it already fits).

    The aspect ratio is not preserved: a policy is trained on frames resized the same way, so this must match
    whatever produced its training data (the bag-to-dataset tool, the policy node and the model's input pipeline
    all resize with this function).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"resizing needs HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def fit_image(image: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """Resize a frame to the camera's model resolution (`resize_image`)."""
    return resize_image(image, camera.height, camera.width)


class FittedImages(Mapping[str, np.ndarray]):
    """Camera frames as received, fitted to each camera's model resolution when first read (then cached).

    What `Observation.images` holds when it comes from the observation sync: a policy that reads a frame gets
    exactly `fit_image(frame, camera)`, as before; a frame nobody reads (a scripted policy, a replay that never
    looks at pixels) is never resized or copied, and a device-side preprocessor can take `native(name)` and
    resize on the accelerator instead. Fitting is idempotent, so two threads reading at once only repeat work.
    """

    def __init__(self, frames: Mapping[str, np.ndarray], cameras: Mapping[str, CameraSpec]) -> None:
        self._frames = dict(frames)
        self._cameras = cameras
        self._fitted: dict[str, np.ndarray] = {}

    def native(self, name: str) -> np.ndarray:
        """The frame as received (HxWx3 uint8 RGB at the camera's resolution; may share the message's memory)."""
        return self._frames[name]

    def __getitem__(self, name: str) -> np.ndarray:
        fitted = self._fitted.get(name)
        if fitted is None:
            frame = self._frames[name]
            camera = self._cameras.get(name)
            fitted = frame if camera is None else fit_image(frame, camera)
            self._fitted[name] = fitted
        return fitted

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __contains__(self, name: object) -> bool:  # Mapping's default would fit the frame to find out
        return name in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {frame.shape}" for name, frame in self._frames.items())
        return f"FittedImages({shapes})"
