"""The typestore is generated from src/vla_msgs and hashes types the way ROS 2 does."""

from __future__ import annotations

import re

import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from vla_policy_node.msgs import seconds_to_sec_nanosec
from vla_policy_node.msgs.definitions import (
    InterfaceDefinitions,
    find_interface_dir,
    load_interface_definitions,
    split_service_text,
)
from vla_policy_node.msgs.typestore import (
    build_typestore,
    field_specs,
    new_rosbags_message,
    register_interfaces,
    service_message_types,
)


def _fields_in_file(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not re.match(r"^\S+\s+\w+\s*=", line):
            names.append(line.split()[1])
    return names


def test_vla_messages_come_from_the_msg_files(store, repo_root):
    for path in sorted((repo_root / "src" / "vla_msgs" / "msg").glob("*.msg")):
        specs = field_specs(store, f"vla_msgs/msg/{path.stem}")
        assert [s.name for s in specs] == _fields_in_file(path.read_text())


def test_services_register_request_and_response(store, repo_root):
    for path in sorted((repo_root / "src" / "vla_msgs" / "srv").glob("*.srv")):
        request, response = service_message_types(f"vla_msgs/srv/{path.stem}")
        req_text, resp_text = split_service_text(path.read_text())
        expected_request = _fields_in_file(req_text) or ["structure_needs_at_least_one_member"]
        assert [s.name for s in field_specs(store, request)] == expected_request
        assert [s.name for s in field_specs(store, response)] == _fields_in_file(resp_text)
        assert store.hash_rihs01(f"vla_msgs/srv/{path.stem}").startswith("RIHS01_")


def test_service_type_hash_matches_rosidl():
    # rosidl-generated std_srvs/srv/SetBool hashes (rosidl_generator_c description of a Kilted build, whose
    # service_msgs/ServiceEventInfo has uint8[16] client_gid). Request/Response hashes are the same in Jazzy.
    s = get_typestore(Stores.ROS2_JAZZY)
    s.fielddefs["service_msgs/msg/ServiceEventInfo"] = get_types_from_msg(
        "uint8 event_type\nbuiltin_interfaces/Time stamp\nuint8[16] client_gid\nint64 sequence_number\n",
        "service_msgs/msg/ServiceEventInfo",
    )["service_msgs/msg/ServiceEventInfo"]
    text = "bool data # e.g. for hardware enabling / disabling\n---\nbool success\nstring message\n"
    register_interfaces(s, InterfaceDefinitions("std_srvs", services={"std_srvs/srv/SetBool": text}))
    assert s.hash_rihs01("std_srvs/srv/SetBool_Request") == (
        "RIHS01_c62fbb99d94e1b25e8ef9e109f9581956bb1b3361a45a4e5810c36a90d29932e"
    )
    assert s.hash_rihs01("std_srvs/srv/SetBool_Response") == (
        "RIHS01_d0814e7f7b4880ab77e9c57426c7aa1562ab69f11eef8e2e968812f9cbd0b059"
    )
    assert s.hash_rihs01("std_srvs/srv/SetBool_Event") == (
        "RIHS01_3c4c20015afb4303eafd347b1d6a786f171a89c814726961a9593ef10df878cf"
    )
    assert s.hash_rihs01("std_srvs/srv/SetBool") == (
        "RIHS01_abe9e4bb6b41b40e6789712c00ec8871923e089af3f667a79992a428cff2da0a"
    )


def test_upstream_types_present(store):
    for msgtype in ("control_msgs/msg/JointJog", "rmw_dds_common/msg/ParticipantEntitiesInfo"):
        assert store.hash_rihs01(msgtype).startswith("RIHS01_")
    assert [s.name for s in field_specs(store, "control_msgs/msg/JointJog")] == [
        "header", "joint_names", "displacements", "velocities", "duration",
    ]


def test_env_override_changes_the_generated_types(tmp_path, monkeypatch):
    (tmp_path / "msg").mkdir()
    (tmp_path / "msg" / "ActionChunk.msg").write_text("std_msgs/Header header\nfloat64[] actions\nstring note\n")
    monkeypatch.setenv("VLA_MSGS_DIR", str(tmp_path))
    assert find_interface_dir() == tmp_path
    assert list(load_interface_definitions().messages) == ["vla_msgs/msg/ActionChunk"]
    store = build_typestore()
    assert [s.name for s in field_specs(store, "vla_msgs/msg/ActionChunk")] == ["header", "actions", "note"]


def test_new_message_fills_defaults_and_rejects_unknown_fields(store):
    msg = new_rosbags_message(store, "sensor_msgs/Image", width=4)
    assert (msg.width, msg.height, msg.encoding) == (4, 0, "")
    assert isinstance(msg.data, np.ndarray) and msg.data.dtype == np.uint8 and msg.data.size == 0
    with pytest.raises(TypeError, match="no field"):
        new_rosbags_message(store, "sensor_msgs/msg/Image", widht=4)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, (0, 0)), (1.5, (1, 500_000_000)), (-0.25, (-1, 750_000_000)), (2.9999999999, (3, 0)),
     (1_700_000_000.123456, (1_700_000_000, 123_456_001))],
)
def test_seconds_split(seconds, expected):
    sec, nanosec = seconds_to_sec_nanosec(seconds)
    assert sec == expected[0]
    assert abs(nanosec - expected[1]) <= 1000  # float seconds carry ~0.2 us at epoch scale
    assert 0 <= nanosec < 1_000_000_000
