"""The panel's side of the analysis worker process (../worker.py).

One worker per configuration (bundles, device, analyses, thresholds) stays up between clicks so
the weights load once; a changed configuration restarts it. Cancel kills it at once; a worker that
dies mid-run (out of memory, a CUDA error, killed) becomes a clear error and the next Analyze
starts a new one. Volumes go to it through a private temporary folder; plain Results come back.
Nothing here imports Qt, torch or MRML, so it is tested headless with a real process.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ..volume import Volume
from ..worker import read_results, write_request_volume

LIBRARY_PARENT = str(Path(__file__).resolve().parents[2])  # the folder that holds SpineFractureAILib
LOG_TAIL_CHARS = 1500


def slicer_python() -> str:
    """Slicer's own interpreter (PythonSlicer, beside SlicerApp-real in Slicer's bin folder) when we
    run inside Slicer, else this one (never Slicer's application itself: that would open a window)."""
    beside = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    return shutil.which("PythonSlicer") or (str(beside) if beside.is_file() else sys.executable)


class WorkerClient:
    def __init__(self, python: str | None = None, log_path: str | os.PathLike | None = None):
        self.python = python or sys.executable
        self.log_path = Path(log_path or Path(tempfile.gettempdir()) / f"SpineFractureAI-worker-{os.getpid()}.log")
        self.config: dict | None = None
        self.starts = 0  # worker processes started (each loads its weights afresh)
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()
        self._jobs = 0
        self._folders: dict[int, Path] = {}

    # -- the process -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.alive else None

    def configure(self, config: dict) -> None:
        """Restart the worker if the bundles, device, analyses or thresholds changed."""
        if config != self.config:
            self.stop()
            self.config = dict(config)

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [LIBRARY_PARENT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        log = open(self.log_path, "a", encoding="utf-8")
        log.write(f"--- worker start: {self.python} (configuration {json.dumps(self.config)})\n")
        log.flush()
        self._process = subprocess.Popen([self.python, "-u", "-m", "SpineFractureAILib.worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=env, text=True, encoding="utf-8", close_fds=True)
        log.close()  # the child holds its own handle
        self.starts += 1
        self._replies = queue.Queue()
        threading.Thread(target=self._read, args=(self._process, self._replies), daemon=True).start()
        self._send(self.config)

    @staticmethod
    def _read(process: subprocess.Popen, replies: queue.Queue) -> None:
        for line in process.stdout:
            try:
                replies.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        process.wait()
        replies.put({"event": "exited", "code": process.returncode})

    def _send(self, message: dict) -> None:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def stop(self) -> None:
        """Ask the worker to quit; kill it if it does not within 2 s."""
        if self.alive:
            try:
                self._send({"cmd": "quit"})
                self._process.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._process = None

    def kill(self) -> None:
        """At once (Cancel): the weights are lost, the next run starts a new worker."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None
        for folder in self._folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, volume: Volume) -> int:
        """Start analysing a volume (starting the worker if needed); returns the job id."""
        if self.config is None:
            raise RuntimeError("configure() the worker first")
        if not self.alive:
            self._start()
        self._jobs += 1
        folder = Path(tempfile.mkdtemp(prefix="SpineFractureAI-job-"))  # private (0700)
        write_request_volume(volume, folder)
        self._folders[self._jobs] = folder
        try:
            self._send({"cmd": "analyze", "id": self._jobs, "volume": str(folder)})
        except OSError:  # it died between start and now: the reader reports it
            pass
        return self._jobs

    def messages(self, job: int) -> list[dict]:
        """What the worker said about this job since the last call: progress, then one of done
        (with "results" read back), failed, or crashed (the process is gone)."""
        out = []
        while True:
            try:
                reply = self._replies.get_nowait()
            except queue.Empty:
                return out
            if reply.get("event") == "exited":
                self._process = None
                self._forget(job)
                out.append({"event": "crashed", "id": job, "message": self._crash_message(reply["code"])})
            elif reply.get("id") == job:
                if reply["event"] == "done":
                    reply["results"] = read_results(self._folders[job])
                if reply["event"] in ("done", "failed"):
                    self._forget(job)
                out.append(reply)

    def _forget(self, job: int) -> None:
        folder = self._folders.pop(job, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _crash_message(self, code) -> str:
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        tail = self.log_tail().strip().splitlines()
        last = f"; last log line: {tail[-1]}" if tail else ""
        return (f"the analysis worker process {how} (out of memory or a model crash?){last}. "
                f"Its log: {self.log_path}. The next Analyze starts a new worker.")

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the worker's log (the panel shows it)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-chars:]
