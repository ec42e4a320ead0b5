"""Intel RealSense through pyrealsense2: color (RGB) plus depth aligned to color, as numpy arrays.

No ROS here: the camera node (`ros/realsense_camera.py`) turns these frames into messages. Every failure a
robot operator can meet (library missing, no camera plugged in, wrong serial, unsupported resolution, a
camera that stops sending frames) is a `RealSenseError` with a sentence that says what to do, never a hang:
frames are awaited with a timeout.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from vla_policy_node.msgs.camera_info import CameraIntrinsics

DEPTH_UNIT_MM = 0.001  # 16UC1 depth images are millimetres by ROS convention (REP 118)


class RealSenseError(RuntimeError):
    """The camera cannot deliver frames; the message says why."""


@dataclass(frozen=True)
class RealSenseConfig:
    """serial_no: "" takes the only (or first) camera. depth_width/height 0: the device's default depth mode."""

    serial_no: str = ""
    width: int = 640
    height: int = 480
    fps: int = 30
    enable_depth: bool = True
    depth_width: int = 0
    depth_height: int = 0
    frame_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width, height and fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.depth_width < 0 or self.depth_height < 0:
            raise ValueError("depth_width/depth_height must be >= 0 (0: device default)")
        if self.frame_timeout <= 0:
            raise ValueError(f"frame_timeout must be positive, got {self.frame_timeout}")


@dataclass(frozen=True)
class RealSenseFrames:
    """color: HxWx3 uint8 RGB; depth: HxW uint16 millimetres aligned to color (None without depth).

    stamp: capture time in host-clock seconds when the device reports it in host time (global/system time
    domain), else None (the caller stamps with its own clock).
    """

    color: np.ndarray
    depth: np.ndarray | None
    stamp: float | None


def import_pyrealsense2() -> ModuleType:
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError as error:
        hint = ("install libusb-1.0 (apt-get install libusb-1.0-0)" if "libusb" in str(error)
                else "pip install 'vla_policy_node[camera]' (or pip install pyrealsense2)")
        raise RealSenseError(f"pyrealsense2 cannot be imported ({error}); {hint}") from None


def _distortion_model(rs: Any, model: Any) -> str:
    """librealsense distortion -> the CameraInfo model name realsense2_camera uses."""
    kannala = getattr(rs.distortion, "kannala_brandt4", None)
    return "equidistant" if kannala is not None and model == kannala else "plumb_bob"


class RealSenseCamera:
    """One RealSense pipeline: `start()`, then `read()` per frame set, then `stop()` (or use `with`)."""

    def __init__(self, config: RealSenseConfig | None = None, rs: ModuleType | None = None) -> None:
        """rs: the pyrealsense2 module (tests pass a stand-in); imported on `start()` when None."""
        self.config = config or RealSenseConfig()
        self._rs = rs
        self._pipeline: Any = None
        self._align: Any = None
        self._depth_to_mm = 1.0
        self.serial_no = ""
        self.intrinsics: CameraIntrinsics | None = None

    @property
    def running(self) -> bool:
        return self._pipeline is not None

    def connected_serials(self) -> list[str]:
        rs = self._module()
        devices = rs.context().query_devices()
        return [str(devices[i].get_info(rs.camera_info.serial_number)) for i in range(len(devices))]

    def _module(self) -> ModuleType:
        if self._rs is None:
            self._rs = import_pyrealsense2()
        return self._rs

    def start(self) -> None:
        """Find the camera, start color (+ aligned depth) streaming; RealSenseError when that is impossible."""
        if self.running:
            return
        rs = self._module()
        cfg = self.config
        serials = self.connected_serials()
        if not serials:
            raise RealSenseError("no RealSense device connected (pyrealsense2 found 0 devices)")
        if cfg.serial_no and cfg.serial_no not in serials:
            raise RealSenseError(f"no RealSense device with serial {cfg.serial_no!r} connected "
                                 f"(connected: {', '.join(serials)})")
        self.serial_no = cfg.serial_no or serials[0]
        rs_config = rs.config()
        rs_config.enable_device(self.serial_no)
        rs_config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        if cfg.enable_depth:
            rs_config.enable_stream(rs.stream.depth, cfg.depth_width, cfg.depth_height, rs.format.z16, cfg.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as error:
            depth = f", depth {cfg.depth_width or 'any'}x{cfg.depth_height or 'any'}" if cfg.enable_depth else ""
            raise RealSenseError(f"RealSense {self.serial_no} cannot stream color {cfg.width}x{cfg.height}"
                                 f"@{cfg.fps} rgb8{depth}: {error}") from None
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self.intrinsics = CameraIntrinsics(int(intr.width), int(intr.height), float(intr.fx), float(intr.fy),
                                           float(intr.ppx), float(intr.ppy), _distortion_model(rs, intr.model),
                                           tuple(float(c) for c in intr.coeffs))
        if cfg.enable_depth:
            scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            self._depth_to_mm = scale / DEPTH_UNIT_MM
            self._align = rs.align(rs.stream.color)
        self._pipeline = pipeline

    def read(self) -> RealSenseFrames:
        """Wait (at most `frame_timeout`) for the next frame set; copies, so frames outlive the device buffers."""
        if self._pipeline is None:
            raise RealSenseError("camera not started; call start() first")
        rs = self._module()
        try:
            frames = self._pipeline.wait_for_frames(int(self.config.frame_timeout * 1000))
        except RuntimeError as error:
            raise RealSenseError(f"no frames from RealSense {self.serial_no} within "
                                 f"{self.config.frame_timeout:g} s ({error}); check the USB 3 connection") from None
        if self._align is not None:
            frames = self._align.process(frames)
        color_frame = frames.get_color_frame()
        if not color_frame:
            raise RealSenseError(f"RealSense {self.serial_no} delivered a frame set without color")
        color = np.array(np.asanyarray(color_frame.get_data()), dtype=np.uint8, copy=True)
        depth = None
        if self._align is not None:
            depth_frame = frames.get_depth_frame()
            if depth_frame:
                raw = np.asanyarray(depth_frame.get_data())
                depth = self._to_millimetres(raw)
        stamp = None
        host_domains = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
        if color_frame.get_frame_timestamp_domain() in host_domains:
            stamp = float(color_frame.get_timestamp()) / 1000.0
        return RealSenseFrames(color, depth, stamp)

    def _to_millimetres(self, raw: np.ndarray) -> np.ndarray:
        if abs(self._depth_to_mm - 1.0) < 1e-9:
            return np.array(raw, dtype=np.uint16, copy=True)
        scaled = np.rint(raw.astype(np.float64) * self._depth_to_mm)
        return np.clip(scaled, 0, np.iinfo(np.uint16).max).astype(np.uint16)

    def stop(self) -> None:
        pipeline, self._pipeline, self._align = self._pipeline, None, None
        if pipeline is not None:
            with contextlib.suppress(RuntimeError):  # already stopped by a disconnect: nothing to release
                pipeline.stop()

    def __enter__(self) -> RealSenseCamera:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
