"""Transport figures: DDS image round trip between two processes, image decode costs, CDR costs.

    python benchmarks/bench_transport.py [--count 200] [--domain N]

Prints:
- 640x480 rgb8 sensor_msgs/Image round trip over DDS on loopback between two processes (this one publishes,
  an echo child republishes what it receives): p50 / p99 ms, and the same through cyclonedds' generic
  per-element uint8[] path for comparison (few samples, it is slow);
- decode cost of a 640x480 bgr8 Image -> RGB array, and of the same frame as JPEG;
- CDR serialize/deserialize of a 7-joint JointState (generated DDS struct and rosbags).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

IMAGE_IN, IMAGE_OUT = "/bench/image_in", "/bench/image_out"


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds per call."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _frame() -> np.ndarray:
    y, x, c = np.mgrid[0:480, 0:640, 0:3]
    noise = np.random.default_rng(0).integers(0, 32, (480, 640, 3))
    return ((x // 4 + y // 3 + c * 60 + noise) % 256).astype(np.uint8)


def run_echo(domain: int, fast_path: bool) -> None:
    """Child: republish every image received on IMAGE_IN to IMAGE_OUT until stdin closes."""
    from vla_policy_node.transport import DdsConfig, DdsTransport
    from vla_policy_node.transport.dds_types import DdsTypeRegistry

    transport = DdsTransport(DdsConfig(node_name="bench_echo", loopback=True, domain_id=domain))
    if not fast_path:
        transport.types = DdsTypeRegistry(transport.types.typestore, raw_bytes_fast_path=False)
    out = transport.publisher(IMAGE_OUT, "sensor_msgs/msg/Image")
    transport.subscribe(IMAGE_IN, "sensor_msgs/msg/Image", out.publish)
    print("ready", flush=True)
    sys.stdin.read()
    transport.close()


def image_round_trip(domain: int, count: int, fast_path: bool) -> list[float]:
    from vla_policy_node.msgs import encode_image
    from vla_policy_node.transport import DdsConfig, DdsTransport
    from vla_policy_node.transport.dds_types import DdsTypeRegistry

    child = subprocess.Popen(
        [sys.executable, __file__, "--echo", "--domain", str(domain)] + ([] if fast_path else ["--generic"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    transport = DdsTransport(DdsConfig(node_name="bench_main", loopback=True, domain_id=domain))
    try:
        if not fast_path:
            transport.types = DdsTypeRegistry(transport.types.typestore, raw_bytes_fast_path=False)
        assert child.stdout.readline().strip() == "ready"
        arrived = threading.Event()
        last: dict[str, str] = {}

        def on_reply(msg) -> None:
            last["id"] = msg.header.frame_id
            arrived.set()

        transport.subscribe(IMAGE_OUT, "sensor_msgs/msg/Image", on_reply)
        pub = transport.publisher(IMAGE_IN, "sensor_msgs/msg/Image")
        msg = encode_image(transport.new_message, _frame(), "rgb8")
        if not fast_path:
            msg.data = msg.data.tobytes()  # the generic machine iterates element by element
        samples = []
        deadline = time.monotonic() + 30
        warmup = 5
        i = 0
        while len(samples) < count and time.monotonic() < deadline:
            i += 1
            msg.header.frame_id = f"frame{i}"
            arrived.clear()
            start = time.perf_counter()
            pub.publish(msg)
            while arrived.wait(1.0) and last.get("id") != msg.header.frame_id:
                arrived.clear()
            if last.get("id") != msg.header.frame_id:
                continue  # lost before discovery completed; retry
            if i > warmup:
                samples.append(time.perf_counter() - start)
        return samples
    finally:
        transport.close()
        child.stdin.close()
        child.wait(timeout=10)


def decode_costs() -> dict[str, float]:
    from vla_policy_node.msgs import (
        decode_compressed_image,
        decode_image,
        encode_compressed_image,
        encode_image,
        rosbags_factory,
    )
    from vla_policy_node.msgs.typestore import default_typestore
    from vla_policy_node.transport.dds_types import DdsTypeRegistry

    rgb = _frame()
    new = rosbags_factory()
    registry = DdsTypeRegistry(default_typestore())
    image_cls = registry.idl_type("sensor_msgs/msg/Image")
    bgr_dds = image_cls.deserialize(encode_image(registry.new, rgb, "bgr8").serialize())
    bgr_rosbags = encode_image(new, rgb, "bgr8")
    jpeg = encode_compressed_image(new, rgb, "jpeg", quality=90)
    return {
        "bgr8 Image -> RGB (DDS struct)": _time(lambda: decode_image(bgr_dds), 100),
        "bgr8 Image -> RGB (rosbags msg)": _time(lambda: decode_image(bgr_rosbags), 100),
        f"JPEG q90 ({len(jpeg.data) // 1024} KiB) -> RGB": _time(lambda: decode_compressed_image(jpeg), 50),
    }


def cdr_costs() -> dict[str, float]:
    from vla_policy_node.msgs import encode_joint_state, rosbags_factory
    from vla_policy_node.msgs.typestore import default_typestore
    from vla_policy_node.transport.dds_types import DdsTypeRegistry

    store = default_typestore()
    registry = DdsTypeRegistry(store)
    names = [f"joint{i}" for i in range(7)]
    q = np.linspace(-1, 1, 7)
    dds_msg = encode_joint_state(registry.new, names, q, q, q, stamp=1.0)
    rb_msg = encode_joint_state(rosbags_factory(store), names, q, q, q, stamp=1.0)
    raw = dds_msg.serialize()
    cls = type(dds_msg)
    typename = "sensor_msgs/msg/JointState"
    return {
        "JointState serialize (DDS struct)": _time(dds_msg.serialize, 2000),
        "JointState deserialize (DDS struct)": _time(lambda: cls.deserialize(raw), 2000),
        "JointState serialize (rosbags)": _time(lambda: store.serialize_cdr(rb_msg, typename), 2000),
        "JointState deserialize (rosbags)": _time(lambda: store.deserialize_cdr(raw, typename), 2000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--domain", type=int, default=None)
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generic", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    domain = args.domain if args.domain is not None else random.randint(1, 230)
    if args.echo:
        run_echo(domain, fast_path=not args.generic)
        return

    fast = image_round_trip(domain, args.count, fast_path=True)
    p50, p99 = _percentiles(fast)
    print(f"640x480 rgb8 Image DDS round trip, 2 processes, loopback: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
          f"(n={len(fast)})")
    slow = image_round_trip(domain, 10, fast_path=False)
    p50, p99 = _percentiles(slow)
    print(f"  same through cyclonedds' generic uint8[] path:          p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
          f"(n={len(slow)})")
    for name, seconds in decode_costs().items():
        print(f"decode {name}: {seconds * 1e3:.2f} ms")
    for name, seconds in cdr_costs().items():
        print(f"{name}: {seconds * 1e6:.1f} us")


if __name__ == "__main__":
    main()
