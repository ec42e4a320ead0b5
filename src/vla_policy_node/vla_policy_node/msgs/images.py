"""sensor_msgs/Image and CompressedImage <-> numpy, the way the policy wants them (HxWx3 uint8 RGB).

Handles `step` with row padding, `is_bigendian` for 16-bit data, and the encodings cameras publish
(rgb8, bgr8, rgba8, bgra8, mono8/8UC1, mono16/16UC1). Anything the policy must not see (unknown encoding,
data shorter or longer than height*step, a corrupt JPEG) raises MessageError with the reason.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory, get_field, octets
from vla_policy_node.msgs.stamps import make_header

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"


@dataclass(frozen=True)
class Encoding:
    channels: int
    dtype: np.dtype
    order: str  # "rgb", "bgr", "rgba", "bgra", "mono"


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3, np.dtype(np.uint8), "rgb"),
    "bgr8": Encoding(3, np.dtype(np.uint8), "bgr"),
    "rgba8": Encoding(4, np.dtype(np.uint8), "rgba"),
    "bgra8": Encoding(4, np.dtype(np.uint8), "bgra"),
    "mono8": Encoding(1, np.dtype(np.uint8), "mono"),
    "8UC1": Encoding(1, np.dtype(np.uint8), "mono"),
    "mono16": Encoding(1, np.dtype(np.uint16), "mono"),
    "16UC1": Encoding(1, np.dtype(np.uint16), "mono"),
}
DEPTH_ENCODINGS = ("16UC1", "mono16")
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def image_to_array(msg: Any) -> np.ndarray:
    """The pixels as stored: (H, W) or (H, W, C) in the message's own channel order, native byte order.

    The result may share memory with the message; copy it before keeping it beyond the message.
    """
    encoding_name = str(get_field(msg, "encoding", IMAGE))
    encoding = ENCODINGS.get(encoding_name)
    if encoding is None:
        raise MessageError("unknown_encoding", f"encoding {encoding_name!r} is not one of {sorted(ENCODINGS)}", IMAGE)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError("empty_image", f"image is {width}x{height}", IMAGE)
    row_bytes = width * encoding.channels * encoding.dtype.itemsize
    if step < row_bytes:
        raise MessageError("bad_step", f"step {step} < width*channels*bytes = {row_bytes} ({encoding_name})", IMAGE)
    data = octets(msg.data)
    if data.size != step * height:
        raise MessageError(
            "size_mismatch",
            f"data has {data.size} bytes but height*step = {height}*{step} = {height * step} "
            f"({width}x{height} {encoding_name}, {encoding.channels} channel(s))",
            IMAGE,
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    if step != row_bytes:
        rows = np.ascontiguousarray(rows)
    dtype = encoding.dtype
    if dtype.itemsize > 1:
        big = bool(int(msg.is_bigendian))
        dtype = dtype.newbyteorder(">" if big else "<")
    pixels = rows.view(dtype)
    if not pixels.dtype.isnative:
        pixels = pixels.astype(encoding.dtype)
    shape = (height, width) if encoding.channels == 1 else (height, width, encoding.channels)
    return pixels.reshape(shape)


def decode_image(msg: Any, *, copy: bool = True) -> np.ndarray:
    """Color or mono image -> HxWx3 uint8 RGB (a fresh array). Depth images raise; use decode_depth.

    copy=False: an rgb8 image whose buffer is read-only (a bag's memory map, DDS bytes) comes back as a
    read-only view of the message instead of a copy; a writable buffer (someone may reuse it) is still copied.
    """
    encoding_name = str(get_field(msg, "encoding", IMAGE))
    if encoding_name in DEPTH_ENCODINGS:
        raise MessageError("not_color", f"{encoding_name} is a 16-bit image; use decode_depth", IMAGE)
    pixels = image_to_array(msg)
    order = ENCODINGS[encoding_name].order
    if order == "rgb":
        return pixels if not copy and not _writable(pixels) else pixels.copy()
    conversion = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB}
    return cv2.cvtColor(pixels, conversion.get(order, cv2.COLOR_GRAY2RGB))  # ~5x faster than numpy slicing


def _writable(array: np.ndarray) -> bool:
    """True if the memory under `array` may be written by anyone (numpy's flag, or a writable base buffer)."""
    owner: object = array  # an array's base: another array, a buffer (bytes, memoryview, mmap...) or None
    while isinstance(owner, np.ndarray):
        if owner.flags.writeable:
            return True
        owner = owner.base
    if isinstance(owner, memoryview):
        return not owner.readonly
    return not isinstance(owner, bytes)


def decode_depth(msg: Any) -> np.ndarray:
    """16UC1 / mono16 image -> HxW uint16 (native byte order, a fresh array)."""
    encoding_name = str(get_field(msg, "encoding", IMAGE))
    if encoding_name not in DEPTH_ENCODINGS:
        raise MessageError("not_depth", f"encoding {encoding_name!r} is not a depth encoding {DEPTH_ENCODINGS}", IMAGE)
    return image_to_array(msg).copy()


def encode_image(
    new: MessageFactory, pixels: np.ndarray, encoding: str = "rgb8", *, stamp: float = 0.0, frame_id: str = ""
) -> Any:
    """numpy -> sensor_msgs/Image.

    pixels: HxWx3 RGB for rgb8/bgr8, HxWx4 RGBA for rgba8/bgra8, HxW uint8 for mono8/8UC1,
    HxW uint16 for 16UC1/mono16 (written in host byte order, `is_bigendian` set accordingly).
    """
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ValueError(f"cannot encode {encoding!r}; supported: {sorted(ENCODINGS)}")
    array = np.asarray(pixels)
    if spec.channels == 1 and array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    expected_ndim = 2 if spec.channels == 1 else 3
    if array.ndim != expected_ndim or (spec.channels > 1 and array.shape[2] != spec.channels):
        raise ValueError(f"{encoding} needs shape (H, W{'' if spec.channels == 1 else f', {spec.channels}'}), "
                         f"got {array.shape}")
    if array.dtype != spec.dtype:
        raise ValueError(f"{encoding} needs dtype {spec.dtype}, got {array.dtype}")
    if spec.order == "bgr":
        array = array[..., ::-1]
    elif spec.order == "bgra":
        array = array[..., [2, 1, 0, 3]]
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return new(
        IMAGE,
        header=make_header(new, stamp, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(_HOST_BIG_ENDIAN and spec.dtype.itemsize > 1),
        step=width * spec.channels * spec.dtype.itemsize,
        data=array.reshape(-1).view(np.uint8),
    )


def decode_compressed_image(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) -> HxWx3 uint8 RGB."""
    fmt = str(get_field(msg, "format", COMPRESSED_IMAGE)).lower()
    if "compresseddepth" in fmt:
        raise MessageError("unsupported_format", f"format {fmt!r} (compressedDepth) is not supported", COMPRESSED_IMAGE)
    data = octets(msg.data)
    if data.size == 0:
        raise MessageError("empty_image", "compressed image has no data", COMPRESSED_IMAGE)
    _check_complete(data, fmt)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise MessageError("corrupt_image", f"cannot decode {data.size} bytes of {fmt or 'unknown format'}",
                           COMPRESSED_IMAGE)
    if decoded.dtype != np.uint8:
        raise MessageError("unsupported_format", f"decoded image has dtype {decoded.dtype}, expected 8-bit",
                           COMPRESSED_IMAGE)
    if decoded.ndim == 2:
        return cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    if decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def _check_complete(data: np.ndarray, fmt: str) -> None:
    """A truncated JPEG/PNG decodes into a partly gray image without any error; refuse it instead."""
    head, tail = data[:8].tobytes(), data[-16:].tobytes()
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise MessageError("corrupt_image", f"truncated JPEG ({data.size} bytes, no end-of-image marker)",
                           COMPRESSED_IMAGE)
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise MessageError("corrupt_image", f"truncated PNG ({data.size} bytes, no IEND chunk)", COMPRESSED_IMAGE)


def encode_compressed_image(
    new: MessageFactory,
    rgb: np.ndarray,
    fmt: str = "jpeg",
    *,
    quality: int = 90,
    stamp: float = 0.0,
    frame_id: str = "",
) -> Any:
    """HxWx3 uint8 RGB -> CompressedImage with image_transport's format string ('rgb8; jpeg compressed bgr8')."""
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"need HxWx3 uint8 RGB, got {array.shape} {array.dtype}")
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buffer = cv2.imencode(".png", bgr)
    else:
        raise ValueError(f"format {fmt!r} not supported; use 'jpeg' or 'png'")
    if not ok:
        raise ValueError(f"OpenCV could not encode the image as {fmt}")
    return new(
        COMPRESSED_IMAGE,
        header=make_header(new, stamp, frame_id),
        format=f"rgb8; {fmt} compressed bgr8",
        data=buffer.reshape(-1),
    )
