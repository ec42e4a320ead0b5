"""The replay's comparison in a forked process beside its node side, so the two use two cores.

The node side (decoding, sync, control ticks, inference) is sequential by nature: every tick depends on the ones
before. The comparison with the recording (reference signals, episode marks, error sums, plot series) only
consumes what the node side did. `ForkedComparison` stands in for `ReplayComparison` in the node's process: it
queues each call, sends them in batches over a pipe to a forked child holding the real comparison, which makes
them in the same order, and `finish` brings back the child's outcome. The same calls in the same order give the
same report as the comparison in the node's own process (tested bit for bit).

Fork, not spawn: the child starts with the comparison as it was built (the open bag's memory map, the typestore,
the embodiment) without pickling any of it. Elsewhere than on Linux the replay compares in its own process. The
fork happens before the progress bar's thread starts; the child uses no lock that another thread of the node side
may hold (no logging, no torch).
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from vla_policy_node.bagtools.replay_compare import CALLS, ComparisonOutcome, ReplayComparison
from vla_policy_node.spec.types import ActionChunk

BATCH = 512  # calls per message to the child (~40 KB): few system calls, little latency at the end


class ComparisonProcessError(RuntimeError):
    """The comparison process ended without an outcome (killed, or out of memory)."""


def can_fork() -> bool:
    """Linux only (macOS offers fork, but its system libraries, and so a loaded model's, are not safe across it),
    and not in a daemonic process (a multiprocessing pool's worker may not have children)."""
    return (sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


class ForkedComparison:
    """`ReplayComparison`'s calls, made by a forked child in the order they are made here."""

    def __init__(self, comparison: ReplayComparison) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(comparison, child_end), name="replay-comparison",
                                        daemon=True)
        self._process.start()
        child_end.close()
        self._calls: list[tuple[str, tuple[Any, ...]] | float] = []  # (name, args); a float: after_message(it)

    # The node side's calls (replay_compare.CALLS), queued.
    def joint_state(self, stamp: float, names: tuple[str, ...], positions: list[float], t: float) -> None:
        self._queue("joint_state", (stamp, names, positions, t))

    def command(self, raw: bytes, timestamp_ns: int) -> None:
        self._queue("command", (raw, timestamp_ns))

    def gripper_command(self, raw: bytes, timestamp_ns: int) -> None:
        self._queue("gripper_command", (raw, timestamp_ns))

    def instruction(self, text: str) -> None:
        self._queue("instruction", (text,))

    def episode_event(self, raw: bytes, timestamp_ns: int) -> None:
        self._queue("episode_event", (raw, timestamp_ns))

    def tick(self, now: float, arm: list[float], gripper: float | None, by_policy: bool) -> None:
        calls = self._calls  # one per control tick: `_queue` inlined
        calls.append(("tick", (now, arm, gripper, by_policy)))
        if len(calls) >= BATCH:
            self._send()

    def prediction(self, state: np.ndarray, chunk: ActionChunk) -> None:
        self._queue("prediction", (state, chunk))

    def after_message(self, t: float) -> None:
        calls = self._calls  # one per message read: queued as the bare time, without a name or an argument tuple
        calls.append(t)
        if len(calls) >= BATCH:
            self._send()

    def finish(self, start: float, end: float) -> ComparisonOutcome:
        """Everything queued, then the end of the bag; the child's outcome (its error raised here)."""
        self._calls.append(("finish", (start, end)))
        self._send()
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionResetError):  # the child is gone (reset: it left data unread)
            raise self._died() from None
        self._process.join()
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Ends the child if it still runs (the node side failed or was interrupted)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._conn.close()

    def _queue(self, name: str, args: tuple[Any, ...]) -> None:
        calls = self._calls
        calls.append((name, args))
        if len(calls) >= BATCH:
            self._send()

    def _send(self) -> None:
        if self._conn.poll():  # the child stopped early: it says why
            self._raise_child_error()
        try:
            self._conn.send_bytes(pickle.dumps(self._calls, protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ConnectionResetError):
            self._raise_child_error()
        self._calls = []

    def _raise_child_error(self) -> None:
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionResetError):  # the child is gone (reset: it left data unread)
            raise self._died() from None
        raise value if status == "error" else ComparisonProcessError("the comparison process stopped early")

    def _died(self) -> ComparisonProcessError:
        self._process.join(timeout=5)
        return ComparisonProcessError(f"the comparison process ended without a result (exit code "
                                      f"{self._process.exitcode}; killed, or out of memory?)")


def _serve(comparison: ReplayComparison, conn: Connection) -> None:
    """The child: makes the calls as they come; answers `finish` with the outcome, or any error with itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the node side's to handle; it ends this process
    methods = {name: getattr(comparison, name) for name in CALLS}
    after_message = comparison.after_message
    try:
        while True:
            for call in pickle.loads(conn.recv_bytes()):
                if type(call) is float:
                    after_message(call)
                    continue
                name, args = call
                if name == "finish":
                    conn.send(("ok", comparison.finish(*args)))
                    return
                methods[name](*args)
    except EOFError:
        return  # the node side is gone
    except BaseException as error:  # every error goes back to the node side
        error.add_note("(in the replay's comparison process)\n" + traceback.format_exc())
        try:
            conn.send(("error", error))
        except Exception:  # one that does not pickle goes back as its text
            conn.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))
