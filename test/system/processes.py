"""Child processes for the multi-process tests: node processes that always end, their logs on failure, and a
thread-safe log of the messages a test process hears from them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SIM_ARM = REPO / "config" / "robots" / "sim_arm.yaml"
FRANKA_FR3 = REPO / "config" / "robots" / "franka_fr3.yaml"


def node_env(domain: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Loopback DDS on a private domain; one torch thread per process (the suite runs on 2 cores)."""
    env = dict(os.environ)
    env.update(VLA_DDS_LOOPBACK="1", ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def claim_domain(name: str = "domain_probe", tries: int = 8, listen: float = 0.5,
                 exclude: frozenset[int] | set[int] = frozenset()) -> tuple[Any, int]:
    """A DDS participant named `name` on a random domain (not in `exclude`) that no other ROS node on this
    machine uses: other test runs on a shared machine pick random domains too, and two runs on one domain would
    hear each other. Keep the participant while the domain is in use: others' probes then see it taken."""
    from vla_policy_node.transport import DdsConfig, DdsTransport

    for _ in range(tries):
        domain = random.SystemRandom().choice(sorted(set(range(1, 231)) - set(exclude)))
        transport = DdsTransport(DdsConfig(node_name=name, loopback=True, domain_id=domain))
        time.sleep(listen)
        if len(transport.discovered_nodes()) <= 1:  # only this one
            return transport, domain
        transport.close()
    raise AssertionError(f"no free DDS domain found in {tries} tries")


def build_tiny_checkpoint(robots: Any, directory: Path) -> Path:
    """A randomly initialised tiny VLA for `robots` (one Embodiment or several), saved the way a real checkpoint
    is, with normalization stats from each robot's joint limits."""
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec.normalization import NormalizationSet, normalization_from_limits

    robots = list(robots) if isinstance(robots, list | tuple) else [robots]
    torch.manual_seed(0)
    model = build_tiny_vla(robots)
    stats = {tag: norm for robot in robots for tag, norm in normalization_from_limits(robot).by_tag.items()}
    return save_checkpoint(model, NormalizationSet(stats), directory)


class Recorder:
    """Thread-safe message log: (arrival time on time.monotonic(), decoded value)."""

    def __init__(self, decode: Callable) -> None:
        self.items: list[tuple[float, object]] = []
        self._decode = decode
        self._lock = threading.Lock()

    def __call__(self, msg) -> None:
        value = self._decode(msg)
        with self._lock:
            self.items.append((time.monotonic(), value))

    def since(self, t0: float) -> list:
        with self._lock:
            return [value for t, value in self.items if t >= t0]

    def window(self, t0: float, t1: float = float("inf")) -> list[tuple[float, Any]]:
        """(arrival time, value) of the messages that arrived in [t0, t1]."""
        with self._lock:
            return [(t, value) for t, value in self.items if t0 <= t <= t1]

    def latest(self):
        with self._lock:
            return self.items[-1][1] if self.items else None


def wait_for(condition: Callable[[], bool], timeout: float, what: str, system=None) -> float:
    """Poll `condition` until it holds (returns the time.monotonic() it did) or fail after `timeout` seconds;
    `system` (check_alive(), logs()) fails early when a node died and adds the node logs to the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if system is not None:
            system.check_alive()
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" +
                         ("\n" + system.logs() if system is not None else ""))


class LoggedProcess:
    """A process with its output in `log`; `stop()` sends SIGINT (as Ctrl-C and `ros2 launch` do), then kills
    after a grace time, and returns the exit code."""

    stop_grace = 5.0

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float | None = None) -> int:
        grace = self.stop_grace if grace is None else grace
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(grace)
        self._file.close()
        return self.process.returncode


class NodeProcess(LoggedProcess):
    """`python -m <module> <args>` on the DDS domain `domain`."""

    def __init__(self, module: str, args: list[str], domain: int, log: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.module = module
        super().__init__([sys.executable, "-m", module, *args], node_env(domain, env), log)

    def signal(self, sig: int) -> None:
        """Send `sig` (SIGSTOP, SIGCONT, SIGKILL...) to the node process."""
        self.process.send_signal(sig)

    def tail(self, lines: int = 30) -> str:
        text = [line if len(line) <= 500 else line[:500] + f"... ({len(line)} characters)"
                for line in self.log.read_text(errors="replace").splitlines()]
        return f"--- {self.module} (exit {self.process.poll()}) ---\n" + "\n".join(text[-lines:])


class NodeGroup:
    """Node processes that run together (`nodes`): fail early when one died, and their logs for a failure."""

    nodes: list[NodeProcess]

    def check_alive(self) -> None:
        dead = [node for node in self.nodes if not node.alive()]
        if dead:
            raise AssertionError("a node process died:\n" + "\n".join(node.tail() for node in dead))

    def logs(self) -> str:
        return "\n".join(node.tail() for node in self.nodes)
