"""Start-up faults without a running set: bad robot YAML for every node, corrupt checkpoints for the policy node.
Each must end the node with exit code 2 and one clear line naming what is wrong (no traceback)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from test.system.processes import REPO, SIM_ARM, node_env

NODES = ("vla_policy_node.nodes.policy_node", "vla_policy_node.nodes.command_mux_node",
         "vla_policy_node.nodes.fake_arm_driver")


PARALLEL = 2  # node processes at a time: the node sets of the other lane start meanwhile


def _run_all(commands: dict[str, list[str]], domain: int) -> dict[str, subprocess.CompletedProcess]:
    """Run the commands, PARALLEL at a time (each is a Python start-up: imports dominate)."""
    out = {}
    pending = list(commands.items())
    while pending:
        batch, pending = pending[:PARALLEL], pending[PARALLEL:]
        running = {key: subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, env=node_env(domain), cwd=REPO)
                   for key, argv in batch}
        for key, process in running.items():
            try:
                stdout, _ = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, _ = process.communicate()
            out[key] = subprocess.CompletedProcess(process.args, process.returncode, stdout)
    return out


def _assert_one_clear_line(key: str, result: subprocess.CompletedProcess, *names: str) -> None:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 2, f"{key}: exit {result.returncode}, expected 2\n{result.stdout[-3000:]}"
    assert len(lines) == 1 and "Traceback" not in result.stdout, f"{key}: not one line:\n{result.stdout[-3000:]}"
    assert any(name in lines[0] for name in names), f"{key}: the line does not name {names}: {lines[0]}"


def bad_robot_yaml(workdir: Path, checkpoint: Path, domain: int) -> None:
    """Every node with a missing, unparsable and inconsistent robot YAML: exit 2, one line naming the file."""
    text = SIM_ARM.read_text()
    bad = {
        "missing": workdir / "no_such_robot.yaml",
        "syntax": "name: broken\njoints: [\n",
        "limits": text.replace("{name: joint1, lower: -3.0, upper: 3.0", "{name: joint1, lower: 3.0, upper: -3.0"),
    }
    assert bad["limits"] != text, "sim_arm.yaml changed: update the bad variant"
    paths = {}
    for case, content in bad.items():
        path = content if isinstance(content, Path) else workdir / f"{case}.yaml"
        if isinstance(content, str):
            path.write_text(content)
        paths[case] = path
    commands = {}
    for node in NODES:
        extra = ["--checkpoint", str(checkpoint)] if node.endswith("policy_node") else []
        for case, path in paths.items():
            commands[f"{node.rsplit('.', 1)[1]} with {case} YAML"] = [node, "--transport", "dds", "--robot-config",
                                                                      str(path), *extra]
    for key, result in _run_all(commands, domain).items():
        case = key.split(" with ")[1].split()[0]
        _assert_one_clear_line(key, result, str(paths[case]))


def corrupt_checkpoint(workdir: Path, checkpoint: Path, domain: int) -> None:
    """The policy node with truncated weights and a normalization file of the wrong shape: exit 2, one line
    naming the file."""
    def broken(case: str, file: str, content: bytes | None) -> Path:
        directory = workdir / case
        shutil.copytree(checkpoint, directory)
        target = directory / file
        if content is None:
            target.write_bytes(target.read_bytes()[:1000])  # truncated
        else:
            target.write_bytes(content)
        return directory

    cases = {
        "truncated weights": (broken("truncated", "model.safetensors", None), "model.safetensors"),
        "wrong normalization": (broken("norm", "normalization.json", b'{"sim_arm": 3}'), "normalization.json"),
    }
    commands = {case: ["vla_policy_node.nodes.policy_node", "--transport", "dds", "--robot-config", str(SIM_ARM),
                       "--checkpoint", str(path)] for case, (path, _) in cases.items()}
    for case, result in _run_all(commands, domain).items():
        _assert_one_clear_line(f"policy_node with a {case} checkpoint", result, cases[case][1])
