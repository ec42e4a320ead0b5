"""Fixtures for the message-layer tests: the typestore and a CDR round trip through rosbags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vla_policy_node.msgs import default_typestore, rosbags_factory


@pytest.fixture(scope="session")
def store():
    return default_typestore()


@pytest.fixture(scope="session")
def new(store):
    return rosbags_factory(store)


@pytest.fixture(scope="session")
def cdr_round_trip(store) -> Callable[[Any], Any]:
    """message -> CDR bytes (rosbags) -> message: what a bag or the wire does to it."""

    def round_trip(msg: Any) -> Any:
        msgtype = msg.__msgtype__
        return store.deserialize_cdr(bytes(store.serialize_cdr(msg, msgtype)), msgtype)

    return round_trip
