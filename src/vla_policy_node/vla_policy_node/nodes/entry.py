"""The node executables' entry points (setup.py's console_scripts, what `ros2 run` and launch files start).

A node module imports numpy, DDS, rclpy or torch at its top, which takes seconds on a loaded machine; a launch
shut down meanwhile (Ctrl-C, a required node that failed, a replayed bag that ended) sends SIGINT then, and
Python's default handler turned it into a KeyboardInterrupt traceback and a "process has died" in the launch
log. Here the module is imported inside a guard: SIGINT before the node runs ends it with one line and exit 0,
as SIGINT does once it runs (node_support.serve; node_support.console_main covers the start-up after import).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path


def stopped_during_start_up() -> None:
    """One line, then exit 0 at once (no interpreter teardown of half-imported libraries)."""
    print(f"{Path(sys.argv[0]).name}: stopped during start-up (SIGINT)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(0)


def _node(module: str) -> Callable[[], int]:
    def main() -> int:
        try:
            run = importlib.import_module(f"vla_policy_node.nodes.{module}").main
        except KeyboardInterrupt:
            stopped_during_start_up()
        return run()

    main.__name__ = module
    main.__doc__ = f"`vla_policy_node.nodes.{module}.main`, imported under the SIGINT guard (module docstring)."
    return main


policy_node = _node("policy_node")
command_mux_node = _node("command_mux_node")
fake_arm_driver = _node("fake_arm_driver")
sim_arm_driver = _node("sim_arm_driver")
ghost_state_publisher = _node("ghost_state_publisher")
realsense_camera_node = _node("realsense_camera")
inference_server = _node("inference_server")
