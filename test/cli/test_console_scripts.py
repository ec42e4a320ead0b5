"""Every console script: `--help` imports neither torch nor transformers (so it is fast) and documents every
option; bad input is one line naming the problem, exit code 2, no traceback (`--debug` shows it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = dict(re.findall(r'"(\w+) = ([\w.]+:\w+)"', (REPO / "src/vla_policy_node/setup.py").read_text()))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "ROS_DOMAIN_ID": "97"}


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    """--help of every script, run in parallel (one process each: sys.modules must start empty)."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "test.cli.help_probe", name, target], cwd=REPO,
                                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, target in SCRIPTS.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {stderr[-2000:]}"
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_every_console_script_is_probed(probes):
    assert len(probes) >= 14 and {"vla_bag_to_dataset", "vla_demo", "policy_node", "roboalign_vla"} <= set(probes)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_is_light_and_documents_every_option(probes, name):
    probe = probes[name]
    assert probe["code"] == 0 and probe["parsers"] >= 1
    assert not {"torch", "transformers"} & set(probe["heavy"]), f"{name} --help imports {probe['heavy']}"
    assert probe["undocumented"] == []
    assert "--debug" in probe["help"]


def _command(args: list[str]) -> list[str]:
    module, function = SCRIPTS[args[0]].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function} as m; sys.exit(m())", *args[1:]]


BAD_INPUT = [
    (["vla_bag_to_dataset", "no/such/bag", "--robot", "sim_arm", "-o", "/tmp/never_written_ds"], "does not exist"),
    (["vla_bag_to_dataset", "x", "--robot", "no_such_robot", "-o", "/tmp/never_written_ds"], "robot 'no_such_robot'"),
    (["vla_bag_to_dataset", "x", "--robot", "sim_arm"], "the following arguments are required: -o/--output"),
    (["vla_train_action_tokenizer", "no_such_dataset", "/tmp/tok", "--kind", "rvq"], "not found"),
    (["roboalign_sft", "--config", "no_such.yaml"], "config no_such.yaml not found"),
    (["vla_demo", "--chunk", "--checkpoint", "no_such_run/final"], "checkpoint not found: no directory"),
    (["vla_replay_test", "no/such/bag", "--robot", "sim_arm", "--checkpoint", "x"], "checkpoint directory not found"),
    (["policy_node", "--transport", "dds", "--robot-config", "no_such.yaml", "--checkpoint", "x"], "no_such.yaml"),
]
DEBUG = ["vla_bag_to_dataset", "no/such/bag", "--robot", "sim_arm", "-o", "/tmp/never_written_ds", "--debug"]


@pytest.fixture(scope="module")
def bad_runs() -> dict[str, subprocess.CompletedProcess]:
    """Every bad-input command at once (each is a fresh interpreter; in parallel they take the time of one)."""
    commands = {" ".join(args): args for args, _ in BAD_INPUT} | {"debug": DEBUG}
    procs = {key: subprocess.Popen(_command(args), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for key, args in commands.items()}
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[key] = subprocess.CompletedProcess(commands[key], proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a[:2]) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(bad_runs, args, message):
    proc = bad_runs[" ".join(args)]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert args[0] in lines[0] and message in lines[0]  # "prog: error: ..." (nodes log "[prog] ERROR: ...")


def test_debug_shows_the_traceback(bad_runs):
    proc = bad_runs["debug"]
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "does not exist" in proc.stderr
