"""The LeRobot dataset v3.0 layout, written once for the bag converter (writer) and the training reader.

    meta/info.json                                  codebase_version "v3.0", fps, features, splits, paths
    meta/stats.json                                 per feature: min max mean std count q01 q10 q50 q90 q99
    meta/tasks.parquet                              task string (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode: tasks, length, data file, frame range,
                                                    stats/<feature>/<stat>
    data/chunk-{chunk:03d}/file-{file:03d}.parquet  one row per frame: observation.state, action,
                                                    observation.images.<camera> (PNG, as HF `Image`), timestamp,
                                                    frame_index, episode_index, index, task_index
                                                    [, observation.environment_state]

observation.environment_state (LeRobot's name for privileged scene state, e.g. a target's position) is
optional: training may use it for auxiliary losses, the policy never sees it.

Images are stored as LeRobot stores features of dtype "image": an Arrow struct {bytes, path} holding the PNG.
Only pyarrow and numpy are needed here (no torch, no ROS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILE_SIZE_MB = 100
VIDEO_FILE_SIZE_MB = 500
INFO_PATH = "meta/info.json"
VLA_PATH = "meta/vla.json"  # our own metadata (embodiment tag, sources, splits' origin): LeRobot drops unknown
# info.json keys when it rewrites the file (resume, tools), but leaves other files in meta/ alone
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DATA_DIR = "data"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = DATA_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# pandas' own metadata for a one-column frame whose (unnamed) index holds the task strings, so that
# `pandas.read_parquet("meta/tasks.parquet")` gives LeRobot the frame it expects without pandas here.
_TASKS_PANDAS_METADATA = {
    "index_columns": ["__index_level_0__"],
    "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                        "metadata": {"encoding": "UTF-8"}}],
    "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
         "metadata": None},
    ],
    "creator": {"library": "pyarrow", "version": pa.__version__},
    "pandas_version": "2.2.3",
}
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def read_vla(root: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our metadata block: meta/vla.json, or info.json's `vla` key (datasets written before it moved)."""
    path = root / VLA_PATH
    if path.is_file():
        try:
            return dict(json.loads(path.read_text()))
        except json.JSONDecodeError as error:
            raise DatasetFormatError(f"{path}: not valid JSON: {error}") from error
    return dict((info or {}).get("vla") or {})


class DatasetFormatError(ValueError):
    """A dataset directory that is not a LeRobot v3 dataset this code can read; the message names the file."""


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def data_path(chunk_index: int, file_index: int) -> str:
    return DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def next_file(chunk_index: int, file_index: int, chunks_size: int = CHUNKS_SIZE) -> tuple[int, int]:
    """The (chunk, file) after this one: files fill a chunk directory, then the next chunk starts."""
    return (chunk_index + 1, 0) if file_index == chunks_size - 1 else (chunk_index, file_index + 1)


def frame_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Arrow schema of the data files for `features` (what HF datasets' Value/Sequence/Image map to)."""
    fields = []
    for key, ft in features.items():
        dtype, shape = ft["dtype"], list(ft["shape"])
        if dtype == "image":
            fields.append(pa.field(key, IMAGE_TYPE))
        elif dtype == "video":
            continue
        elif shape == [1]:
            fields.append(pa.field(key, pa.from_numpy_dtype(dtype)))
        elif len(shape) == 1:
            fields.append(pa.field(key, pa.list_(pa.from_numpy_dtype(dtype), shape[0])))
        else:
            raise DatasetFormatError(f"feature {key}: shape {shape} is not supported here")
    return pa.schema(fields)


def tasks_table(tasks: list[str]) -> pa.Table:
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(_TASKS_PANDAS_METADATA).encode()})


def read_tasks(root: Path) -> list[str]:
    """Task strings by task_index, from a tasks.parquet written by us or by pandas (LeRobot)."""
    import pyarrow.parquet as pq

    path = root / TASKS_PATH
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing")
    table = pq.read_table(path)
    names = table.column_names
    text_column = next((c for c in ("__index_level_0__", "task") if c in names), None)
    if text_column is None or "task_index" not in names:
        raise DatasetFormatError(f"{path}: expected a task_index column and the task strings, got {names}")
    tasks = table.column(text_column).to_pylist()
    order = table.column("task_index").to_pylist()
    out = [""] * len(tasks)
    for index, task in zip(order, tasks, strict=True):
        out[int(index)] = str(task)
    return out


@dataclass(frozen=True)
class DatasetInfo:
    """The parts of meta/info.json the reader relies on."""

    root: Path
    fps: float
    features: dict[str, dict[str, Any]]
    splits: dict[str, str]
    total_episodes: int
    total_frames: int
    data_path: str
    raw: dict[str, Any]

    @classmethod
    def load(cls, root: str | Path) -> DatasetInfo:
        root = Path(root)
        path = root / INFO_PATH
        if not path.is_file():
            raise DatasetFormatError(f"{path}: missing (is {root} a LeRobot dataset?)")
        try:
            info = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DatasetFormatError(f"{path}: not valid JSON: {error}") from error
        version = str(info.get("codebase_version", ""))
        if not version.startswith("v3."):
            raise DatasetFormatError(f"{path}: codebase_version {version!r}; this reader reads LeRobot v3.x "
                                     "(convert older datasets with LeRobot's convert_dataset_v21_to_v30)")
        missing = [k for k in ("fps", "features", "total_episodes", "total_frames", "data_path") if k not in info]
        if missing:
            raise DatasetFormatError(f"{path}: missing {missing}")
        return cls(root, float(info["fps"]), info["features"], _splits(root, info),
                   int(info["total_episodes"]), int(info["total_frames"]), str(info["data_path"]), info)

    @property
    def image_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] == "image"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] == "video"]

    def split_episodes(self, split: str | None) -> list[int] | None:
        """Episode indices of a split ("train", "val", ...); None for all episodes."""
        if split is None:
            return None
        spec = self.splits.get(split)
        if spec is None:
            raise DatasetFormatError(f"{self.root / INFO_PATH}: no split {split!r}; splits: {sorted(self.splits)}")
        episodes: list[int] = []
        for part in spec.split(","):
            start, _, stop = part.partition(":")
            episodes += range(int(start), int(stop))
        return episodes


def _splits(root: Path, info: dict[str, Any]) -> dict[str, str]:
    """The splits the converter made (meta/vla.json: LeRobot's resume rewrites info.json's to all-train);
    episodes appended later by other tools join the train split."""
    ours = read_vla(root, info).get("splits")
    if not ours:
        return dict(info.get("splits") or {})
    splits = dict(ours)
    covered = max(int(part.partition(":")[2]) for spec in splits.values() for part in spec.split(","))
    total = int(info.get("total_episodes", covered))
    if total > covered:
        splits["train"] = f"{splits['train']},{covered}:{total}" if splits.get("train") else f"{covered}:{total}"
    return splits
