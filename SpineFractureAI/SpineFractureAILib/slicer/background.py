"""One Analyze click as a Qt-free state machine the panel (or a test) drives by polling.

The models run in the worker process (worker_client.py); poll() on the main thread drains its
messages and applies finished Results to the scene there, because MRML is not thread-safe.
Cancel kills the worker at once: nothing is applied and the scene is unchanged.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    WRITING_TO_SCENE = "writing to scene"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


BUTTON_TEXT = {State.IDLE: "Analyze", State.RUNNING: "Cancel", State.WRITING_TO_SCENE: "Cancel",
               State.DONE: "Analyze", State.CANCELLED: "Analyze", State.FAILED: "Analyze"}


class Worker(Protocol):
    """What a run needs of the worker (WorkerClient; a test may pass a fake)."""
    def submit(self, volume) -> int: ...
    def messages(self, job: int) -> list[dict]: ...
    def kill(self) -> None: ...


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
        return self.state in (State.RUNNING, State.WRITING_TO_SCENE)


class WorkerRun:
    """submit(volume) to the worker on start(); apply(results) runs in poll()'s thread.
    still_wanted() (checked on the polling thread): False cancels the run, e.g. when its input
    volume left the scene. A cancel after the worker finished still applies nothing."""

    def __init__(self, worker: Worker, volume, apply: Callable, still_wanted: Callable[[], bool] | None = None):
        self.worker, self.volume, self._apply = worker, volume, apply
        self._still_wanted = still_wanted or (lambda: True)
        self.job: int | None = None
        self.weight_loads: int | None = None  # as the worker reported when done
        self.status = RunStatus()

    def start(self) -> None:
        if self.status.busy:
            raise RuntimeError("an analysis is already running")
        self.status = RunStatus(State.RUNNING, "starting the worker", 0.0, started=time.perf_counter())
        self.status.events.append((State.RUNNING, "starting"))
        self.job = self.worker.submit(self.volume)
        self.volume = None  # the worker has its copy: the panel need not hold a second one

    def cancel(self, why: str = "cancelled; the scene is unchanged") -> None:
        """Kill the worker now (not at the next batch); nothing reaches the scene."""
        if self.status.busy:
            self.worker.kill()
            self._finish(State.CANCELLED, why)

    def _finish(self, state: State, message: str = "") -> None:
        s = self.status
        s.state, s.message = state, message or s.message
        s.elapsed_s = time.perf_counter() - s.started
        s.events.append((s.state, s.stage))

    def poll(self) -> RunStatus:
        """Drain the worker's messages; on success apply the result here (the main thread)."""
        s = self.status
        if s.busy and not self._still_wanted():
            self.cancel("the input volume was removed from the scene: nothing was written")
        if not s.busy:
            return s
        for message in self.worker.messages(self.job):
            event = message["event"]
            if event == "progress":
                s.stage, s.fraction = message["stage"], message["fraction"]
            elif event == "done":
                self.weight_loads = message.get("weight_loads")
                s.state, s.stage = State.WRITING_TO_SCENE, "writing results"
                s.events.append((s.state, s.stage))
                try:
                    s.result = self._apply(message["results"])
                    s.fraction = 1.0
                    self._finish(State.DONE)
                except Exception as err:
                    self._finish(State.FAILED, f"{type(err).__name__}: {err}")
                return s
            else:  # failed (the models raised) or crashed (the process is gone)
                self._finish(State.FAILED, message["message"])
                return s
        return s

    def wait(self, timeout: float = 600.0, interval: float = 0.05) -> RunStatus:
        """Poll until finished (for the Python console and tests)."""
        end = time.perf_counter() + timeout
        while self.poll().busy and time.perf_counter() < end:
            time.sleep(interval)
        return self.status
