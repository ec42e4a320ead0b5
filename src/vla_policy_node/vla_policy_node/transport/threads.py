"""Stopping the threads the transports and nodes start."""

from __future__ import annotations

import threading


def join_started(thread: threading.Thread | None, timeout: float) -> None:
    """Wait up to `timeout` for `thread` to end, if it ever started and is not the caller. A SIGINT landing inside
    `Thread.start()` (a launch stopped while a node starts) leaves a thread not yet started, which `join()`
    refuses with a RuntimeError; such a thread ends by itself at its first look at its owner's stop flag."""
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout)
