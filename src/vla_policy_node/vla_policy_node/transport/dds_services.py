"""ROS 2 services over DDS, laid out as rmw_cyclonedds lays them out (so rclpy clients/servers can interoperate).

On the wire (rmw_cyclonedds, rmw_node.cpp / serdata.cpp):
- request topic `rq/<service>Request`, type `pkg::srv::dds_::X_Request_`; reply topic `rr/<service>Reply`,
  type `pkg::srv::dds_::X_Response_`; QoS: rmw's services default (reliable, volatile, keep last 10);
- every payload starts with `cdds_request_header_t {uint64 guid; int64 seq}`: the client's request-writer
  instance handle and a sequence number; the server echoes both and clients keep replies whose guid is theirs;
- USER_DATA `clientid=<id>;` / `serviceid=<id>;` pairs each client's (or server's) reader with its writer, so a
  server only replies once it has matched that client's reply reader; `typehash=` carries the service type
  hash (RIHS01 of `pkg/srv/X`, computed like rosidl: request_message, response_message, event_message).

Checked here: two DdsTransports in separate processes. Not checked here (no ROS 2 on this machine): the same
against an rclpy node; the layout follows the rmw_cyclonedds sources, see the report for what to check.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from cyclonedds.core import ReadCondition, WaitSet
from cyclonedds.qos import Policy
from cyclonedds.util import duration

from vla_policy_node.msgs.typestore import normalize_service_type, service_message_types
from vla_policy_node.transport.base import ServiceClient, ServiceHandler, ServiceServer, ServiceUnavailable
from vla_policy_node.transport.dds_participant import ANY_SAMPLE_STATE, DdsParticipant
from vla_policy_node.transport.names import service_to_dds
from vla_policy_node.transport.qos import SERVICES_QOS

log = logging.getLogger(__name__)

_REPLY_MATCH_WAIT_S = 0.1  # rmw_cyclonedds waits up to 100 ms for the client's reply reader
_POLL_S = 0.005


def client_service_id_string(csid: bytes) -> str:
    """rmw_cyclonedds' csid_to_string: first byte as %2x, then '.%x' per byte."""
    return f"{csid[0]:2x}" + "".join(f".{b:x}" for b in csid[1:])


def user_data_value(qos: Any, key: str) -> str | None:
    """Value of `key` in a 'k=v;k=v;' USER_DATA policy, or None."""
    policy = qos[Policy.Userdata] if qos is not None else None
    if policy is None:
        return None
    for item in policy.data.decode(errors="replace").split(";"):
        name, sep, value = item.partition("=")
        if sep and name == key:
            return value
    return None


class DdsServiceServer(ServiceServer):
    def __init__(self, transport: DdsParticipant, name: str, srvtype: str, handler: ServiceHandler) -> None:
        self.name = name
        self.srvtype = normalize_service_type(srvtype)
        self._transport = transport
        self._handler = handler
        request_type, response_type = service_message_types(self.srvtype)
        request_cls, self._reply_cls = transport.types.service_wire_types(self.srvtype)
        user_data = f"serviceid={client_service_id_string(transport.next_client_service_id())};"
        request_topic, reply_topic = service_to_dds(name)
        self._writer, _ = transport.create_writer(
            reply_topic, response_type, SERVICES_QOS,
            sample_type=self._reply_cls, hash_type=self.srvtype, extra_user_data=user_data,
        )
        reader, _ = transport.create_reader(
            request_topic, request_type, SERVICES_QOS,
            sample_type=request_cls, hash_type=self.srvtype, extra_user_data=user_data,
        )
        self._reader = reader
        self._entry = transport.register_reader(reader, request_cls, self._on_requests)
        self._closed = False

    def _on_requests(self, samples: list[Any]) -> None:
        types = self._transport.types
        for wire in samples:
            request, guid, sequence = types.from_wire(wire)
            try:
                response = self._handler(request)
            except Exception:
                log.exception("service %s handler raised; no reply sent", self.name)
                continue
            if response is None:
                log.error("service %s handler returned None; no reply sent", self.name)
                continue
            self._wait_for_client_reader(wire.sample_info.publication_handle)
            self._writer.write(types.to_wire(self._reply_cls, response, guid, sequence))

    def _wait_for_client_reader(self, request_writer_handle: int) -> None:
        """Like rmw_cyclonedds: reply only once the requesting client's reply reader is matched (bounded)."""
        endpoint = self._reader.get_matched_publication_data(request_writer_handle)
        client_id = user_data_value(getattr(endpoint, "qos", None), "clientid")
        if client_id is None:
            return
        deadline = time.monotonic() + _REPLY_MATCH_WAIT_S
        while time.monotonic() < deadline:
            for handle in self._writer.get_matched_subscriptions():
                reader = self._writer.get_matched_subscription_data(handle)
                if user_data_value(getattr(reader, "qos", None), "clientid") == client_id:
                    return
            time.sleep(_POLL_S)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport.unregister_reader(self._entry)
        self._transport.delete_writer(self._writer)


class DdsServiceClient(ServiceClient):
    def __init__(self, transport: DdsParticipant, name: str, srvtype: str) -> None:
        self.name = name
        self.srvtype = normalize_service_type(srvtype)
        self._transport = transport
        request_type, response_type = service_message_types(self.srvtype)
        self._request_cls, reply_cls = transport.types.service_wire_types(self.srvtype)
        user_data = f"clientid={client_service_id_string(transport.next_client_service_id())};"
        request_topic, reply_topic = service_to_dds(name)
        self._writer, _ = transport.create_writer(
            request_topic, request_type, SERVICES_QOS,
            sample_type=self._request_cls, hash_type=self.srvtype, extra_user_data=user_data,
        )
        self._reader, self._reply_cls = transport.create_reader(
            reply_topic, response_type, SERVICES_QOS,
            sample_type=reply_cls, hash_type=self.srvtype, extra_user_data=user_data,
        )
        self._guid = self._writer.get_instance_handle() & 0xFFFF_FFFF_FFFF_FFFF  # uint64 on the wire
        self._sequence = itertools.count(1)
        self._condition = ReadCondition(self._reader, ANY_SAMPLE_STATE)
        self._waitset = WaitSet(transport.participant)
        self._waitset.attach(self._condition)
        self._call_lock = threading.Lock()
        self._closed = False

    def wait_for_service(self, timeout: float = 5.0) -> bool:
        """True once a server's request reader and reply writer are matched (as rmw's service_is_available)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._writer.get_matched_subscriptions() and self._reader.get_matched_publications():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def call(self, request: Any, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        if not self.wait_for_service(timeout):
            raise ServiceUnavailable(f"service {self.name} ({self.srvtype}) not available after {timeout:.1f} s")
        types = self._transport.types
        with self._call_lock:
            sequence = next(self._sequence)
            self._writer.write(types.to_wire(self._request_cls, request, self._guid, sequence))
            while (remaining := deadline - time.monotonic()) > 0:
                self._waitset.wait(duration(seconds=min(remaining, 0.5)))
                for sample in self._reader.take(N=16):
                    if not isinstance(sample, self._reply_cls):
                        continue
                    response, guid, reply_sequence = types.from_wire(sample)
                    if guid == self._guid and reply_sequence == sequence:
                        return response
        raise ServiceUnavailable(f"no reply from {self.name} ({self.srvtype}) within {timeout:.1f} s")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._waitset.detach(self._condition)
        self._transport.delete_writer(self._writer)
        self._transport.delete_reader(self._reader)
