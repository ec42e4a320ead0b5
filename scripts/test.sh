#!/usr/bin/env bash
# The test command: sets up .venv, lints, then runs the whole suite. Extra arguments go to pytest.
# Where ROS 2 is installed (an already sourced $ROS_DISTRO, else /opt/ros/jazzy) it is sourced first, so the
# real-ROS layer (`pytest -m ros2`: colcon, ros2 launch, rclpy, rosbag2) runs too; without it those tests skip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
if [ -z "${ROS_DISTRO:-}" ] && [ -f /opt/ros/jazzy/setup.bash ]; then
  set +u  # ROS's setup scripts read unset variables
  # shellcheck disable=SC1091
  source /opt/ros/jazzy/setup.bash
  set -u
fi
.venv/bin/ruff check .
# Where the joint limits can be compiled (mypyc, Python's headers, a C compiler) setup_env.sh compiled them: the
# tests that compare the build with its source must then run, not skip.
if .venv/bin/python scripts/build_native.py --can-build >/dev/null; then
  export VLA_REQUIRE_NATIVE=1
fi
.venv/bin/python -m pytest test "$@"
