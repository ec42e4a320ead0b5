"""Zero-copy reading of indexed mcap bags: the messages rosbags yields, as views into a memory map of the file.

rosbags reads each chunk into bytes, wraps it in BytesIO and copies every record out of it again (3-4 copies of
every byte). A replay that hands a 640x480 frame to the sync only to drop it two frames later needs none of
those bytes. Here an uncompressed chunk is scanned in place (record headers only) and each message is a
`memoryview` into an `mmap` of the file; rosbags' CDR deserializer turns a `uint8[]` into `numpy.frombuffer` of
that view, so image pixels are not touched until someone reads them. Compressed chunks are decompressed once
(no further copies). Chunk CRCs are checked when the file has them, as rosbags checks them.

The order is rosbags' exactly: chunks merged by (log time, chunk offset), records of one chunk stably sorted by
log time; storages (split files) one after another. Only chunk-indexed mcap files take this path; the caller
falls back to rosbags for anything else (sqlite3, unindexed mcap, per-message compression). Resident memory
stays bounded (`_Unmapper`). Like any memory map, a file truncated by someone else while it is read makes the
access fault (SIGBUS) instead of raising: bags are read after recording, not while a recorder writes them.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import struct
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader, decompress

_RECORD = struct.Struct("<BQ")  # opcode, length
_MESSAGE = struct.Struct("<BQHIQQ")  # opcode, length, channel id, sequence, log time, publish time
_CRC = struct.Struct("<I")
_MESSAGE_OP = 0x05
_HEAD = _MESSAGE.size  # 31 bytes before a message's payload


def supported(directory: Any) -> bool:
    """True when every storage of the rosbags DirectoryReader `directory` is a chunk-indexed mcap file and
    messages are not compressed one by one."""
    storages = getattr(directory, "storages", None)
    if not storages or getattr(directory.metadata, "compression_mode", None) == "message":
        return False
    return all(isinstance(s, McapReader) and s.chunks and s.bio is not None for s in storages)


class ZeroCopyMcap:
    """Memory maps of a bag's mcap files; `messages` yields (connection, log time ns, memoryview payload)."""

    def __init__(self, directory: Any) -> None:
        self._directory = directory
        self._maps: list[tuple[McapReader, mmap.mmap]] = []
        for storage in directory.storages:
            path = Path(storage.path)
            with path.open("rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_RANDOM"):  # no read-ahead: pixels nobody reads are not paged in
                mapped.madvise(mmap.MADV_RANDOM)
            self._maps.append((storage, mapped))

    def messages(self, connections: Collection[Connection]) -> Iterator[tuple[Connection, int, memoryview]]:
        for storage, mapped in self._maps:
            connmap = _connection_map(storage, connections)
            if connmap:
                yield from _storage_messages(storage, memoryview(mapped), connmap, _Unmapper(mapped))

    def close(self) -> None:
        """Unmap the files; a map still viewed by a live array is left to the garbage collector."""
        for _, mapped in self._maps:
            with contextlib.suppress(BufferError):
                mapped.close()
        self._maps.clear()


def _connection_map(storage: McapReader, connections: Collection[Connection]) -> dict[int, Connection]:
    """storage channel id -> the DirectoryReader connection (rosbags' own matching rule)."""
    out: dict[int, Connection] = {}
    for own in storage.connections:
        for conn in connections:
            if (conn.topic == own.topic and conn.msgtype == own.msgtype and conn.ext == own.ext
                    and (not own.digest or not conn.digest or conn.digest == own.digest)):
                out[own.id] = conn
                break
    return out


class _Unmapper:
    """Drops the page mappings of the part of the file the reader has left behind (RELEASE_LAG bytes before the
    chunk it opened last), so resident memory stays bounded on any bag size. The pages stay in the page cache
    and a view into them (a frame still in the sync's queue) faults them back in: MADV_DONTNEED on a shared,
    read-only file mapping loses nothing."""

    RELEASE_LAG = 16 << 20

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped
        self._released = 0
        self._enabled = hasattr(mmap, "MADV_DONTNEED")

    def opened(self, offset: int) -> None:
        end = (offset - self.RELEASE_LAG) // mmap.PAGESIZE * mmap.PAGESIZE
        if self._enabled and end - self._released >= self.RELEASE_LAG:
            self._mapped.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end


def _storage_messages(storage: McapReader, view: memoryview, connmap: dict[int, Connection],
                      unmapper: _Unmapper) -> Iterator[tuple[Connection, int, memoryview]]:
    chunks = [chunk for chunk in storage.chunks if any(chunk.channel_count.get(cid, 0) for cid in connmap)]
    for timestamp, offset, _, connection, data in _merged(chunks, view, connmap, unmapper):
        if offset:
            yield connection, timestamp, data


def _merged(chunks: list[ChunkInfo], view: memoryview, connmap: dict[int, Connection],
            unmapper: _Unmapper) -> Iterator[tuple[int, int, int, Any, Any]]:
    """`heapq.merge` of the chunks' `_chunk_messages`, without its heap work per message: messages come out
    sorted by (time, chunk offset, position), and a chunk is opened when the merge would reach its start-time
    sentinel (after every message of the chunks already open that is older than its start; chunks starting
    at the same time in their listed order), so the order, the chunks' opening order and the errors are the
    merge's. Recorders' chunks overlap by a few messages at most, so the sorts are short."""
    pending: list[tuple[int, int, int, Any, Any]] = []  # messages of the open chunks not yet yielded, sorted
    for chunk in sorted(chunks, key=_by_start):
        start = chunk.message_start_time
        cut = 0
        while cut < len(pending) and pending[cut][0] < start:
            cut += 1
        if cut:
            yield from pending[:cut]
            del pending[:cut]
        pending.extend(itertools.islice(_chunk_messages(chunk, view, connmap, unmapper), 1, None))
        pending.sort(key=_merge_key)
    yield from pending


def _by_start(chunk: ChunkInfo) -> int:
    return chunk.message_start_time


def _merge_key(item: tuple[int, int, int, Any, Any]) -> tuple[int, int, int]:
    return item[0], item[1], item[2]


def _chunk_messages(chunk: ChunkInfo, view: memoryview, connmap: dict[int, Connection],
                    unmapper: _Unmapper) -> Iterator[tuple[int, int, int, Any, Any]]:
    """A chunk's wanted messages sorted by time, after a sentinel at its start time (so that heapq.merge opens
    a chunk only when the merge reaches it, as rosbags does)."""
    yield chunk.message_start_time, 0, 0, None, None
    start = chunk.chunk_start_offset
    unmapper.opened(start)
    base = start + 9 + 40 + len(chunk.compression)
    end = base + chunk.compressed_size
    if start + 9 + 28 > len(view) or end > len(view):
        raise ReaderError(f"Truncated chunk at offset {start}: file ends at {len(view)}.")
    (crc,) = _CRC.unpack_from(view, start + 9 + 24)
    records = view[base:end]
    if chunk.compression or crc:
        # rosbags declares bytes in and out; its decompressors take any buffer, and an uncompressed chunk (checked
        # for its crc only) comes back as it went in: this view.
        data = decompress(records, chunk.compression, chunk.uncompressed_size, crc)  # type: ignore[arg-type]
        records = data if isinstance(data, memoryview) else memoryview(data)
    size = chunk.uncompressed_size
    if len(records) != size:
        raise ReaderError(f"Chunk size mismatch: expected {size} bytes, got {len(records)}.")
    found: list[tuple[int, int, int, Connection, memoryview]] = []
    first, last = chunk.message_start_time, chunk.message_end_time
    pos = 0
    unpack_message, unpack_record = _MESSAGE.unpack_from, _RECORD.unpack_from
    while pos < size:
        if pos + 9 > size:
            raise ReaderError(f"Truncated record in chunk at offset {start}.")
        op, length = unpack_record(records, pos)
        stop = pos + 9 + length
        if stop > size:
            raise ReaderError(f"Truncated record in chunk at offset {start}: {length} bytes announced.")
        if op == _MESSAGE_OP:
            if length < _HEAD - 9:
                raise ReaderError(f"Message record of {length} bytes in chunk at offset {start}.")
            _, _, channel, _, log_time, _ = unpack_message(records, pos)
            connection = connmap.get(channel)
            if connection is not None and first <= log_time <= last:  # rosbags drops the rest too
                found.append((log_time, start, pos, connection, records[pos + _HEAD:stop]))
        pos = stop
    found.sort(key=_by_time)  # stable: records of equal time keep file order
    yield from found


def _by_time(item: tuple[int, int, int, Any, Any]) -> int:
    return item[0]
