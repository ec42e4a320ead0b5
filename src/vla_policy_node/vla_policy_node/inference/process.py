"""The model in its own process next to the control loop: camera frames through shared memory, chunks back.

    policy = ProcessPolicy(PolicyLoader(checkpoint, embodiment), embodiment)   # any picklable factory
    policy.start()                       # spawns the inference process, waits until it is loaded and warm
    chunk = policy.infer(obs, prefix=prefix)   # what the node's inference thread calls; blocks without the GIL

Why: in one interpreter the model, the DDS callbacks and the control timer share the GIL, and a model that holds
it (or a thread holding it that the OS preempts) stalls control ticks by tens of ms. Here the control process
runs no model code at all (it never imports torch); its inference thread waits on a pipe.

Data path, per inference: each camera's frame as received (`FittedImages.native`, e.g. 640x480) is copied once
into a shared-memory slot (no pickling, no per-pixel work); the small rest (stamp, state, instruction, RTC
prefix, frame layout) goes through a pipe. The inference process builds the Observation from numpy views of the
slot and fits the frames to the model's size there (or on its accelerator). The chunk (stamp of the
observation, dt, actions) comes back through the pipe. One request is in flight at a time (the executor asks
for one chunk at a time), so one slot suffices; a request that outlives `timeout` gets the process killed and
restarted, so a stale reader never sees the slot change.

Failure is the watchdog's business, as for an in-process model: if the inference process dies (crash, OOM
kill, `kill -9`), hangs, or its model raises, `infer` raises `InferenceProcessError` naming what happened; the
node's inference step reports it (`loop.on_inference_error`) and the arm holds with that reason in the status.
The process is restarted in the background (backoff 1 s doubling to 30 s); the first good chunk after that
ends the hold, and the command mux ramps from the held position (no jump).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix

log = logging.getLogger(__name__)

PolicyFactory = Callable[[], Any]
"""Picklable callable run in the inference process: returns the policy (anything with `infer(obs, prefix=)`)."""

_ALIGN = 64


class InferenceProcessError(RuntimeError):
    """The inference process could not answer: it died, hung, is restarting, or its model raised."""


@dataclass(frozen=True)
class _Request:
    seq: int
    segment: str
    frames: tuple[tuple[str, int, tuple[int, ...]], ...]  # camera, byte offset in the segment, shape
    stamp: float
    state: np.ndarray
    instruction: str
    meta: Mapping[str, object]
    prefix: tuple[np.ndarray, np.ndarray] | None


class ProcessPolicy:
    """An InferencePolicy whose model lives in a spawned process (see the module docstring)."""

    out_of_process = True  # the calling thread only waits: it may keep the node's real-time priority

    def __init__(self, factory: PolicyFactory, embodiment: Embodiment, *, timeout: float = 10.0,
                 start_timeout: float = 600.0, warmup: int = 2, warmup_instruction: str = "", restart: bool = True,
                 backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        """timeout: seconds one inference may take before the process counts as hung. warmup: inferences the
        process runs on a blank observation before it reports ready (the first real command is not slow)."""
        if not timeout > 0 or not start_timeout > 0:
            raise ValueError("timeout and start_timeout must be positive")
        self.factory = factory
        self.embodiment = embodiment
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.warmup = warmup
        self.warmup_instruction = warmup_instruction
        self.restart_enabled = restart
        self.backoff = backoff
        self.restarts = 0
        self.last_error = ""
        self.special_tokens: tuple[str, ...] = ()  # the model's (from its process), refused in instructions
        self._ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked DDS/torch threads
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._segment: SharedMemory | None = None
        self._seq = 0
        self._closed = False
        self._restarting: threading.Thread | None = None
        self._next_delay = backoff[0]

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    @property
    def alive(self) -> bool:
        process = self._process
        return process is not None and process.is_alive()

    def start(self, timeout: float | None = None) -> None:
        """Spawn the inference process and wait until its model is loaded and warmed up."""
        process, conn = self._spawn(self.start_timeout if timeout is None else timeout)
        with self._lock:
            self._process, self._conn = process, conn

    def _spawn(self, timeout: float) -> tuple[Any, Connection]:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_serve, args=(child, self.factory, self.embodiment, self.warmup,
                                                         self.warmup_instruction),
                                    name="vla-inference", daemon=True)
        message = None
        try:
            _start_sigint_blocked(process)
            child.close()
            if parent in wait([parent, process.sentinel], timeout):
                with contextlib.suppress(EOFError, OSError):
                    message = parent.recv()
        except BaseException:  # a SIGINT while the model loads: the node stops, and its inference process with it
            if process.pid is not None:  # started (one the interrupt cut off before that ends with the node)
                process.terminate()
                process.join(1.0)
            parent.close()
            raise
        if not message or message[0] != "ready":
            _stop_process(process, 1.0)
            parent.close()
            if message:
                why = message[1]
                log.debug("inference process start-up failed:\n%s", message[2])
            elif process.exitcode is not None:
                why = f"exited with code {process.exitcode}"
            else:
                why = f"not ready within {timeout:.0f} s"
            raise InferenceProcessError(f"inference process failed to start: {why}")
        log.info("inference process %d ready (%s)", process.pid, message[1])
        if len(message) > 2:
            self.special_tokens = tuple(message[2])
        return process, parent

    def close(self, grace: float = 1.0) -> None:
        """Stop the inference process and free the shared memory. Quick even while an inference is in flight: the
        process is asked to end (SIGTERM: it holds nothing that needs an orderly end), which also ends the waiting
        `infer` (it raises, and nothing restarts once closed); killed if it has not ended after `grace`."""
        self._closed = True
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(grace)
        with self._lock:
            self._stop(graceful=False)
            if self._segment is not None:
                _release(self._segment, unlink=True)
                self._segment = None

    def _stop(self, graceful: bool = True) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            if graceful:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(None)
            conn.close()
        if process is not None:
            _stop_process(process, 5.0 if graceful else 0.0)

    # ---------------------------------------------------------------------------------------------- infer
    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        with self._lock:
            if self._closed:
                raise InferenceProcessError("inference process closed")
            if self._restarting is not None:
                raise InferenceProcessError(f"{self.last_error}; restarting")
            if self._conn is None or not self.alive:
                code = self._process.exitcode if self._process is not None else None
                self._lost("is not running" if code is None else f"exited with code {code}")
            assert self._conn is not None and self._process is not None
            request = self._request(observation, prefix)
            conn, process = self._conn, self._process
            try:
                conn.send(request)
            except (OSError, ValueError) as error:
                self._lost(f"pipe broken ({error})")
            ready = wait([conn, process.sentinel], self.timeout)
            if conn in ready:
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    process.join(1.0)  # a killed process closes its pipe before it can be reaped: say how it ended
                    self._lost(f"exited with code {process.exitcode}" if not process.is_alive() else "pipe closed")
            elif not ready:
                self._lost(f"hung: no answer within {self.timeout:.1f} s")
            else:
                process.join(1.0)
                self._lost(f"exited with code {process.exitcode}")
            self._next_delay = self.backoff[0]
        kind, seq, *rest = reply
        if seq != request.seq:
            raise InferenceProcessError(f"inference process answered request {seq}, expected {request.seq}")
        if kind == "error":
            raise InferenceProcessError(f"model raised in the inference process: {rest[0]}")
        stamp, dt, actions, names = rest
        return ActionChunk(stamp=stamp, dt=dt, actions=actions, names=tuple(names))

    def _lost(self, why: str) -> None:
        """The process is gone or useless: stop it, restart it in the background, raise (the caller holds)."""
        self.last_error = f"inference process {why}"
        self._stop(graceful=False)
        if self.restart_enabled and not self._closed:
            self._schedule_restart()
            raise InferenceProcessError(self.last_error + "; restarting")
        raise InferenceProcessError(self.last_error)

    def _schedule_restart(self) -> None:
        delay, self._next_delay = self._next_delay, min(self._next_delay * 2, self.backoff[1])
        self._restarting = threading.Thread(target=self._restart, args=(delay,), name="vla-inference-restart",
                                            daemon=True)
        self._restarting.start()

    def _restart(self, delay: float) -> None:
        """Runs on its own thread without the lock (loading a model takes seconds; `infer` answers meanwhile)."""
        time.sleep(delay)
        if self._closed:
            return
        try:
            process, conn = self._spawn(self.start_timeout)
        except InferenceProcessError as error:
            log.error("%s", error)
            with self._lock:
                self.last_error = str(error)
                if not self._closed:
                    self._schedule_restart()
            return
        with self._lock:
            if self._closed:
                conn.close()
                _stop_process(process, 1.0)
                return
            self._process, self._conn = process, conn
            self.restarts += 1
            self._restarting = None
        log.info("inference process restarted (%d restart(s))", self.restarts)

    # ----------------------------------------------------------------------------------------- transfer
    def _request(self, obs: Observation, prefix: RtcPrefix | None) -> _Request:
        frames = []
        for cam in self.embodiment.cameras:
            images = obs.images
            frame = images.native(cam.name) if isinstance(images, FittedImages) else images[cam.name]
            frames.append((cam.name, np.ascontiguousarray(frame)))
        sizes = [f.nbytes for _, f in frames]
        needed = sum(-(-size // _ALIGN) * _ALIGN for size in sizes)
        segment = self._segment
        if segment is None or segment.size < needed:
            if segment is not None:
                _release(segment, unlink=True)  # the server keeps its mapping until it sees the new name
            segment = self._segment = SharedMemory(create=True, size=max(needed, 1 << 20))
        layout, offset = [], 0
        for (name, frame), size in zip(frames, sizes, strict=True):
            target = np.ndarray(frame.shape, np.uint8, buffer=segment.buf, offset=offset)
            np.copyto(target, frame)
            del target
            layout.append((name, offset, frame.shape))
            offset += -(-size // _ALIGN) * _ALIGN
        self._seq += 1
        rtc = None if prefix is None else (np.asarray(prefix.actions), np.asarray(prefix.weights))
        return _Request(self._seq, segment.name, tuple(layout), float(obs.stamp), np.asarray(obs.state),
                        obs.instruction, dict(obs.meta), rtc)


# ------------------------------------------------------------------------------------- inference process
def _serve(conn: Connection, factory: PolicyFactory, embodiment: Embodiment, warmup: int, instruction: str) -> None:
    """The inference process: build the policy, warm it up, answer requests until the pipe closes."""
    _end_with_the_node()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the node, which closes us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn: a pending one is dropped
    try:
        policy = factory()
        warm_up(policy, embodiment, warmup, instruction)
    except BaseException as error:  # whatever it was, the parent gets it as text
        _send_if_heard(conn, ("failed", f"{type(error).__name__}: {error}", traceback.format_exc(limit=8)))
        return
    tokens = tuple(str(t) for t in getattr(policy, "special_tokens", ()))
    if not _send_if_heard(conn, ("ready", f"pid {os.getpid()}, {warmup} warm-up inference(s)", tokens)):
        return
    by_name = {cam.name: cam for cam in embodiment.cameras}
    segment: SharedMemory | None = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        if segment is None or segment.name != request.segment:
            if segment is not None:
                _release(segment, unlink=False)
            segment = _attach(request.segment)
        try:
            images = FittedImages({name: np.ndarray(shape, np.uint8, buffer=segment.buf, offset=offset)
                                   for name, offset, shape in request.frames}, by_name)
            obs = Observation(stamp=request.stamp, images=images, state=request.state,
                              instruction=request.instruction, meta=request.meta)
            prefix = RtcPrefix(*request.prefix) if request.prefix is not None else None
            chunk = policy.infer(obs, prefix=prefix)
            reply = ("ok", request.seq, chunk.stamp, chunk.dt, chunk.actions, chunk.names)
        except Exception as error:  # the model's failure is an answer, not the end of the process
            reply = ("error", request.seq, f"{type(error).__name__}: {error}")
        finally:
            images = obs = None  # views of the segment must go before it may be closed
        if not _send_if_heard(conn, reply):
            break
    if segment is not None:
        _release(segment, unlink=False)


def _end_with_the_node() -> None:
    """End this process as soon as the node that spawned it is gone, whatever this process is doing (loading or
    warming up a model takes seconds to minutes): a node that ends without closing it (SIGKILL, a crash, a SIGINT
    that cut its start short, `os._exit`) must not leave a model process behind holding memory, a GPU and the
    node's stdout."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="vla-inference-parent-watch", daemon=True).start()


def _send_if_heard(conn: Connection, message: object) -> bool:
    """Send to the node; False when it is gone (stopped or died while this process loaded or answered): this
    process then ends quietly instead of with a BrokenPipeError traceback in the node's log."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return False
    return True


def _start_sigint_blocked(process: Any) -> None:
    """Start the inference process with SIGINT blocked (the mask is inherited through fork and exec), so a Ctrl-C
    to the terminal's process group during its interpreter start-up, before `_serve` ignores SIGINT, cannot end it
    with a KeyboardInterrupt traceback. Only this thread blocks it, for the start alone: a SIGINT meant for the
    node is delivered to it once the start returns (or to another of its threads meanwhile)."""
    from multiprocessing import resource_tracker

    # started now if it is not yet running: starting it unblocks SIGINT in this thread (CPython 3.11), which
    # inside process.start() below would undo the block before the fork
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def warm_up(policy: Any, embodiment: Embodiment | None = None, runs: int = 2, instruction: str = "") -> float:
    """A few inferences on a blank observation (frames at the camera sizes, state mid-range, the instruction the
    node will use, so a compiled model sees the shapes it will run): lazy initialisation, compilation and allocator
    warm-up happen here, not on the first real command. Returns the last run's seconds."""
    embodiment = embodiment if embodiment is not None else getattr(policy, "embodiment", None)
    if embodiment is None or runs <= 0:
        return 0.0
    cams = {c.name: c for c in embodiment.cameras}
    lows = [j.lower for j in embodiment.joints] + ([embodiment.gripper.lower] if embodiment.gripper else [])
    highs = [j.upper for j in embodiment.joints] + ([embodiment.gripper.upper] if embodiment.gripper else [])
    state = (np.asarray(lows) + np.asarray(highs)) / 2
    seconds = 0.0
    for k in range(runs):
        images = FittedImages({name: np.zeros((c.height, c.width, 3), np.uint8) for name, c in cams.items()}, cams)
        start = time.perf_counter()
        policy.infer(Observation(stamp=float(k), images=images, state=state, instruction=instruction))
        seconds = time.perf_counter() - start
    return seconds


def _attach(name: str) -> SharedMemory:
    """The node's segment. A spawned child shares its parent's resource tracker, so attaching registers nothing
    new and the segment is unlinked by the node alone (or by the tracker if the node dies)."""
    return SharedMemory(name=name)


def _release(segment: SharedMemory, *, unlink: bool) -> None:
    with contextlib.suppress(BufferError, OSError):
        segment.close()
    if unlink:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()


def _stop_process(process: Any, timeout: float = 5.0) -> None:
    """Wait up to `timeout` for the process to end by itself, then kill it."""
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(5.0)
