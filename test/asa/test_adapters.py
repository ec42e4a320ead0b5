"""Adapters behind the policy's interfaces: checkpoint round trips (head type, token ids, tokenizer files),
`VLAPolicy.infer -> ActionChunk`, the discrete policy, and errors that name what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test.asa.helpers import CONTINUOUS, DISCRETE, build
from test.model.helpers import observation
from vla_policy_node.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.model.token_decoder import embed_tokens
from vla_policy_node.model.vla_policy import DiscreteActionPolicy, VLAPolicy
from vla_policy_node.model.vocabulary import rare_token_ids
from vla_policy_node.spec import Embodiment
from vla_policy_node.spec.normalization import normalization_from_limits
from vla_policy_node.spec.types import ActionChunk, RtcPrefix

TOKEN_COUNTS = {"uniform": 16, "vq": 8, "rvq": 16}  # tokenizer vocabularies in test.asa.helpers
EXPECTED_STEPS = {"pred": 1, "uniform": 2 * 7, "vq": 1, "rvq": 2}  # chunk units are whole chunks (H=2, D=7)


@pytest.mark.parametrize(("adapter", "strategy"), [
    ("pred", "new"), ("uniform", "new"), ("uniform", "remap"), ("vq", "remap"), ("rvq", "new"), ("fast", "new"),
    ("fast", "remap"),
])
def test_continuous_adapter_checkpoint_round_trip(adapter: str, strategy: str, sim_arm: Embodiment,
                                                  tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, norm, _ = build(adapter, sim_arm, strategy=strategy, lora=False)
    policy = VLAPolicy(model, norm, sim_arm)
    chunk = policy.infer(observation(sim_arm, "blue", stamp=3.0))
    assert isinstance(chunk, ActionChunk) and chunk.actions.shape == (2, 7) and chunk.stamp == 3.0
    assert np.all(np.isfinite(chunk.actions))
    save_checkpoint(model, norm, tmp_path)
    head = json.loads((tmp_path / "vla_config.json").read_text())["head"]
    assert head["type"] == "asa" and head["adapter"] == adapter
    if adapter != "pred":
        record = head["token_ids"]
        assert record["strategy"] == strategy and record["ids"] == list(model.head.owned_token_ids)
        if adapter in TOKEN_COUNTS:
            assert len(record["ids"]) == TOKEN_COUNTS[adapter]
    if adapter == "fast":
        assert (tmp_path / "fast_bpe.json").is_file()
    if adapter == "fast" and strategy == "new":
        wrapper = model.backbone.processor.tokenizer.convert_tokens_to_ids(["<ACTION_START>", "<ACTION_END>"])
        assert record["ids"][:2] == wrapper
    loaded = VLAPolicy.from_checkpoint(tmp_path, sim_arm, dtype=torch.float32)
    again = loaded.infer(observation(sim_arm, "blue", stamp=3.0))
    np.testing.assert_allclose(again.actions, chunk.actions, atol=1e-5)
    steps = len(loaded.last_timings.head_steps_ms)  # one backbone step per action token
    if adapter == "fast":
        assert 3 <= steps <= 2 + 2 * 7  # START, 1..H*D coefficient tokens, END
    else:
        assert steps == EXPECTED_STEPS[adapter]


def test_new_tokens_live_in_the_saved_tokenizer(sim_arm: Embodiment, tmp_path: Path) -> None:
    model, norm, _ = build("uniform", sim_arm, strategy="new", lora=False)
    save_checkpoint(model, norm, tmp_path)
    loaded, _ = load_checkpoint(tmp_path)
    tokenizer = loaded.backbone.processor.tokenizer
    assert tokenizer.convert_tokens_to_ids([f"<act_bin_{k}>" for k in range(16)]) == list(loaded.head.owned_token_ids)
    assert loaded.backbone.vocab_size == model.backbone.vocab_size  # resized embeddings rebuilt from the config


def test_remapped_ids_keep_the_vocabulary_size(sim_arm: Embodiment) -> None:
    plain = build_tiny_vla([sim_arm])
    model, _, _ = build("rvq", sim_arm, strategy="remap", lora=False)
    assert model.backbone.vocab_size == plain.backbone.vocab_size
    assert set(model.head.owned_token_ids) == set(rare_token_ids(model.backbone, 16))


def test_token_ids_that_do_not_match_the_tokenizer_are_refused(sim_arm: Embodiment, tmp_path: Path) -> None:
    model, norm, _ = build("uniform", sim_arm, strategy="new", lora=False)
    save_checkpoint(model, norm, tmp_path)
    config = json.loads((tmp_path / "vla_config.json").read_text())
    config["head"]["token_ids"]["ids"] = [i - 1 for i in config["head"]["token_ids"]["ids"]]
    (tmp_path / "vla_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="token_ids"):
        load_checkpoint(tmp_path)


def test_missing_fast_bpe_file_is_named(sim_arm: Embodiment, tmp_path: Path) -> None:
    model, norm, _ = build("fast", sim_arm, lora=False)
    save_checkpoint(model, norm, tmp_path)
    (tmp_path / "fast_bpe.json").unlink()
    with pytest.raises(CheckpointError, match=r"fast_bpe\.json"):
        load_checkpoint(tmp_path)


def test_flow_checkpoints_without_head_type_still_load(sim_arm: Embodiment, tmp_path: Path) -> None:
    model = build_tiny_vla([sim_arm])
    save_checkpoint(model, normalization_from_limits(sim_arm), tmp_path)
    config = json.loads((tmp_path / "vla_config.json").read_text())
    assert config["head"].pop("type") == "flow"
    (tmp_path / "vla_config.json").write_text(json.dumps(config))  # the format before heads had a type
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.head_type == "flow"


def test_token_adapters_ignore_rtc_prefixes_and_say_so(sim_arm: Embodiment, caplog) -> None:
    model, norm, _ = build("uniform", sim_arm, lora=False)
    policy = VLAPolicy(model, norm, sim_arm)
    prefix = RtcPrefix(actions=np.full((2, 7), 0.3), weights=np.ones(2))
    plain = policy.infer(observation(sim_arm)).actions
    with caplog.at_level("WARNING"):
        guided = [policy.infer(observation(sim_arm), prefix=prefix).actions for _ in range(2)]
    np.testing.assert_array_equal(guided[0], plain)  # greedy decoding, prefix without effect
    assert sum("RTC prefix ignored" in r.message for r in caplog.records) == 1


def test_interface_pieces(sim_arm: Embodiment) -> None:
    """Head (hidden -> logits), embedding (token -> backbone input), decoder, owned tokens, filter."""
    model, _, _ = build("rvq", sim_arm, lora=False)
    head, backbone = model.head, model.backbone
    hidden = torch.randn(3, backbone.hidden_size)
    assert head.head(hidden, backbone).shape == (3, 16)
    tokens = torch.tensor([[0, 8], [3, 15]])
    embedded = head.embed(backbone, tokens)
    assert embedded.shape == (2, 2, backbone.hidden_size)
    ids = torch.tensor(head.owned_token_ids)[tokens]
    torch.testing.assert_close(embedded, embed_tokens(backbone, ids))  # offsets start at zero
    assert head.decode([[0, 8], [3, 15]]).shape == (2, 2, 7)
    assert head.grammar().accepts([3, 15]) and not head.grammar().accepts([15, 3])


@pytest.mark.parametrize("adapter", DISCRETE)
def test_discrete_adapters_act_and_round_trip(adapter: str, sim_arm: Embodiment, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, norm, data = build(adapter, sim_arm, lora=False)
    policy = DiscreteActionPolicy(model)
    actions = policy.act_batch([s.images for s in data], [s.instruction for s in data])
    assert all(0 <= a < 4 for a in actions)
    save_checkpoint(model, norm, tmp_path)
    head = json.loads((tmp_path / "vla_config.json").read_text())["head"]
    assert head["actions"] == ["left", "right", "forward", "pickup"]
    if adapter != "discrete_pred":
        assert head["token_ids"]["strategy"] == "text"
        assert all(seq[-1] == head["token_ids"]["sequences"][0][-1] for seq in head["token_ids"]["sequences"])
    again = DiscreteActionPolicy.from_checkpoint(tmp_path)
    assert again.act_batch([s.images for s in data], [s.instruction for s in data]) == actions
    with pytest.raises(ValueError, match="DiscreteActionPolicy"):
        VLAPolicy(model, norm, sim_arm)


def test_semlang_spells_actions_with_the_models_own_tokens(sim_arm: Embodiment) -> None:
    model, _, _ = build("semlang", sim_arm, lora=False)
    tokenizer = model.backbone.processor.tokenizer
    record = model.config.head.token_ids
    spelled = [tokenizer.decode([record.ids[t] for t in seq[:-1]]) for seq in record.sequences]
    assert spelled == ["turn left", "turn right", "move forward", "pick up"]
    assert model.backbone.vocab_size == build_tiny_vla([sim_arm]).backbone.vocab_size  # nothing added


def test_every_adapter_is_covered() -> None:
    from vla_policy_node.model.asa.config import ASAHeadConfig
    from vla_policy_node.model.heads import registered_heads

    adapters = {name for name, entry in registered_heads().items() if entry.config_cls is ASAHeadConfig}
    assert adapters == set(CONTINUOUS) | set(DISCRETE)
