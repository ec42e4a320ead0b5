"""How every command line fails: one line naming the problem (and what to do), exit code 2, no traceback.

`--debug` (added by `CliParser`) prints the traceback as well. Argument errors are one line too (argparse's
usage block is left to `--help`). Imports nothing heavy: a tool's `--help` must not wait for torch.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input a user can fix: the message says what is wrong and what to do."""


class CliParser(argparse.ArgumentParser):
    """argparse with a `--debug` flag and one-line argument errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the Python traceback of an error")

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def report(program: str, error: BaseException, debug: bool) -> int:
    """Print `error` as one line (and its traceback with `debug`); returns the exit code."""
    if debug:
        traceback.print_exception(error)
    expected = isinstance(error, (UsageError, ValueError, OSError, LookupError, RuntimeError))
    hint = "" if expected or debug else f" ({type(error).__name__}; run with --debug for the traceback)"
    print(f"{program}: error: {one_line(error)}{hint}", file=sys.stderr)
    return USAGE_ERROR


def run_guarded(program: str, body: Callable[[], int], debug: bool) -> int:
    """Run a command's body; any exception becomes one line on stderr and exit code 2."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as error:  # the one place a CLI turns errors into one line
        return report(program, error, debug)


def wants_debug(argv: Sequence[str] | None) -> bool:
    """`--debug` in argv, for errors raised before the arguments are parsed."""
    return "--debug" in (sys.argv[1:] if argv is None else argv)
