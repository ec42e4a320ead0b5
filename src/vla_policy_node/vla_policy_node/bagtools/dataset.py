"""Bags -> a LeRobot v3.0 dataset (layout in `train/lerobot_format.py`), streamed, with a train/val split and
normalization statistics; CLI `vla_bag_to_dataset`.

Episodes come from `BagResampler` (split at the marks, resampled to the policy rate, images resized as the
node resizes them). Each episode is spooled to a temporary parquet file while it is read and committed to the
dataset only when its outcome is final: kept outcomes (default: success and unlabelled) get the next episode
index, failed and discarded ones are dropped. Cameras are MP4 video by default (LeRobot's `video` feature: AV1,
GOP 2, CRF 30 as LeRobot encodes; `train/lerobot_video.py`), or PNG in the data files (`image` feature,
`image_format="png"`): lossless, about 4x larger.

With `environment_state_topic` the dataset also gets `observation.environment_state` (see
`resample.EnvironmentState`): privileged scene values for auxiliary training losses, never a policy input.

Split: the last `val_fraction` of the kept episodes (in recording order) are the validation split
(info.json `splits`: {"train": "0:k", "val": "k:N"}); meta/stats.json is computed over the train split only, so
the normalization a model is trained with never saw validation data. Per-episode stats are in the episodes
table, as LeRobot writes them. Everything is written under `<output>.partial` and renamed at the end: a failed
conversion leaves no dataset behind.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from vla_policy_node.bagtools.cli_common import add_robot_argument, robot_from_args, setup_logging
from vla_policy_node.bagtools.resample import (
    GAP_POLICIES,
    ActionSource,
    BagResampler,
    EnvironmentState,
    EpisodeFrames,
    Frame,
    GapPolicy,
    choose_action_source,
    environment_state_spec,
)
from vla_policy_node.bagtools.topics import BagContentError, fit_embodiment_to_bag
from vla_policy_node.spec.cli import CliParser, UsageError, run_guarded
from vla_policy_node.spec.embodiment import ConfigError, Embodiment
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_video import VideoEncoding, VideoFileWriter
from vla_policy_node.transport.bag import BagError, BagReader, require_bag

Outcome = Literal["success", "unknown", "failure", "discarded"]


class ConversionError(RuntimeError):
    """A conversion that could not produce a complete dataset; the message names the bag and the problem."""


@dataclass(frozen=True)
class ConversionConfig:
    """fps: frames per second (default: 1 / rates.action_dt, which must then be a whole number).
    environment_state_topic: a PointStamped, PoseStamped or Float64MultiArray topic every bag must hold, written
    as observation.environment_state (training-only supervision, e.g. the simulated target's position)."""

    fps: int | None = None
    action_source: ActionSource = "auto"
    val_fraction: float = 0.1
    keep_outcomes: tuple[str, ...] = ("success", "unknown")
    repo_id: str = "local/vla_demonstrations"
    max_gap: float = 0.25
    data_file_mb: int = fmt.DATA_FILE_SIZE_MB
    row_group_frames: int = 32
    png_compression: int = 3
    min_frames: int = 2
    progress: bool = False
    environment_state_topic: str | None = None
    on_gap: GapPolicy = "split"
    image_format: Literal["video", "png"] = "video"
    video: VideoEncoding = field(default_factory=VideoEncoding)
    video_file_mb: int = fmt.VIDEO_FILE_SIZE_MB

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        unknown = set(self.keep_outcomes) - {"success", "unknown", "failure", "discarded"}
        if unknown:
            raise ValueError(f"keep_outcomes: unknown outcome(s) {sorted(unknown)}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError("fps must be positive")
        if self.image_format not in ("video", "png"):
            raise ValueError(f"image_format must be video or png, not {self.image_format!r}")
        if self.on_gap not in GAP_POLICIES:
            raise ValueError(f"on_gap must be one of {', '.join(GAP_POLICIES)}")
        if self.environment_state_topic is not None and not self.environment_state_topic.strip():
            raise ValueError("environment_state_topic must be a topic name")


def dataset_fps(embodiment: Embodiment, fps: int | None) -> int:
    if fps is not None:
        return int(fps)
    rate = 1.0 / embodiment.rates.action_dt
    if abs(rate - round(rate)) > 1e-6:
        raise ConfigError(f"rates.action_dt {embodiment.rates.action_dt} s is not a whole number of frames per "
                          "second (LeRobot needs an integer fps); pass fps explicitly")
    return round(rate)


def dataset_features(embodiment: Embodiment, environment_state: EnvironmentState | None = None,
                     video: VideoEncoding | None = None, fps: int = 0) -> dict[str, dict[str, Any]]:
    """The dataset's features; cameras are `video` features (with LeRobot's info block) when `video` is given."""
    features: dict[str, dict[str, Any]] = {}
    for cam in embodiment.cameras:
        feature: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [cam.height, cam.width, 3],
                                   "names": ["height", "width", "channels"]}
        if video is not None:
            feature["info"] = video.info(cam.height, cam.width, fps)
        features[fmt.image_key(cam.name)] = feature
    features[fmt.STATE_KEY] = {"dtype": "float32", "shape": [embodiment.state_dim],
                               "names": list(embodiment.state_names)}
    if environment_state is not None:
        features[fmt.ENV_STATE_KEY] = {"dtype": "float32", "shape": [environment_state.dim],
                                       "names": list(environment_state.names)}
    features[fmt.ACTION_KEY] = {"dtype": "float32", "shape": [embodiment.action_dim],
                                "names": list(embodiment.action_names)}
    return {**features, **fmt.DEFAULT_FEATURES}


@dataclass
class _ImageStats:
    """Per-channel pixel histograms (exact and cheap for uint8), reported as LeRobot's image stats: values in
    [0, 1], shape [3, 1, 1], count = frames."""

    histogram: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    frames: int = 0

    def add(self, rgb: np.ndarray) -> None:
        for c in range(3):
            self.histogram[c] += np.bincount(rgb[..., c].ravel(), minlength=256)
        self.frames += 1

    def merge(self, other: _ImageStats) -> None:
        self.histogram += other.histogram
        self.frames += other.frames

    def stats(self) -> dict[str, Any]:
        levels = np.arange(256) / 255.0
        pixels = self.histogram.sum(1)
        mean = self.histogram @ levels / pixels
        std = np.sqrt(np.maximum(self.histogram @ (levels * levels) / pixels - mean * mean, 0.0))
        present = self.histogram > 0
        low = np.array([levels[np.argmax(p)] for p in present])
        high = np.array([levels[255 - np.argmax(p[::-1])] for p in present])
        cumulative = np.cumsum(self.histogram, axis=1) / np.maximum(pixels[:, None], 1)

        def shaped(v: np.ndarray) -> list:
            return v.reshape(3, 1, 1).tolist()

        out = {"min": shaped(low), "max": shaped(high), "mean": shaped(mean), "std": shaped(std)}
        for name, q in fmt.QUANTILES.items():  # LeRobot >= 0.4 writes these for images too (its resume needs them)
            out[name] = shaped(np.array([levels[np.searchsorted(c, q)] for c in cumulative]))
        out["count"] = [self.frames]
        return out


def vector_stats(data: np.ndarray) -> dict[str, list]:
    """LeRobot's stats of one numeric feature over frames [N, D] (or [N]): each value a list of D."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    out = {"min": data.min(0), "max": data.max(0), "mean": data.mean(0), "std": data.std(0)}
    out.update({name: np.quantile(data, q, axis=0) for name, q in fmt.QUANTILES.items()})
    result: dict[str, list] = {k: v.tolist() for k, v in out.items()}
    result["count"] = [int(data.shape[0])]
    return result


@dataclass
class _Spool:
    """One episode's frames on disk until its outcome is final."""

    path: Path
    writer: pq.ParquetWriter | None = None
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    env_states: list[np.ndarray] = field(default_factory=list)
    images: dict[str, _ImageStats] = field(default_factory=dict)
    frames: int = 0


@dataclass
class _EpisodeRecord:
    index: int
    task: str
    length: int
    chunk: int
    file: int
    start: int
    states: np.ndarray
    actions: np.ndarray
    images: dict[str, _ImageStats]
    outcome: str
    source: str
    source_start: float
    env_states: np.ndarray | None = None  # [length, E] when the dataset has an environment state
    segment: int = 0  # part of the recorded episode after `segment` gaps
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # episodes-table video columns per camera


class LeRobotWriter:
    """Writes a LeRobot v3 dataset from episodes handed over by BagResampler (it is the resampler's sink)."""

    def __init__(self, output: Path, embodiment: Embodiment, fps: int, config: ConversionConfig,
                 environment_state: EnvironmentState | None = None) -> None:
        self.output = output
        self.partial = output.with_name(output.name + ".partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        (self.partial / "spool").mkdir(parents=True)
        self.emb = embodiment
        self.fps = fps
        self.config = config
        self.environment_state = environment_state
        self.video = config.video if config.image_format == "video" else None
        self.features = dataset_features(embodiment, environment_state, self.video, fps)
        self.schema = fmt.frame_schema(self.features)  # the data files (no video columns)
        self.spool_schema = fmt.frame_schema(dataset_features(embodiment, environment_state))  # PNG per camera
        self.video_files: dict[str, VideoFileWriter] = {}
        self.video_places: dict[str, tuple[int, int]] = {}
        self.cameras = list(embodiment.camera_names)
        self.spools: dict[int, _Spool] = {}
        self.records: list[_EpisodeRecord] = []
        self.tasks: list[str] = []
        self.dropped: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.total_frames = 0
        self.chunk, self.file = 0, 0
        self.writer: pq.ParquetWriter | None = None
        self.file_bytes = 0
        self.current_source = ""

    # --------------------------------------------------------------------------------------- sink protocol
    def begin(self, episode: EpisodeFrames) -> None:
        key = id(episode)
        self.spools[key] = _Spool(self.partial / "spool" / f"{len(self.spools)}-{episode.episode.index}.parquet",
                                  images={c: _ImageStats() for c in self.cameras})

    def frames(self, episode: EpisodeFrames, frames: list[Frame]) -> None:
        spool = self.spools[id(episode)]
        columns: dict[str, list[Any]] = {fmt.image_key(c): [] for c in self.cameras}
        for frame in frames:
            for cam in self.cameras:
                rgb = frame.images[cam]
                spool.images[cam].add(rgb)
                columns[fmt.image_key(cam)].append({"bytes": self._png(rgb), "path": None})
            spool.states.append(frame.state.astype(np.float32))
            spool.actions.append(frame.action.astype(np.float32))
            if self.environment_state is not None:
                assert frame.environment_state is not None  # the resampler skips frames without one
                spool.env_states.append(frame.environment_state.astype(np.float32))
        n = len(frames)
        first = spool.frames
        spool.frames += n
        states = np.stack(spool.states[first:])
        actions = np.stack(spool.actions[first:])
        frame_index = np.arange(first, first + n)
        columns.update({
            fmt.STATE_KEY: _fixed_list(states, self.emb.state_dim),
            fmt.ACTION_KEY: _fixed_list(actions, self.emb.action_dim),
            "timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
            "frame_index": pa.array(frame_index, pa.int64()),
            "episode_index": pa.array(np.zeros(n, np.int64)),
            "index": pa.array(np.zeros(n, np.int64)),
            "task_index": pa.array(np.zeros(n, np.int64)),
        })
        if self.environment_state is not None:
            columns[fmt.ENV_STATE_KEY] = _fixed_list(np.stack(spool.env_states[first:]), self.environment_state.dim)
        table = pa.table({name: columns[name] for name in self.spool_schema.names}, schema=self.spool_schema)
        if spool.writer is None:
            spool.writer = pq.ParquetWriter(spool.path, self.spool_schema, compression="snappy")
        spool.writer.write_table(table, row_group_size=self.config.row_group_frames)

    def end(self, episode: EpisodeFrames) -> None:
        spool = self.spools.pop(id(episode))
        if spool.writer is not None:
            spool.writer.close()
        ep = episode.episode
        where = f"{episode.source} episode {ep.index}" + (f" segment {episode.segment}" if episode.segment else "")
        if episode.cut:
            self.warnings.append(f"{where}: {episode.cut}")
        reason = ""
        if ep.outcome not in self.config.keep_outcomes:
            reason = f"outcome {ep.outcome}"
        elif spool.frames == 0 and episode.segment:
            reason = "no complete frame after the gap (an input ended before the episode)"
        elif spool.frames < self.config.min_frames:
            reason = f"only {spool.frames} frame(s)"
        if reason:
            self.dropped.append({"source": episode.source, "episode": ep.index, "segment": episode.segment,
                                 "reason": reason})
            spool.path.unlink(missing_ok=True)
            return
        self._commit(episode, spool)

    # ---------------------------------------------------------------------------------------------- commit
    def _png(self, rgb: np.ndarray) -> bytes:
        level = 1 if self.video is not None else self.config.png_compression  # spooled only: fast
        ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level])
        if not ok:
            raise ConversionError("OpenCV could not encode a PNG")
        return buffer.tobytes()

    def _commit(self, episode: EpisodeFrames, spool: _Spool) -> None:
        """Append the spooled episode to the current data file (a new file once this one is full)."""
        ep = episode.episode
        task = ep.instruction
        if task not in self.tasks:
            self.tasks.append(task)
        task_index = self.tasks.index(task)
        spool_bytes = spool.path.stat().st_size
        if self.writer is not None and self.file_bytes + spool_bytes > self.config.data_file_mb * 1e6:
            self.writer.close()
            self.writer = None
            self.chunk, self.file = fmt.next_file(self.chunk, self.file)
            self.file_bytes = 0
        if self.writer is None:
            path = self.partial / fmt.data_path(self.chunk, self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")
        index = len(self.records)
        start = self.total_frames
        videos = self._start_videos(spool)
        source = pq.ParquetFile(spool.path)
        offset = 0
        for batch in source.iter_batches(batch_size=self.config.row_group_frames):
            n = batch.num_rows
            table = self._encode_videos(pa.Table.from_batches([batch]))
            for name, values in (("episode_index", np.full(n, index)), ("task_index", np.full(n, task_index)),
                                 ("index", np.arange(start + offset, start + offset + n))):
                table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.int64()))
            self.writer.write_table(table, row_group_size=self.config.row_group_frames)
            offset += n
        source.close()
        spool.path.unlink()
        self.file_bytes += spool_bytes
        self.total_frames += spool.frames
        for key, place in videos.items():
            place["to_timestamp"] = self.video_files[key].duration_s
        self.records.append(_EpisodeRecord(index, task, spool.frames, self.chunk, self.file, start,
                                           np.stack(spool.states), np.stack(spool.actions), spool.images,
                                           ep.outcome, episode.source,
                                           ep.start if math.isnan(episode.first_t) else episode.first_t,
                                           np.stack(spool.env_states) if spool.env_states else None,
                                           episode.segment, videos))

    def _start_videos(self, spool: _Spool) -> dict[str, dict[str, Any]]:
        """Open (or continue) each camera's video file for the next episode; its episodes-table columns."""
        if self.video is None:
            return {}
        places = {}
        for cam in self.emb.cameras:
            key = fmt.image_key(cam.name)
            writer = self.video_files.get(key)
            if writer is not None and writer.bytes > self.config.video_file_mb * 1e6:
                writer.close()
                self.video_places[key] = fmt.next_file(*self.video_places[key])
                writer = None
            if writer is None:
                chunk, file = self.video_places.setdefault(key, (0, 0))
                path = self.partial / fmt.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
                writer = VideoFileWriter(path, self.fps, cam.height, cam.width, self.video)
                self.video_files[key] = writer
            chunk, file = self.video_places[key]
            places[key] = {"chunk_index": chunk, "file_index": file, "from_timestamp": writer.duration_s}
        return places

    def _encode_videos(self, table: pa.Table) -> pa.Table:
        """Feed a spooled batch's camera frames to the video files; the batch without them."""
        if self.video is None:
            return table
        for key, writer in self.video_files.items():
            for cell in table.column(key).to_pylist():
                bgr = cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ConversionError(f"OpenCV could not decode a spooled PNG of {key}")
                writer.add(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            table = table.drop_columns([key])
        return table

    # ---------------------------------------------------------------------------------------------- finish
    def finish(self, extra_info: dict[str, Any]) -> dict[str, Any]:
        """Write the metadata and move the dataset into place; returns info.json's content."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for video in self.video_files.values():
            video.close()
        if not self.records:
            raise ConversionError("no episode was kept: " + (
                "; ".join(f"{d['source']} episode {d['episode']}: {d['reason']}" for d in self.dropped)
                or "the bags produced no complete frame"))
        n = len(self.records)
        n_val = 0
        if self.config.val_fraction > 0 and n >= 2:
            n_val = min(n - 1, max(1, round(self.config.val_fraction * n)))
        n_train = n - n_val
        splits = {"train": f"0:{n_train}"}
        if n_val:
            splits["val"] = f"{n_train}:{n}"
        else:
            self.warnings.append(f"{n} episode(s): no validation split")
        (self.partial / "meta").mkdir(exist_ok=True)
        pq.write_table(fmt.tasks_table(self.tasks), self.partial / fmt.TASKS_PATH)
        self._write_episodes(n_train)
        stats = self._dataset_stats(self.records[:n_train])
        (self.partial / fmt.STATS_PATH).write_text(json.dumps(stats, indent=4))
        info = {
            "codebase_version": fmt.CODEBASE_VERSION,
            "robot_type": self.emb.name,
            "total_episodes": n,
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": fmt.CHUNKS_SIZE,
            "data_files_size_in_mb": self.config.data_file_mb,
            "video_files_size_in_mb": fmt.VIDEO_FILE_SIZE_MB,
            "fps": self.fps,
            "splits": splits,
            "data_path": fmt.DATA_PATH,
            "video_path": fmt.VIDEO_PATH if self.video is not None else None,
            "features": self.features,
            "vla": {"embodiment": self.emb.name, "tag": self.emb.tag, "action_space": self.emb.action_space.type,
                    "splits": splits, "stats_split": "train", "repo_id": self.config.repo_id, **extra_info},
        }
        lerobot_info = {k: v for k, v in info.items() if k != "vla"}
        (self.partial / fmt.INFO_PATH).write_text(json.dumps(lerobot_info, indent=4))
        (self.partial / fmt.VLA_PATH).write_text(json.dumps(info["vla"], indent=4))
        shutil.rmtree(self.partial / "spool")
        if self.output.exists():
            shutil.rmtree(self.output)
        self.partial.rename(self.output)
        return info

    def abort(self) -> None:
        for video in self.video_files.values():
            with contextlib.suppress(Exception):  # the partial dataset is deleted anyway
                video.close()
        for spool in self.spools.values():
            if spool.writer is not None:
                spool.writer.close()
        if self.writer is not None:
            self.writer.close()
        shutil.rmtree(self.partial, ignore_errors=True)

    def _episode_stats(self, record: _EpisodeRecord) -> dict[str, dict[str, Any]]:
        n = record.length
        frame_index = np.arange(n)
        stats = {fmt.STATE_KEY: vector_stats(record.states), fmt.ACTION_KEY: vector_stats(record.actions),
                 "timestamp": vector_stats(frame_index / self.fps), "frame_index": vector_stats(frame_index),
                 "episode_index": vector_stats(np.full(n, record.index)),
                 "index": vector_stats(np.arange(record.start, record.start + n)),
                 "task_index": vector_stats(np.full(n, self.tasks.index(record.task)))}
        if record.env_states is not None:
            stats[fmt.ENV_STATE_KEY] = vector_stats(record.env_states)
        for cam in self.cameras:
            stats[fmt.image_key(cam)] = record.images[cam].stats()
        return stats

    def _write_episodes(self, n_train: int) -> None:
        rows: list[dict[str, Any]] = []
        for record in self.records:
            row: dict[str, Any] = {
                "episode_index": record.index,
                "tasks": [record.task],
                "length": record.length,
                "data/chunk_index": record.chunk,
                "data/file_index": record.file,
                "dataset_from_index": record.start,
                "dataset_to_index": record.start + record.length,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "vla/outcome": record.outcome,
                "vla/split": "train" if record.index < n_train else "val",
                "vla/source_bag": record.source,
                "vla/source_start_s": record.source_start,
                "vla/source_segment": record.segment,
            }
            for key, place in record.videos.items():
                for name, value in place.items():
                    row[f"videos/{key}/{name}"] = value
            for key, feature_stats in self._episode_stats(record).items():
                for name, value in feature_stats.items():
                    row[f"stats/{key}/{name}"] = value
            rows.append(row)
        table = pa.Table.from_pylist(rows)
        path = self.partial / fmt.EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

    def _dataset_stats(self, records: list[_EpisodeRecord]) -> dict[str, Any]:
        states = np.concatenate([r.states for r in records])
        actions = np.concatenate([r.actions for r in records])
        frame_index = np.concatenate([np.arange(r.length) for r in records])
        stats: dict[str, Any] = {
            fmt.STATE_KEY: vector_stats(states), fmt.ACTION_KEY: vector_stats(actions),
            "timestamp": vector_stats(frame_index / self.fps), "frame_index": vector_stats(frame_index),
            "episode_index": vector_stats(np.concatenate([np.full(r.length, r.index) for r in records])),
            "index": vector_stats(np.concatenate([np.arange(r.start, r.start + r.length) for r in records])),
            "task_index": vector_stats(np.concatenate([np.full(r.length, self.tasks.index(r.task))
                                                       for r in records])),
        }
        if self.environment_state is not None:
            stats[fmt.ENV_STATE_KEY] = vector_stats(np.concatenate([r.env_states for r in records
                                                                    if r.env_states is not None]))
        for cam in self.cameras:
            total = _ImageStats()
            for record in records:
                total.merge(record.images[cam])
            stats[fmt.image_key(cam)] = total.stats()
        return stats


def _fixed_list(values: np.ndarray, dim: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), dim)


# ------------------------------------------------------------------------------------------------- driver


@dataclass
class ConversionSummary:
    output: Path
    info: dict[str, Any]
    episodes: int
    frames: int
    dropped: list[dict[str, Any]]
    warnings: list[str]
    wall_s: float
    bag_bytes: int

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def bag_mb_per_s(self) -> float:
        return self.bag_bytes / 1e6 / self.wall_s if self.wall_s > 0 else math.nan


def convert_bags(bags: Sequence[str | Path], embodiment: Embodiment, output: str | Path,
                 config: ConversionConfig | None = None) -> ConversionSummary:
    """Convert `bags` (in order) into one dataset at `output` (replaced if it exists)."""
    config = config or ConversionConfig()
    output = Path(output)
    fps = dataset_fps(embodiment, config.fps)
    start = time.perf_counter()
    environment_state = _environment_state(bags, config.environment_state_topic)
    for bag in bags:  # before anything is written: a mistyped path leaves the output (and its .partial) alone
        try:
            require_bag(Path(bag))
        except BagError as error:
            raise ConversionError(f"{bag}: {error}") from error
    writer = LeRobotWriter(output, embodiment, fps, config, environment_state)
    total_bytes = 0
    action_sources = {}
    try:
        for bag in bags:
            path = Path(bag)
            try:
                with BagReader(path) as reader:
                    topics, counts = reader.topics, reader.message_counts
                    emb = fit_embodiment_to_bag(embodiment, topics, counts)
                    source = choose_action_source(emb, topics, counts, config.action_source)
                    action_sources[str(path)] = source
                    if environment_state is not None:
                        _check_environment_state(reader, environment_state)
                    bar = tqdm(total=reader.message_count, unit="msg", desc=f"convert {path.name}",
                               disable=not config.progress, mininterval=0.5)
                    resampler = BagResampler(reader, emb, fps, source, writer, max_gap=config.max_gap,
                                             batch=config.row_group_frames, source=str(path),
                                             on_message=functools.partial(bar.update, 1),
                                             environment_state=environment_state, on_gap=config.on_gap)
                    resampler.run()
                    bar.close()
                    writer.warnings += [f"{path}: {w}" for w in resampler.tracker.warnings]
                    if resampler.state.out_of_order:
                        writer.warnings.append(f"{path}: {resampler.state.out_of_order} joint state(s) on "
                                               f"{emb.joint_states.topic} arrived too late to be used")
                    errors = resampler.errors.counts()
                    if errors:
                        writer.warnings.append(f"{path}: rejected messages " + ", ".join(
                            f"{t} {p} x{n}" for (t, p), n in sorted(errors.items())))
            except (BagError, BagContentError) as error:
                raise ConversionError(f"{path}: {error}") from error
            total_bytes += _bag_bytes(path)
        extra: dict[str, Any] = {"source_bags": [str(b) for b in bags], "action_source": action_sources,
                                 "dropped_episodes": writer.dropped, "warnings": writer.warnings}
        if environment_state is not None:
            extra["environment_state"] = {"topic": environment_state.topic, "msgtype": environment_state.msgtype}
        info = writer.finish(extra)
    except BaseException:
        writer.abort()
        raise
    return ConversionSummary(output, info, info["total_episodes"], info["total_frames"], writer.dropped,
                             writer.warnings, time.perf_counter() - start, total_bytes)


def _environment_state(bags: Sequence[str | Path], topic: str | None) -> EnvironmentState | None:
    """The dataset's environment state, as the first bag has it (every bag is checked against it)."""
    if topic is None or not bags:
        return None
    path = Path(bags[0])
    try:
        with BagReader(path) as reader:
            return environment_state_spec(reader, topic)
    except (BagError, BagContentError) as error:
        raise ConversionError(f"{path}: {error}") from error


def _check_environment_state(reader: BagReader, expected: EnvironmentState) -> None:
    found = environment_state_spec(reader, expected.topic)
    if found != expected:
        raise BagContentError(f"environment state: {expected.topic} is {found.msgtype} with {found.dim} values "
                              f"here, {expected.msgtype} with {expected.dim} in the first bag; a dataset has one "
                              "shape")


def _bag_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


# ---------------------------------------------------------------------------------------------------- CLI

PROGRAM = "vla_bag_to_dataset"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("bags", nargs="+", help="rosbag2 directories, in recording order")
    add_robot_argument(parser)
    parser.add_argument("-o", "--output", required=True, help="dataset directory (LeRobot root)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --output")
    parser.add_argument("--fps", type=int, default=None, help="frame rate (default: 1 / rates.action_dt)")
    parser.add_argument("--action-source", dest="action_source", choices=("auto", "commands", "next_state"),
                        default="auto", help="actions from the recorded commands or the next joint state")
    parser.add_argument("--val-fraction", dest="val_fraction", type=float, default=0.1,
                        help="share of the (last) episodes in the validation split")
    parser.add_argument("--keep", default="success,unknown",
                        help="episode outcomes to keep (of success, unknown, failure, discarded)")
    parser.add_argument("--repo-id", dest="repo_id", default="local/vla_demonstrations",
                        help="dataset name recorded in info.json (LeRobot's repo_id)")
    parser.add_argument("--environment-state-topic", dest="environment_state_topic", default=None,
                        help="PointStamped/PoseStamped/Float64MultiArray topic written as "
                             "observation.environment_state (training-only supervision)")
    parser.add_argument("--on-gap", dest="on_gap", choices=GAP_POLICIES, default="split",
                        help="a camera/joint-state dropout inside an episode: split the episode there (default), "
                             "truncate it, or stop with an error")
    parser.add_argument("--image-format", dest="image_format", choices=("video", "png"), default="video",
                        help="cameras as MP4 video (LeRobot's default) or PNG frames in the data files")
    parser.add_argument("--video-codec", dest="video_codec", choices=("av1", "h264"), default="av1",
                        help="video codec (AV1 via SVT-AV1 as LeRobot writes, or H.264)")
    parser.add_argument("--video-crf", dest="video_crf", type=int, default=30,
                        help="video quality: constant rate factor (lower = better, larger)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    return run_guarded(PROGRAM, lambda: _run(args), args.debug)


def _run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    try:
        embodiment = robot_from_args(args)
        config = ConversionConfig(fps=args.fps, action_source=args.action_source, val_fraction=args.val_fraction,
                                  keep_outcomes=tuple(s.strip() for s in args.keep.split(",") if s.strip()),
                                  repo_id=args.repo_id, progress=args.progress,
                                  environment_state_topic=args.environment_state_topic, on_gap=args.on_gap,
                                  image_format=args.image_format,
                                  video=VideoEncoding(codec=args.video_codec, crf=args.video_crf))
        dataset_fps(embodiment, config.fps)
    except (ConfigError, ValueError) as error:
        raise UsageError(error) from error
    if output.exists() and not args.overwrite:
        raise UsageError(f"{output} exists (use --overwrite to replace it)")
    summary = convert_bags(args.bags, embodiment, output, config)
    splits = summary.info["splits"]
    print(f"{PROGRAM}: {summary.episodes} episodes, {summary.frames} frames at {summary.info['fps']} fps -> "
          f"{output} (splits {splits}); {summary.frames_per_s:.0f} frames/s, {summary.bag_mb_per_s:.1f} MB/s")
    for dropped in summary.dropped:
        print(f"  dropped {dropped['source']} episode {dropped['episode']}: {dropped['reason']}")
    for warning in summary.warnings:
        print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
