"""Background runs: the state machine, cancel within a second, results applied on the polling thread."""
from __future__ import annotations

import threading
import time

import slicer

from SpineFractureAILib.background import BackgroundRun, State
from SpineFractureAILib.logic import SpineFractureLogic
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.progress import Cancelled
from SpineFractureAILib.scene import add_volume_node


def test_state_machine_success_applies_on_the_polling_thread():
    applied_in = []
    run = BackgroundRun(lambda progress, cancelled: (progress("model", 0.5), 42)[1],
                        lambda result: applied_in.append(threading.current_thread()) or result + 1)
    run.start()
    assert run.status.button_text == "Cancel"
    status = run.wait(5)
    assert status.state is State.DONE and status.result == 43 and status.button_text == "Analyze"
    assert applied_in == [threading.current_thread()]
    assert [e[0] for e in status.events] == [State.RUNNING, State.IMPORTING, State.DONE]


def test_cancel_stops_within_a_second_and_applies_nothing():
    applied = []

    def slow(progress, cancelled):
        for _ in range(1000):
            if cancelled():
                raise Cancelled()
            time.sleep(0.01)

    run = BackgroundRun(slow, applied.append)
    run.start()
    time.sleep(0.1)
    started = time.perf_counter()
    run.cancel()
    status = run.wait(5)
    assert time.perf_counter() - started < 1.0
    assert status.state is State.CANCELLED and not applied


def test_failure_is_reported_not_raised():
    run = BackgroundRun(lambda p, c: 1 / 0, lambda r: r)
    run.start()
    status = run.wait(5)
    assert status.state is State.FAILED and "division" in status.message


def test_logic_async_on_a_scene_and_cancel_keeps_it_unchanged():
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=8).image)
    logic = SpineFractureLogic(scene)
    before = scene.GetNumberOfNodes()
    run = logic.analyze_async(node)
    run.cancel()
    assert run.wait(10).state is State.CANCELLED
    assert scene.GetNumberOfNodes() == before
    status = logic.analyze_async(node).wait(120)
    assert status.state is State.DONE, status.message
    outputs, results = status.result
    assert scene.GetNumberOfNodes() > before and outputs.segmentation.GetScene() is scene


def test_cancel_after_the_compute_finished_applies_nothing():
    applied = []
    run = BackgroundRun(lambda progress, cancelled: 42, applied.append)
    run.start()
    run._thread.join(5)  # the models finished; the panel has not polled yet
    run.cancel()
    status = run.wait(5)
    assert status.state is State.CANCELLED and not applied


def test_removing_the_input_node_cancels_and_writes_nothing():
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=8).image)
    run = SpineFractureLogic(scene).analyze_async(node)
    scene.RemoveNode(node)
    before = scene.GetNumberOfNodes()
    status = run.wait(120)
    assert status.state is State.CANCELLED and "removed from the scene" in status.message
    assert scene.GetNumberOfNodes() == before  # no segmentation, ROIs or tables for a volume that is gone
