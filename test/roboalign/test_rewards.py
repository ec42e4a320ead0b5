import pytest

from vla_policy_node.train.roboalign.rewards import accuracy_reward, format_reward, roboalign_reward

TARGET = ["<fast_1>", "<fast_2>", "<fast_3>", "<fast_4>"]


def _answer(tokens: str, think: str = "move left") -> str:
    return f"<think>{think}</think><answer><ACTION_START>{tokens}<ACTION_END></answer>"


def test_correct_completion_scores_one():
    text = _answer("<fast_1><fast_2><fast_3><fast_4>")
    assert format_reward(text) == 1.0
    assert accuracy_reward(text, TARGET) == 1.0
    assert roboalign_reward(text, TARGET) == 1.0


@pytest.mark.parametrize("text", [
    "<answer><ACTION_START><fast_1><fast_2><fast_3><fast_4><ACTION_END></answer>",  # no think
    "hello " + _answer("<fast_1><fast_2><fast_3><fast_4>"),  # text before
    _answer("<fast_1><fast_2><fast_3><fast_4>") + " bye",  # text after
    "<think>x</think><answer><ACTION_START><fast_1><fast_2><fast_3><fast_4></answer>",  # no ACTION_END
])
def test_wrong_format_keeps_accuracy(text):
    assert format_reward(text) == 0.0
    assert accuracy_reward(text, TARGET) == 1.0
    assert roboalign_reward(text, TARGET) == 0.5


def test_wrong_first_token_scores_zero_accuracy():
    text = _answer("<fast_9><fast_2><fast_3><fast_4>")
    assert accuracy_reward(text, TARGET) == 0.0
    assert roboalign_reward(text, TARGET) == 0.5


def test_partial_prefix():
    text = _answer("<fast_1><fast_2><fast_7><fast_4>")  # 2 of 4 correct before the first error
    assert accuracy_reward(text, TARGET) == 0.5
    assert roboalign_reward(text, TARGET) == pytest.approx(0.75)
    assert accuracy_reward(_answer("<fast_1>"), TARGET) == 0.25  # short answer


def test_extra_tokens_add_nothing():
    text = _answer("<fast_1><fast_2><fast_3><fast_4><fast_5><fast_6>")
    assert accuracy_reward(text, TARGET) == 1.0
    assert roboalign_reward(text, TARGET) == 1.0


def test_no_actions_and_empty_target():
    assert accuracy_reward("<think>a</think><answer>nothing</answer>", TARGET) == 0.0
    assert roboalign_reward("garbage", TARGET) == 0.0
    assert accuracy_reward(_answer("<fast_1>"), []) == 0.0
