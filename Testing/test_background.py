"""Analyze in a worker process: the state machine, results applied on the polling thread, cancel that
kills the worker mid-model, a worker that dies, weights loaded once across clicks (issue 12)."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import slicer

from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.slicer.background import State, WorkerRun
from SpineFractureAILib.slicer.logic import SpineFractureLogic
from SpineFractureAILib.slicer.scene import add_volume_node
from SpineFractureAILib.slicer.worker_client import WorkerClient


class ScriptedWorker:
    """A stand-in worker that says what the script says (the state machine without a process)."""

    def __init__(self, script):
        self.script, self.killed = list(script), False

    def submit(self, volume):
        return 7

    def messages(self, job):
        return [dict(m, id=job) for m in self.script.pop(0)] if self.script else []

    def kill(self):
        self.killed = True


def test_state_machine_applies_on_the_polling_thread():
    applied_in = []
    worker = ScriptedWorker([[{"event": "progress", "stage": "model", "fraction": 0.5}],
                             [{"event": "done", "results": 42, "weight_loads": 1}]])
    run = WorkerRun(worker, None, lambda result: applied_in.append(threading.current_thread()) or result + 1)
    run.start()
    assert run.status.button_text == "Cancel"
    assert run.poll().stage == "model" and run.status.fraction == 0.5
    status = run.wait(5)
    assert status.state is State.DONE and status.result == 43 and status.button_text == "Analyze"
    assert applied_in == [threading.current_thread()]
    assert [e[0] for e in status.events] == [State.RUNNING, State.WRITING_TO_SCENE, State.DONE]


def test_failure_and_crash_are_reported_not_raised():
    for event in ("failed", "crashed"):
        run = WorkerRun(ScriptedWorker([[{"event": event, "message": "CUDA error: out of memory"}]]), None,
                        lambda r: pytest.fail("nothing may be applied"))
        run.start()
        status = run.wait(5)
        assert status.state is State.FAILED and "out of memory" in status.message


def test_cancel_after_the_worker_finished_applies_nothing():
    worker = ScriptedWorker([[{"event": "done", "results": 42}]])
    applied = []
    run = WorkerRun(worker, None, applied.append)
    run.start()
    run.cancel()  # the results wait in the pipe; the panel has not polled yet
    assert run.wait(5).state is State.CANCELLED and not applied and worker.killed


@pytest.fixture(scope="module")
def case():
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, make_phantom("T10-L3", "ct", ["L1:wedge:3"], [], seed=8).image)
    logic = SpineFractureLogic(scene, worker=WorkerClient())
    yield scene, node, logic
    logic.worker.stop()


def _wait_for_stage(run, text, timeout=120.0):
    end = time.perf_counter() + timeout
    while text not in run.poll().stage:
        assert run.status.busy, run.status.message
        assert time.perf_counter() < end, f"no {text!r} stage in {timeout} s"
        time.sleep(0.02)


def test_cancel_during_the_model_kills_the_worker_at_once_and_keeps_the_scene(case):
    scene, node, logic = case
    before = scene.GetNumberOfNodes()
    run = logic.analyze_async(node)
    _wait_for_stage(run, ": model")  # the first batch is through; the forward goes on
    pid = logic.worker.pid
    started = time.perf_counter()
    run.cancel()
    status = run.wait(5)
    assert time.perf_counter() - started < 2.0
    assert status.state is State.CANCELLED and scene.GetNumberOfNodes() == before
    assert not logic.worker.alive and _gone(pid)


def test_second_analyze_reuses_the_loaded_weights(case):
    scene, node, logic = case
    first = logic.analyze_async(node)
    assert first.wait(300).state is State.DONE, first.status.message
    starts, loads = logic.worker.starts, first.weight_loads
    second = logic.analyze_async(node)
    status = second.wait(300)
    assert status.state is State.DONE, status.message
    assert logic.worker.starts == starts and second.weight_loads == loads > 0  # no reload
    outputs, results = status.result
    assert outputs.segmentation.GetScene() is scene
    assert any(f.kind == "fracture" and f.level == "L1" for f in results.findings)
    logic.device = "cpu"  # another device: a new worker, which loads its weights afresh
    third = logic.analyze_async(node)
    assert third.wait(300).state is State.DONE and logic.worker.starts == starts + 1


def test_a_worker_killed_mid_run_is_a_clear_error_and_the_next_analyze_works(case):
    scene, node, logic = case
    run = logic.analyze_async(node)
    _wait_for_stage(run, ":")  # any stage: the worker is up and computing
    before = scene.GetNumberOfNodes()
    os.kill(logic.worker.pid, signal.SIGKILL)  # what the kernel's OOM killer does
    status = run.wait(10)
    assert status.state is State.FAILED
    assert "worker process was killed by signal 9" in status.message and "next Analyze" in status.message
    assert scene.GetNumberOfNodes() == before
    again = logic.analyze_async(node).wait(300)
    assert again.state is State.DONE, again.message


def test_removing_the_input_node_cancels_and_writes_nothing():
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=8).image)
    logic = SpineFractureLogic(scene)
    run = logic.analyze_async(node)
    scene.RemoveNode(node)
    before = scene.GetNumberOfNodes()
    status = run.wait(120)
    assert status.state is State.CANCELLED and "removed from the scene" in status.message
    assert scene.GetNumberOfNodes() == before  # no segmentation, ROIs or tables for a volume that is gone
    assert not logic.worker.alive


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
