"""Issue 13, finding 4: the instruction is bounded and sanitized (length limit, the model's special tokens refused
with a clear message, the policy holding meanwhile), and an inference deadline bounds anything slow."""

from __future__ import annotations

import numpy as np

from test.control.helpers import feed_observation, make_chunk, mid_state
from vla_policy_node.control import ControlConfig, ControlLoop, ExecutorConfig
from vla_policy_node.control.instruction import for_log

SPECIALS = ("<|image_pad|>", "<|im_start|>", "<|vision_start|>")


def running(emb, config=None):
    loop = ControlLoop(emb, config)
    loop.set_special_tokens(SPECIALS)
    now = 10.0
    feed_observation(loop, now, mid_state(emb))
    loop.tick(now)
    loop.on_chunk(make_chunk(emb, now, np.tile(mid_state(emb)[:6], (40, 1))), 0.01, now)
    now += 0.01
    feed_observation(loop, now, mid_state(emb))
    assert loop.tick(now).source == "policy"
    return loop, now


def test_a_special_token_in_the_instruction_is_refused_and_the_policy_holds(sim_arm):
    loop, now = running(sim_arm)
    ok, message = loop.set_instruction("pick up the <|image_pad|> red block")
    assert not ok and "<|image_pad|>" in message and "special token" in message
    feed_observation(loop, now + 0.01, mid_state(sim_arm))
    assert loop.tick(now + 0.01).hold
    status = loop.status(now + 0.01)
    assert any("instruction refused" in r for r in status.hold_reasons), status.hold_reasons
    assert not loop.should_request_inference(now + 0.01)
    ok, _ = loop.set_instruction("pick up the red block")
    assert ok and loop.sync.instruction == "pick up the red block"
    assert loop.should_request_inference(now + 0.02)


def test_an_overlong_instruction_is_refused(sim_arm):
    loop, _ = running(sim_arm)
    ok, message = loop.set_instruction("word " * 20000)
    assert not ok and "too long" in message and len(message) < 300
    assert loop.sync.instruction == ""


def test_a_chunk_past_the_inference_deadline_is_dropped_and_said_so(sim_arm):
    loop, now = running(sim_arm, ControlConfig(executor=ExecutorConfig(inference_timeout=0.5, default_horizon=40)))
    obs = loop.sync.poll(now + 0.1)
    loop.begin_inference(obs, now + 0.1)
    late = make_chunk(sim_arm, obs.stamp, np.tile(mid_state(sim_arm)[:6] + 0.2, (40, 1)))
    assert not loop.on_chunk(late, 0.9, now + 1.0)  # 0.9 s of inference, the deadline is 0.5 s
    status = loop.status(now + 1.0)
    assert "deadline" in status.fault, status.fault


def test_logged_text_is_truncated():
    text = "word " * 20000
    assert len(for_log(text)) < 200 and "100000 chars" in for_log(text)
    assert for_log("short") == "'short'"
