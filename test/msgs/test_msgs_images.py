"""Image conversions: encodings, channel order, padding, endianness, compression, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vla_policy_node.msgs import (
    MessageError,
    decode_compressed_image,
    decode_depth,
    decode_image,
    encode_compressed_image,
    encode_image,
)


def _rgb(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4) % 256, (y * 5) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def _raw(new, *, encoding, width, height, step, data, is_bigendian=0):
    return new("sensor_msgs/msg/Image", encoding=encoding, width=width, height=height, step=step,
               data=np.frombuffer(bytes(data), dtype=np.uint8), is_bigendian=is_bigendian)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_round_trip(new, cdr_round_trip, encoding):
    rgb = _rgb()
    pixels = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 200, np.uint8)], axis=-1) if "a" in encoding else rgb
    msg = cdr_round_trip(encode_image(new, pixels, encoding, stamp=12.5, frame_id="cam"))
    assert msg.encoding == encoding and msg.header.frame_id == "cam"
    assert msg.header.stamp.sec == 12 and msg.header.stamp.nanosec == 500_000_000
    np.testing.assert_array_equal(decode_image(msg), rgb)


def test_bgr8_and_rgb8_channel_order_with_a_known_pixel(new):
    data = bytes([10, 20, 30, 0, 0, 0])  # one row, two pixels
    assert decode_image(_raw(new, encoding="bgr8", width=2, height=1, step=6, data=data))[0, 0].tolist() == [30, 20, 10]
    assert decode_image(_raw(new, encoding="rgb8", width=2, height=1, step=6, data=data))[0, 0].tolist() == [10, 20, 30]
    encoded = encode_image(new, np.array([[[10, 20, 30]]], np.uint8), "bgr8")
    assert bytes(encoded.data) == bytes([30, 20, 10])


def test_mono8_becomes_three_equal_channels(new, cdr_round_trip):
    gray = _rgb()[..., 0]
    out = decode_image(cdr_round_trip(encode_image(new, gray, "mono8")))
    assert out.shape == (*gray.shape, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_depth_round_trip(new, cdr_round_trip):
    depth = (np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) * 37) % 65000
    msg = cdr_round_trip(encode_image(new, depth.astype(np.uint16), "16UC1"))
    out = decode_depth(msg)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)


def test_16uc1_big_endian_is_honoured(new):
    data = bytes([0x01, 0x02, 0x00, 0x05])  # two pixels
    big = decode_depth(_raw(new, encoding="16UC1", width=2, height=1, step=4, data=data, is_bigendian=1))
    little = decode_depth(_raw(new, encoding="16UC1", width=2, height=1, step=4, data=data, is_bigendian=0))
    assert big.tolist() == [[0x0102, 0x0005]]
    assert little.tolist() == [[0x0201, 0x0500]]


def test_row_padding_in_step_is_skipped(new):
    # width 2 rgb8 = 6 bytes of pixels, step 8: two bytes of padding per row that must not leak into pixels
    rows = [bytes([1, 2, 3, 4, 5, 6, 99, 99]), bytes([7, 8, 9, 10, 11, 12, 99, 99])]
    out = decode_image(_raw(new, encoding="rgb8", width=2, height=2, step=8, data=b"".join(rows)))
    assert out.tolist() == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]


def test_png_round_trip_is_exact_and_jpeg_is_close(new, cdr_round_trip):
    rgb = _rgb(96, 128)
    png = cdr_round_trip(encode_compressed_image(new, rgb, "png"))
    assert png.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed_image(png), rgb)
    smooth = np.repeat(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], 96, axis=0).repeat(3, axis=2)
    jpeg = cdr_round_trip(encode_compressed_image(new, smooth, "jpeg", quality=95))
    decoded = decode_compressed_image(jpeg)
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth).mean() < 2.0


def test_jpeg_channel_order_is_rgb(new):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    out = decode_compressed_image(encode_compressed_image(new, red, "jpeg", quality=100))
    assert out[8, 8, 0] > 240 and out[8, 8, 1] < 15 and out[8, 8, 2] < 15


@pytest.mark.parametrize(
    ("fields", "problem", "words"),
    [
        ({"encoding": "yuv422", "width": 2, "height": 1, "step": 4, "data": b"\0" * 4}, "unknown_encoding", "yuv422"),
        ({"encoding": "rgb8", "width": 2, "height": 2, "step": 6, "data": b"\0" * 11}, "size_mismatch", "11 bytes"),
        ({"encoding": "rgb8", "width": 2, "height": 2, "step": 6, "data": b"\0" * 13}, "size_mismatch", "height*step"),
        ({"encoding": "rgb8", "width": 2, "height": 2, "step": 5, "data": b"\0" * 10}, "bad_step", "step 5"),
        ({"encoding": "mono8", "width": 0, "height": 2, "step": 0, "data": b""}, "empty_image", "0x2"),
        ({"encoding": "16UC1", "width": 2, "height": 1, "step": 4, "data": b"\0" * 4}, "not_color", "decode_depth"),
    ],
)
def test_bad_images_raise_message_error(new, fields, problem, words):
    with pytest.raises(MessageError) as info:
        decode_image(_raw(new, **fields))
    assert info.value.problem == problem
    assert words in str(info.value) and problem in str(info.value)


def test_decode_depth_refuses_color(new):
    with pytest.raises(MessageError, match="not_depth"):
        decode_depth(_raw(new, encoding="rgb8", width=1, height=1, step=3, data=b"\0\0\0"))


@pytest.mark.parametrize(
    ("data", "fmt", "problem"),
    [
        (b"\xff\xd8\xff\xe0 this is not a jpeg at all", "jpeg", "corrupt_image"),
        (b"", "jpeg", "empty_image"),
        (b"\0" * 16, "16UC1; compressedDepth png", "unsupported_format"),
    ],
)
def test_bad_compressed_images(new, data, fmt, problem):
    msg = new("sensor_msgs/msg/CompressedImage", format=fmt, data=np.frombuffer(data, np.uint8))
    with pytest.raises(MessageError) as info:
        decode_compressed_image(msg)
    assert info.value.problem == problem


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("keep", [40, 0.6])
def test_truncated_compressed_image_is_refused_not_half_gray(new, fmt, keep):
    good = encode_compressed_image(new, _rgb(96, 128), fmt)
    data = np.asarray(good.data)
    cut = keep if isinstance(keep, int) else int(data.size * keep)
    truncated = new("sensor_msgs/msg/CompressedImage", format=good.format, data=data[:cut])
    with pytest.raises(MessageError, match="corrupt_image"):
        decode_compressed_image(truncated)


def test_encoder_rejects_wrong_shapes(new):
    with pytest.raises(ValueError, match="shape"):
        encode_image(new, np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="dtype"):
        encode_image(new, np.zeros((4, 4), np.uint8), "16UC1")
