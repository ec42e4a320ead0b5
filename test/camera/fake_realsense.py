"""A stand-in for the parts of pyrealsense2 the camera driver uses, with devices and frames under test control."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np


class Stream(enum.Enum):
    color = "color"
    depth = "depth"


class Format(enum.Enum):
    rgb8 = "rgb8"
    z16 = "z16"


class Domain(enum.Enum):
    hardware_clock = 0
    system_time = 1
    global_time = 2


class Distortion(enum.Enum):
    none = 0
    inverse_brown_conrady = 1
    kannala_brandt4 = 2


@dataclass
class FakeFrame:
    data: np.ndarray
    timestamp_ms: float = 0.0
    domain: Domain = Domain.global_time

    def get_data(self) -> np.ndarray:
        return self.data

    def get_timestamp(self) -> float:
        return self.timestamp_ms

    def get_frame_timestamp_domain(self) -> Domain:
        return self.domain

    def __bool__(self) -> bool:
        return True


@dataclass
class FakeFrameset:
    color: FakeFrame | None
    depth: FakeFrame | None
    aligned: bool = False

    def get_color_frame(self) -> FakeFrame | None:
        return self.color

    def get_depth_frame(self) -> FakeFrame | None:
        return self.depth


@dataclass
class FakeDevice:
    serial: str
    depth_scale: float = 0.001

    def get_info(self, _info: Any) -> str:
        return self.serial

    def first_depth_sensor(self) -> Any:
        return SimpleNamespace(get_depth_scale=lambda: self.depth_scale)


@dataclass
class FakeRealSense:
    """Use as the `rs` module: `RealSenseCamera(config, rs=FakeRealSense(devices=[FakeDevice("123")]))`."""

    devices: list[FakeDevice] = field(default_factory=list)
    frames: list[FakeFrameset] = field(default_factory=list)
    start_error: str = ""
    intrinsics: Any = None
    enabled: list[tuple] = field(default_factory=list)
    started_with: str = ""
    stopped: bool = False
    waits_ms: list[int] = field(default_factory=list)

    stream = Stream
    format = Format
    timestamp_domain = Domain
    distortion = Distortion
    camera_info = SimpleNamespace(serial_number="serial_number")

    def context(self) -> Any:
        return SimpleNamespace(query_devices=lambda: list(self.devices))

    def config(self) -> Any:
        fake = self

        class Config:
            def enable_device(self, serial: str) -> None:
                fake.started_with = serial

            def enable_stream(self, *args: Any) -> None:
                fake.enabled.append(args)

        return Config()

    def pipeline(self) -> Any:
        fake = self

        class Pipeline:
            def start(self, _config: Any) -> Any:
                if fake.start_error:
                    raise RuntimeError(fake.start_error)
                device = next(d for d in fake.devices if d.serial == fake.started_with)
                video = SimpleNamespace(get_intrinsics=lambda: fake.intrinsics)
                return SimpleNamespace(
                    get_stream=lambda _s: SimpleNamespace(as_video_stream_profile=lambda: video),
                    get_device=lambda: device,
                )

            def wait_for_frames(self, timeout_ms: int) -> FakeFrameset:
                fake.waits_ms.append(timeout_ms)
                if not fake.frames:
                    raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
                return fake.frames.pop(0)

            def stop(self) -> None:
                fake.stopped = True

        return Pipeline()

    def align(self, _to: Stream) -> Any:
        def process(frames: FakeFrameset) -> FakeFrameset:
            return FakeFrameset(frames.color, frames.depth, aligned=True)

        return SimpleNamespace(process=process)


def intrinsics(width: int = 8, height: int = 6, model: Distortion = Distortion.inverse_brown_conrady) -> Any:
    return SimpleNamespace(width=width, height=height, fx=600.5, fy=601.25, ppx=3.75, ppy=2.5, model=model,
                           coeffs=[0.1, -0.2, 0.001, 0.002, 0.05])
