import json

import numpy as np
from PIL import Image

from test.roboalign.toy import single_thread, toy_actions
from vla_policy_node.model.vocabulary import add_tokens
from vla_policy_node.train.roboalign.common import RunConfig
from vla_policy_node.train.roboalign.data import Mix, VQASamples, sft_batch
from vla_policy_node.train.roboalign.mllm import MLLMConfig, load_mllm
from vla_policy_node.train.roboalign.rewards import format_reward
from vla_policy_node.train.roboalign.sft import SFTConfig, run_sft


def _vqa_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    rows = [{"images": ["imgs/a.png"], "question": "what color", "answer": "black", "reasoning": "it is dark"},
            {"images": ["imgs/a.png"], "question": "move the arm", "answer": "left"}]
    path = tmp_path / "vqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_vqa_layout_and_answer_only_labels(tmp_path):
    vqa = VQASamples(_vqa_file(tmp_path))
    assert vqa[0].answer == "<think>it is dark</think><answer>black</answer>" and vqa[1].answer == "left"
    assert vqa[0].images[0].shape == (20, 24, 3)
    actions = toy_actions(4)
    sample = actions[0]
    assert format_reward(sample.answer) == 1.0 and sample.target and sample.target == actions.target(0)
    model, processor = load_mllm(MLLMConfig())
    add_tokens(model, processor.tokenizer, [f"<fast_{k}>" for k in range(actions.tokenizer.vocab_size)])
    batch = sft_batch(processor, [vqa[1], sample])
    tok = processor.tokenizer
    for b, answer in enumerate(["left", sample.answer]):
        labelled = batch["labels"][b][batch["labels"][b] != -100].tolist()
        assert labelled == tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert (batch["attention_mask"].sum(1) > 0).all()


def test_sft_lowers_loss(tmp_path):
    single_thread()
    actions = toy_actions(8)
    vqa = VQASamples(_vqa_file(tmp_path))
    cfg = SFTConfig(run=RunConfig(output_dir=str(tmp_path / "sft"), steps=30, batch_size=4, lr=3e-3, warmup_steps=3,
                                  log_every=5, save_every=15, cpu=True, progress=False))
    final, losses = run_sft(cfg, Mix([actions, vqa], [3.0, 1.0]))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
    assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    # resumable: a finished run resumes at its last step and does nothing more
    _, more = run_sft(cfg, Mix([actions, vqa], [3.0, 1.0]))
    assert more == []


def test_interrupted_sft_resumes_exactly(tmp_path):
    single_thread()
    actions = toy_actions(8)

    def cfg(out):
        return SFTConfig(run=RunConfig(output_dir=str(tmp_path / out), steps=8, batch_size=2, lr=3e-3, warmup_steps=2,
                                       save_every=100, cpu=True, progress=False))

    _, straight = run_sft(cfg("a"), Mix([actions]))
    final, first = run_sft(cfg("b"), Mix([actions]), until=5)
    assert len(first) == 5 and not final.exists()  # a stopped run leaves a checkpoint, no final model
    _, rest = run_sft(cfg("b"), Mix([actions]))
    assert len(rest) == 3
    np.testing.assert_allclose(first + rest, straight, rtol=1e-5)
