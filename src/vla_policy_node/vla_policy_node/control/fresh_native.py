"""Imported first by the control package: before anything imports the safety filter's joint limits, their
compiled build is checked against their source, and the source is loaded where the build is missing or stale
(see control/native.py)."""

from vla_policy_node.control.native import use_source_where_stale

use_source_where_stale()
