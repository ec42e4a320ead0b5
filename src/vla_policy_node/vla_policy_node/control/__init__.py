"""Control runtime: every decision about what the arm does. The one control tick (loop.py) of both nodes over
a policy source (sources.py: the policy node's chunk executor, or the mux's command stream), teleop (teleop.py),
the command mux, the safety filter; observation sync, chunk execution (sync / ensembling / RTC), the inference
step (inference.py), watchdog and status. numpy only: no torch, no ROS, so the safety path runs and is tested
without either."""

import vla_policy_node.control.fresh_native  # noqa: F401  (first: a stale compiled build must not be imported)
from vla_policy_node.control.command import ArmTarget, ChunkError, Command, CommandSpace, LateChunkError
from vla_policy_node.control.config import (
    ControlConfig,
    ExecutorConfig,
    LockSpec,
    MuxConfig,
    SafetyConfig,
    SyncConfig,
    WatchdogConfig,
)
from vla_policy_node.control.executor import ChunkExecutor
from vla_policy_node.control.inference import InferencePolicy, InferenceStep
from vla_policy_node.control.latency import LatencyTracker, RateMeter
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.control.mux import CommandMux, MuxDecision
from vla_policy_node.control.safety import CLAMP_NAMES, FilterOutput, SafetyFilter
from vla_policy_node.control.sources import ChunkSource, CommandStream, PolicySource
from vla_policy_node.control.status import ControlStatus, Diagnostic, Level
from vla_policy_node.control.sync import ObservationSync
from vla_policy_node.control.teleop import TeleopError
from vla_policy_node.control.trajectory import Trajectory
from vla_policy_node.control.watchdog import Watchdog

__all__ = [
    "CLAMP_NAMES",
    "ArmTarget",
    "ChunkError",
    "ChunkExecutor",
    "ChunkSource",
    "Command",
    "CommandMux",
    "CommandSpace",
    "CommandStream",
    "ControlConfig",
    "ControlLoop",
    "ControlStatus",
    "Diagnostic",
    "ExecutorConfig",
    "FilterOutput",
    "InferencePolicy",
    "InferenceStep",
    "LateChunkError",
    "LatencyTracker",
    "Level",
    "LockSpec",
    "MuxConfig",
    "MuxDecision",
    "ObservationSync",
    "PolicySource",
    "RateMeter",
    "SafetyConfig",
    "SafetyFilter",
    "SyncConfig",
    "TeleopError",
    "Trajectory",
    "Watchdog",
    "WatchdogConfig",
]
