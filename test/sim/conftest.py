"""MuJoCo picks its GL backend at import: offscreen EGL, before anything imports mujoco."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
