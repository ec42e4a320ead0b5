"""Fixtures for DDS tests: a random domain on the loopback-only configuration, transports that always close."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest


@pytest.fixture
def dds_domain() -> int:
    """A random domain id, so concurrent test runs on one machine do not see each other."""
    return random.SystemRandom().randint(1, 230)


@pytest.fixture
def make_dds(dds_domain):
    from vla_policy_node.transport import DdsConfig, DdsTransport

    made = []

    def make(node_name: str, **kwargs) -> DdsTransport:
        transport = DdsTransport(DdsConfig(node_name=node_name, loopback=True, domain_id=dds_domain, **kwargs))
        made.append(transport)
        return transport

    yield make
    for transport in reversed(made):
        transport.close()


class Inbox:
    """Collects callback messages; `wait(n)` blocks (bounded) until n have arrived."""

    def __init__(self, transform: Callable | None = None) -> None:
        self.items: list = []
        self._cond = threading.Condition()
        self._transform = transform

    def __call__(self, msg) -> None:
        item = self._transform(msg) if self._transform else msg
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout)


@pytest.fixture
def inbox():
    return Inbox
