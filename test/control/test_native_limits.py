"""The compiled joint limits (mypyc, scripts/build_native.py) against their Python source, bit for bit, and the
guard that runs the source whenever the build is missing or stale.

Where the build is missing these tests skip, unless VLA_REQUIRE_NATIVE=1 (scripts/test.sh sets it after
setup_env.sh built it), where a missing build fails them."""

from __future__ import annotations

import importlib.machinery
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_policy_node.control import braking, joint_limits, native

COMPILED = not native.why_not_compiled() and not str(joint_limits.__file__).endswith(".py")

needs_build = pytest.mark.skipif(
    not COMPILED and os.environ.get("VLA_REQUIRE_NATIVE") != "1",
    reason=f"no compiled joint limits here ({native.native_status()})",
)


@pytest.fixture(scope="module")
def source_limits() -> ModuleType:
    source_braking = native.module_from_source("source_braking", native.source_path("vla_policy_node.control.braking"))
    limits = native.module_from_source("source_joint_limits",
                                       native.source_path("vla_policy_node.control.joint_limits"))
    limits.braking_velocity = source_braking.braking_velocity  # the source calls the source, all the way down
    limits.stopping_distance = source_braking.stopping_distance
    return limits


@needs_build
def test_the_build_is_what_runs() -> None:
    assert COMPILED, native.native_status()
    for module in (braking, joint_limits):
        assert not str(module.__file__).endswith(".py"), module.__file__
    assert native.native_status() == "joint limits: compiled (mypyc)"


def _bits(values: list[float] | list[bool]) -> list[str]:
    """Exact identity, the sign of zero and NaN included."""
    return [float(v).hex() if not isinstance(v, bool) else str(v) for v in values]


finite = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
# SafetyFilter.apply holds on a non-finite target before this step: finite targets only, the awkward ones too
awkward = st.one_of(finite, st.sampled_from([0.0, -0.0, 1e-12, -1e-12, 5e-324, 3.0000000001]))


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 7))
    lo = [draw(st.floats(-3.0, -0.1)) for _ in range(n)]
    hi = [draw(st.floats(0.1, 3.0)) for _ in range(n)]
    period = draw(st.sampled_from([0.001, 0.004, 0.01, 0.02]))
    vmax = [draw(st.floats(0.05, 3.0)) for _ in range(n)]
    amax = [draw(st.floats(0.5, 20.0)) for _ in range(n)]
    jerk = [draw(st.one_of(st.just(math.inf), st.floats(5.0, 5000.0))) for _ in range(n)]
    step = draw(st.one_of(st.just(math.inf), st.floats(0.01, 0.5)))
    start = [draw(st.floats(lo[j] - 0.2, hi[j] + 0.2)) for j in range(n)]  # may start outside the limits
    ticks = []
    for _ in range(draw(st.integers(1, 40))):
        target = None if draw(st.booleans()) and draw(st.booleans()) else [draw(awkward) for _ in range(n)]
        measured = None if draw(st.booleans()) else [draw(finite) for _ in range(n)]
        ticks.append((target, measured))
    return {"n": n, "lo": lo, "hi": hi, "period": period, "vmax": vmax, "amax": amax, "jerk": jerk,
            "step": step, "start": start, "ticks": ticks}


def _run(limits: ModuleType, s: dict) -> list[tuple]:
    n, period = s["n"], s["period"]
    a_t = [a * period for a in s["amax"]]
    state = {"q": list(s["start"]), "v": [0.0] * n, "a": [0.0] * n, "prev": [math.nan] * n,
             "last": [0.0] * n, "on": [False] * n}
    zones = [limits.stopping_distance(v, a, period) for v, a in zip(s["vmax"], s["amax"], strict=True)]
    trace = []
    for target, measured in s["ticks"]:
        flags: set[str] = set()
        limits.limit_joint_step(
            None if target is None else list(target), measured, flags, state["q"], state["v"], state["a"],
            state["prev"], state["last"], state["on"], s["lo"], s["hi"], s["vmax"], s["amax"], a_t,
            [a * (1.0 + 1e-9) for a in a_t], [j * period for j in s["jerk"]], zones, period, s["step"])
        trace.append((tuple(_bits(state[k]) for k in ("q", "v", "a", "prev", "last", "on")), sorted(flags)))
    return trace


@needs_build
@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_compiled_steps_equal_the_source_bit_for_bit(source_limits: ModuleType, scenario: dict) -> None:
    assert _run(joint_limits, scenario) == _run(source_limits, scenario)


@needs_build
@settings(max_examples=300, deadline=None)
@given(st.floats(-10.0, 10.0), st.floats(0.1, 50.0), st.sampled_from([0.001, 0.004, 0.02]),
       st.floats(0.0, 5.0))
def test_compiled_braking_equals_the_source(source_limits: ModuleType, distance: float, accel: float,
                                            period: float, velocity: float) -> None:
    assert (braking.braking_velocity(distance, accel, period).hex()
            == source_limits.braking_velocity(distance, accel, period).hex())
    assert (braking.stopping_distance(velocity, accel, period).hex()
            == source_limits.stopping_distance(velocity, accel, period).hex())


# ------------------------------------------------------------------------------------------------- the guard
def _fake_package(tmp_path: Path, *, extension: bool, stamp: str | None) -> Path:
    package = tmp_path / "pkg"
    (package / "control").mkdir(parents=True)
    source = package / "control" / "kernel.py"
    source.write_text("X = 1\n")
    if extension:
        (package / "control" / f"kernel{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not a library")
    if stamp is not None:
        (package / "control" / "kernel.native-source").write_text(
            native.source_digest(source) + "\n" if stamp == "match" else stamp)
    return package


@pytest.mark.parametrize(("extension", "stamp", "reason"), [
    (False, None, "is not compiled"),
    (True, None, "no record of its source"),
    (True, "0" * 64, "changed since it was compiled"),
    (True, "match", ""),
])
def test_why_not_compiled_names_each_reason(tmp_path: Path, extension: bool, stamp: str | None,
                                            reason: str) -> None:
    package = _fake_package(tmp_path, extension=extension, stamp=stamp)
    why = native.why_not_compiled(("pkg.control.kernel",), package)
    assert (reason in why) if reason else why == ""


@needs_build
def test_an_edited_source_runs_instead_of_its_stale_build(tmp_path: Path) -> None:
    """A copy of the package whose joint_limits.py was edited after the build: the edit is what runs (the
    source of the whole group), with a warning that says why, and the filter still works."""
    copy = tmp_path / "vla_policy_node"
    shutil.copytree(native.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    edited = copy / "control" / "joint_limits.py"
    edited.write_text(edited.read_text() + "\nEDITED_AFTER_THE_BUILD = True\n")
    probe = textwrap.dedent("""
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from vla_policy_node.control import braking, joint_limits, safety
        from vla_policy_node.control.native import native_status
        print("FILES", joint_limits.__file__, braking.__file__)
        print("EDITED", getattr(joint_limits, "EDITED_AFTER_THE_BUILD", False))
        print("STATUS", native_status())
        flags = set()
        q = [0.0]
        joint_limits.limit_joint_step([1.0], None, flags, q, [0.0], [0.0], [float("nan")], [0.0], [False],
                                      [-1.0], [1.0], [1.0], [10.0], [0.04], [0.04], [float("inf")],
                                      [braking.stopping_distance(1.0, 10.0, 0.004)], 0.004, float("inf"))
        print("STEP", q[0], sorted(flags))
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"FILES {copy}/control/joint_limits.py {copy}/control/braking.py" in out
    assert "EDITED True" in out
    assert "STATUS joint limits: Python source (vla_policy_node.control.joint_limits: joint_limits.py changed" in out
    assert "WARNING running the Python source of the safety filter's joint limits" in result.stderr
    assert "STEP 0.00016 ['acceleration']" in out  # one step at max acceleration from rest: a*T*T


def test_can_build_names_what_is_missing(tmp_path: Path) -> None:
    """scripts/test.sh requires the build only where it can be made: without a C compiler on the PATH the check
    says so (and the build is not attempted)."""
    script = Path(native.PACKAGE_DIR).parents[2] / "scripts" / "build_native.py"
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env.update(PATH=str(tmp_path), CC="no-such-compiler-here")
    result = subprocess.run([sys.executable, str(script), "--can-build"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot build here: a C compiler (no-such-compiler-here) missing" in result.stdout
