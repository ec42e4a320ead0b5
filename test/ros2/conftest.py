"""The real-ROS layer's fixtures: one colcon build per session (the README's commands, run as written), the
environment a ROS user has after `source install/setup.bash`, a private DDS domain per test module, tiny
checkpoints. Every test here carries the `ros2` marker (test/conftest.py) and is skipped without ROS 2."""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from test.ros_env import ros2_missing

REPO = Path(__file__).resolve().parents[2]
README_SECTION = "## On a ROS 2 machine"
# what a ROS user's workspace holds: the repository's entries the README's commands use
WORKSPACE_ENTRIES = ("src", "launch", "config", "colcon.meta", "scripts", "checkpoints", ".venv")


def readme_ros_block() -> list[str]:
    """The command lines of the first bash block of the README's ROS section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(README_SECTION):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None, "the README's ROS section has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def loopback_uri() -> str:
    """CYCLONEDDS_URI for rmw_cyclonedds: the same loopback discovery as the DDS transport's VLA_DDS_LOOPBACK."""
    from vla_policy_node.transport.dds_config import loopback_config_xml

    return loopback_config_xml()


@dataclass(frozen=True)
class Workspace:
    root: Path
    env: dict[str, str]  # after `source install/setup.bash` (no domain chosen yet)
    build_log: str

    def share(self, package: str) -> Path:
        return self.root / "install" / package / "share" / package

    def domain_env(self, domain: int, log_dir: Path) -> dict[str, str]:
        env = dict(self.env)
        env.update(ROS_DOMAIN_ID=str(domain), VLA_DDS_LOOPBACK="1", CYCLONEDDS_URI=loopback_uri(),
                   ROS_LOG_DIR=str(log_dir), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   RCUTILS_COLORIZED_OUTPUT="0")
        return env


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The README's ROS block, line by line as written, in a fresh workspace (the repository's entries linked in),
    except the `ros2 launch` line, which runs forever (the launch tests run it). Built once per session."""
    if ros2_missing():
        pytest.skip(ros2_missing())
    root = tmp_path_factory.mktemp("ros2_ws")
    for entry in WORKSPACE_ENTRIES:
        if (REPO / entry).exists():
            (root / entry).symlink_to(REPO / entry)
    lines = [line for line in readme_ros_block() if not line.startswith("ros2 launch")]
    script = "set -eo pipefail\n" + "\n".join(f"echo '+ {line}'\n{line}" for line in lines) + "\nenv -0 > env.bin\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "COLCON_", "VIRTUAL_ENV"))}
    result = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"README ROS block failed:\n{log[-6000:]}"
    pairs = (item.split("=", 1) for item in (root / "env.bin").read_text().split("\0") if "=" in item)
    return Workspace(root, dict(pairs), log)


@pytest.fixture(scope="module")
def domain() -> int:
    return random.SystemRandom().randint(1, 200)


@pytest.fixture(scope="module")
def ros_env(workspace: Workspace, domain: int, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return workspace.domain_env(domain, tmp_path_factory.mktemp("ros_log"))


def ros2_cli(env: dict[str, str], *args: str, timeout: float = 60.0, check: bool = True) -> str:
    """`ros2 <args>` in `env`; its stdout (stderr appended on failure)."""
    result = subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"ros2 {shlex.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout + (result.stderr if result.returncode else "")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A randomly initialised tiny VLA per robot config, saved the way a real checkpoint is."""
    torch = pytest.importorskip("torch")
    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec import load_embodiment
    from vla_policy_node.spec.normalization import (
        EmbodimentNormalization,
        NormalizationSet,
        normalization_from_limits,
    )

    out = {}
    root = tmp_path_factory.mktemp("tiny_ckpts")
    for config in sorted((REPO / "config" / "robots").glob("*.yaml")):
        embodiment = load_embodiment(config)
        torch.manual_seed(0)
        model = build_tiny_vla([embodiment])
        if embodiment.action_space.type == "joint_position":
            normalization = normalization_from_limits(embodiment)
        else:  # Cartesian deltas: unit stats (the safety filter bounds the speeds)
            normalization = NormalizationSet({embodiment.tag: EmbodimentNormalization.identity(
                embodiment.state_dim, embodiment.action_dim)})
        out[config.stem] = save_checkpoint(model, normalization, root / config.stem)
    return out


@pytest.fixture
def rclpy_context(domain: int) -> Iterator[object]:
    """rclpy in this process, on the module's domain and loopback discovery (its own context, shut down after);
    needs no colcon build."""
    if ros2_missing():
        pytest.skip(ros2_missing())
    import rclpy

    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "CYCLONEDDS_URI")}
    os.environ.update(ROS_DOMAIN_ID=str(domain), CYCLONEDDS_URI=loopback_uri())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
