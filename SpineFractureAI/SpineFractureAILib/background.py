"""Analyses off the main thread, with a Qt-free state machine the widget (or a test) drives.

The worker thread only computes plain Results; the caller's thread applies them to the scene
when it polls (in Slicer: a QTimer on the main thread), because MRML is not thread-safe.
Cancel sets a flag the pipeline checks between stages and batches (well under a second).
"""
from __future__ import annotations

import enum
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    IMPORTING = "importing"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


BUTTON_TEXT = {State.IDLE: "Analyze", State.RUNNING: "Cancel", State.IMPORTING: "Cancel",
               State.DONE: "Analyze", State.CANCELLED: "Analyze", State.FAILED: "Analyze"}


@dataclass
class RunStatus:
    state: State = State.IDLE
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    started: float = 0.0
    elapsed_s: float = 0.0
    result: object = None
    events: list = field(default_factory=list)  # every (state, stage) seen, for tests and logs

    @property
    def button_text(self) -> str:
        return BUTTON_TEXT[self.state]

    @property
    def busy(self) -> bool:
        return self.state in (State.RUNNING, State.IMPORTING)


class BackgroundRun:
    """compute(progress, cancelled) runs in a thread; apply(result) runs in poll()'s thread.
    still_wanted() (checked on the polling thread): False cancels the run, e.g. when its input
    volume left the scene. A cancel that comes after the compute finished still applies nothing."""

    def __init__(self, compute: Callable, apply: Callable, still_wanted: Callable[[], bool] | None = None):
        self._compute, self._apply = compute, apply
        self._still_wanted = still_wanted or (lambda: True)
        self._why_cancelled = "cancelled; the scene is unchanged"
        self._messages: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = RunStatus()

    def start(self) -> None:
        if self.status.busy:
            raise RuntimeError("an analysis is already running")
        self._cancel.clear()
        self.status = RunStatus(State.RUNNING, "starting", 0.0, started=time.perf_counter())
        self.status.events.append((State.RUNNING, "starting"))
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _work(self) -> None:
        def progress(stage: str, fraction: float) -> None:
            self._messages.put(("progress", stage, fraction))

        try:
            result = self._compute(progress, self._cancel.is_set)
            self._messages.put(("cancelled", None, None) if self._cancel.is_set() else ("computed", result, None))
        except Exception as err:  # reported to the user, never lost in the thread
            kind = "cancelled" if type(err).__name__ == "Cancelled" else "failed"
            self._messages.put((kind, err, None))

    def poll(self) -> RunStatus:
        """Drain messages; on success apply the result here (the main thread). Returns the status."""
        s = self.status
        if s.busy and not self._cancel.is_set() and not self._still_wanted():
            self._why_cancelled = "the input volume was removed from the scene: nothing was written"
            self._cancel.set()
        while True:
            try:
                kind, a, b = self._messages.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                s.stage, s.fraction = a, b
            elif kind == "computed" and self._cancel.is_set():  # cancelled after the models finished
                s.state, s.message = State.CANCELLED, self._why_cancelled
            elif kind == "computed":
                s.state, s.stage = State.IMPORTING, "writing results"
                s.events.append((s.state, s.stage))
                try:
                    s.result = self._apply(a)
                    s.state, s.fraction = State.DONE, 1.0
                except Exception as err:
                    s.state, s.message = State.FAILED, f"{type(err).__name__}: {err}"
            elif kind == "cancelled":
                s.state, s.message = State.CANCELLED, self._why_cancelled
            else:
                s.state, s.message = State.FAILED, str(a)
            if not s.busy:
                s.elapsed_s = time.perf_counter() - s.started
                s.events.append((s.state, s.stage))
        return s

    def wait(self, timeout: float = 600.0, interval: float = 0.05) -> RunStatus:
        """Poll until finished (for the Python console and tests)."""
        end = time.perf_counter() + timeout
        while self.poll().busy and time.perf_counter() < end:
            time.sleep(interval)
        return self.status
