"""Compile the safety filter's per-joint limit arithmetic (control/native.py: NATIVE_GROUP) with mypyc.

    python scripts/build_native.py [--clean] [--force] [--verbose] [--can-build]

Builds one extension for the group in place, beside the `.py` files, and records each source's SHA-256 in
`<module>.native-source`, so that `vla_policy_node.control.native` uses the build only while it matches the
source. Nothing to do when the recorded digests match (run by scripts/setup_env.sh every time). The C is built
with `-ffp-contract=off`: no fused multiply-adds, so the compiled arithmetic rounds exactly as Python's
(aarch64 compilers fuse by default). --clean removes the build (the source runs); --force rebuilds; --verbose
prints the compiler's output; --can-build says whether this machine has what the build needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO / "src" / "vla_policy_node"  # holds the vla_policy_node package


def _native_support() -> ModuleType:
    """control/native.py of this checkout, loaded by path: importing the package would import (and map) the
    very extensions this script replaces."""
    path = PACKAGE_ROOT / "vla_policy_node" / "control" / "native.py"
    spec = importlib.util.spec_from_file_location("vla_native_build_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


native = _native_support()
GROUP_LIBRARY, NATIVE_GROUP, PACKAGE_DIR = native.GROUP_LIBRARY, native.NATIVE_GROUP, native.PACKAGE_DIR
extension_path, source_digest, source_path = native.extension_path, native.source_digest, native.source_path
stamp_path, why_not_compiled = native.stamp_path, native.why_not_compiled

SETUP = """
from setuptools import setup
from mypyc.build import mypycify

extensions = mypycify(["--cache-dir", {cache!r}, *{paths!r}], only_compile_paths={paths!r},
                      separate=[({paths!r}, {group!r})], target_dir={target!r}, opt_level="3")
for extension in extensions:  # after Python's own flags: no fused multiply-add, IEEE rounding as in Python
    extension.extra_compile_args.append("-ffp-contract=off")
setup(name="vla_native", ext_modules=extensions)
"""


def built_files() -> list[Path]:
    """Every file a build leaves in the package: the modules' extensions and stamps, and the group library."""
    files: list[Path] = []
    for module in NATIVE_GROUP:
        source = source_path(module)
        extension = extension_path(source)
        files += [p for p in (extension, stamp_path(source)) if p is not None and p.exists()]
    library_stem = GROUP_LIBRARY.rpartition(".")[2] + "__mypyc"
    files += sorted(source_path(GROUP_LIBRARY).parent.glob(library_stem + ".*"))
    return files


def clean() -> None:
    for path in built_files():
        path.unlink()


def build(verbose: bool = False) -> None:
    clean()
    sources = [source_path(m) for m in NATIVE_GROUP]
    digests = {m: source_digest(p) for m, p in zip(NATIVE_GROUP, sources, strict=True)}
    paths = [str(p.relative_to(PACKAGE_ROOT)) for p in sources]
    with tempfile.TemporaryDirectory(prefix="vla_native_") as work:
        script = Path(work) / "setup_native.py"
        script.write_text(SETUP.format(paths=paths, group=GROUP_LIBRARY, cache=str(Path(work) / "mypy_cache"),
                                          target=str(Path(work) / "c")))
        command = [sys.executable, str(script), "build_ext", "--inplace", "--build-temp", str(Path(work) / "tmp"),
                   "--build-lib", str(Path(work) / "lib")]
        result = subprocess.run(command, cwd=PACKAGE_ROOT, capture_output=True, text=True)
        if verbose:
            print(result.stdout + result.stderr)
        if result.returncode != 0:
            clean()
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise SystemExit(f"build_native: mypyc failed (the Python source will run):\n{tail}")
    for module, source in zip(NATIVE_GROUP, sources, strict=True):
        if source_digest(source) != digests[module]:
            clean()
            raise SystemExit(f"build_native: {source} changed during the build; run it again")
        stamp_path(source).write_text(digests[module] + "\n")


def missing_tools() -> str:
    """'' when this interpreter can build the extension (mypyc, Python's C headers, a C compiler), else what is
    missing. Where nothing is missing the build must succeed: scripts/test.sh then requires it."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc (pip install mypy, or the `test` extra)"
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").exists():
        return f"Python's C headers ({include}/Python.h; e.g. the python3-dev package)"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]  # as setuptools picks
    if shutil.which(compiler) is None:
        return f"a C compiler ({compiler})"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the build: the Python source runs")
    parser.add_argument("--force", action="store_true", help="rebuild even when the build matches the source")
    parser.add_argument("--verbose", action="store_true", help="print mypyc's and the C compiler's output")
    parser.add_argument("--can-build", action="store_true",
                        help="only say whether this machine can build it (exit 0) or what is missing (exit 1)")
    args = parser.parse_args()
    if args.can_build:
        missing = missing_tools()
        print(f"build_native: cannot build here: {missing} missing" if missing else "build_native: can build")
        return 1 if missing else 0
    if args.clean:
        clean()
        print("build_native: removed; the Python source runs")
        return 0
    reason = why_not_compiled()
    if not reason and not args.force:
        print("build_native: up to date")
        return 0
    missing = missing_tools()
    if missing:
        outcome = "the Python source runs" if reason else "the existing build, which matches the source, stays"
        raise SystemExit(f"build_native: cannot build here ({missing} missing); {outcome}")
    build(args.verbose)
    left = why_not_compiled()
    if left:
        raise SystemExit(f"build_native: built, but {left}")
    print(f"build_native: compiled {', '.join(NATIVE_GROUP)} ({PACKAGE_DIR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
