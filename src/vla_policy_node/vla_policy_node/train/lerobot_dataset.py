"""Training samples from a LeRobot v3.0 dataset (ours from `vla_bag_to_dataset`, or one LeRobot wrote with image
features): the `SampleDataset` the Trainer reads.

Sample i is frame i of the chosen split: its images and state, the instruction of its task, and the H actions
from that frame on (padded with the episode's last action past its end, `valid` False there), in physical
units; `env_state` is the frame's observation.environment_state when the dataset has one (training-only
supervision), else None. Numeric columns are loaded once (small); images stay in the parquet files and are
read per row group through a small cache, so memory does not grow with the dataset. Needs pyarrow, numpy and
OpenCV only.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet, Normalizer, Stats
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.data import Sample


class LeRobotSamples:
    """A split of a LeRobot v3 dataset as training samples.

    split: "train", "val" (info.json `splits`) or None for every episode. horizon: actions per sample (the
    model's head horizon). tag: embodiment tag of the samples (default: the one the converter recorded, else
    robot_type). cameras: dataset image key -> camera name (default: the key without "observation.images.").
    """

    def __init__(self, root: str | Path, *, split: str | None = "train", horizon: int = 16, tag: str | None = None,
                 cameras: dict[str, str] | None = None, cache_row_groups: int = 8) -> None:
        self.root = Path(root)
        self.info = info = fmt.DatasetInfo.load(self.root)
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        self.horizon = horizon
        vla = info.raw.get("vla") or {}
        self.tag = tag or str(vla.get("tag") or info.raw.get("robot_type") or "")
        for key in (fmt.STATE_KEY, fmt.ACTION_KEY):
            if key not in info.features:
                raise fmt.DatasetFormatError(f"{self.root / fmt.INFO_PATH}: no {key!r} feature")
        if cameras is None:
            cameras = {key: key.removeprefix(fmt.IMAGE_PREFIX) for key in info.image_keys}
        videos = [key for key in cameras if key in info.video_keys]
        if videos:
            raise fmt.DatasetFormatError(f"{self.root}: {videos} are video features; this reader reads image "
                                         "features only (convert with image storage)")
        self.cameras = cameras
        self.tasks = fmt.read_tasks(self.root)
        self._files = sorted((self.root / fmt.DATA_DIR).glob("*/*.parquet"))
        if not self._files:
            raise fmt.DatasetFormatError(f"{self.root / fmt.DATA_DIR}: no data files")
        self._load_columns()
        selected = info.split_episodes(split)
        keep = np.ones(len(self._episode), bool) if selected is None else np.isin(self._episode, selected)
        self._rows = np.nonzero(keep)[0]
        if selected is not None and len(self._rows) == 0:
            raise fmt.DatasetFormatError(f"{self.root}: split {split!r} has no frames")
        self._cache: OrderedDict[tuple[int, int], dict[str, list]] = OrderedDict()
        self._cache_size = cache_row_groups

    def _load_columns(self) -> None:
        """State, action, episode, task and each row's place (file, row group, offset); images stay on disk."""
        columns = [fmt.STATE_KEY, fmt.ACTION_KEY, "episode_index", "task_index", "index"]
        has_env = fmt.ENV_STATE_KEY in self.info.features
        if has_env:
            columns.append(fmt.ENV_STATE_KEY)
        states, actions, episodes, tasks, indices, places, env_states = [], [], [], [], [], [], []
        for f, path in enumerate(self._files):
            parquet = pq.ParquetFile(path)
            table = parquet.read(columns=columns)
            states.append(_matrix(table.column(fmt.STATE_KEY)))
            if has_env:
                env_states.append(_matrix(table.column(fmt.ENV_STATE_KEY)))
            actions.append(_matrix(table.column(fmt.ACTION_KEY)))
            episodes.append(table.column("episode_index").to_numpy())
            tasks.append(table.column("task_index").to_numpy())
            indices.append(table.column("index").to_numpy())
            for g in range(parquet.metadata.num_row_groups):
                n = parquet.metadata.row_group(g).num_rows
                places.append(np.column_stack([np.full(n, f), np.full(n, g), np.arange(n)]))
        order = np.argsort(np.concatenate(indices), kind="stable")
        self._state = np.concatenate(states)[order]
        self._action = np.concatenate(actions)[order]
        self._episode = np.concatenate(episodes)[order]
        self._task = np.concatenate(tasks)[order]
        self._place = np.concatenate(places)[order]
        self._env_state = np.concatenate(env_states)[order] if has_env else None
        # the row after each episode's last frame
        change = np.nonzero(np.diff(self._episode))[0] + 1
        bounds = np.concatenate([[0], change, [len(self._episode)]])
        self._episode_end = np.repeat(bounds[1:], np.diff(bounds))
        self._episode_start = np.repeat(bounds[:-1], np.diff(bounds))

    @property
    def frame_in_episode(self) -> np.ndarray:
        """[len(self)] each sample's frame number within its episode (0 = the episode's first frame)."""
        return self._rows - self._episode_start[self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        row = int(self._rows[i])
        end = int(self._episode_end[row])
        steps = row + np.arange(self.horizon)
        valid = steps < end
        actions = self._action[np.minimum(steps, end - 1)].astype(np.float64)
        task = int(self._task[row])
        return Sample(
            images=self._images(row),
            state=self._state[row].astype(np.float64),
            actions=actions,
            instruction=self.tasks[task] if 0 <= task < len(self.tasks) else "",
            tag=self.tag,
            valid=valid,
            env_state=None if self._env_state is None else self._env_state[row].astype(np.float64),
        )

    def _images(self, row: int) -> dict[str, np.ndarray]:
        f, g, offset = (int(v) for v in self._place[row])
        group = self._cache.get((f, g))
        if group is None:
            table = pq.ParquetFile(self._files[f]).read_row_group(g, columns=list(self.cameras))
            group = {key: table.column(key).to_pylist() for key in self.cameras}
            self._cache[(f, g)] = group
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end((f, g))
        images = {}
        for key, camera in self.cameras.items():
            cell = group[key][offset]
            data = cell.get("bytes") if isinstance(cell, dict) else None
            if data is None and isinstance(cell, dict) and cell.get("path"):
                data = (self.root / cell["path"]).read_bytes()
            if data is None:
                raise fmt.DatasetFormatError(f"{self._files[f]}: row {offset} of row group {g} has no {key} image")
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise fmt.DatasetFormatError(f"{self._files[f]}: cannot decode the {key} image of row {offset}")
            images[camera] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return images

    @property
    def env_state_names(self) -> tuple[str, ...] | None:
        """Names of the env_state values (e.g. x, y, z); None when the dataset has no environment state."""
        feature = self.info.features.get(fmt.ENV_STATE_KEY)
        if feature is None:
            return None
        names = feature.get("names")
        if isinstance(names, list) and names:
            return tuple(str(n) for n in names)
        return tuple(str(i) for i in range(int(feature["shape"][0])))  # unnamed (other writers): by index

    @property
    def episodes(self) -> list[int]:
        return sorted(set(self._episode[self._rows].tolist()))

    def normalization(self) -> NormalizationSet:
        """State (mean/std) and action (quantile q01/q99) normalization from meta/stats.json, for `tag`."""
        path = self.root / fmt.STATS_PATH
        if not path.is_file():
            raise fmt.DatasetFormatError(f"{path}: missing")
        stats = json.loads(path.read_text())

        def feature(key: str) -> Stats:
            entry = stats.get(key)
            if entry is None:
                raise fmt.DatasetFormatError(f"{path}: no stats for {key}")
            values = {k: entry[k] for k in ("mean", "std", "min", "max")}
            values["q01"] = entry.get("q01", entry["min"])  # datasets written before LeRobot had quantiles
            values["q99"] = entry.get("q99", entry["max"])
            return Stats.from_dict(values)

        norm = EmbodimentNormalization(Normalizer(feature(fmt.STATE_KEY), "mean_std"),
                                       Normalizer(feature(fmt.ACTION_KEY), "quantile"))
        return NormalizationSet({self.tag: norm})


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A column of equally long float lists -> [N, D] float32 (without a Python object per value)."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        values = array.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(array), array.type.list_size).astype(np.float32, copy=False)
    return np.asarray(array.to_pylist(), np.float32)  # variable-length lists (other writers)
