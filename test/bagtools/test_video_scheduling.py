"""Writing AV1 video (SVT-AV1, LeRobot's default encoder) leaves every thread at normal scheduling. As root,
SVT-AV1 puts the thread that opens the encoder and its own workers at SCHED_FIFO 99 and never sets them back: a
dataset conversion on the robot's computer would out-rank the control nodes, and everything it starts would
inherit priority 99 (this suite's node processes and mypy did)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, os, sys, tempfile
from pathlib import Path
import numpy as np
from vla_policy_node.train.lerobot_video import VideoFileWriter, _av
from vla_policy_node.train.normal_scheduling import realtime_threads

with tempfile.TemporaryDirectory() as d:
    writer = VideoFileWriter(Path(d) / "ours.mp4", 25, 64, 64)
    for _ in range(5):
        writer.add(np.zeros((64, 64, 3), np.uint8))
    during = sorted(realtime_threads())
    writer.close()
    ours = sorted(realtime_threads())
    av = _av()  # the same encoder without the guard: does SVT-AV1 take real-time priority on this machine?
    container = av.open(str(Path(d) / "raw.mp4"), "w")
    stream = container.add_stream("libsvtav1", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")):
        container.mux(packet)
    raw = sorted(realtime_threads())
print(json.dumps({"during": during, "ours": ours, "raw": raw, "main_policy": os.sched_getscheduler(0)}))
"""


def test_writing_av1_video_leaves_no_thread_real_time() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if not result["raw"]:
        pytest.skip("SVT-AV1 cannot make threads real-time on this machine (not root): nothing to undo")
    assert result["during"] == [] and result["ours"] == [], result
