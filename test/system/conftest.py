"""Fixtures for the multi-process node tests: a private DDS domain (the tiny checkpoint: test/conftest.py)."""

from __future__ import annotations

import pytest

from test.system.processes import claim_domain


@pytest.fixture(scope="module")
def dds_domain() -> int:
    """A random domain no ROS node on this machine uses right now (others' test runs pick random ones too)."""
    transport, domain = claim_domain()
    transport.close()
    return domain
