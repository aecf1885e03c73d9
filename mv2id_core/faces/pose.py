"""Head pose (yaw, pitch, roll in degrees) from 2D face landmarks, with numpy only.

A generic 3D face (a few well-placed points, nose tip at the origin, x to the image's right,
y up, z towards the camera, arbitrary units: the fit is scale-free) is fitted to the landmarks with a scaled
orthographic camera: a least-squares affine fit, its two rows made orthonormal (SVD), the
third row their cross product. Faces are small against the camera distance in portraits and
video frames, so the orthographic camera loses little and needs no focal length.

Angle conventions are those of ``faces.base``: yaw > 0 when the nose points to the image's
right, pitch > 0 when the face looks up, roll > 0 when the face is turned clockwise in the
image. The model is left-right symmetric, so a mirrored image gives -yaw and -roll.
"""
from __future__ import annotations

import numpy as np

# dlib / iBUG 68-point indices -> generic 3D position. "Left" is the image's left on a frontal face.
# Proportions: a 68-point 3D mean face (morphable-model mean shape) turned so that its five
# keypoints project onto the ArcFace alignment template (so an aligned face has yaw = pitch = 0),
# then symmetrised and rounded.
MODEL_68: dict[int, tuple[float, float, float]] = {
    30: (0.0, 0.0, 0.0),            # nose tip
    27: (0.0, 130.0, -35.0),        # nasion (between the eyes)
    33: (0.0, -80.0, -85.0),        # nose base
    31: (-85.0, -55.0, -135.0),     # left nostril wing
    35: (85.0, -55.0, -135.0),      # right nostril wing
    36: (-225.0, 170.0, -150.0),    # left eye, outer corner
    39: (-85.0, 155.0, -120.0),     # left eye, inner corner
    42: (85.0, 155.0, -120.0),      # right eye, inner corner
    45: (225.0, 170.0, -150.0),     # right eye, outer corner
    48: (-125.0, -160.0, -205.0),   # left mouth corner
    54: (125.0, -160.0, -205.0),    # right mouth corner
    8: (0.0, -355.0, -275.0),       # chin
}

# the 5 keypoints of faces.base (left eye centre, right eye centre, nose tip, mouth corners)
MODEL_5 = np.array([(-155.0, 158.0, -120.0), (155.0, 158.0, -120.0), (0.0, 0.0, 0.0),
                    (-125.0, -160.0, -205.0), (125.0, -160.0, -205.0)], np.float64)

# ArcFace's 5-point alignment template for 112x112 crops (pixels); also the frontal reference
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)

_IDX_68 = np.array(sorted(MODEL_68), np.int64)
_PTS_68 = np.array([MODEL_68[i] for i in _IDX_68], np.float64)


def fit_rotation(points2d: np.ndarray, model3d: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] (model -> camera, y up) of a scaled orthographic fit.

    points2d: [N, 2] image pixels (x right, y down); model3d: [N, 3]; N >= 4.
    """
    x = np.asarray(points2d, np.float64).copy()
    X = np.asarray(model3d, np.float64)
    if x.shape[0] != X.shape[0] or x.shape[0] < 4:
        raise ValueError(f"need the same number (>= 4) of 2D and 3D points, got {x.shape} and {X.shape}")
    x[:, 1] = -x[:, 1]                                   # image y grows downwards; the model's grows up
    xc = x - x.mean(0)
    Xc = X - X.mean(0)
    A, *_ = np.linalg.lstsq(Xc, xc, rcond=None)          # [3, 2]: xc ~ Xc @ A
    M = A.T                                              # [2, 3] = s * first two rows of R
    u, _, vt = np.linalg.svd(M, full_matrices=False)
    r12 = u @ vt                                         # nearest matrix with orthonormal rows
    R = np.vstack([r12, np.cross(r12[0], r12[1])])
    return R


def rotation_to_euler(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of R = Rz(-roll) Rx(-pitch) Ry(yaw) (camera x right, y up, z out)."""
    R = np.asarray(R, np.float64)
    yaw = np.degrees(np.arctan2(-R[2, 0], R[2, 2]))
    pitch = -np.degrees(np.arcsin(np.clip(R[2, 1], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(R[0, 1], R[1, 1]))
    return float(yaw), float(pitch), float(roll)


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of rotation_to_euler (degrees -> [3, 3]); used to synthesise poses in tests."""
    b, a, g = np.radians(yaw), -np.radians(pitch), -np.radians(roll)
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    return rz @ rx @ ry


def pose_from_landmarks68(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from dlib's 68 landmarks [68, 2] (image pixels)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape [68, 2], got {list(lm.shape)}")
    return rotation_to_euler(fit_rotation(lm[_IDX_68], _PTS_68))


def pose_from_kps5(kps: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from the 5 keypoints [5, 2] of faces.base (coarser than 68 points)."""
    k = np.asarray(kps, np.float64)
    if k.shape != (5, 2):
        raise ValueError(f"expected 5 keypoints of shape [5, 2], got {list(k.shape)}")
    return rotation_to_euler(fit_rotation(k, MODEL_5))


def kps5_from_landmarks68(landmarks: np.ndarray) -> np.ndarray:
    """faces.base's 5 keypoints [5, 2] float32 from 68 landmarks: eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks, np.float32)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]]).astype(np.float32)


def project(model3d: np.ndarray, yaw: float, pitch: float, roll: float, scale: float = 1.0,
            center=(0.0, 0.0)) -> np.ndarray:
    """Orthographic image points [N, 2] (y down) of a 3D model [N, 3] at a pose; test helper."""
    R = euler_to_rotation(yaw, pitch, roll)
    p = (np.asarray(model3d, np.float64) @ R.T)[:, :2] * scale
    p[:, 1] = -p[:, 1]
    return p + np.asarray(center, np.float64)
