"""Run a console script's `main` with --help in this process and report, as JSON on the last line, whether torch
or transformers were imported and which options have no help text (run by test_console_scripts in a subprocess)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys

parsers: list[argparse.ArgumentParser] = []
_original = argparse.ArgumentParser.parse_known_args


def _recording(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    parsers.append(self)
    return _original(self, *args, **kwargs)


def main() -> None:
    name, target = sys.argv[1], sys.argv[2]
    module_name, function = target.split(":")
    argparse.ArgumentParser.parse_known_args = _recording  # type: ignore[method-assign]
    sys.argv = [name, "--help"]
    out = io.StringIO()
    code = None
    with contextlib.redirect_stdout(out):
        try:
            getattr(importlib.import_module(module_name), function)()
        except SystemExit as exit_:
            code = exit_.code
    undocumented = []
    for parser in parsers:
        for action in parser._actions:
            if action.option_strings and not action.help and action.help != argparse.SUPPRESS:
                undocumented.append(f"{parser.prog} {'/'.join(action.option_strings)}")
    heavy = sorted(m for m in ("torch", "transformers", "rclpy", "mujoco") if m in sys.modules)
    print(json.dumps({"code": code, "heavy": heavy, "undocumented": undocumented, "parsers": len(parsers),
                      "help": out.getvalue()}))


if __name__ == "__main__":
    main()
