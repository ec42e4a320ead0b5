"""Child processes for the multi-process tests: node processes that always end, and their logs on failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIM_ARM = REPO / "config" / "robots" / "sim_arm.yaml"


def node_env(domain: int) -> dict[str, str]:
    """Loopback DDS on a private domain; one torch thread per process (the suite runs on 2 cores)."""
    env = dict(os.environ)
    env.update(VLA_DDS_LOOPBACK="1", ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


class NodeProcess:
    """`python -m <module> <args>` with output in `log`; `stop()` sends SIGINT, then kills after a grace time."""

    def __init__(self, module: str, args: list[str], domain: int, log: Path) -> None:
        self.module = module
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=self._file,
                                        stderr=subprocess.STDOUT, env=node_env(domain), cwd=REPO)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 5.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(grace)
        self._file.close()
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.module} (exit {self.process.poll()}) ---\n" + "\n".join(text[-lines:])
