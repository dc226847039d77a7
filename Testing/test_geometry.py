"""Geometry: any direction matrix / spacing survives file I/O and sagittal slicing to a voxel."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from SpineFractureAILib.phantom import random_rotation
from SpineFractureAILib.slicing import Intensity, make_stack, stack_labels_to_volume
from SpineFractureAILib.volume import Volume, read_volume, write_volume


def _volume_with_ball(direction, spacing, shape=(40, 36, 30), seed=0):
    """A grid (i, j, k sizes = shape) with a bright ball; returns volume and ball centre (RAS)."""
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing)[None, :]
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    vol = Volume(np.zeros(shape[::-1], np.int16), affine, "ct")
    centre_ijk = np.array(shape, float) / 2 + rng.uniform(-3, 3, 3)
    centre = vol.ijk_to_ras_points(centre_ijk)[0]
    k, j, i = np.indices(vol.voxels.shape)
    ras = vol.ijk_to_ras_points(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(*vol.voxels.shape, 3)
    ball = np.linalg.norm(ras - centre, axis=-1) <= 4.0
    vol.voxels[:] = -1000
    vol.voxels[ball] = 1000
    return vol, centre, ball


directions = st.builds(
    lambda seed, flips, perm, oblique: (random_rotation(np.random.default_rng(seed)) if oblique else np.eye(3))
    @ np.eye(3)[:, list(perm)] @ np.diag(flips),
    st.integers(0, 10_000), st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    st.permutations([0, 1, 2]), st.booleans())
spacings = st.tuples(*[st.floats(0.5, 2.0)] * 3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(direction=directions, spacing=spacings)
def test_ball_found_through_sagittal_slicing_within_one_voxel(direction, spacing):
    vol, centre, ball = _volume_with_ball(direction, spacing)
    stack = make_stack(vol, "sagittal", 128, Intensity("ct_window", -1000, 1000), slice_mm=min(spacing))
    s = int(np.argmax(stack.images.reshape(len(stack), -1).sum(1)))
    rows, cols = np.nonzero(stack.images[s] > 127)
    found = stack.to_ras(s, cols.mean() + 0.5, rows.mean() + 0.5)
    # in-plane: within a voxel; through-plane: within half a slice + a voxel
    tolerance = max(spacing) + stack.pixel_mm
    assert np.linalg.norm((found - centre)[1:]) <= tolerance
    assert abs(found[0] - centre[0]) <= stack.slice_mm / 2 + max(spacing)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(direction=directions, spacing=spacings)
def test_stack_masks_map_back_onto_the_voxels(direction, spacing):
    vol, centre, ball = _volume_with_ball(direction, spacing)
    stack = make_stack(vol, "sagittal", 128, Intensity("ct_window", -1000, 1000), slice_mm=min(spacing) / 2)
    labels = {s: (stack.images[s] > 127).astype(np.uint16) for s in range(len(stack)) if stack.images[s].max() > 127}
    back = stack_labels_to_volume(stack, labels, vol) > 0
    k, j, i = np.nonzero(back)
    got = vol.ijk_to_ras_points(np.stack([i, j, k], -1).mean(0))[0]
    assert np.linalg.norm(got - centre) <= max(spacing)
    dice = 2 * (back & ball).sum() / (back.sum() + ball.sum())
    assert dice > 0.7


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd", ".mha"])
def test_file_round_trip_keeps_ras_geometry(tmp_path, ext):
    direction = random_rotation(np.random.default_rng(3)) @ np.diag([-1.0, 1.0, 1.0])
    vol, centre, _ = _volume_with_ball(direction, (0.7, 1.1, 2.3))
    write_volume(vol, tmp_path / f"v{ext}")
    back = read_volume(tmp_path / f"v{ext}")
    np.testing.assert_allclose(back.ijk_to_ras, vol.ijk_to_ras, atol=1e-4)
    np.testing.assert_array_equal(back.voxels, vol.voxels)
    assert back.modality == "ct"


def test_sagittal_axes_are_patient_axes():
    """Sagittal images: columns run anterior->posterior, rows superior->inferior."""
    vol, _, _ = _volume_with_ball(np.eye(3), (1, 1, 1))
    stack = make_stack(vol, "sagittal", 64)
    a = stack.to_ras(0, 0, 0)
    np.testing.assert_allclose(stack.to_ras(0, 1, 0) - a, [0, -stack.pixel_mm, 0], atol=1e-9)
    np.testing.assert_allclose(stack.to_ras(0, 0, 1) - a, [0, 0, -stack.pixel_mm], atol=1e-9)
