"""Control runtime: observation sync, chunk execution (sync / ensembling / RTC), safety filter, command mux,
watchdog and status. numpy only: no torch, no ROS, so the safety path runs and is tested without either."""

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
from vla_policy_node.control.latency import LatencyTracker, RateMeter
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.control.mux import CommandMux, MuxDecision
from vla_policy_node.control.safety import CLAMP_NAMES, FilterOutput, SafetyFilter
from vla_policy_node.control.status import ControlStatus, Diagnostic, Level
from vla_policy_node.control.sync import ObservationSync
from vla_policy_node.control.trajectory import Trajectory
from vla_policy_node.control.watchdog import Watchdog

__all__ = [
    "CLAMP_NAMES",
    "ArmTarget",
    "ChunkError",
    "ChunkExecutor",
    "Command",
    "CommandMux",
    "CommandSpace",
    "ControlConfig",
    "ControlLoop",
    "ControlStatus",
    "Diagnostic",
    "ExecutorConfig",
    "FilterOutput",
    "LateChunkError",
    "LatencyTracker",
    "Level",
    "LockSpec",
    "MuxConfig",
    "MuxDecision",
    "ObservationSync",
    "RateMeter",
    "SafetyConfig",
    "SafetyFilter",
    "SyncConfig",
    "Trajectory",
    "Watchdog",
    "WatchdogConfig",
]
