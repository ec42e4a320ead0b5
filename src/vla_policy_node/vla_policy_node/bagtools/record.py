"""Recording teleoperated demonstrations to rosbag2; CLI `vla_record`.

    vla_record --robot franka_fr3 -o demos/session_01 [--storage sqlite3] [--instruction "stack the cups"]

The recorder subscribes (through any Transport: rclpy, DDS, or a bag replay in tests) to a robot config's
topics: its cameras, joint states, the arm controller's commands (what teleoperation, through the mux, sent
the arm), the gripper command when it is a topic, the instruction (/vla/instruction) and episode marks
(/vla/episode_event), plus any extra topics; each message is written with its receive time, as `ros2 bag
record` does. Bags get message definitions and type hashes (BagWriter), so `ros2 bag info/play` open them.

Episode marks come by topic (any node may publish vla_msgs/EpisodeEvent) or by the service
/vla/recorder/mark_episode (vla_msgs/srv/MarkEpisode), or from the keyboard of `vla_record`. Marks are checked
against the session (a STOP needs an open episode) and written to the bag on /vla/episode_event.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_policy_node.bagtools.cli_common import add_robot_argument, robot_from_args, setup_logging
from vla_policy_node.bagtools.episodes import EpisodeTracker, EventKind, decode_episode_event, encode_episode_event
from vla_policy_node.bagtools.stream_gaps import StampGaps
from vla_policy_node.bagtools.topics import (
    EPISODE_EVENT,
    EPISODE_EVENT_TOPIC,
    INSTRUCTION_TOPIC,
    MARK_EPISODE,
    MARK_EPISODE_SERVICE,
    STRING,
    TopicSpec,
    robot_topics,
)
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.spec.cli import CliParser, run_guarded
from vla_policy_node.spec.embodiment import ConfigError, Embodiment
from vla_policy_node.transport.bag import BagError, BagWriter
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS

log = logging.getLogger(__name__)
NS = 1_000_000_000
SENSOR_ROLES = ("camera", "joint_states")  # streams at a steady rate, stamped by their driver: holes are losses


@dataclass(frozen=True)
class RecordConfig:
    storage: str = "mcap"
    extra_topics: dict[str, str] = field(default_factory=dict)  # topic -> message type
    instruction: str = ""  # written at the start when given
    service: str = MARK_EPISODE_SERVICE


class Recorder:
    """Writes a robot's demonstration topics from `transport` into a new bag at `output` until `close()`."""

    def __init__(self, transport: Transport, embodiment: Embodiment, output: str | Path,
                 config: RecordConfig | None = None) -> None:
        self.transport = transport
        self.embodiment = embodiment
        self.config = config = config or RecordConfig()
        self.output = Path(output)
        self.topics: list[TopicSpec] = robot_topics(embodiment, config.extra_topics)
        self.writer = BagWriter(self.output, config.storage)
        self.tracker = EpisodeTracker()
        self.counts: Counter[str] = Counter()
        self.gaps: dict[str, StampGaps] = {s.topic: StampGaps() for s in self.topics if s.role in SENSOR_ROLES}
        self._lock = threading.Lock()
        self._closed = False
        for spec in self.topics:  # offered QoS in the bag: what `ros2 bag play` will publish with
            self.writer.add_topic(spec.topic, spec.msgtype, LATCHED_QOS if spec.role == "instruction" else DEFAULT_QOS)
        self._subscriptions = [transport.subscribe(s.topic, s.msgtype, self._callback(s), s.qos) for s in self.topics]
        self._service = transport.service(config.service, MARK_EPISODE, self._serve_mark)
        if config.instruction:
            self.set_instruction(config.instruction)

    def _now_ns(self) -> int:
        return round(self.transport.now() * NS)

    def _write(self, topic: str, msgtype: str, msg: Any, stamp_ns: int) -> bool:
        """Write one message unless the recording is closed; whether it was written."""
        if self._closed:
            return False
        self.writer.write(topic, msgtype, msg, stamp_ns)
        self.counts[topic] += 1
        return True

    def _callback(self, spec: TopicSpec) -> Callable[[Any], None]:
        gaps = self.gaps.get(spec.topic)

        def on_message(msg: Any) -> None:
            with self._lock:
                written = self._write(spec.topic, spec.msgtype, msg, self._now_ns())
                if gaps is not None and written:
                    gaps.add(header_stamp(msg))
                if spec.role == "instruction":
                    self.tracker.set_instruction(str(msg.data))
                elif spec.role == "episode_event":
                    ok, message = self.tracker.apply_event(decode_episode_event(msg))
                    if not ok:
                        log.warning("episode mark on %s does not fit the session: %s", spec.topic, message)

        return on_message

    # -------------------------------------------------------------------------------------------------- API
    def set_instruction(self, text: str) -> None:
        """Record a new instruction (as if published on /vla/instruction)."""
        with self._lock:
            self._write(INSTRUCTION_TOPIC, STRING, self.transport.new_message(STRING, data=text), self._now_ns())
            self.tracker.set_instruction(text)

    def mark(self, kind: EventKind | int | str, instruction: str = "", note: str = "") -> tuple[bool, str, int]:
        """Mark an episode boundary or outcome now; (accepted, message, episode index)."""
        kind = EventKind.parse(kind) if not isinstance(kind, EventKind) else kind
        with self._lock:
            if self._closed:
                return False, "the recording is closed", max(len(self.tracker.episodes) - 1, 0)
            stamp_ns = self._now_ns()
            t = stamp_ns / NS
            ok, message = self.tracker.apply(kind, t, instruction, note)
            if not ok:
                return False, message, max(len(self.tracker.episodes) - 1, 0)
            index = len(self.tracker.episodes) - 1
            if kind == EventKind.START and instruction:
                self._write(INSTRUCTION_TOPIC, STRING, self.transport.new_message(STRING, data=instruction), stamp_ns)
                self.tracker.set_instruction(instruction)
            event = encode_episode_event(self.transport.new_message, kind, t, index, instruction, note)
            self._write(EPISODE_EVENT_TOPIC, EPISODE_EVENT, event, stamp_ns)
            return True, message, index

    def _serve_mark(self, request: Any) -> Any:
        try:
            ok, message, index = self.mark(int(request.event), str(request.instruction), str(request.note))
        except ValueError as error:
            ok, message, index = False, str(error), 0
        return self.transport.new_response(MARK_EPISODE, success=ok, message=message, episode_index=index)

    def status(self) -> dict[str, Any]:
        with self._lock:
            open_episode = self.tracker.open
            return {"messages": dict(self.counts), "episodes": len(self.tracker.episodes),
                    "recording_episode": open_episode.index if open_episode is not None else None,
                    "sensor_streams": {topic: gaps.summary() for topic, gaps in self.gaps.items()}}

    def stream_report(self) -> list[str]:
        """One line per sensor stream: its messages and the holes in its header stamps."""
        with self._lock:
            return [gaps.describe(topic) for topic, gaps in self.gaps.items()]

    def close(self) -> None:
        """Stop recording and finish the bag (an open episode is left open: readers end it with the bag)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sub in self._subscriptions:
            sub.close()
        self._service.close()
        with self._lock:
            self.writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------- CLI

PROGRAM = "vla_record"
KEYS = """keys (then Enter): s [instruction] = start episode, e = stop, y = success, n = failure, d = discard,
i TEXT = set instruction, ? = status, q = quit"""
_KEY_EVENTS = {"s": EventKind.START, "e": EventKind.STOP, "y": EventKind.SUCCESS, "n": EventKind.FAILURE,
               "d": EventKind.DISCARD}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    add_robot_argument(parser)
    parser.add_argument("-o", "--output", required=True, help="new bag directory")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage")
    parser.add_argument("--transport", choices=("auto", "rclpy", "dds"), default="auto",
                        help="auto: rclpy when it is importable, else DDS (no ROS installation needed)")
    parser.add_argument("--instruction", default="", help="instruction recorded at the start")
    parser.add_argument("--topic", action="append", default=[], metavar="TOPIC:TYPE",
                        help="also record TOPIC of TYPE (e.g. /vla/teleop/joint_command:sensor_msgs/msg/JointState)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until q)")
    parser.add_argument("--no-keys", dest="keys", action="store_false", help="do not read marks from stdin")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser.parse_args(list(argv))


def _extra_topics(specs: Sequence[str]) -> dict[str, str]:
    extra = {}
    for spec in specs:
        topic, sep, msgtype = spec.partition(":")
        if not sep or not topic or not msgtype:
            raise ValueError(f"--topic needs TOPIC:TYPE, got {spec!r}")
        extra[topic] = msgtype
    return extra


def handle_key(recorder: Recorder, line: str) -> str | None:
    """One keyboard command; the text to show, or None to quit."""
    key, _, rest = line.strip().partition(" ")
    if key == "q":
        return None
    if key == "i":
        recorder.set_instruction(rest.strip())
        return f"instruction: {rest.strip()!r}"
    if key == "?":
        return str(recorder.status())
    kind = _KEY_EVENTS.get(key)
    if kind is None:
        return KEYS
    ok, message, _ = recorder.mark(kind, instruction=rest.strip() if kind == EventKind.START else "")
    return message if ok else f"refused: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from vla_policy_node.transport.factory import strip_ros_args

    args = parse_args(strip_ros_args(argv))
    setup_logging(args.verbose)
    return run_guarded(PROGRAM, lambda: _run(args, argv), args.debug)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from vla_policy_node.transport.factory import make_transport

    try:
        embodiment = robot_from_args(args)
        config = RecordConfig(args.storage, _extra_topics(args.topic), args.instruction)
    except (ConfigError, ValueError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    transport = make_transport(args.transport, "vla_recorder", argv, PROGRAM)
    try:
        try:
            recorder = Recorder(transport, embodiment, args.output, config)
        except BagError as error:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
            return 2
        print(f"{PROGRAM}: recording {len(recorder.topics)} topics to {args.output} ({args.storage}); "
              f"marks: service {config.service} or topic {EPISODE_EVENT_TOPIC}")
        deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        try:
            if args.keys and sys.stdin.isatty():
                print(KEYS)
                _key_loop(recorder, deadline)
            else:
                while time.monotonic() < deadline:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        recorder.close()
        status = recorder.status()
        print(f"{PROGRAM}: wrote {sum(status['messages'].values())} messages, {status['episodes']} episode(s) to "
              f"{args.output}")
        for line in recorder.stream_report():
            print(f"{PROGRAM}: {line}")
        return 0
    finally:
        transport.close()


def _key_loop(recorder: Recorder, deadline: float) -> None:
    import select

    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            return
        reply = handle_key(recorder, line)
        if reply is None:
            return
        print(reply)


if __name__ == "__main__":
    sys.exit(main())
