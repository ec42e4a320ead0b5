"""Check that LeRobot itself loads a dataset written by `vla_bag_to_dataset`, and that it sees the same values.

    python scripts/check_lerobot_dataset.py DATASET_DIR [--horizon 16]

Run it in an environment where `lerobot` (0.4.x, dataset format v3.0) is installed; it needs nothing from this
repository, so it can run in LeRobot's own virtual environment. It loads the dataset with
`LeRobotDatasetMetadata` and `LeRobotDataset(repo_id, root=..., delta_timestamps=...)`, then compares a few
frames (state, action windows with their padding, images, task) with the parquet files read directly.
Exit status 0 when everything matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--horizon", type=int, default=16)
    args = parser.parse_args()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    info = json.loads((args.root / "meta/info.json").read_text())
    repo_id = info.get("vla", {}).get("repo_id", "local/dataset")
    meta = LeRobotDatasetMetadata(repo_id, root=args.root)
    fps = meta.fps
    dataset = LeRobotDataset(repo_id, root=args.root,
                             delta_timestamps={"action": [k / fps for k in range(args.horizon)]})
    print(f"LeRobot loaded {repo_id}: {dataset.num_episodes} episodes, {len(dataset)} frames at {fps} fps, "
          f"cameras {meta.camera_keys}, tasks {list(meta.tasks.index)}")
    table = pq.read_table(sorted((args.root / "data").glob("*/*.parquet"))[0])
    rows = table.to_pylist()
    import cv2

    problems = []
    for i in sorted({0, len(dataset) // 2, len(dataset) - 1}):
        item = dataset[i]
        row = rows[i] if i < len(rows) else None
        if row is None:
            continue
        if not np.allclose(item["observation.state"].numpy(), row["observation.state"]):
            problems.append(f"frame {i}: state differs")
        end = next(j for j in range(i, len(rows) + 1) if j == len(rows) or rows[j]["episode_index"]
                   != row["episode_index"])
        window = [rows[min(i + k, end - 1)]["action"] for k in range(args.horizon)]
        if not np.allclose(item["action"].numpy(), window, atol=1e-6):
            problems.append(f"frame {i}: action window differs")
        pad = [i + k >= end for k in range(args.horizon)]
        if item["action_is_pad"].tolist() != pad:
            problems.append(f"frame {i}: action padding {item['action_is_pad'].tolist()} != {pad}")
        for key in meta.camera_keys:
            decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(row[key]["bytes"], np.uint8), cv2.IMREAD_COLOR),
                                   cv2.COLOR_BGR2RGB)
            seen = (item[key].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            if not np.array_equal(seen, decoded):
                problems.append(f"frame {i}: {key} differs")
        if item["task"] != meta.tasks.index[row["task_index"]]:
            problems.append(f"frame {i}: task differs")
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("OK: LeRobot reads the same values" if not problems else f"{len(problems)} mismatch(es)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
