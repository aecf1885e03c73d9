"""Head pose: the angle convention and both solvers recover known rotations of synthetic faces.

A synthetic face is the 68-point mean face rotated by a known (yaw, pitch, roll), projected to the
image (orthographically, or with a pinhole camera at 65 cm or 1 m, turning about the face centre or the
head centre) and fitted again: insightface packs fit the 68 3D landmarks (as insightface does), dlib the
68 2D landmarks; insightface's own solver runs on the same landmarks where the package is installed.
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from faces_helpers import project, rotation_matrix
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
    assert (rotation_matrix(30, 0, 0) @ nose)[0] > nose[0] + 0.2       # yaw > 0: nose to the image's right
    assert (rotation_matrix(0, 20, 0) @ nose)[1] < nose[1] - 0.1       # pitch > 0: nose up (y down)
    right_eye = P.MEANSHAPE_68[45]
    assert (rotation_matrix(0, 0, 20) @ right_eye)[1] > right_eye[1] + 0.1   # roll > 0: clockwise on screen
    for angles in GRID[::7]:
        assert _err(P.euler_angles(rotation_matrix(*angles)), angles) < 1e-9


def test_3d_and_2d_solvers_recover_orthographic_rotations():
    """|yaw| <= 75, |pitch| <= 40, roll anywhere in (-180, 180]: exact (to 1e-6 degrees)."""
    for yaw, pitch, roll in GRID:
        lm3 = project(yaw, pitch, roll, scale=80, centre=(320, 240), dims=3)
        kps = project(yaw, pitch, roll, scale=80, centre=(320, 240), points=P.MEANSHAPE_5)
        for name, got in (("3d", P.pose_from_landmarks3d(lm3)), ("2d", P.pose_from_landmarks2d(lm3[:, :2])),
                          ("kps5", P.pose_from_kps5(kps))):
            assert _err(got, (yaw, pitch, roll)) < 1e-6, (name, (yaw, pitch, roll), got)


# ----------------------------------------------------------------------------- perspective
FACE_CM = 14.0                                      # the mean face's jaw-to-jaw width, in centimetres
UNIT_CM = FACE_CM / float(np.ptp(P.MEANSHAPE_68[:, 0]))
HEAD_CENTRE_CM = 10.0                               # the head turns about a point this far behind the face
WIDE = list(itertools.product(YAWS, (-40, -20, 0, 20, 40), (-30, 0, 30)))
TYPICAL = list(itertools.product(YAWS, (-20, -10, 0, 10, 20), (-10, 0, 10)))
# measured max / median error in degrees (any angle) of our solvers and insightface's on the same landmarks:
# (distance cm, pivot) -> {grid: (max, median)}; the 2D and 3D solvers agree within 0.2 degrees
PERSPECTIVE_ERROR = {(65, "face"): {"wide": (7.9, 1.5), "typical": (5.2, 1.1)},
                     (65, "head"): {"wide": (18.8, 5.3), "typical": (12.8, 5.4)},
                     (100, "face"): {"wide": (5.3, 1.0), "typical": (3.5, 0.7)},
                     (100, "head"): {"wide": (11.8, 3.6), "typical": (7.6, 3.7)}}


def perspective_landmarks(yaw, pitch, roll, distance_cm: float, pivot: str, focal: float = 600.0) -> np.ndarray:
    """68 landmarks [68, 3] of the mean face turned about its centre ("face") or about a point HEAD_CENTRE_CM
    behind it ("head"), seen by a pinhole camera `distance_cm` in front of the face centre: x, y in pixels,
    z the depth scaled as 1k3d68 predicts it (the image scale at the face centre)."""
    X = P.MEANSHAPE_68.astype(np.float64)
    centre = X.mean(0)
    pivot_at = centre - [0, 0, HEAD_CENTRE_CM / UNIT_CM] if pivot == "head" else centre
    Y = (X - pivot_at) @ rotation_matrix(yaw, pitch, roll).T + pivot_at
    d = distance_cm / UNIT_CM
    depth = centre[2] + d - Y[:, 2]
    return np.stack([focal * (Y[:, 0] - centre[0]) / depth + 320, focal * (Y[:, 1] - centre[1]) / depth + 240,
                     focal * (Y[:, 2] - centre[2]) / d], 1)


def _errors(grid, distance, pivot, solve) -> np.ndarray:
    """[len(grid)] largest angle error of each pose."""
    return np.array([_err(solve(perspective_landmarks(y, p, r, distance, pivot)), (y, p, r)) for y, p, r in grid])


@pytest.mark.parametrize("distance,pivot", list(PERSPECTIVE_ERROR))
def test_error_under_perspective_at_portrait_distances(distance, pivot):
    """The honest accuracy: exact for orthographic views, but a face at 65 cm or 1 m turning about its centre
    or its head's centre reads several degrees off (the docs' table); the 2D fit (dlib) and the 3D fit
    (insightface's) make the same errors."""
    for name, grid in (("wide", WIDE), ("typical", TYPICAL)):
        worst, median = PERSPECTIVE_ERROR[(distance, pivot)][name]
        e2 = _errors(grid, distance, pivot, lambda lm: P.pose_from_landmarks2d(lm[:, :2]))
        e3 = _errors(grid, distance, pivot, P.pose_from_landmarks3d)
        for e in (e2, e3):
            assert e.max() == pytest.approx(worst, abs=0.25) and np.median(e) == pytest.approx(median, abs=0.25)
        assert np.abs(e2 - e3).max() < 0.6


def test_frontal_is_zero_and_yaw_does_not_leak_into_roll_or_pitch():
    for dims, fit in ((3, P.pose_from_landmarks3d), (2, P.pose_from_landmarks2d)):
        assert _err(fit(project(0, 0, 0, dims=dims)), (0, 0, 0)) < 1e-6
        for yaw in (-75, -45, 45, 75):
            y, p, r = fit(project(yaw, 0, 0, dims=dims))
            assert y == pytest.approx(yaw, abs=1e-6) and abs(p) < 1e-6 and abs(r) < 1e-6
    for yaw in (-75, -45, 45, 75):         # 1.1 m away, turning about a point 3 cm behind the face centre
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


def _insightface_pose(lm: np.ndarray) -> tuple[float, float, float]:
    """insightface 2.1's own solver (model_zoo/landmark.py): estimate_affine_matrix_3d23d, P2sRt, matrix2angle."""
    from insightface.utils import transform as T
    s, R, t = T.P2sRt(T.estimate_affine_matrix_3d23d(P.MEANSHAPE_68, np.asarray(lm, np.float32)))
    rx, ry, rz = T.matrix2angle(R)
    return ry, rx, rz


@pytest.mark.parametrize("distance,pivot", list(PERSPECTIVE_ERROR))
def test_insightfaces_solver_makes_the_same_errors_under_perspective(distance, pivot):
    """Next to insightface's own code on the same perspective landmarks: its errors are ours (3D: the same
    angles; 2D: within 0.6 degrees), so the limit is the weak-perspective model both use, not this port."""
    _insightface()
    ours3 = np.array([P.pose_from_landmarks3d(perspective_landmarks(*g, distance, pivot)) for g in WIDE])
    theirs = np.array([_insightface_pose(perspective_landmarks(*g, distance, pivot)) for g in WIDE])
    np.testing.assert_allclose(ours3, theirs, atol=1e-4)
    e_theirs = np.array([_err(t, g) for t, g in zip(theirs, WIDE)])
    assert e_theirs.max() == pytest.approx(PERSPECTIVE_ERROR[(distance, pivot)]["wide"][0], abs=0.25)
    e2 = _errors(WIDE, distance, pivot, lambda lm: P.pose_from_landmarks2d(lm[:, :2]))
    assert np.abs(e2 - e_theirs).max() < 0.6


def test_3d_solver_is_insightfaces_on_noisy_landmarks():
    """insightface's own estimate_affine_matrix_3d23d + P2sRt + matrix2angle (model_zoo/landmark.py) on
    landmarks that are not an exact rotation (noise, anisotropic scale): the same angles."""
    _insightface()
    rng = np.random.default_rng(3)
    for yaw, pitch, roll in GRID[::5]:
        lm = project(yaw, pitch, roll, scale=70, centre=(200, 180), dims=3)
        lm = (lm * [1.0, 1.07, 0.9] + rng.normal(0, 1.5, lm.shape)).astype(np.float32)
        np.testing.assert_allclose(P.pose_from_landmarks3d(lm), _insightface_pose(lm), atol=1e-7)
