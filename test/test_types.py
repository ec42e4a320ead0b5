"""The typed code type-checks: mypy (mypy.ini) over the core, `control/` and `spec/` (the code every command to the
arm goes through), the open-loop replay's whole path, `msgs/`, `transport/` and `bagtools/` (bag reading, the
zero-copy mcap reader, CDR decoding, observation input, replay, dataset conversion), and the `nodes/` that glue
them to ROS. An annotation that lies (a
list where an array is declared, a str where a strategy literal is, a memoryview where bytes are) is where a
refactor, or compiling these modules, goes wrong first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~90 s of mypy over 113 modules: CI runs it, the fast part (-m 'not slow') does not

REPO = Path(__file__).resolve().parents[1]


def test_the_typed_code_type_checks(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini"),
                             "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    checked = re.search(r"Success: no issues found in (\d+) source files", output)
    assert checked is not None and int(checked.group(1)) >= 105, output  # those modules (113), not an empty set
