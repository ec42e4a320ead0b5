"""Fitting camera frames to the resolution a policy expects (numpy + Pillow, no torch)."""

from __future__ import annotations

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
