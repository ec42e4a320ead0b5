"""Bags for the bag-tool tests: synthetic demonstrations, and damaged or incomplete variants of them."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vla_policy_node.bagtools.synthetic import NS, ReachPolicy, Session, write_demonstration_bag
from vla_policy_node.spec import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix
from vla_policy_node.transport.bag import BagReader, BagWriter

SMALL = Session(episodes=2, episode_s=2.0, gap_s=0.6, image_size=(48, 80))


def demo_bag(path: Path, emb: Embodiment, policy=None, **session) -> Path:
    """A small demonstration bag whose commands come from `policy` (default: ReachPolicy)."""
    return write_demonstration_bag(path, emb, policy or ReachPolicy(emb), dataclasses.replace(SMALL, **session))


def drop_topic(src: Path, dst: Path, topic: str) -> Path:
    """A copy of a sqlite3 bag without `topic` (messages, topic row and metadata entry)."""
    import shutil

    shutil.copytree(src, dst)
    db = next(dst.glob("*.db3"))
    with sqlite3.connect(db) as conn:
        (topic_id,) = conn.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
        removed = conn.execute("DELETE FROM messages WHERE topic_id = ?", (topic_id,)).rowcount
        conn.execute("DELETE FROM topics WHERE id = ?", (topic_id,))
    meta_path = dst / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["topics_with_message_count"] = [t for t in info["topics_with_message_count"]
                                         if t["topic_metadata"]["name"] != topic]
    info["message_count"] -= removed
    for f in info.get("files", []):
        f["message_count"] -= removed
    meta_path.write_text(yaml.safe_dump(meta))
    return dst


def humble_layout(src: Path, dst: Path) -> Path:
    """Rewrite a sqlite3 bag in the layout ROS 2 Humble's rosbag2 writes (metadata version 5: no type hashes or
    message definitions; db schema without the type_description_hash column). An emulation from the documented
    Humble formats, not a bag from a real Humble install."""
    dst.mkdir()
    src_db = next(src.glob("*.db3"))
    meta = yaml.safe_load((src / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    name = "humble_0.db3"
    with sqlite3.connect(src_db) as old, sqlite3.connect(dst / name) as new:
        new.executescript(
            "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY,ros_distro TEXT NOT NULL);"
            "INSERT INTO schema VALUES (3, 'humble');"
            "CREATE TABLE metadata(id INTEGER PRIMARY KEY,metadata_version INTEGER NOT NULL,metadata TEXT NOT NULL);"
            "CREATE TABLE topics(id INTEGER PRIMARY KEY,name TEXT NOT NULL,type TEXT NOT NULL,"
            "serialization_format TEXT NOT NULL,offered_qos_profiles TEXT NOT NULL);"
            "CREATE TABLE messages(id INTEGER PRIMARY KEY,topic_id INTEGER NOT NULL,timestamp INTEGER NOT NULL,"
            " data BLOB NOT NULL);"
            "CREATE INDEX timestamp_idx ON messages (timestamp ASC);")
        for row in old.execute("SELECT id, name, type, serialization_format FROM topics"):
            new.execute("INSERT INTO topics VALUES (?, ?, ?, ?, ?)", (*row, HUMBLE_QOS))
        new.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)",
                        old.execute("SELECT id, topic_id, timestamp, data FROM messages"))
    topics = [{"topic_metadata": {"name": t["topic_metadata"]["name"], "type": t["topic_metadata"]["type"],
                                  "serialization_format": "cdr", "offered_qos_profiles": HUMBLE_QOS},
               "message_count": t["message_count"]} for t in meta["topics_with_message_count"]]
    humble = {"rosbag2_bagfile_information": {
        "version": 5, "storage_identifier": "sqlite3", "duration": meta["duration"],
        "starting_time": meta["starting_time"], "message_count": meta["message_count"],
        "topics_with_message_count": topics, "compression_format": "", "compression_mode": "",
        "relative_file_paths": [name],
        "files": [{"path": name, "starting_time": meta["starting_time"], "duration": meta["duration"],
                   "message_count": meta["message_count"]}]}}
    (dst / "metadata.yaml").write_text(yaml.safe_dump(humble, sort_keys=False))
    return dst


HUMBLE_QOS = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 9223372036\n"
              "    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n"
              "  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n"
              "  avoid_ros_namespace_conventions: false")


class StampSeeded:
    """A VLAPolicy whose sampling noise depends only on the observation's stamp, so the same observation gets
    the same chunk whichever other observations were inferred before (recording and replay differ there)."""

    def __init__(self, policy) -> None:
        self.policy = policy

    @property
    def embodiment(self) -> Embodiment:
        return self.policy.embodiment

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        self.policy.reseed(round(observation.stamp * 1000) % 2**31)
        return self.policy.infer(observation, prefix=prefix)


def recompress_mcap(src: Path, dst: Path) -> Path:
    """A copy of an mcap bag with zstd-compressed, CRC-checked chunks (as rosbag2's mcap plugin can write them);
    schemas, channels, metadata and message order are kept."""
    import shutil

    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    shutil.copytree(src, dst)
    data_file = next(dst.glob("*.mcap"))
    original = data_file.read_bytes()
    import io

    reader = make_reader(io.BytesIO(original))
    with data_file.open("wb") as stream:
        writer = Writer(stream, compression=CompressionType.ZSTD, chunk_size=256 * 1024, enable_crcs=True)
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
        for record in reader.iter_metadata():
            writer.add_metadata(record.name, record.metadata)
        writer.finish()
    return dst


def with_topic(src: Path, dst: Path, topic: str, msgtype: str, messages: Sequence[tuple[float, Any]]) -> Path:
    """A copy of bag `src` (mcap) with `messages` ((receive time s, message) pairs) added on `topic`, all in time
    order, as a recorder subscribed to one more topic would have written it."""
    extra = sorted(((round(t * NS), msg) for t, msg in messages), key=lambda item: item[0])
    with BagReader(src) as reader, BagWriter(dst) as writer:
        for name, kind in reader.topics.items():
            writer.add_topic(name, kind)
        writer.add_topic(topic, msgtype)
        k = 0
        for item in reader.messages():
            while k < len(extra) and extra[k][0] <= item.timestamp_ns:
                writer.write(topic, msgtype, extra[k][1], extra[k][0])
                k += 1
            writer.write(item.topic, item.msgtype, item.msg, item.timestamp_ns)
        for stamp_ns, msg in extra[k:]:
            writer.write(topic, msgtype, msg, stamp_ns)
    return dst
