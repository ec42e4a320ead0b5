"""Training samples from a LeRobot v3.0 dataset (ours from `vla_bag_to_dataset`, or one LeRobot wrote, with image
or video features): the `SampleDataset` the Trainer reads.

Sample i is frame i of the chosen split: its images and state, the instruction of its task, and the H actions
from that frame on (padded with the episode's last action past its end, `valid` False there), in physical
units; `env_state` is the frame's observation.environment_state when the dataset has one (training-only
supervision), else None. Numeric columns are loaded once (small); images stay in the parquet files and are
read per row group through a small cache, video frames are decoded by timestamp (`lerobot_video.VideoReader`,
one open decoder per file), so memory does not grow with the dataset. Needs pyarrow, numpy, OpenCV and PyAV.

Every camera feature is read unless `cameras` picks some; a camera the caller requires (`require_cameras`,
e.g. the ones a checkpoint was trained with) that the dataset lacks is an error naming the dataset's cameras
and the mapping that would supply it. A dataset without any camera is an error unless `allow_no_cameras`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet, Normalizer, Stats
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.data import Sample
from vla_policy_node.train.lerobot_video import VideoReader


class LeRobotSamples:
    """A split of a LeRobot v3 dataset as training samples.

    split: "train", "val" (info.json `splits`) or None for every episode. horizon: actions per sample (the
    model's head horizon). tag: embodiment tag of the samples (default: the one the converter recorded, else
    robot_type). cameras: dataset image/video key -> camera name (default: every camera feature, named by the
    key without "observation.images."). require_cameras: camera names every sample must have.
    """

    def __init__(self, root: str | Path, *, split: str | None = "train", horizon: int = 16, tag: str | None = None,
                 cameras: dict[str, str] | None = None, cache_row_groups: int = 8,
                 require_cameras: Sequence[str] = (), allow_no_cameras: bool = False,
                 video_reader: VideoReader | None = None) -> None:
        self.root = Path(root)
        self.info = info = fmt.DatasetInfo.load(self.root)
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        self.horizon = horizon
        vla = fmt.read_vla(self.root, info.raw)
        self.tag = tag or str(vla.get("tag") or info.raw.get("robot_type") or "")
        for key in (fmt.STATE_KEY, fmt.ACTION_KEY):
            if key not in info.features:
                raise fmt.DatasetFormatError(f"{self.root / fmt.INFO_PATH}: no {key!r} feature")
        camera_keys = info.image_keys + info.video_keys
        if cameras is None:
            cameras = {key: key.removeprefix(fmt.IMAGE_PREFIX) for key in camera_keys}
        unknown = [key for key in cameras if key not in camera_keys]
        if unknown:
            raise fmt.DatasetFormatError(f"{self.root}: no camera feature {unknown}; its cameras: {camera_keys}")
        missing = [name for name in require_cameras if name not in cameras.values()]
        if missing:
            raise fmt.DatasetFormatError(
                f"{self.root}: camera(s) {missing} are required (the checkpoint uses them) but the dataset has "
                f"{camera_keys or 'no cameras'}; map one onto each, e.g. cameras "
                f"{ {k: missing[0] for k in camera_keys[:1]} or {'<key>': missing[0]} }")
        if not cameras and not allow_no_cameras:
            raise fmt.DatasetFormatError(f"{self.root}: no camera features (features: {sorted(info.features)}); "
                                         "pass allow_no_cameras=True to train without images")
        self.cameras = cameras
        self._video_keys = [key for key in cameras if key in info.video_keys]
        self._videos = video_reader or VideoReader()
        self.tasks = fmt.read_tasks(self.root)
        self._files = sorted((self.root / fmt.DATA_DIR).glob("*/*.parquet"))
        if not self._files:
            raise fmt.DatasetFormatError(f"{self.root / fmt.DATA_DIR}: no data files")
        self._load_columns()
        self._load_video_places()
        selected = info.split_episodes(split)
        keep = np.ones(len(self._episode), bool) if selected is None else np.isin(self._episode, selected)
        self._rows = np.nonzero(keep)[0]
        if selected is not None and len(self._rows) == 0:
            raise fmt.DatasetFormatError(f"{self.root}: split {split!r} has no frames")
        self._cache: OrderedDict[tuple[int, int], dict[str, list]] = OrderedDict()
        self._cache_size = cache_row_groups

    def _load_columns(self) -> None:
        """State, action, episode, task and each row's place (file, row group, offset); images stay on disk."""
        columns = [fmt.STATE_KEY, fmt.ACTION_KEY, "episode_index", "task_index", "index", "timestamp"]
        has_env = fmt.ENV_STATE_KEY in self.info.features
        if has_env:
            columns.append(fmt.ENV_STATE_KEY)
        states, actions, episodes, tasks, indices, places, env_states, stamps = [], [], [], [], [], [], [], []
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
            stamps.append(table.column("timestamp").to_numpy().astype(np.float64))
            for g in range(parquet.metadata.num_row_groups):
                n = parquet.metadata.row_group(g).num_rows
                places.append(np.column_stack([np.full(n, f), np.full(n, g), np.arange(n)]))
        order = np.argsort(np.concatenate(indices), kind="stable")
        self._state = np.concatenate(states)[order]
        self._action = np.concatenate(actions)[order]
        self._episode = np.concatenate(episodes)[order]
        self._task = np.concatenate(tasks)[order]
        self._place = np.concatenate(places)[order]
        self._timestamp = np.concatenate(stamps)[order]
        self._env_state = np.concatenate(env_states)[order] if has_env else None
        # the row after each episode's last frame
        change = np.nonzero(np.diff(self._episode))[0] + 1
        bounds = np.concatenate([[0], change, [len(self._episode)]])
        self._episode_end = np.repeat(bounds[1:], np.diff(bounds))
        self._episode_start = np.repeat(bounds[:-1], np.diff(bounds))

    def _load_video_places(self) -> None:
        """Per video key and episode: (file path, from_timestamp), from the episodes table."""
        self._video_places: dict[str, dict[int, tuple[Path, float]]] = {}
        if not self._video_keys:
            return
        video_path = self.info.raw.get("video_path")
        if not video_path:
            raise fmt.DatasetFormatError(f"{self.root / fmt.INFO_PATH}: video features but no video_path")
        files = sorted((self.root / fmt.EPISODES_DIR).glob("*/*.parquet"))
        if not files:
            raise fmt.DatasetFormatError(f"{self.root / fmt.EPISODES_DIR}: no episodes table (needed for videos)")
        for key in self._video_keys:
            columns = ["episode_index"] + [f"videos/{key}/{c}" for c in ("chunk_index", "file_index",
                                                                             "from_timestamp")]
            places: dict[int, tuple[Path, float]] = {}
            for path in files:
                table = pq.read_table(path)
                absent = [c for c in columns if c not in table.column_names]
                if absent:
                    raise fmt.DatasetFormatError(f"{path}: no {absent} columns for the video feature {key}")
                for episode, chunk, file, start in zip(*(table.column(c).to_pylist() for c in columns),
                                                       strict=True):
                    places[int(episode)] = (self.root / video_path.format(video_key=key, chunk_index=chunk,
                                                                          file_index=file), float(start))
            self._video_places[key] = places

    @property
    def frame_in_episode(self) -> np.ndarray:
        """[len(self)] each sample's frame number within its episode (0 = the episode's first frame)."""
        return self._rows - self._episode_start[self._rows]

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(state [len, S], action [len, A]) of every frame of the split, without images."""
        return self._state[self._rows], self._action[self._rows]

    @property
    def episode_index(self) -> np.ndarray:
        """[len(self)] each sample's episode index."""
        return self._episode[self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Sample:
        return self.sample(i)

    def sample(self, i: int, *, images: bool = True) -> Sample:
        """Sample i; images=False leaves its images out (numbers only, no image decoding)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        row = int(self._rows[i])
        end = int(self._episode_end[row])
        steps = row + np.arange(self.horizon)
        valid = steps < end
        actions = self._action[np.minimum(steps, end - 1)].astype(np.float64)
        task = int(self._task[row])
        return Sample(
            images=self._images(row) if images else {},
            state=self._state[row].astype(np.float64),
            actions=actions,
            instruction=self.tasks[task] if 0 <= task < len(self.tasks) else "",
            tag=self.tag,
            valid=valid,
            env_state=None if self._env_state is None else self._env_state[row].astype(np.float64),
        )

    def _images(self, row: int) -> dict[str, np.ndarray]:
        images = self._decoded_images(row) if len(self._video_keys) < len(self.cameras) else {}
        for key in self._video_keys:
            episode = int(self._episode[row])
            place = self._video_places[key].get(episode)
            if place is None:
                raise fmt.DatasetFormatError(f"{self.root}: episode {episode} has no {key} video in the episodes "
                                             "table")
            path, start = place
            images[self.cameras[key]] = self._videos.frame(path, start + float(self._timestamp[row]))
        return images

    def encoded_images(self, i: int) -> dict[str, bytes] | None:
        """Sample i's camera images as stored (PNG/JPEG bytes, camera name -> bytes), without decoding them; None
        when a camera is a video feature (its frames exist only decoded)."""
        if self._video_keys:
            return None
        return self._encoded_images(int(self._rows[i]))

    def _decoded_images(self, row: int) -> dict[str, np.ndarray]:
        f, _, offset = (int(v) for v in self._place[row])
        images = {}
        for camera, data in self._encoded_images(row).items():
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise fmt.DatasetFormatError(f"{self._files[f]}: cannot decode the {camera} image of row {offset}")
            images[camera] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return images

    def _encoded_images(self, row: int) -> dict[str, bytes]:
        """The stored bytes of the row's image (non-video) cameras, by camera name."""
        f, g, offset = (int(v) for v in self._place[row])
        group = self._cache.get((f, g))
        if group is None:
            keys = [key for key in self.cameras if key not in self._video_keys]
            table = pq.ParquetFile(self._files[f]).read_row_group(g, columns=keys)
            group = {key: table.column(key).to_pylist() for key in keys}
            self._cache[(f, g)] = group
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end((f, g))
        images = {}
        for key, camera in self.cameras.items():
            if key in self._video_keys:
                continue
            cell = group[key][offset]
            data = cell.get("bytes") if isinstance(cell, dict) else None
            if data is None and isinstance(cell, dict) and cell.get("path"):
                data = (self.root / cell["path"]).read_bytes()
            if data is None:
                raise fmt.DatasetFormatError(f"{self._files[f]}: row {offset} of row group {g} has no {key} image")
            images[camera] = data
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
