"""The house rules, enforced: arrows point down, no import loops, and the core runs without ROS, DDS or bags.

Layers (ARCHITECTURE.md): the core (`spec/`, `kinematics/`, `control/`, `model/`, `train/`) never imports rclpy,
cyclonedds, rosbags or launch; `control/` never imports torch, so the safety path runs without a model; the edge
(`msgs/`, `transport/`, `inference/`, `devices/`, `sim/`) never imports nodes; `bagtools/` uses msgs, transport and
control but never `nodes/`. Every import counts, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "vla_policy_node" / "vla_policy_node"
TOP = "vla_policy_node"

# What each sub-package may import from the project (besides itself). Anything not listed is an upward arrow.
ALLOWED: dict[str, set[str]] = {
    "spec": set(),
    "kinematics": set(),
    "control": {"spec", "kinematics"},
    "model": {"spec"},
    "train": {"spec", "model"},
    "msgs": {"spec", "kinematics", "control"},
    "transport": {"msgs"},
    "inference": {"spec", "msgs", "transport"},
    "devices": {"msgs", "spec"},
    "sim": {"spec", "kinematics"},
    "bagtools": {"spec", "kinematics", "control", "model", "train", "msgs", "transport"},
    "nodes": {"spec", "kinematics", "control", "model", "msgs", "transport", "devices", "sim", "inference"},
    "experiments": {"spec", "kinematics", "control", "model", "train", "msgs", "transport", "sim", "bagtools",
                    "nodes", "inference"},
    "cli": {"spec", "kinematics", "control", "model", "train", "msgs", "transport", "sim", "bagtools", "nodes",
            "experiments", "inference"},
}
CORE = ("spec", "kinematics", "control", "model", "train")
ROS_SIDE = ("rclpy", "cyclonedds", "rosbags", "launch", "launch_ros", "launch_testing", "message_filters", "mcap",
            "rosidl_runtime_py")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(module: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Project modules `module` imports anywhere in its body (resolved to the deepest existing module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name.startswith(TOP + ".") and name != module:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for module, path in mods.items():
        deps = _imports(module, path, mods)
        # a package's __init__ re-exporting its own children is not an arrow worth counting
        if path.name == "__init__.py":
            deps = {d for d in deps if not d.startswith(module + ".")}
        graph[module] = {d for d in deps if not module.startswith(d + ".")}
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_subpackage_has_a_place_in_the_layers():
    packages = {_package(m) for m in _graph()} - {""}
    assert packages <= set(ALLOWED), f"new sub-packages need a layer in ALLOWED: {sorted(packages - set(ALLOWED))}"


def test_arrows_point_down_only():
    upward = []
    for module, deps in sorted(_graph().items()):
        source = _package(module)
        for dep in sorted(deps):
            target = _package(dep)
            if source and target and target != source and target not in ALLOWED[source]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_import_loops():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    assert not loops, "import loops:\n" + "\n".join(" ".join(loop) for loop in loops)


_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked by the layering test: {{name}}")
        return None
sys.meta_path.insert(0, Block())
import importlib, pkgutil
failed = []
for package in {packages!r}:
    root = importlib.import_module("vla_policy_node." + package)
    names = [root.__name__] + [m.name for m in pkgutil.walk_packages(root.__path__, root.__name__ + ".")]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed.append(f"{{name}}: {{exc}}")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("\\n".join(failed + [f"loaded {{m}}" for m in leaked]))
sys.exit(1 if failed or leaked else 0)
"""


@pytest.mark.parametrize(
    ("packages", "blocked"),
    [
        (CORE, ROS_SIDE),
        (("control", "spec", "kinematics"), (*ROS_SIDE, "torch", "transformers")),
    ],
    ids=["core-without-ros-dds-bags", "control-without-torch"],
)
def test_core_imports_with_the_forbidden_libraries_blocked(packages, blocked):
    code = _BLOCKER.format(blocked=set(blocked), packages=list(packages))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
