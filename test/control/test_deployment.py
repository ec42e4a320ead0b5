"""A checkpoint's deployment.json: the strategy it recommends is what `strategy: auto` runs; an explicit strategy
wins; a file that cannot be used is an error naming it, never a silent fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_policy_node.control.deployment import resolve_strategy
from vla_policy_node.spec.deployment import DEPLOYMENT_FILE, Deployment, read_deployment, write_deployment

REPO = Path(__file__).resolve().parents[2]


def test_auto_runs_the_checkpoints_recommendation_and_an_explicit_strategy_wins(tmp_path):
    write_deployment(tmp_path, Deployment(strategy="ensemble", why="chosen on validation layouts"))
    assert read_deployment(tmp_path) == Deployment("ensemble", "chosen on validation layouts")
    assert resolve_strategy("auto", tmp_path) == ("ensemble", f"the checkpoint's {DEPLOYMENT_FILE}")
    assert resolve_strategy("rtc", tmp_path) == ("rtc", "set explicitly")
    assert resolve_strategy("synchronous", tmp_path)[0] == "synchronous"


def test_without_a_recommendation_auto_is_the_executors_default(tmp_path):
    assert resolve_strategy("auto", tmp_path)[0] == "rtc"  # no file
    assert resolve_strategy("auto", "")[0] == "rtc"  # no checkpoint path (a remote policy)
    assert resolve_strategy("auto", "Org/some-hub-model")[0] == "rtc"  # a model-hub id, not a directory
    write_deployment(tmp_path, Deployment(why="no strategy chosen"))
    assert json.loads((tmp_path / DEPLOYMENT_FILE).read_text()) == {"why": "no strategy chosen"}
    assert resolve_strategy("auto", tmp_path)[0] == "rtc"


@pytest.mark.parametrize(("content", "problem"), [
    ('{"strategy": "fastest"}', "strategy must be one of synchronous, ensemble, rtc, got 'fastest'"),
    ('{"stratgy": "ensemble"}', "unknown key(s) stratgy"),
    ('["ensemble"]', "expected a JSON object"),
    ('{"strategy": "ensemble",', "not readable JSON"),
])
def test_a_file_that_cannot_be_used_is_an_error_naming_it(tmp_path, content, problem):
    (tmp_path / DEPLOYMENT_FILE).write_text(content)
    with pytest.raises(ValueError, match=str(tmp_path / DEPLOYMENT_FILE)) as error:
        resolve_strategy("auto", tmp_path)
    assert problem in str(error.value)
    assert resolve_strategy("ensemble", tmp_path)[0] == "ensemble"  # an explicit strategy does not read it


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="one of auto, synchronous, ensemble, rtc"):
        resolve_strategy("fast", "")
    with pytest.raises(ValueError, match="strategy must be one of"):
        Deployment(strategy="fast")


def test_the_shipped_checkpoints_recommend_what_they_were_evaluated_with():
    # pick-and-place: 94% of layouts 0..49 with ensemble, 72% with rtc (its README); reach was evaluated with rtc
    assert resolve_strategy("auto", REPO / "checkpoints/sim_pick_place/checkpoint")[0] == "ensemble"
    assert resolve_strategy("auto", REPO / "checkpoints/sim_reach/checkpoint")[0] == "rtc"
