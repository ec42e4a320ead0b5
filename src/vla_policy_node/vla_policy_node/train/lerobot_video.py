"""LeRobot v3 video features: MP4 frames written and read with PyAV (FFmpeg libraries bundled in its wheel).

Layout (as LeRobot writes it): `videos/<key>/chunk-CCC/file-FFF.mp4` holds consecutive episodes of one
camera; the episodes table gives each episode's `videos/<key>/{chunk_index,file_index,from_timestamp,
to_timestamp}`, and frame i of an episode is the video frame at from_timestamp + timestamp(i).

Why PyAV and not torchcodec: PyAV's wheel carries FFmpeg (dav1d and libaom for AV1, H.264, SVT-AV1 and x264
encoders) and needs no particular torch, so the same code decodes on CPU boxes and GPU boxes, in DataLoader
workers, and in the converter, which imports no torch at all. torchcodec's PyPI wheels are built against one
torch build (here 0.17 wants CUDA 13's libnvrtc next to the CPU torch 2.13 and fails to load) and need a system
FFmpeg; its GPU decode would only pay off for decode-bound training on large images.

Decoding seeks to the keyframe at or before the wanted time and decodes forward; a reader keeps one open
decoder per file (LRU) and continues from where it stopped when the next wanted frame lies ahead, so
reading an episode in order decodes every frame once.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vla_policy_node.train.normal_scheduling import normal_scheduling

DEFAULT_CODEC = "libsvtav1"  # LeRobot's default: AV1 through SVT-AV1, yuv420p, GOP 2, CRF 30, preset 12
CODECS = {"av1": "libsvtav1", "libsvtav1": "libsvtav1", "h264": "libx264", "libx264": "libx264"}
TOLERANCE_S = 1e-4  # LeRobot's default tolerance between a wanted and a decoded frame time


class VideoError(RuntimeError):
    """A video that cannot be written or read; the message names the file."""


def _av() -> Any:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise
    try:
        import av
    except ImportError as error:  # pragma: no cover - the bagtools extra installs it
        raise VideoError("video datasets need PyAV: pip install av (the vla_policy_node[bagtools] extra)") \
            from error
    return av


@dataclass(frozen=True)
class VideoEncoding:
    """Encoder settings; LeRobot's defaults. `codec` av1 (libsvtav1) or h264 (libx264)."""

    codec: str = "av1"
    crf: int = 30
    gop: int = 2
    preset: int | str | None = None  # default: 12 for SVT-AV1 (LeRobot's), "medium" for x264
    pix_fmt: str = "yuv420p"

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"video codec {self.codec!r}: use one of {sorted(CODECS)}")
        if self.gop < 1:
            raise ValueError("video gop must be >= 1")

    @property
    def encoder(self) -> str:
        return CODECS[self.codec]

    def options(self) -> dict[str, str]:
        options = {"g": str(self.gop), "crf": str(self.crf)}
        if self.encoder == "libsvtav1":
            options["preset"] = str(12 if self.preset is None else self.preset)
        elif self.preset is not None:
            options["preset"] = str(self.preset)
        return options

    def info(self, height: int, width: int, fps: int) -> dict[str, Any]:
        """The feature's `info` block as LeRobot writes it."""
        return {"video.height": height, "video.width": width,
                "video.codec": "av1" if self.encoder == "libsvtav1" else "h264", "video.pix_fmt": self.pix_fmt,
                "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "video.g": self.gop,
                "video.crf": self.crf, "video.preset": int(self.options().get("preset", 0))
                if self.encoder == "libsvtav1" else self.preset, "has_audio": False}


@dataclass
class VideoFileWriter:
    """One growing MP4 file of one camera: episodes are appended frame by frame (pts = frame number)."""

    path: Path
    fps: int
    height: int
    width: int
    encoding: VideoEncoding = field(default_factory=VideoEncoding)
    frames: int = 0
    bytes: int = 0

    def __post_init__(self) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream(self.encoding.encoder, rate=self.fps,
                                                      options=self.encoding.options())
        except Exception as error:
            raise VideoError(f"{self.path}: cannot open a {self.encoding.encoder} encoder: {error}") from error
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = self.encoding.pix_fmt
        self._stream.time_base = Fraction(1, self.fps)
        self._closed = False

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def add(self, rgb: np.ndarray) -> None:
        av = _av()
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise VideoError(f"{self.path}: frame {rgb.shape} {rgb.dtype}, expected ({self.height}, {self.width}, "
                             "3) uint8")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        if self.frames:
            packets = self._stream.encode(frame)
        else:
            with normal_scheduling():  # the first frame opens the encoder, which SVT-AV1 makes real-time as root
                packets = self._stream.encode(frame)
        self._mux(packets)
        self.frames += 1

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with normal_scheduling():
                packets = self._stream.encode(None)
            self._mux(packets)
            self._container.close()


class _OpenVideo:
    """An open file with its decoder and the last decoded frame (to continue forward without seeking)."""

    def __init__(self, path: Path) -> None:
        av = _av()
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except Exception as error:
            raise VideoError(f"{path}: cannot open the video: {error}") from error
        self.stream.thread_type = "AUTO"
        self.path = path
        self.time_base = float(self.stream.time_base)
        self.frames: Any = None  # the decode iterator
        self.last: tuple[float, np.ndarray] | None = None
        self.previous: tuple[float, np.ndarray] | None = None

    def close(self) -> None:
        self.container.close()

    def frame_at(self, t: float, tolerance: float) -> np.ndarray:
        """The RGB frame whose time is within `tolerance` of t."""
        ahead = self.last is not None and self.last[0] <= t + tolerance and t - self.last[0] < 1.0
        if not ahead:
            self._seek(t)
        for candidate in (self.previous, self.last):
            if candidate is not None and abs(candidate[0] - t) <= tolerance:
                return candidate[1]
        while True:
            decoded = self._next()
            if decoded is None:
                break
            if abs(decoded[0] - t) <= tolerance:
                return decoded[1]
            if decoded[0] > t + tolerance:
                break
        have = "none" if self.last is None else f"{self.last[0]:.4f} s"
        raise VideoError(f"{self.path}: no frame within {tolerance} s of {t:.4f} s (nearest decoded: {have}); "
                         "the video and the episodes table disagree")

    def _seek(self, t: float) -> None:
        self.container.seek(max(0, math.floor(t / self.time_base) - 1), backward=True, any_frame=False,
                            stream=self.stream)
        self.frames = self.container.decode(self.stream)
        self.last = self.previous = None

    def _next(self) -> tuple[float, np.ndarray] | None:
        if self.frames is None:
            self._seek(0.0)
        for frame in self.frames:
            if frame.pts is None:
                continue
            self.previous = self.last
            self.last = (frame.pts * self.time_base, frame.to_ndarray(format="rgb24"))
            return self.last
        return None


class VideoReader:
    """Frames of MP4 files by timestamp, with up to `cache_files` open decoders (least recently used closed)."""

    def __init__(self, cache_files: int = 16, tolerance_s: float = TOLERANCE_S) -> None:
        self.cache_files = cache_files
        self.tolerance_s = tolerance_s
        self._open: OrderedDict[Path, _OpenVideo] = OrderedDict()
        self.opened = 0  # files opened (a measure of cache misses)

    def frame(self, path: str | Path, timestamp: float) -> np.ndarray:
        path = Path(path)
        video = self._open.get(path)
        if video is None:
            if not path.is_file():
                raise VideoError(f"{path}: video file missing")
            video = _OpenVideo(path)
            self.opened += 1
            self._open[path] = video
            while len(self._open) > self.cache_files:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(path)
        return video.frame_at(timestamp, self.tolerance_s)

    def close(self) -> None:
        for video in self._open.values():
            video.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get a reader without open files
        return {"cache_files": self.cache_files, "tolerance_s": self.tolerance_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images (dB; inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
