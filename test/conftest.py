"""Shared test fixtures: repository paths, the built-in robot configs, one set of sim demonstrations; the `ros2`
marker's skip and count."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from test.ros_env import ros2_missing

REPO = Path(__file__).resolve().parent.parent
ROBOTS = REPO / "config" / "robots"
ROS2_MISSING = ros2_missing()
ROS2_TESTS: set[str] = set()


@pytest.fixture(autouse=True)
def _no_real_time_left_behind() -> Any:
    """No test may leave a thread of the test process in a real-time class: every process the suite starts
    afterwards would inherit it (SVT-AV1 once put this process at SCHED_FIFO 99, and with it the node processes
    and mypy of every later test). Such threads are set back, and the test fails."""
    from vla_policy_node.train.normal_scheduling import normal_scheduling, realtime_threads

    before = realtime_threads()
    with normal_scheduling():
        yield
        left = realtime_threads() - before
    assert not left, f"the test left {len(left)} thread(s) of the test process at real-time priority (set back)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under test/ros2/ carry the `ros2` marker (so `pytest -m ros2` runs exactly them); without a real
    ROS 2 every `ros2` test is skipped with one reason."""
    ros2_dir = REPO / "test" / "ros2"
    skip = pytest.mark.skip(reason=ROS2_MISSING) if ROS2_MISSING else None
    _launch_tests_last(items, ros2_dir)
    for item in items:
        if ros2_dir in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.ros2)
        if item.get_closest_marker("ros2") is not None:
            ROS2_TESTS.add(item.nodeid)
            if skip is not None:
                item.add_marker(skip)


def _launch_tests_last(items: list[pytest.Item], ros2_dir: Path) -> None:
    """The robot launch tests only collect what runs in the background from the first real-ROS test on
    (test/ros2/conftest.py): put them after the other real-ROS tests, which run meanwhile."""
    launch = [item for item in items if Path(str(item.path)) == ros2_dir / "test_launch_files.py"]
    if not launch:
        return
    rest = [item for item in items if item not in launch]
    in_ros2 = [i for i, item in enumerate(rest) if ros2_dir in Path(str(item.path)).parents]
    at = in_ros2[-1] + 1 if in_ros2 else len(rest)
    items[:] = rest[:at] + launch + rest[at:]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many real-ROS tests ran, or why none did."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if report.nodeid in ROS2_TESTS and (report.when == "call" or outcome != "passed"):
                counts[outcome] += 1
    total = sum(counts.values())
    if not total:
        return
    if ROS2_MISSING:
        terminalreporter.write_line(f"ros2: {total} real-ROS test(s) skipped: {ROS2_MISSING}")
    else:
        terminalreporter.write_line(f"ros2: {counts['passed'] + counts['failed']} real-ROS test(s) ran "
                                    f"({counts['passed']} passed, {counts['failed']} failed, "
                                    f"{counts['skipped']} skipped) against ROS 2 at {ros2_prefix()}")


def ros2_prefix() -> str:
    return os.environ.get("AMENT_PREFIX_PATH", "").split(":")[-1] or "?"


@pytest.fixture
def cut_thread_start() -> Any:
    """Makes the next Thread.start() raise KeyboardInterrupt before the thread runs (a SIGINT landing inside
    it), then lets later starts be; yields (the thread it cut, in a list once cut; the real start, to run that
    thread later)."""
    patch = pytest.MonkeyPatch()
    real_start = threading.Thread.start
    cut: list[threading.Thread] = []

    def interrupted_start(thread: threading.Thread) -> None:
        patch.undo()
        cut.append(thread)
        raise KeyboardInterrupt

    patch.setattr(threading.Thread, "start", interrupted_start)
    yield cut, real_start
    patch.undo()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sim_arm) -> Path:
    """A randomly initialised tiny VLA for the sim arm (scene and wrist cameras), saved as a real checkpoint is."""
    torch = pytest.importorskip("torch")
    from test.system.processes import build_tiny_checkpoint

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_tiny_checkpoint(sim_arm, tmp_path_factory.mktemp("ckpt") / "tiny_vla")
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sim_arm():
    from vla_policy_node.spec import load_embodiment

    return load_embodiment(ROBOTS / "sim_arm.yaml")


@pytest.fixture(scope="session")
def franka():
    from vla_policy_node.spec import load_embodiment

    return load_embodiment(ROBOTS / "franka_fr3.yaml")


@dataclass(frozen=True)
class SimDemos:
    """Expert reach demonstrations on the simulated arm, recorded and converted once per test run.

    The robot that records is the target-state variant (config/sim/sim_arm_target_state.yaml): its joint
    states are a superset of the plain sim arm's, so the same bag converts for both robot configs."""

    root: Path
    episodes: int
    stats: Any  # experiments.sim_arm.demos.DemoStats
    summary: Any  # bagtools.dataset.ConversionSummary of `target_state_dataset`

    @property
    def bag(self) -> Path:
        return self.root / "bag"

    @property
    def target_state_dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def sim_arm_dataset(self) -> Path:
        return self.root / "dataset_sim_arm"


SIM_DEMO_EPISODES = 60


@pytest.fixture(scope="session")
def sim_demos(tmp_path_factory) -> SimDemos:
    """The learning, demonstration and stage-chain tests share these instead of recording their own."""
    from vla_policy_node.experiments.sim_arm.demos import demonstration_dataset
    from vla_policy_node.spec import load_embodiment

    root = tmp_path_factory.mktemp("sim_demos")
    target_state = load_embodiment(REPO / "config" / "sim" / "sim_arm_target_state.yaml")
    stats, summary = demonstration_dataset(target_state, root, SIM_DEMO_EPISODES,
                                           robots=[(load_embodiment(ROBOTS / "sim_arm.yaml"), "dataset_sim_arm")])
    return SimDemos(root, SIM_DEMO_EPISODES, stats, summary)
