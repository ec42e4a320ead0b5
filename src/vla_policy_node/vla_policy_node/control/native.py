"""Compiled builds of the pure-Python hot path, used only while they are built from exactly today's source.

`scripts/build_native.py` (run by `scripts/setup_env.sh`) compiles the modules of `NATIVE_GROUP` with mypyc into
one extension beside their `.py` files and records each source's SHA-256 in `<module>.native-source`. Python
would import such an extension in preference to the `.py`, even after the `.py` was edited: a stale safety
filter that nobody asked for. So `control/__init__.py` calls `use_source_where_stale()` before anything imports
them: unless every module of the group has its extension and its recorded digest matches the `.py` now, the
whole group is loaded from source (a group is all or nothing: compiled modules call each other natively) and a
warning names the reason. Compiled or not, the code is the same source, so the results are the same
(`test/control/test_native_limits.py` checks them bit for bit).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # vla_policy_node/
# The per-joint limit arithmetic of the safety filter, run for every joint on every control tick.
NATIVE_GROUP = ("vla_policy_node.control.braking", "vla_policy_node.control.joint_limits")
GROUP_LIBRARY = "vla_policy_node.control.native_limits"  # mypyc's shared library of the group

_source_reason = ""  # why use_source_where_stale() loaded the source ('' : it did not)


def source_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The `.py` of a module of this package."""
    parts = module.split(".")
    return package_dir.joinpath(*parts[1:]).with_suffix(".py")


def stamp_path(source: Path) -> Path:
    return source.with_suffix(".native-source")


def source_digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def extension_path(source: Path) -> Path | None:
    """The compiled extension that Python would import instead of `source`, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def why_not_compiled(modules: tuple[str, ...] = NATIVE_GROUP, package_dir: Path = PACKAGE_DIR) -> str:
    """'' when every module has an extension built from its current source, else the first reason why not."""
    for module in modules:
        source = source_path(module, package_dir)
        if extension_path(source) is None:
            return f"{module} is not compiled (scripts/build_native.py builds it)"
        stamp = stamp_path(source)
        if not stamp.exists():
            return f"{module}: its compiled build has no record of its source ({stamp.name} missing)"
        if stamp.read_text().strip() != source_digest(source):
            return f"{module}: {source.name} changed since it was compiled (rebuild: scripts/build_native.py)"
    return ""


def module_from_source(name: str, source: Path, register: bool = False) -> ModuleType:
    """The module `name` executed from the `.py` file `source`, although an extension of it sits beside it.
    register: as an import does, in sys.modules (before its body runs) and as its package's attribute."""
    loader = importlib.machinery.SourceFileLoader(name, str(source))
    spec = importlib.util.spec_from_file_location(name, source, loader=loader)
    assert spec is not None
    loaded = importlib.util.module_from_spec(spec)
    if not register:
        loader.exec_module(loaded)
        return loaded
    sys.modules[name] = loaded
    try:
        loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    parent, _, leaf = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], leaf, loaded)
    return loaded


def use_source_where_stale(modules: tuple[str, ...] = NATIVE_GROUP) -> str:
    """Called by `control/__init__.py` before the group is imported. Returns '' when the compiled group is used,
    else why the source is (logged as a warning only when an extension exists but is stale)."""
    global _source_reason
    reason = why_not_compiled(modules)
    _source_reason = reason
    if not reason:
        return ""
    has_extension = any(extension_path(source_path(m)) is not None for m in modules)
    for module in modules:  # dependencies first: NATIVE_GROUP is in import order
        if module not in sys.modules and extension_path(source_path(module)) is not None:
            module_from_source(module, source_path(module), register=True)
    if has_extension:
        log.warning("running the Python source of the safety filter's joint limits: %s", reason)
    return reason


def native_status() -> str:
    """One line for logs and reports: which build of the hot path runs, and why."""
    modules = [sys.modules.get(m) for m in NATIVE_GROUP]
    compiled = all(m is not None and not str(getattr(m, "__file__", "")).endswith(".py") for m in modules)
    if compiled:
        return "joint limits: compiled (mypyc)"
    reason = _source_reason or why_not_compiled()
    return f"joint limits: Python source ({reason})" if reason else "joint limits: Python source"
