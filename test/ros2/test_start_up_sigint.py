"""SIGINT at any moment of a node executable's start-up is a clean stop: exit 0, the one start-up line or none, no
traceback; sent to the node alone (what `ros2 launch` sends each process when a required one ends or a replayed
bag has played) or to its process group (Ctrl-C in a terminal: the policy node's inference process gets it too).
The README workspace's real executables on real rclpy, interrupted at fixed points across their start-up
(imports, rclpy init, the node's set-up, its threads starting, running). CI found the replay launch's mux
exiting 2 ("cannot join thread before it is started") when the bag ended while the mux started.

Not covered: the first ~30 ms of the interpreter, where Python itself reports a KeyboardInterrupt inside its
`site` import as a fatal error (exit 1) before any of our code runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from test.ros2.conftest import SHIPPED, Workspace

# each node's arguments and the moments (s after the exec) its SIGINT lands: the mux is running by ~0.8 s; the
# policy node loads its checkpoint (~1 s), then its inference process starts and warms up (~4 s)
NODES = {
    "command_mux_node": (("--robot-config", "sim_arm", "--use-sim-time"),
                         (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15)),
    "policy_node": (("--robot-config", "sim_arm", "--use-sim-time", "--checkpoint", str(SHIPPED)),
                    (0.3, 0.9, 1.3, 1.7, 2.3, 3.2, 4.3, 5.5)),
}


@pytest.mark.parametrize("to", ["node", "group"])
@pytest.mark.parametrize("node", sorted(NODES))
def test_sigint_anywhere_in_a_node_start_up_is_a_clean_stop(workspace: Workspace, ros_env: dict[str, str],
                                                            node: str, to: str) -> None:
    executable = workspace.root / "install" / "vla_policy_node" / "lib" / "vla_policy_node" / node
    arguments, delays = NODES[node]
    outcomes = []
    for delay in delays:
        process = subprocess.Popen([str(executable), *arguments], env=ros_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        time.sleep(delay)
        if to == "group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # say which of its processes did not end, then end them
            left = subprocess.run(["ps", "-o", "pid,stat,etime,args", "--sid", str(process.pid)],
                                  capture_output=True, text=True).stdout
            os.killpg(process.pid, signal.SIGKILL)
            out = process.communicate()[0] + f"\n[still running 30 s after the SIGINT:\n{left}]"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the inference process too, should one be left
        outcomes.append((delay, process.returncode, out))
    bad = [(delay, code, out[-2000:]) for delay, code, out in outcomes
           if code != 0 or "Traceback" in out or f"{node}: error" in out]
    assert not bad, bad
