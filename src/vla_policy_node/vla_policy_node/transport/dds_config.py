"""Which DDS domain and network configuration a DdsTransport joins.

Production uses cyclonedds' default configuration (or whatever `CYCLONEDDS_URI` says), exactly like
rmw_cyclonedds. Tests and single-machine setups use the loopback configuration: interface 127.0.0.1, no
multicast, a unicast peer on 127.0.0.1 and automatic participant indices, so several processes on one machine
find each other without touching the network. Select it with `DdsConfig(loopback=True)` or
`VLA_DDS_LOOPBACK=1`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from cyclonedds.domain import Domain

LOOPBACK_ENV = "VLA_DDS_LOOPBACK"
DOMAIN_ENV = "ROS_DOMAIN_ID"


def loopback_config_xml(max_participants: int = 32, large_datagrams: bool = True) -> str:
    """Cyclone DDS configuration for discovery between processes of one machine over loopback only.

    large_datagrams: 64 kB UDP messages/fragments instead of Cyclone's defaults (14720 B / 1344 B), which on
    loopback cuts a 640x480 RGB image from ~700 fragments to ~15 (receivers accept any fragment size).
    """
    datagrams = "<MaxMessageSize>65500B</MaxMessageSize><FragmentSize>64000B</FragmentSize>" if large_datagrams else ""
    return (
        '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">'
        "<General>"
        '<Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
        "<AllowMulticast>false</AllowMulticast>"
        f"{datagrams}"
        "</General>"
        "<Discovery>"
        "<ParticipantIndex>auto</ParticipantIndex>"
        f"<MaxAutoParticipantIndex>{max_participants}</MaxAutoParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers>'
        "</Discovery>"
        "</Domain></CycloneDDS>"
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DdsConfig:
    """Node identity and network selection for a DdsTransport.

    domain_id None -> $ROS_DOMAIN_ID or 0; loopback None -> $VLA_DDS_LOOPBACK; config_xml overrides both
    the default and the loopback configuration.
    """

    node_name: str = "vla_node"
    namespace: str = "/"
    domain_id: int | None = None
    loopback: bool | None = None
    config_xml: str | None = None
    enclave: str = "/"
    parameter_services: bool = True  # the rcl_interfaces parameter services (`ros2 param`), as every rclpy node

    def resolved_domain_id(self) -> int:
        if self.domain_id is not None:
            return self.domain_id
        return int(os.environ.get(DOMAIN_ENV, "0") or 0)

    def resolved_config_xml(self) -> str | None:
        if self.config_xml is not None:
            return self.config_xml
        loopback = self.loopback if self.loopback is not None else _env_flag(LOOPBACK_ENV)
        return loopback_config_xml() if loopback else None


class _DomainRegistry:
    """One explicitly configured `Domain` per domain id per process, shared by the transports that use it.

    cyclonedds allows one configuration per domain id in a process; asking for a different one is an error
    here rather than a silent mix.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._domains: dict[int, tuple[str | None, Domain | None, int]] = {}

    def acquire(self, domain_id: int, config_xml: str | None) -> None:
        with self._lock:
            if domain_id in self._domains:
                config, domain, users = self._domains[domain_id]
                if config != config_xml:
                    raise RuntimeError(
                        f"DDS domain {domain_id} is already in use in this process with a different configuration"
                    )
                self._domains[domain_id] = (config, domain, users + 1)
                return
            domain = Domain(domain_id, config_xml) if config_xml is not None else None
            self._domains[domain_id] = (config_xml, domain, 1)

    def release(self, domain_id: int) -> None:
        with self._lock:
            config, domain, users = self._domains[domain_id]
            if users > 1:
                self._domains[domain_id] = (config, domain, users - 1)
                return
            del self._domains[domain_id]
            if domain is not None:
                domain.__del__()  # delete the DDS domain now, not whenever Python collects it


DOMAINS = _DomainRegistry()
