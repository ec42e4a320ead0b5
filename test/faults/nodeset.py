"""One node set: the fake arm driver, the command mux and the policy node (wrapped by test/faults/fault_policy.py)
as separate processes on a private DDS domain, the monitor that hears them, and the levers a scenario pulls:
sensor faults on the driver, model faults, signals, e-stop, teleop, services, instructions and (sim time) the
clock.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from test.faults.fault_policy import CONTROL_ENV
from test.faults.monitor import Monitor
from test.system.processes import NodeGroup, NodeProcess, claim_domain, wait_for
from vla_policy_node.control.mux_file import load_mux_file
from vla_policy_node.msgs.images import encode_image
from vla_policy_node.msgs.joints import encode_joint_state
from vla_policy_node.nodes.mux_runtime import default_mux_config_path
from vla_policy_node.spec import load_embodiment
from vla_policy_node.spec.embodiment import CameraSpec
from vla_policy_node.transport.qos import LATCHED_QOS, SENSOR_DATA_QOS

INSTRUCTION = "put the red block in the bowl"
STARTUP_TIMEOUT = 180.0  # four Python processes (nodes + inference) importing torch, transformers, cyclonedds
CLOCK_HZ = 250.0  # /clock rate of a sim-time set (ros2 bag play publishes at 100 Hz by default)


@dataclass(frozen=True)
class SetSpec:
    """name: for logs; robot: robot YAML; checkpoint: tiny VLA for it; sim_time: the nodes follow /clock,
    published by the test; driver_fault: a SensorFault (JSON) the fake arm starts with."""

    name: str
    robot: Path
    checkpoint: Path
    sim_time: bool = False
    driver_fault: str = ""


class NodeSet(NodeGroup):
    def __init__(self, spec: SetSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.robot = load_embodiment(spec.robot)
        self.period = 1.0 / self.robot.rates.control_hz
        self.control_file = workdir / "model_mode"
        self.control_file.write_text("ok")
        self.clock_offset = 0.0
        self.startup_done = math.inf  # when the set was up and driving (set by the campaign)
        mux_path = default_mux_config_path()
        assert mux_path is not None, "config/mux.yaml not found"
        self.mux_file = load_mux_file(mux_path)
        self._clock_stop = threading.Event()
        self._clock_thread: threading.Thread | None = None
        self.t, self.domain = claim_domain("fault_monitor")
        self.monitor = Monitor(self.t, self.robot)
        self.monitor.node_time = self.node_time
        pub = self.t.publisher
        self._fault_pub = pub("/fake_arm_driver/sensor_fault", "std_msgs/msg/String", LATCHED_QOS)
        self._estop_pub = pub("/vla/estop", "std_msgs/msg/Bool")
        self._teleop_pub = pub("/vla/teleop/joint_command", "sensor_msgs/msg/JointState")
        self._instruction_pub = pub("/vla/instruction", "std_msgs/msg/String", LATCHED_QOS)
        self._pedal_pub = pub(getattr(self.mux_file.topics, "resume", "") or "/vla/teleop/resume", "std_msgs/msg/Bool")
        self._joint_pub = pub(self.robot.joint_states.topic, "sensor_msgs/msg/JointState", SENSOR_DATA_QOS)
        self._frame_pubs: dict[str, Any] = {}
        self._extra_pubs: dict[str, Any] = {}
        self._clock_pub = pub("/clock", "rosgraph_msgs/msg/Clock", SENSOR_DATA_QOS) if spec.sim_time else None
        if spec.sim_time:
            self._clock_thread = threading.Thread(target=self._run_clock, name=f"{spec.name}-clock", daemon=True)
            self._clock_thread.start()
        robot_args = ["--transport", "dds", "--robot-config", str(spec.robot)]
        sim = ["--use-sim-time"] if spec.sim_time else []
        fault = ["--sensor-fault", spec.driver_fault] if spec.driver_fault else []
        self.driver = NodeProcess("vla_policy_node.nodes.fake_arm_driver", [*robot_args, *sim, *fault], self.domain,
                                  workdir / "driver.log")
        self._mux_args = [*robot_args, *sim]
        self.mux: NodeProcess | None = None
        if not spec.driver_fault:
            self.start_mux()
        self.policy_args = [*robot_args, *sim, "--checkpoint", str(spec.checkpoint), "--instruction", INSTRUCTION,
                            "--no-dry-run", "--torch-threads", "1"]
        self.policy = self.start_policy()

    # ------------------------------------------------------------------------------------------- processes
    def start_mux(self) -> NodeProcess:
        """The command mux; with a start-up sensor fault it starts last, once the policy commands, so it
        publishes from its very first tick (it is silent while nobody commands) on the faulty reading."""
        self.mux = NodeProcess("vla_policy_node.nodes.command_mux_node", self._mux_args, self.domain,
                               self.workdir / "mux.log")
        return self.mux

    def start_policy(self) -> NodeProcess:
        """The policy node (again, after a kill), its model behind the fault-injecting wrapper."""
        n = sum(1 for _ in self.workdir.glob("policy*.log"))
        self.policy = NodeProcess("test.faults.fault_policy", self.policy_args, self.domain,
                                  self.workdir / f"policy{n or ''}.log", env={CONTROL_ENV: str(self.control_file)})
        return self.policy

    def inference_pid(self, timeout: float = 15.0) -> int:
        """The policy node's inference process (its multiprocessing spawn child, which runs the model); waits for
        one while it is being restarted."""
        pid = self.policy.process.pid
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            seen = []
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    for child in (task / "children").read_text().split():
                        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                        if "spawn_main" in cmdline:
                            return int(child)
                        seen.append(cmdline[:120])
            if time.monotonic() > deadline:
                raise AssertionError(f"the policy node (pid {pid}) has no inference process; children: {seen}")
            time.sleep(0.1)

    @property
    def nodes(self) -> list[NodeProcess]:
        return [node for node in (self.driver, self.mux, self.policy) if node is not None]

    def close(self) -> list[int]:
        """Stop the nodes (SIGINT; a stopped process is continued first); their exit codes, the last started
        first."""
        codes = []
        for node in reversed(self.nodes):
            if node.alive():
                node.signal(signal.SIGCONT)  # a stopped node cannot handle SIGINT
            codes.append(node.stop(grace=15.0))
        self._clock_stop.set()
        self.monitor.close()
        self.t.close()
        return codes

    # ------------------------------------------------------------------------------------------------ time
    def _run_clock(self) -> None:
        period = 1.0 / CLOCK_HZ
        while not self._clock_stop.wait(period):
            now = time.time() + self.clock_offset
            sec = math.floor(now)
            stamp = self.t.new_message("builtin_interfaces/msg/Time", sec=sec, nanosec=int((now - sec) * 1e9))
            assert self._clock_pub is not None
            self._clock_pub.publish(self.t.new_message("rosgraph_msgs/msg/Clock", clock=stamp))

    def jump_clock(self, seconds: float) -> float:
        """Step the published /clock by `seconds` (negative: back, as when a bag restarts); when it happened."""
        self.clock_offset += seconds
        return time.monotonic()

    def node_time(self) -> float:
        return time.time() + self.clock_offset

    # ------------------------------------------------------------------------------------------------ levers
    def sensor_fault(self, **fault: Any) -> float:
        """Make the fake arm's sensors lie (SensorFault fields; none: healthy); the time.monotonic() of the send."""
        self._fault_pub.publish(self.t.new_message("std_msgs/msg/String", data=json.dumps(fault)))
        return time.monotonic()

    def model_mode(self, mode: str) -> float:
        """"ok", "raise", "stall SECONDS" or "nan" for the policy's model (see fault_policy.py)."""
        tmp = self.control_file.with_suffix(".tmp")
        tmp.write_text(mode)
        switched = time.monotonic()  # before the switch: a fault ends no earlier, a mode starts no later
        tmp.replace(self.control_file)
        return switched

    def model_events(self) -> list[tuple[str, float, float]]:
        """(mode, start, end) of every faulted inference so far (time.monotonic())."""
        path = self.control_file.with_name(self.control_file.name + ".events")
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            *mode, start, end = line.split()
            out.append((" ".join(mode), float(start), float(end)))
        return out

    def estop(self, pressed: bool) -> float:
        """Press (or release) the e-stop, three messages 10 ms apart; the time of the first."""
        first = time.monotonic()
        for _ in range(3):
            self._estop_pub.publish(self.t.new_message("std_msgs/msg/Bool", data=pressed))
            time.sleep(0.01)
        return first

    def teleop(self, target: np.ndarray) -> None:
        self._teleop_pub.publish(encode_joint_state(self.t.new_message, self.robot.joint_names, target,
                                                    stamp=self.node_time()))

    def instruction_topic(self, text: str) -> float:
        self._instruction_pub.publish(self.t.new_message("std_msgs/msg/String", data=text))
        return time.monotonic()

    def joint_state(self, positions: np.ndarray, stamp: float, names: tuple[str, ...] | None = None) -> None:
        """One extra joint state on the driver's topic (the driver keeps publishing its own)."""
        self._joint_pub.publish(encode_joint_state(self.t.new_message, names or self.robot.state_names,
                                                   positions, stamp=stamp))

    def call(self, service: str, srvtype: str, timeout: float = 5.0, **fields: Any) -> Any:
        client = self.t.client(service, srvtype)
        try:
            if not client.wait_for_service(timeout):
                raise AssertionError(f"service {service} not available")
            return client.call(self.t.new_request(srvtype, **fields), timeout=timeout)
        finally:
            client.close()

    def publish_frame(self, camera: CameraSpec, stamp: float, image: np.ndarray | None = None,
                      encoding: str = "rgb8") -> None:
        """One extra frame on a camera's topic (the driver keeps publishing its own)."""
        if image is None:
            image = np.full((camera.height, camera.width, 3), 128, dtype=np.uint8)
        publisher = self._frame_pubs.get(camera.topic)
        if publisher is None:
            publisher = self._frame_pubs[camera.topic] = self.t.publisher(camera.topic, "sensor_msgs/msg/Image",
                                                                          SENSOR_DATA_QOS)
        publisher.publish(encode_image(self.t.new_message, image, encoding, stamp=stamp))

    def publisher(self, topic: str, msgtype: str) -> Any:
        """A publisher on any topic, kept for the set's life (a new DDS writer per message would flood discovery)."""
        key = f"{topic} {msgtype}"
        if key not in self._extra_pubs:
            self._extra_pubs[key] = self.t.publisher(topic, msgtype)
        return self._extra_pubs[key]

    def mux_policy_timeout(self) -> float:
        return self.mux_file.policy_timeout

    def teleop_timeout(self) -> float:
        return self.mux_file.config.teleop_timeout

    def resume_policy(self) -> float:
        """An explicit resume after a teleop takeover, as a pedal gives it: a press on the mux's resume topic
        (config/mux.yaml); when it was sent."""
        pedal = self._pedal_pub
        first = time.monotonic()
        for _ in range(3):
            pedal.publish(self.t.new_message("std_msgs/msg/Bool", data=True))
            time.sleep(0.01)
        return first

    def heal(self) -> None:
        """Undo every lever (after a scenario failed half-way), best effort, and wait for the policy to drive,
        so one failure does not cascade into the next scenarios."""
        steps = [lambda: self.policy.signal(signal.SIGCONT) if self.policy.alive() else None,
                 lambda: self.sensor_fault(), lambda: self.model_mode("ok"), lambda: self.estop(False),
                 lambda: self.instruction_topic(INSTRUCTION),
                 lambda: self.call("/vla_command_mux/reset_estop", "vla_msgs/srv/ResetEstop", timeout=2.0),
                 lambda: self.call("/vla_policy/set_paused", "vla_msgs/srv/SetPaused", timeout=2.0, paused=False),
                 lambda: self.call("/vla_command_mux/set_paused", "vla_msgs/srv/SetPaused", timeout=2.0,
                                   paused=False)]
        for step in steps:  # best effort: the next scenario reports what is still wrong
            with contextlib.suppress(Exception):
                step()
        with contextlib.suppress(AssertionError):
            self.wait_driving(30.0, "the policy to drive again after healing")

    # ----------------------------------------------------------------------------------------------- waits
    def dwell(self, seconds: float, limit: float = 5.0, rest_since: float | None = None) -> None:
        """Let a fault phase last `seconds` of running time: a stall of the machine (the mux's status, 10 Hz
        whatever happens, not heard for longer than three of its periods) extends it by the stall, up to
        `limit`, so the nodes get the time the phase is meant to give them and the monitor hears what they did.

        `rest_since` (a hold the policy node decides, which the mux then follows with its own filter): the phase
        also lasts until the controller's commands since then stand still, up to `limit` more. How long that
        following takes is the mux's tracking, slower on a loaded machine; the checks are what it must reach."""
        start = time.monotonic()
        time.sleep(seconds)
        extended = 0.0
        while extended < limit:
            times = [t for t, _ in self.monitor.mux_status.window(start)]
            gaps = np.diff([start, *times, time.monotonic()])
            stalled = float(np.sum(gaps[gaps > 0.3]))
            if stalled <= extended:
                break
            time.sleep(stalled - extended)
            extended = stalled
        if rest_since is not None:
            deadline = time.monotonic() + limit
            while self.monitor.rest_time(rest_since, time.monotonic()) is None and time.monotonic() < deadline:
                time.sleep(0.05)

    def driving(self, since: float = -math.inf) -> bool:
        """The policy is in control end to end, by the newest status of each node (sent after `since`): the mux
        forwards the policy and the policy node drives."""
        mux, status = self.monitor.mux_status.window(since), self.monitor.status.window(since)
        return bool(mux and status and mux[-1][1]["active_source"] == "policy"
                    and status[-1][1]["active_source"] == "policy")

    def wait_driving(self, timeout: float, what: str = "the policy to drive the arm") -> float:
        return wait_for(self.driving, timeout, what, self)

    def latest_joints(self) -> np.ndarray:
        item = self.monitor.joint_states.latest()
        assert item is not None, "no joint state heard yet"
        return np.asarray(item[1])
