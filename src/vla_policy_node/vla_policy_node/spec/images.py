"""Fitting camera frames to the resolution a policy expects (numpy + Pillow, no torch)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vla_policy_node.spec.embodiment import CameraSpec


def fit_image(image: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """Resize an HxWx3 uint8 RGB frame to the camera's model resolution (bilinear; no-op when it already fits).

    The aspect ratio is not preserved: a policy is trained on frames resized the same way, so this must match
    whatever produced its training data (the bag-to-dataset tool uses this function too).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"fit_image needs HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    if image.shape[:2] == (camera.height, camera.width):
        return image
    resized = Image.fromarray(image).resize((camera.width, camera.height), Image.Resampling.BILINEAR)
    return np.asarray(resized)
