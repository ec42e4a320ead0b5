"""The zero-copy mcap path yields what rosbags yields (same messages, same order, same bytes) for every chunk
layout rosbag2 and the mcap library write, refuses damaged chunks as rosbags does, and hands image pixels out as
views of the file instead of copies."""

from __future__ import annotations

import io

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from vla_policy_node.msgs import decode_image, encode_image, encode_joint_state, rosbags_factory
from vla_policy_node.transport import SENSOR_DATA_QOS
from vla_policy_node.transport.bag import BagError, BagReader, BagWriter

NEW = rosbags_factory()
T0 = 1_700_000_000_000_000_000


def _write_bag(path, n=40):
    """Interleaved topics, equal stamps across topics, and messages written out of time order (late joint
    states), so that the order across and within chunks is exercised."""
    rng = np.random.default_rng(1)
    with BagWriter(path) as writer:
        writer.add_topic("/cam", "sensor_msgs/msg/Image", SENSOR_DATA_QOS)
        for k in range(n):
            t = T0 + k * 10_000_000
            rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            writer.write("/cam", "sensor_msgs/msg/Image", encode_image(NEW, rgb, "rgb8", stamp=t * 1e-9), t)
            writer.write("/js", "sensor_msgs/msg/JointState", encode_joint_state(NEW, ["a"], [float(k)]), t)
            if k % 3 == 0:  # arrives late: recorded with an older time than messages already written
                writer.write("/js", "sensor_msgs/msg/JointState", encode_joint_state(NEW, ["a"], [-k]), t - 15_000_000)
            writer.write("/label", "std_msgs/msg/String", {"data": f"m{k}"}, t + 1)


def _rewrite(src, dst, compression, chunk_size, crcs):
    """The same bag through the mcap library's writer (as rosbag2's mcap plugin writes files)."""
    import shutil

    shutil.copytree(src, dst)
    data_file = next(dst.glob("*.mcap"))
    reader = make_reader(io.BytesIO(data_file.read_bytes()))
    with data_file.open("wb") as stream:
        writer = Writer(stream, compression=compression, chunk_size=chunk_size, enable_crcs=crcs)
        header = reader.get_header()
        writer.start(profile=header.profile, library=header.library)
        schemas, channels = {}, {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if schema.id not in schemas:
                schemas[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
            if channel.id not in channels:
                channels[channel.id] = writer.register_channel(channel.topic, channel.message_encoding,
                                                               schemas[schema.id], channel.metadata)
            writer.add_message(channels[channel.id], message.log_time, message.data, message.publish_time,
                               message.sequence)
        writer.finish()
    return dst


def _read(path, zero_copy, topics=None):
    with BagReader(path, zero_copy=zero_copy) as reader:
        assert (reader._zero_copy is not None) == zero_copy
        store = reader.typestore
        return [(m.topic, m.timestamp_ns, bytes(store.serialize_cdr(m.msg, m.msgtype)))
                for m in reader.messages(topics)]


@pytest.mark.parametrize(("compression", "chunk_size", "crcs"), [
    (None, None, False),  # rosbags' own writer: 1 MB uncompressed chunks, no CRC
    (CompressionType.NONE, 4096, True),  # many small chunks whose time ranges overlap, CRC-checked
    (CompressionType.ZSTD, 8192, True),
    (CompressionType.LZ4, 2048, False),
])
def test_same_messages_in_the_same_order_as_rosbags(tmp_path, compression, chunk_size, crcs):
    path = tmp_path / "bag"
    _write_bag(path)
    if compression is not None:
        path = _rewrite(path, tmp_path / "rewritten", compression, chunk_size, crcs)
    expected = _read(path, zero_copy=False)
    assert len(expected) == 40 * 3 + 14
    assert _read(path, zero_copy=True) == expected
    assert _read(path, zero_copy=True, topics=["/js"]) == [m for m in expected if m[0] == "/js"]


def test_a_damaged_chunk_is_refused_with_the_checksum_error(tmp_path):
    _write_bag(tmp_path / "bag")
    path = _rewrite(tmp_path / "bag", tmp_path / "crc", CompressionType.NONE, 4096, True)
    data_file = next(path.glob("*.mcap"))
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 16] = b"\xee" * 16
    data_file.write_bytes(bytes(raw))
    with pytest.raises(BagError, match=r"corrupt bag data.*checksum mismatch"), BagReader(path) as reader:
        list(reader.messages())


def test_image_pixels_are_views_of_the_file_not_copies(tmp_path):
    _write_bag(tmp_path / "bag", n=3)
    with BagReader(tmp_path / "bag") as reader:
        message = next(reader.messages(["/cam"]))
        data = message.msg.data
        assert not data.flags.owndata and not data.flags.writeable
        view = decode_image(message.msg, copy=False)
        assert np.shares_memory(view, data) and not view.flags.writeable
        copied = decode_image(message.msg)
        assert not np.shares_memory(copied, data) and np.array_equal(copied, view)


def test_a_writable_message_buffer_is_still_copied():
    """A publisher may reuse its buffer (the in-process bus passes its array): never keep a view of that."""
    pixels = np.zeros((4, 6, 3), np.uint8)
    msg = encode_image(NEW, pixels, "rgb8")
    frame = decode_image(msg, copy=False)
    pixels[:] = 255
    assert not np.shares_memory(frame, pixels) and frame.max() == 0
