"""Pieces both runtime nodes share: status/diagnostics messages, ROS parameters, and waiting for shutdown."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vla_policy_node.control.status import ControlStatus, Diagnostic, Level
from vla_policy_node.msgs.diagnostics import DiagnosticEntry, encode_diagnostics
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.policy_status import encode_policy_status, status_fields
from vla_policy_node.spec.cli import run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.base import Transport

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
    """A node executable's main: log format, then `run` on the command-line arguments.

    As a program (argv None) it ends with os._exit once `run` has closed everything: the interpreter's own
    teardown (torch, mujoco, DDS finalizers) takes seconds on a loaded machine, longer than `ros2 launch`
    waits after SIGINT before it escalates to SIGTERM and reports the node as died."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    program = Path(sys.argv[0]).name if argv is None else getattr(run, "__module__", "node").rsplit(".", 1)[-1]
    code = run_guarded(program, lambda: run(args), wants_debug(args))  # bad input: one line, exit 2
    if argv is not None:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

@dataclass(frozen=True)
class Param:
    """A node parameter: its start-up value (the command line's), what it means, and whether `ros2 param set`
    may change it while the node runs (`live`; the node's handler applies it or refuses with a reason).
    `range`: (from, to) for numbers, shown by `ros2 param describe` and enforced by rclpy."""

    default: Any
    description: str = ""
    live: bool = False
    range: tuple[float, float] | None = None


ParamHandler = Callable[[str, Any], str]  # (name, new value) -> "" when applied, else why it was refused


def declare_parameters(transport: object, params: Mapping[str, Param | Any]) -> dict[str, Any]:
    """Under rclpy: declare each parameter (command-line value as default, with its description and range) and
    return the node's values, so `ros2 launch` parameters win. Without rclpy: the defaults unchanged."""
    specs = {name: p if isinstance(p, Param) else Param(p) for name, p in params.items()}
    node = getattr(transport, "node", None)
    if node is None:
        return {name: spec.default for name, spec in specs.items()}
    values = {}
    for name, spec in specs.items():
        if node.has_parameter(name):
            values[name] = node.get_parameter(name).value
        else:
            values[name] = node.declare_parameter(name, spec.default, _descriptor(spec)).value
    return values


def _descriptor(spec: Param) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    description = spec.description + ("" if spec.live else " (read at start-up; `ros2 param set` is refused)")
    descriptor = ParameterDescriptor(description=description.strip())
    if spec.range is not None:
        low, high = spec.range
        if isinstance(spec.default, bool) or not isinstance(spec.default, int | float):
            raise TypeError(f"a range needs a numeric parameter, got {spec.default!r}")
        if isinstance(spec.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
    return descriptor


def watch_parameters(transport: object, params: Mapping[str, Param | Any], handler: ParamHandler) -> None:
    """Under rclpy, `ros2 param set` of a `live` parameter calls `handler(name, value)` (its answer is the set's
    result); any other of `params` is refused with the reason. Parameters not in `params` (use_sim_time) are
    rclpy's. Without rclpy: nothing (the DDS transport has no parameter services)."""
    node = getattr(transport, "node", None)
    if node is None:
        return
    from rcl_interfaces.msg import SetParametersResult

    live = {name for name, p in params.items() if isinstance(p, Param) and p.live}
    ours = set(params)

    def on_set(changes: list[Any]) -> Any:
        for change in changes:
            if change.name not in ours:
                continue
            if change.name not in live:
                return SetParametersResult(successful=False, reason=(
                    f"{change.name} is read once at start-up: relaunch the node to change it"))
            problem = handler(change.name, change.value)
            if problem:
                return SetParametersResult(successful=False, reason=f"{change.name}: {problem}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def node_clock(transport: Transport, use_sim_time: bool) -> Callable[[], float]:
    """The time source of a node: `transport.now` (the ROS clock under rclpy, which follows use_sim_time
    itself), or the /clock topic over DDS when `use_sim_time`."""
    if use_sim_time and getattr(transport, "node", None) is None:
        from vla_policy_node.nodes.topic_clock import TopicClock

        return TopicClock(transport).now
    return transport.now


class Startable(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


def serve(node: Startable, log: logging.Logger, message: str = "running; Ctrl-C to stop") -> int:
    """A node executable's life: start its runtime, log, run until SIGINT/SIGTERM, close; 0 for a clean stop."""
    node.start()
    log.info("%s", message)
    wait_for_shutdown()
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
