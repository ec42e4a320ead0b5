"""Checkpoint directory: config JSON, safetensors weights, processor/tokenizer files, normalization stats.

    <dir>/vla_config.json      format version, backbone config (truncated transformers config inside),
                               head config ("type": flow | asa; none = flow), embodiment slots
    <dir>/model.safetensors    every weight (backbone.* and head.*)
    <dir>/normalization.json   state/action stats per embodiment tag
    <dir>/<processor files>    tokenizer.json, preprocessor_config.json, chat template, ...
    <dir>/<head files>         what a head needs beyond config and tensors (FAST adapter: fast_bpe.json)

Local directories and model-hub ids share one path: a hub id is first resolved to a local snapshot.
No pickle anywhere: weights are safetensors, everything else JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.backbone import Backbone, BackboneConfig, load_checkpoint_processor
from vla_policy_node.model.backbone_inputs import BackboneInputs
from vla_policy_node.model.embodiment_slot import EmbodimentSlot
from vla_policy_node.model.families import resolve_family
from vla_policy_node.model.heads import build_head, head_config_from_dict, head_config_to_dict
from vla_policy_node.model.vla_model import VLAConfig, VLAModel
from vla_policy_node.spec.normalization import NormalizationSet

FORMAT = "vla_policy_node/1"
CONFIG_FILE = "vla_config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZATION_FILE = "normalization.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file or tensor at fault."""


# --- config <-> JSON -------------------------------------------------------------------------------------------
def vla_config_to_dict(config: VLAConfig) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "backbone": config.backbone.to_dict(),
        "head": head_config_to_dict(config.head),
        "embodiments": [s.to_dict() for s in config.embodiments],
        **({"aux": config.aux.to_dict()} if config.aux is not None else {}),
    }


def vla_config_from_dict(data: dict[str, Any]) -> VLAConfig:
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{CONFIG_FILE}: format is {data.get('format')!r}, expected {FORMAT!r}")
    try:
        return VLAConfig(
            backbone=BackboneConfig.from_dict(data["backbone"]),
            head=head_config_from_dict(data["head"]),
            embodiments=tuple(EmbodimentSlot.from_dict(s) for s in data["embodiments"]),
            aux=AuxProbeConfig.from_dict(data.get("aux")),
        )
    except KeyError as exc:
        raise CheckpointError(f"{CONFIG_FILE}: missing entry {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{CONFIG_FILE}: {exc}") from exc


# --- save ------------------------------------------------------------------------------------------------------
def save_checkpoint(model: VLAModel, normalization: NormalizationSet, directory: str | Path) -> Path:
    """Write a self-contained checkpoint. The backbone config stored is the truncated one, so loading never
    needs the original (possibly hub-hosted) backbone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    missing = [s.tag for s in model.config.embodiments if s.tag not in normalization.by_tag]
    if missing:
        raise CheckpointError(f"no normalization stats for embodiment(s) {missing}")
    config = dataclasses.replace(model.config, backbone=model.backbone.checkpoint_config())
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "vla_format": FORMAT})
    os.replace(tmp, directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(vla_config_to_dict(config), indent=2))
    (directory / NORMALIZATION_FILE).write_text(json.dumps(normalization.to_dict(), indent=2))
    model.backbone.save_processor(directory)
    save_files = getattr(model.head, "save_files", None)
    if save_files is not None:
        save_files(directory)
    return directory


# --- load ------------------------------------------------------------------------------------------------------
def resolve_source(source: str | Path) -> Path:
    """A local checkpoint directory, or a model-hub id resolved to its local snapshot (cache or download)."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"checkpoint {path} is a file; expected a directory")
        return path
    text = str(source)
    local = path if path.is_absolute() else Path.cwd() / path
    if text.startswith((".", "/", "~")) or text.count("/") != 1 or local.parent.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {local}")
    from huggingface_hub import snapshot_download  # only needed for hub ids

    try:
        return Path(snapshot_download(repo_id=text))
    except Exception as exc:  # the hub client raises many types; all mean "could not get it"
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"checkpoint not found: no directory {local}, and could not resolve model-hub id "
                              f"{text!r} ({type(exc).__name__}: {reason})") from exc


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint is missing {path.name} (looked in {path.parent})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt JSON: {exc}") from exc


def read_config(directory: Path) -> VLAConfig:
    return vla_config_from_dict(_read_json(directory / CONFIG_FILE))


def read_pipeline_parts(source: str | Path) -> tuple[VLAConfig, NormalizationSet, BackboneInputs]:
    """What the input pipeline is built from (`TransformPipeline.from_checkpoint`): config, normalization and the
    backbone's input step with the saved processor; no weights are read."""
    directory = resolve_source(source)
    config = read_config(directory)
    normalization = read_normalization(directory)
    try:
        family = resolve_family(config.backbone.family, config.backbone.model_type())
        processor = load_checkpoint_processor(config.backbone, directory)
    except Exception as exc:  # transformers/tokenizers raise many types for broken processor files
        raise CheckpointError(f"{directory}: could not rebuild the backbone's processor: {exc}") from exc
    return config, normalization, BackboneInputs(config.backbone, family, processor)


def read_normalization(directory: Path) -> NormalizationSet:
    try:
        return NormalizationSet.from_dict(_read_json(directory / NORMALIZATION_FILE))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # any structure that is not the format
        raise CheckpointError(f"{NORMALIZATION_FILE}: {exc}") from exc


def load_weights(model: torch.nn.Module, weights: Path, *, assign: bool = False) -> None:
    """Load safetensors into `model`, naming every missing, unexpected or mis-shaped tensor.

    `assign=True` swaps in the loaded tensors (needed for modules built on the meta device); the default copies
    into the existing parameters, which keeps an optimizer's references valid (resume).
    """
    if not weights.is_file():
        raise CheckpointError(f"checkpoint is missing {weights.name} (looked in {weights.parent})")
    expected = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            keys = set(f.keys())
            missing = sorted(set(expected) - keys)
            unexpected = sorted(keys - set(expected))
            if missing or unexpected:
                raise CheckpointError(
                    f"{weights.name} does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}"
                    f" ({len(missing)}), unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
                    f" ({len(unexpected)})"
                )
            for key in sorted(keys):
                tensor = f.get_tensor(key)
                if tuple(tensor.shape) != tuple(expected[key].shape):
                    raise CheckpointError(
                        f"{weights.name}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                        f"the model expects {tuple(expected[key].shape)}"
                    )
                loaded[key] = tensor
    except SafetensorError as exc:
        raise CheckpointError(f"{weights}: corrupt safetensors file: {exc}") from exc
    model.load_state_dict(loaded, strict=True, assign=assign)


def load_checkpoint(source: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> tuple[VLAModel, NormalizationSet]:
    """Model (eval mode) and normalization from a checkpoint directory or hub id."""
    directory = resolve_source(source)
    config = read_config(directory)
    normalization = read_normalization(directory)
    missing = [s.tag for s in config.embodiments if s.tag not in normalization.by_tag]
    if missing:
        raise CheckpointError(f"{NORMALIZATION_FILE} has no stats for embodiment(s) {missing}")
    try:
        backbone = Backbone.from_checkpoint_dir(config.backbone, directory)
    except CheckpointError:
        raise
    except Exception as exc:  # transformers/tokenizers raise many types for broken processor files
        raise CheckpointError(f"{directory}: could not rebuild the backbone or its processor: {exc}") from exc
    try:
        with torch.device("meta"):
            head = build_head(config.head, directory)
        model = VLAModel(config, backbone, head)
    except (ValueError, FileNotFoundError) as exc:
        raise CheckpointError(f"{directory}: the head in {CONFIG_FILE} cannot be rebuilt: {exc}") from exc
    load_weights(model, directory / WEIGHTS_FILE, assign=True)
    model.to(device=device, dtype=dtype) if dtype is not None else model.to(device=device)
    model.eval()
    return model, normalization
