"""SIGINT while a node executable is still starting (a launch shut down during its imports or model load) ends
it with one line and exit 0, not a KeyboardInterrupt traceback (nodes/entry.py, node_support.console_main).
Real signals to real processes; each is sent once the child says it is inside the step concerned."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from test.system.processes import REPO

SLOW_IMPORT = textwrap.dedent("""
    import importlib.abc, importlib.machinery, sys, time

    class Slow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name == "vla_policy_node.nodes.command_mux_node":
                return importlib.machinery.ModuleSpec(name, self)
        def create_module(self, spec):
            return None
        def exec_module(self, module):
            print("importing", flush=True)
            time.sleep(60)  # a node module importing torch on a loaded machine

    sys.meta_path.insert(0, Slow())
    sys.argv[0] = "command_mux_node"
    from vla_policy_node.nodes.entry import command_mux_node
    sys.exit(command_mux_node())
""")

SLOW_START = textwrap.dedent("""
    import sys, time
    from vla_policy_node.nodes.node_support import console_main

    def run(args):
        print("loading", flush=True)
        time.sleep(60)  # a checkpoint loading
        return 0

    sys.argv[0] = "policy_node"
    console_main(run)
""")


CUT_SHORT = textwrap.dedent("""
    import sys, time
    from vla_policy_node.nodes.node_support import console_main

    def run(args):
        try:
            print("loading", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:  # as rclpy's C extension import reported a SIGINT in its middle
            raise ImportError("The C extension '_rclpy_pybind11' isn't present on the system") from None
        return 0

    sys.argv[0] = "command_mux_node"
    console_main(run)
""")

FAILS = textwrap.dedent("""
    import sys
    from vla_policy_node.nodes.node_support import console_main

    def run(args):
        raise ImportError("The C extension '_rclpy_pybind11' isn't present on the system")

    sys.argv[0] = "command_mux_node"
    console_main(run)
""")


def interrupted(code: str, ready: str) -> subprocess.CompletedProcess:
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == ready
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_sigint_during_the_node_modules_import_is_a_clean_stop() -> None:
    result = interrupted(SLOW_IMPORT, "importing")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "command_mux_node: stopped during start-up (SIGINT)", result.stderr


def test_sigint_while_the_node_starts_is_a_clean_stop() -> None:
    result = interrupted(SLOW_START, "loading")
    assert result.returncode == 0, result.stderr
    assert "policy_node: stopped during start-up (SIGINT)" in result.stderr and "Traceback" not in result.stderr


def test_an_error_that_a_sigint_caused_during_start_up_is_still_a_clean_stop() -> None:
    """A library that turns the interrupt into an error of its own (rclpy's extension import did, in CI: the
    replay launch's mux exited 2 "isn't present on the system" when the bag ended while it started): exit 0,
    one line that names what was cut short. Without a SIGINT the same error stays an error (exit 2)."""
    result = interrupted(CUT_SHORT, "loading")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().startswith("command_mux_node: stopped during start-up (SIGINT; it cut short: "
                                            "ImportError"), result.stderr
    failed = subprocess.run([sys.executable, "-c", FAILS], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "isn't present on the system" in failed.stderr, failed.stderr


def test_a_node_whose_start_a_sigint_cuts_short_is_still_closed() -> None:
    """serve: the runtime is closed (its threads stopped, its transport let go) when the interrupt lands inside
    its start, and the interrupt goes on to console_main, which makes it the clean stop."""
    import logging

    import pytest

    from vla_policy_node.nodes.node_support import serve

    class HalfStarted:
        closed = False

        def start(self) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            self.closed = True

    node = HalfStarted()
    with pytest.raises(KeyboardInterrupt):
        serve(node, logging.getLogger("test"))
    assert node.closed

    class FailsToStartAndToClose(HalfStarted):
        def start(self) -> None:
            raise RuntimeError("inference process failed to start: not ready within 600 s")

        def close(self) -> None:
            self.closed = True
            raise AttributeError("half-started: no inference thread")

    node = FailsToStartAndToClose()
    with pytest.raises(RuntimeError, match="failed to start"):  # the start's error is the one reported
        serve(node, logging.getLogger("test"))
    assert node.closed
