#!/usr/bin/env bash
# Creates (or refreshes) the repository's virtual environment in .venv with everything the demo and tests need.
# Idempotent: re-installs only when the requirements changed. torch is installed first and pinned, because a bare
# `torch` requirement would pull the multi-GB CUDA build on a CPU machine (on a CUDA machine the same pin takes CUDA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLA_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.vla-installed"
WANT="$(cat "$ROOT/scripts/setup_env.sh" "$ROOT/src/vla_policy_node/setup.py" | sha256sum | cut -d' ' -f1)"

# pyrealsense2 (the `camera` extra) loads the system library libusb-1.0; install it where we may (root + apt).
LDCONFIG="$(command -v ldconfig || echo /sbin/ldconfig)"
if ! "$LDCONFIG" -p 2>/dev/null | grep "libusb-1.0" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "setup_env: libusb-1.0 not found; RealSense cameras need it (sudo apt-get install libusb-1.0-0)" >&2
  fi
fi

# The simulated arm renders offscreen through EGL (MUJOCO_GL=egl): libEGL plus Mesa's drivers.
if ! "$LDCONFIG" -p 2>/dev/null | grep "libEGL.so.1" >/dev/null \
    || ! ls /usr/lib/*/dri/swrast_dri.so /usr/lib/*/dri/*_dri.so >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libegl1 libgl1-mesa-dri libgles2 >/dev/null
  else
    echo "setup_env: EGL/Mesa not found; the simulated arm needs them (sudo apt-get install libegl1 libgl1-mesa-dri libgles2)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e "$ROOT/src/vla_policy_node[model,ros,bagtools,camera,sim,babyai,metaworld,test,colcon]"
  echo "$WANT" > "$STAMP"
fi

# The safety filter's per-joint limit arithmetic compiled with mypyc (the `test` extra brings it), beside its
# source; a no-op while the build matches the source. Without a C compiler the Python source runs, as it does
# wherever the build is missing or stale (vla_policy_node/control/native.py).
if ! "$VENV/bin/python" "$ROOT/scripts/build_native.py"; then
  echo "setup_env: the joint limits were not compiled; their Python source runs (same results, slower tick)" >&2
fi
