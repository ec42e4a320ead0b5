"""The experiment commands the README documents (`python -m vla_policy_node.experiments...`) behave as the console
scripts do: bad input or a failure is one line naming the problem, exit code 2, no traceback; and their default
robot config is the repository's, whatever directory they are started from (they used to look for
`config/...` under the current directory and fail with a traceback anywhere but the repository root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIM = "vla_policy_node.experiments.sim_arm"
METAWORLD = "vla_policy_node.experiments.metaworld.evaluate"
# (module and arguments, what the one line must say); "{tmp}" is the directory the command starts in
CASES = [
    ([f"{SIM}.evaluate", "--checkpoint", "{tmp}/no_such_run"], "checkpoint"),
    ([f"{SIM}.grounding", "--checkpoint", "{tmp}/no_such_run", "--layouts", "1"], "no_such_run"),
    ([f"{SIM}.train", "--dataset", "{tmp}/no_such_dataset", "-o", "{tmp}/run", "--steps", "1"], "no_such_dataset"),
    ([METAWORLD, "--task", "reach-v3", "--checkpoint", "{tmp}/no_such_run", "-o", "{tmp}/mw"], "no_such_run"),
    ([f"{SIM}.demos", "-o", "{tmp}/demos", "--episodes", "0"], "--episodes and --workers must be >= 1"),
    ([f"{SIM}.reproduce", "-o", "{tmp}/out", "--workers", "0"], "--workers must be >= 1"),
    ([f"{SIM}.evaluate", "--robot-config", "no_such.yaml", "--checkpoint", "x"],
     "robot config not found: no_such.yaml"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """Every case at once, each a fresh interpreter started in an empty directory outside the repository."""
    tmp = tmp_path_factory.mktemp("elsewhere")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROS_DOMAIN_ID": "96"}
    env.pop("PYTHONPATH", None)  # the installed package, as a user runs it
    procs = {}
    for args, _ in CASES:
        command = [sys.executable, "-m", *(a.replace("{tmp}", str(tmp)) for a in args)]
        procs[" ".join(args)] = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[key] = subprocess.CompletedProcess(key, proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a[:2]).split(".")[-1] for a, _ in CASES])
def test_bad_input_is_one_line_from_any_directory(runs, args, message):
    proc = runs[" ".join(args)]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    if "--robot-config" not in args:  # the default config was found although the command started elsewhere
        assert "robot config not found" not in proc.stderr, proc.stderr


def test_the_default_robot_configs_are_the_repositorys():
    from vla_policy_node.experiments.metaworld.evaluate import ROBOT_CONFIG
    from vla_policy_node.spec.repo_files import REPO_ROOT, SIM_ARM_CONFIG

    assert (REPO_ROOT / "README.md").is_file() and (REPO_ROOT / "src" / "vla_policy_node").is_dir()
    assert SIM_ARM_CONFIG.is_file() and Path(ROBOT_CONFIG).is_file()
