"""Pieces both runtime nodes share: status/diagnostics messages, ROS parameters, and waiting for shutdown."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from vla_policy_node.control.status import ControlStatus, Diagnostic, Level
from vla_policy_node.msgs.diagnostics import DiagnosticEntry, encode_diagnostics
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.policy_status import encode_policy_status, status_fields
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.robot_configs import ROBOT_CONFIG_HELP
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.factory import TRANSPORT_CHOICES
from vla_policy_node.transport.parameters import ChangeHandler, Param, ParameterTable, on_set_rule

ParamHandler = ChangeHandler  # (name, new value) -> "" when applied, else why it was refused

log = logging.getLogger(__name__)

POLICY_STATUS = "vla_msgs/msg/PolicyStatus"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
BOOL = "std_msgs/msg/Bool"
STRING = "std_msgs/msg/String"


def policy_status_message(new: MessageFactory, status: ControlStatus, stamp: float) -> Any:
    """ControlStatus -> vla_msgs/PolicyStatus (the message's fields only; the rest goes to diagnostics)."""
    fields = set(status_fields())
    values = {f.name: getattr(status, f.name) for f in dataclasses.fields(status) if f.name in fields}
    if "rejection_names" in fields:
        values["rejection_names"] = [name for name, _ in status.input_rejections]
        values["rejection_counts"] = [count for _, count in status.input_rejections]
    return encode_policy_status(new, values, stamp=stamp)


def diagnostics_message(new: MessageFactory, node_name: str, hardware_id: str,
                        diagnostics: Iterable[Diagnostic], stamp: float) -> Any:
    """Entries named `<node>: <component>`, as diagnostic_aggregator expects."""
    entries = [DiagnosticEntry(int(d.level), f"{node_name}: {d.name}", d.message, d.values, hardware_id)
               for d in diagnostics]
    return encode_diagnostics(new, entries, stamp=stamp, hardware_id=hardware_id)


def message_error_values(errors: MessageErrorCounter) -> tuple[tuple[str, str], ...]:
    """(topic/problem, count) pairs for a diagnostics entry."""
    return tuple((f"{topic} {problem}", str(n)) for (topic, problem), n in sorted(errors.counts().items()))


def message_error_diagnostic(errors: MessageErrorCounter) -> Diagnostic:
    """WARN while any input message has been rejected, with the counts per topic and problem."""
    total = errors.total
    return Diagnostic(Level.WARN if total else Level.OK, "message errors",
                      f"{total} input message(s) rejected" if total else "no bad input messages",
                      message_error_values(errors))


def console_main(run: Callable[[Sequence[str]], int], argv: Sequence[str] | None = None) -> int:
    """A node executable's main: log format, then `run` on the command-line arguments; SIGINT before the node
    runs ends it with one line and exit 0 (entry.py guards the import before this).

    As a program (argv None) it ends with os._exit once `run` has closed everything: the interpreter's own
    teardown (torch, mujoco, DDS finalizers) takes seconds on a loaded machine, longer than `ros2 launch`
    waits after SIGINT before it escalates to SIGTERM and reports the node as died."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    program = Path(sys.argv[0]).name if argv is None else getattr(run, "__module__", "node").rsplit(".", 1)[-1]

    sigint = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        sigint.set()
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()  # signal.signal works there only
    previous = signal.getsignal(signal.SIGINT)
    if in_main_thread:  # serve's wait_for_shutdown takes SIGINT over once the node runs
        signal.signal(signal.SIGINT, on_sigint)

    def body() -> int:
        try:
            return run(args)
        except KeyboardInterrupt:  # SIGINT before the node took it over (serve): the stop asked for, no error
            print(f"{program}: stopped during start-up (SIGINT)", file=sys.stderr)
            return 0
        except Exception as error:
            if not sigint.is_set():
                raise
            # the interrupt cut a step short that reported it as an error of its own (rclpy's C extension
            # import: "isn't present on the system"; a thread not yet started): still the stop asked for
            said = (str(error).splitlines() or [""])[0]
            print(f"{program}: stopped during start-up (SIGINT; it cut short: {type(error).__name__}: {said})",
                  file=sys.stderr)
            return 0

    try:
        code = run_guarded(program, body, wants_debug(args))  # bad input: one line, exit 2
    finally:
        if in_main_thread and previous is not None:  # None: a handler set from C, which Python cannot put back
            signal.signal(signal.SIGINT, previous)
    if argv is not None:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def declare_parameters(transport: object, params: Mapping[str, Param | Any]) -> dict[str, Any]:
    """Declare each parameter (command-line value as default, with its description, range and constraints) on
    the transport's node and return the node's values, so `ros2 launch` parameters win: under rclpy on the rclpy
    node, over DDS in the transport's ParameterTable (served to `ros2 param`). Other transports: the defaults."""
    specs = {name: p if isinstance(p, Param) else Param(p) for name, p in params.items()}
    node = getattr(transport, "node", None)
    table: ParameterTable | None = getattr(transport, "parameters", None)
    if node is None:
        if table is None:
            return {name: spec.default for name, spec in specs.items()}
        return {name: table.declare(name, spec) for name, spec in specs.items()}
    values = {}
    for name, spec in specs.items():
        if node.has_parameter(name):
            values[name] = node.get_parameter(name).value
        else:
            values[name] = node.declare_parameter(name, spec.default, _descriptor(spec)).value
    return values


def _descriptor(spec: Param) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    descriptor = ParameterDescriptor(description=spec.description_text(),
                                     additional_constraints=spec.constraints_text(), read_only=spec.read_only)
    if spec.range is not None:
        low, high = spec.range
        if isinstance(spec.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
    return descriptor


def watch_parameters(transport: object, params: Mapping[str, Param | Any], handler: ParamHandler) -> None:
    """`ros2 param set` of one of `params`: the shared rule (transport.parameters.on_set_rule: start-up only
    parameters refused with the reason, choices, limits only stricter), then `handler(name, value)` applies it
    ("" or why not; its answer is the set's result). Parameters not in `params` (use_sim_time) are the
    transport's. Under rclpy through an on-set callback (rclpy checks type and range first), over DDS through
    the ParameterTable (which checks them the same way); other transports have no parameter services."""
    specs = {name: p if isinstance(p, Param) else Param(p) for name, p in params.items()}
    node = getattr(transport, "node", None)
    if node is None:
        table: ParameterTable | None = getattr(transport, "parameters", None)
        if table is not None:
            table.add_on_set(on_set_rule(specs, table.get, handler))
        return
    from rcl_interfaces.msg import SetParametersResult

    rule = on_set_rule(specs, lambda name: node.get_parameter(name).value, handler)

    def on_set(changes: list[Any]) -> Any:
        problem = rule([(change.name, change.value) for change in changes])
        return SetParametersResult(successful=not problem, reason=problem)

    node.add_on_set_parameters_callback(on_set)


def node_clock(transport: Transport, use_sim_time: bool) -> Callable[[], float]:
    """The time source of a node: `transport.now` (the ROS clock under rclpy, which follows use_sim_time
    itself; over DDS the transport's `use_sim_time` parameter is set from the command line's --use-sim-time),
    or the /clock topic on a transport without a clock of its own."""
    if use_sim_time and getattr(transport, "node", None) is None:
        enable = getattr(transport, "enable_sim_time", None)
        if enable is not None:
            enable(True)
            return transport.now
        from vla_policy_node.nodes.topic_clock import TopicClock

        return TopicClock(transport).now
    return transport.now


class Startable(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


def serve(node: Startable, log: logging.Logger, message: str = "running; Ctrl-C to stop") -> int:
    """A node executable's life: start its runtime, log, run until SIGINT/SIGTERM, close; 0 for a clean stop.
    Closed also when its start fails or a SIGINT cuts it short; that error (or the KeyboardInterrupt, which
    console_main makes the clean stop) is the one reported, not one from closing a half-started node."""
    try:
        node.start()
        log.info("%s", message)
        wait_for_shutdown()
    except BaseException:
        try:
            node.close()
        except Exception as error:  # secondary: logged, the start's own error goes on
            log.warning("closing after the start was cut short: %s: %s", type(error).__name__, error)
        raise
    node.close()
    return 0


def driver_summary(embodiment: Embodiment) -> str:
    """The start-up line of a (fake or simulated) robot driver."""
    return (f"{embodiment.name}: joints on {embodiment.joint_states.topic}, {len(embodiment.cameras)} camera(s), "
            f"commands from {embodiment.controller.topic}")


def wait_for_shutdown() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def driver_parser(program: str, description: str, camera_rate: float) -> CliParser:
    """The command line every arm driver shares (transport, robot YAML, joint and camera rates); each adds its own."""
    parser = CliParser(prog=program, description=description)
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="rclpy under ROS 2, DDS (cyclonedds) without it; auto picks")
    parser.add_argument("--robot-config", dest="robot_config", required=True,
                        help=ROBOT_CONFIG_HELP)
    parser.add_argument("--joint-rate", dest="joint_rate", type=float, default=100.0,
                        help="joint state publish rate (Hz)")
    parser.add_argument("--camera-rate", dest="camera_rate", type=float, default=camera_rate,
                        help="camera publish rate (Hz)")
    return parser
