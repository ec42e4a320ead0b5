"""The real-ROS layer's fixtures: one colcon build per session (the README's commands, run as written), the
environment a ROS user has after `source install/setup.bash`, a private DDS domain per test module, tiny
checkpoints. Every test here carries the `ros2` marker (test/conftest.py) and is skipped without ROS 2."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from test.ros_env import ros2_missing
from test.system.processes import LoggedProcess

REPO = Path(__file__).resolve().parents[2]
README_SECTION = "## On a ROS 2 machine"
KEEP_WORKSPACE_ENV = "VLA_ROS2_TEST_WORKSPACE"
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
    except the `ros2 launch` line, which runs forever (the launch tests run it). Built once per session.
    $VLA_ROS2_TEST_WORKSPACE names a directory to build in and keep instead (colcon then rebuilds only what
    changed: for iterating on these tests; CI builds from scratch)."""
    if ros2_missing():
        pytest.skip(ros2_missing())
    kept = os.environ.get(KEEP_WORKSPACE_ENV, "")
    root = Path(kept) if kept else tmp_path_factory.mktemp("ros2_ws")
    root.mkdir(parents=True, exist_ok=True)
    for entry in WORKSPACE_ENTRIES:
        if (REPO / entry).exists() and not (root / entry).is_symlink():
            (root / entry).symlink_to(REPO / entry)
    lines = [line for line in readme_ros_block() if not line.startswith("ros2 launch")]
    script = "set -eo pipefail\n" + "\n".join(f"echo '+ {line}'\n{line}" for line in lines) + "\nenv -0 > env.bin\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "COLCON_", "VIRTUAL_ENV"))}
    result = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"README ROS block failed:\n{log[-6000:]}"
    pairs = (item.split("=", 1) for item in (root / "env.bin").read_text().split("\0") if "=" in item)
    return Workspace(root, dict(pairs), log)


_USED_DOMAINS: set[int] = set()
_DOMAIN_CLAIMS: list[object] = []  # the probe participants holding this session's domains
_DOMAIN_LOCK = threading.Lock()


def allocate_domain() -> int:
    """A random ROS_DOMAIN_ID that no other test of this session uses (the launches run beside the other
    modules) and no ROS node on this machine is on: other test runs on a shared machine (CI's too) pick random
    domains as well, and a shared domain mixes their /joint_states into ours. A probe participant holds the
    domain until the session ends, so that their probes see it taken (test/system/processes.py)."""
    from test.system.processes import claim_domain

    with _DOMAIN_LOCK:
        transport, chosen = claim_domain("vla_ros2_test_domain", listen=1.0, exclude=_USED_DOMAINS)
        _USED_DOMAINS.add(chosen)
        _DOMAIN_CLAIMS.append(transport)
        return chosen


@pytest.fixture(scope="session", autouse=True)
def _release_domains() -> Iterator[None]:
    yield
    with _DOMAIN_LOCK:
        for transport in _DOMAIN_CLAIMS:
            transport.close()
        _DOMAIN_CLAIMS.clear()


@pytest.fixture(scope="module")
def domain() -> int:
    if ros2_missing():
        pytest.skip(ros2_missing())
    return allocate_domain()


@pytest.fixture(scope="module")
def ros_env(workspace: Workspace, domain: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = workspace.domain_env(domain, tmp_path_factory.mktemp("ros_log"))
    yield env
    stop_daemon(env)


def stop_daemon(env: dict[str, str]) -> None:
    """`ros2 node list` and friends start a ros2 daemon for the domain, which outlives the test: stop it (best
    effort: clean-up, not a result; on a starved machine `ros2 daemon stop` can outlast its minute)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, timeout=60, check=False)


ROS_VARIABLES = ("PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "LD_LIBRARY_PATH",
                 "ROS_DISTRO", "ROS_VERSION", "ROS_PYTHON_VERSION", "RMW_IMPLEMENTATION", "CYCLONEDDS_URI",
                 "ROS_AUTOMATIC_DISCOVERY_RANGE")


def dds_env(env: dict[str, str]) -> dict[str, str]:
    """`env` as on a machine without ROS (nothing sourced: no rclpy, no ROS libraries, no `ros2`), same domain:
    what a `--transport dds` node runs with."""
    out = {k: v for k, v in env.items() if k not in ROS_VARIABLES}
    out["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if "/opt/ros/" not in p and "/install/" not in p)
    out["VLA_DDS_LOOPBACK"] = "1"
    return out


class NodeRun(LoggedProcess):
    """A node (or ros2 CLI) process with its output in a log file; `stop()` sends SIGINT (then kills)."""

    stop_grace = 15.0

    def __init__(self, args: list[str], env: dict[str, str], log: Path, name: str = "") -> None:
        self.name = name or Path(args[0]).name
        super().__init__(args, env, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} (exit {self.process.poll()}) ---\n" + "\n".join(self.text().splitlines()[-lines:])


@dataclass
class SpunNode:
    """An rclpy node of the test process, spun on its own executor thread."""

    node: object
    context: object


@pytest.fixture(scope="module")
def rclpy_node(domain: int) -> Iterator[SpunNode]:
    """One rclpy node per test module on the module's domain and loopback discovery (needs no colcon build)."""
    if ros2_missing():
        pytest.skip(ros2_missing())
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "CYCLONEDDS_URI")}
    os.environ.update(ROS_DOMAIN_ID=str(domain), CYCLONEDDS_URI=loopback_uri())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node(f"test_{domain}", context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield SpunNode(node, context)
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def subscribe(node, msg_type, topic: str, callback, qos):
    """A subscription that is safe to destroy while the node spins: without rclpy's default QoS-event handlers,
    whose destruction races the executor (transport/rclpy_backend.py's module docstring)."""
    from rclpy.event_handler import SubscriptionEventCallbacks

    return node.create_subscription(msg_type, topic, callback, qos,
                                    event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))


def publisher(node, msg_type, topic: str, qos):
    """A publisher that is safe to destroy while the node spins (see `subscribe`)."""
    from rclpy.event_handler import PublisherEventCallbacks

    return node.create_publisher(msg_type, topic, qos,
                                 event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))


def wait_until(predicate, timeout: float, what: str = "", poll: float = 0.05) -> None:
    """Block until `predicate()` is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")


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


# ---------------------------------------------------------------------------- `ros2 launch` output
def process_ends(out: str) -> dict[str, int]:
    """Exit code by process name (`policy_node`, ...) from `ros2 launch`'s own lines."""
    ends = {}
    for name in re.findall(r"\[INFO\] \[(\w+)-\d+\]: process has finished cleanly", out):
        ends[name] = 0
    for name, code in re.findall(r"\[ERROR\] \[(\w+)-\d+\]: process has died \[pid \d+, exit code (-?\d+)", out):
        ends[name] = int(code)
    return ends


def assert_all_gone(out: str) -> None:
    """Every process the launch started has ended (a launch that ends leaves no node behind)."""
    for pid in map(int, re.findall(r"process started with pid \[(\d+)\]", out)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "?"
        assert state == "Z", f"process {pid} still runs after the launch ended:\n{out}"


# ------------------------------------------------------------------------------------------ robot launches
SYSTEM_TEST = REPO / "test" / "ros2" / "launch" / "robot_system.test.py"
ROBOTS = tuple(sorted(p.stem for p in (REPO / "config" / "robots").glob("*.yaml")))
SHIPPED = REPO / "checkpoints" / "sim_reach" / "checkpoint"  # what the README launches the sim arm with
PARALLEL_ENV = "VLA_ROS2_PARALLEL_LAUNCHES"
LAUNCH_TIMEOUT = 600.0
LAUNCH_OUTCOMES: dict[str, LaunchOutcome] = {}  # for the summary line
# The bag tests' recording (the sim arm, two `ros2 bag record`s and two `vla_record`s) is set when done: the
# background launches start after it. Beside two launched systems a CI run's starved sim published too slowly for
# the policy of a launch test to see a fresh joint state, and a recorder lost most joint states.
BAGS_RECORDED = threading.Event()
RECORDING_WAIT = 300.0  # s a launch waits for the recording at most


@dataclass
class LaunchOutcome:
    robot: str
    returncode: int
    seconds: float
    log: Path

    def tail(self, chars: int = 12000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


class LaunchPool:
    """Every robot's launch_testing system test (`launch_test robot_system.test.py`), each in a domain of its
    own, `parallel` at a time in the background: they are independent (own domain, own logs, own processes),
    so the rest of the layer runs meanwhile and each launch test only collects its outcome."""

    def __init__(self, workspace: Workspace, checkpoints: dict[str, Path], root: Path, parallel: int,
                 robots: tuple[str, ...] = ROBOTS, start_after: threading.Event | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.workspace, self.checkpoints, self.root = workspace, checkpoints, root
        self._start_after = start_after
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="launch")
        self._futures = {robot: self._executor.submit(self._run, robot) for robot in robots}

    def _run(self, robot: str) -> LaunchOutcome:
        if self._start_after is not None:
            self._start_after.wait(RECORDING_WAIT)
        out = self.root / robot
        out.mkdir(parents=True, exist_ok=True)
        env = self.workspace.domain_env(allocate_domain(), out / "ros_log")
        checkpoint = SHIPPED if robot == "sim_arm" else self.checkpoints[robot]
        env.update(VLA_TEST_ROBOT=robot, VLA_TEST_CHECKPOINT=str(checkpoint))
        log = out / "launch_test.log"
        start = time.monotonic()
        with log.open("w") as stream:
            # its own session: whatever a launch leaves behind (launch_testing kills `ros2 launch` when it is slow
            # to stop on a starved machine, orphaning its nodes) is found and killed here, not left to spoil
            # other tests' graphs
            process = subprocess.Popen([sys.executable, "-m", "launch_testing.launch_test", str(SYSTEM_TEST),
                                        "--junit-xml", str(out / "junit.xml")], env=env, stdout=stream,
                                       stderr=subprocess.STDOUT, cwd=out, start_new_session=True)
            try:
                code = process.wait(timeout=LAUNCH_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = -9
            for line in kill_session(process.pid):
                stream.write(f"\nleft running after the launch test, killed: {line}")
            process.wait()
        stop_daemon(env)
        return LaunchOutcome(robot, code, time.monotonic() - start, log)

    def result(self, robot: str) -> LaunchOutcome:
        outcome = self._futures[robot].result()
        LAUNCH_OUTCOMES[robot] = outcome
        return outcome

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def kill_session(session_id: int) -> list[str]:
    """SIGKILL every process left in the session `session_id` leads; their command lines (the ros2 CLI's daemon,
    started by a `ros2 node info` in the test, is one of them when it ran)."""
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session_id:
                continue
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            os.kill(int(entry), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, FileNotFoundError):
            continue
        if command.strip():  # a zombie has no command line: nothing was running
            left.append(f"{entry}: {command.strip()[:160]}")
    return left


def selected_robots(session: pytest.Session) -> tuple[str, ...]:
    """The robots whose launch test this run selected (all of them, unless -k/-m narrowed it)."""
    chosen = {item.callspec.params["robot"] for item in session.items
              if item.nodeid.startswith("test/ros2/test_launch_files.py") and hasattr(item, "callspec")}
    return tuple(robot for robot in ROBOTS if robot in chosen)


@pytest.fixture(scope="session")
def robot_launches(request: pytest.FixtureRequest, workspace: Workspace, tiny_checkpoints: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchPool]:
    parallel = int(os.environ.get(PARALLEL_ENV, "2"))
    records = any("recorded" in getattr(item, "fixturenames", ()) and item.nodeid.startswith("test/ros2/")
                  for item in request.session.items)
    pool = LaunchPool(workspace, tiny_checkpoints, tmp_path_factory.mktemp("launches"), max(1, parallel),
                      selected_robots(request.session) or ROBOTS, BAGS_RECORDED if records else None)
    yield pool
    pool.close()


@pytest.fixture(scope="session", autouse=True)
def _start_robot_launches_early(request: pytest.FixtureRequest) -> None:
    """The launch tests run last (test/conftest.py orders them so) but start in the background at the first
    real-ROS test, right after the colcon build, when this run selected any of them."""
    if any(item.nodeid.startswith("test/ros2/test_launch_files.py") for item in request.session.items):
        request.getfixturevalue("robot_launches")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line with each robot launch test's own wall time (they run in the background, beside the rest)."""
    if LAUNCH_OUTCOMES:
        times = ", ".join(f"{robot} {o.seconds:.0f} s{'' if o.returncode == 0 else ' (failed)'}"
                          for robot, o in sorted(LAUNCH_OUTCOMES.items()))
        terminalreporter.write_line(f"ros2 launch tests (in the background, {os.environ.get(PARALLEL_ENV, '2')} at "
                                    f"a time): {times}")
