"""Head pose: the angle convention and both solvers recover known rotations of synthetic faces.

A synthetic face is the 68-point mean face rotated by a known (yaw, pitch, roll), projected to the
image (orthographically, or with a pinhole camera at a portrait distance) and fitted again:
insightface packs fit the 68 3D landmarks (as insightface does), dlib the 68 2D landmarks.
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from faces_helpers import project
from mv2id_core.faces import pose as P

YAWS = (-75, -60, -40, -20, 0, 15, 35, 55, 75)
PITCHES = (-40, -20, 0, 10, 25, 40)
ROLLS = (-179, -120, -45, -10, 0, 5, 30, 90, 150, 180)
GRID = list(itertools.product(YAWS, PITCHES, ROLLS))


def _err(got, want):
    """Largest angle difference in degrees, modulo 360."""
    d = (np.asarray(got, np.float64) - np.asarray(want, np.float64) + 180.0) % 360.0 - 180.0
    return float(np.abs(d).max())


def test_convention_signs_on_the_mean_face():
    nose = P.MEANSHAPE_68[30]
    assert nose[2] > 0.5                                                  # z points at the camera
    assert (P.rotation_matrix(30, 0, 0) @ nose)[0] > nose[0] + 0.2       # yaw > 0: nose to the image's right
    assert (P.rotation_matrix(0, 20, 0) @ nose)[1] < nose[1] - 0.1       # pitch > 0: nose up (y down)
    right_eye = P.MEANSHAPE_68[45]
    assert (P.rotation_matrix(0, 0, 20) @ right_eye)[1] > right_eye[1] + 0.1   # roll > 0: clockwise on screen
    for angles in GRID[::7]:
        assert _err(P.euler_angles(P.rotation_matrix(*angles)), angles) < 1e-9


def test_3d_and_2d_solvers_recover_orthographic_rotations():
    """|yaw| <= 75, |pitch| <= 40, roll anywhere in (-180, 180]: exact (to 1e-6 degrees)."""
    for yaw, pitch, roll in GRID:
        lm3 = project(yaw, pitch, roll, scale=80, centre=(320, 240), dims=3)
        kps = project(yaw, pitch, roll, scale=80, centre=(320, 240), points=P.MEANSHAPE_5)
        for name, got in (("3d", P.pose_from_landmarks3d(lm3)), ("2d", P.pose_from_landmarks2d(lm3[:, :2])),
                          ("kps5", P.pose_from_kps5(kps))):
            assert _err(got, (yaw, pitch, roll)) < 1e-6, (name, (yaw, pitch, roll), got)


def test_2d_solver_within_2_degrees_under_portrait_perspective():
    """A pinhole camera 10 mean-face units away (about 70 cm from a face 14 cm wide) and 0.3 px landmark
    noise: still within 2 degrees over the whole range."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for yaw, pitch, roll in GRID:
        lm = project(yaw, pitch, roll, scale=150, centre=(400, 300), distance=10.0)
        worst = max(worst, _err(P.pose_from_landmarks2d(lm + rng.normal(0, 0.3, lm.shape)), (yaw, pitch, roll)))
    assert worst < 2.0, worst


def test_frontal_is_zero_and_yaw_does_not_leak_into_roll_or_pitch():
    for dims, fit in ((3, P.pose_from_landmarks3d), (2, P.pose_from_landmarks2d)):
        assert _err(fit(project(0, 0, 0, dims=dims)), (0, 0, 0)) < 1e-6
        for yaw in (-75, -45, 45, 75):
            y, p, r = fit(project(yaw, 0, 0, dims=dims))
            assert y == pytest.approx(yaw, abs=1e-6) and abs(p) < 1e-6 and abs(r) < 1e-6
    for yaw in (-75, -45, 45, 75):                     # perspective: within the 2 degrees of the bound
        y, p, r = P.pose_from_landmarks2d(project(yaw, 0, 0, scale=150, distance=10.0))
        assert abs(y - yaw) < 2 and abs(r) < 2 and abs(p) < 2


def test_mirror_image_negates_yaw_and_roll():
    flip = np.array([16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18,
                     17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53,
                     52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])   # iBUG left <-> right
    lm = project(27, 8, 11, scale=90, centre=(100, 100))
    mirrored = lm.copy()
    mirrored[:, 0] = 200 - mirrored[:, 0]
    y, p, r = P.pose_from_landmarks2d(mirrored[flip])
    # insightface's mean face is not exactly left-right symmetric: the mirror pose is (-27, 8, -11) within 3 degrees
    assert y == pytest.approx(-27, abs=3) and p == pytest.approx(8, abs=3) and r == pytest.approx(-11, abs=3)


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="68 3D landmarks"):
        P.pose_from_landmarks3d(np.zeros((68, 2)))
    with pytest.raises(ValueError, match="68 landmarks"):
        P.pose_from_landmarks2d(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="5 keypoints"):
        P.pose_from_kps5(np.zeros((68, 2)))


# ----------------------------------------------------------------------------- against insightface's code
def _insightface():
    pytest.importorskip("insightface", reason="the insightface package (its transform code and mean shape) is not "
                                              "installed; the comparison needs it")
    import insightface
    return insightface


def test_mean_shape_is_insightfaces():
    ins = _insightface()
    with open(Path(ins.__file__).parent / "data" / "objects" / "meanshape_68.pkl", "rb") as fh:
        theirs = pickle.load(fh)
    assert theirs.dtype == np.float32 and np.array_equal(theirs, P.MEANSHAPE_68)


def test_3d_solver_is_insightfaces_on_noisy_landmarks():
    """insightface's own estimate_affine_matrix_3d23d + P2sRt + matrix2angle (model_zoo/landmark.py) on
    landmarks that are not an exact rotation (noise, anisotropic scale): the same angles."""
    _insightface()
    from insightface.utils import transform as T
    rng = np.random.default_rng(3)
    for yaw, pitch, roll in GRID[::5]:
        lm = project(yaw, pitch, roll, scale=70, centre=(200, 180), dims=3)
        lm = (lm * [1.0, 1.07, 0.9] + rng.normal(0, 1.5, lm.shape)).astype(np.float32)
        s, R, t = T.P2sRt(T.estimate_affine_matrix_3d23d(P.MEANSHAPE_68, lm))
        rx, ry, rz = T.matrix2angle(R)
        np.testing.assert_allclose(P.pose_from_landmarks3d(lm), (ry, rx, rz), atol=1e-7)
