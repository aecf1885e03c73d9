"""Head pose in degrees, one convention for every backend, from 3D or 2D face landmarks (numpy only).

Convention (the one insightface uses for its `pose`): image axes x right, y down, z towards the
camera; a face's rotation is ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` applied to the 68-point mean
shape below (which faces the camera, so a frontal face is 0 / 0 / 0; the tests build R this way), with

    Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]]
    Ry(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]]
    Rz(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]].

So yaw > 0 when the nose turns towards the image's right, pitch > 0 when the face looks up
(the nose tip moves up in the image), roll > 0 when the face is turned clockwise on screen.
A horizontal flip of the image negates yaw and roll. Angles come back as insightface's
`transform.matrix2angle` decomposes R: yaw in [-90, 90], pitch and roll in (-180, 180].

Solvers:
- pose_from_landmarks3d: insightface's own (model_zoo/landmark.py): a least-squares 3D affine map
  from the mean shape onto the 68 predicted (x, y, z) landmarks of 1k3d68, its first two rows
  normalised to unit length, their cross product as the third row (not re-orthogonalised).
- pose_from_landmarks2d: the same mean shape fitted to 68 2D landmarks (dlib) with a scaled
  orthographic ("weak perspective") camera: a least-squares affine map, its two rows replaced by
  the nearest orthonormal pair (SVD), their cross product as the third row. Exact for
  orthographic projections; perspective at portrait distances costs under 2 degrees. All 68 points
  are fitted, as insightface fits all of 1k3d68's: without the 17 jaw-contour points the fit is
  exact in orthographic views but up to 10 degrees off under portrait perspective at |yaw| 75.
  Known limit: a 2D detector puts the contour on the visible outline, which slides over the face
  as it turns, so dlib reads strongly turned real faces with less yaw (face 4 of the group test
  photo: -32 degrees with all 68 points, -47 with the 51 inner points and the chin).
- pose_from_kps5: the same fit on the five keypoints (eye centres, nose tip, mouth corners) when no
  landmark model is available; coarser.
"""
from __future__ import annotations

import math

import numpy as np

# The 68-point 3D mean face insightface fits 1k3d68's landmarks to (insightface/data/objects/
# meanshape_68.pkl, identical in 0.7.3 and 2.1; MIT licence). iBUG 68-point order, x right, y down,
# z towards the camera; not centred or scaled (the fits absorb scale and shift).
MEANSHAPE_68 = np.array([
    [-0.6266950368881226, -0.2926996946334839, -0.3140018582344055],  # 0
    [-0.5996649265289307, -0.12250272184610367, -0.2924409508705139],  # 1
    [-0.571026086807251, 0.05118739977478981, -0.2549465000629425],  # 2
    [-0.5338566899299622, 0.21284838020801544, -0.1866333782672882],  # 3
    [-0.4797332286834717, 0.3506459593772888, -0.047699932008981705],  # 4
    [-0.3957556486129761, 0.4465116560459137, 0.07328663021326065],  # 5
    [-0.29880842566490173, 0.5106605887413025, 0.17977793514728546],  # 6
    [-0.18838681280612946, 0.554440438747406, 0.3166600465774536],  # 7
    [0.0014708322705700994, 0.584439218044281, 0.38841578364372253],  # 8
    [0.19099053740501404, 0.5517070889472961, 0.31433114409446716],  # 9
    [0.3269285559654236, 0.48957568407058716, 0.16839952766895294],  # 10
    [0.4400261342525482, 0.4023579955101013, 0.03596242889761925],  # 11
    [0.5068787336349487, 0.3116249442100525, -0.09476063400506973],  # 12
    [0.540894627571106, 0.20452618598937988, -0.20267142355442047],  # 13
    [0.574118435382843, 0.04570329561829567, -0.2841764986515045],  # 14
    [0.5991416573524475, -0.14585931599140167, -0.296495646238327],  # 15
    [0.6275436282157898, -0.30774804949760437, -0.30199483036994934],  # 16
    [-0.47466811537742615, -0.4376046359539032, 0.23648710548877716],  # 17
    [-0.4166599214076996, -0.4717560112476349, 0.3159925639629364],  # 18
    [-0.3475387990474701, -0.4840780198574066, 0.366113543510437],  # 19
    [-0.26063987612724304, -0.4763909876346588, 0.3992317318916321],  # 20
    [-0.16712301969528198, -0.45777544379234314, 0.4166091978549957],  # 21
    [0.1231740415096283, -0.45874011516571045, 0.4250619411468506],  # 22
    [0.2063615769147873, -0.4804193377494812, 0.41578391194343567],  # 23
    [0.28667303919792175, -0.4901494085788727, 0.3919537663459778],  # 24
    [0.3623969256877899, -0.4768601655960083, 0.3527863025665283],  # 25
    [0.425568163394928, -0.4500580430030823, 0.2953187823295593],  # 26
    [-0.007627937477082014, -0.3230886459350586, 0.46194377541542053],  # 27
    [-0.007876846939325333, -0.255738765001297, 0.5104694366455078],  # 28
    [-0.007687545381486416, -0.19917990267276764, 0.5525456666946411],  # 29
    [-0.007345120422542095, -0.14261691272258759, 0.5986667275428772],  # 30
    [-0.144961878657341, 0.033126939088106155, 0.4196909964084625],  # 31
    [-0.08434253931045532, 0.03127360716462135, 0.4731740951538086],  # 32
    [-0.005499685648828745, 0.03975145146250725, 0.5146695971488953],  # 33
    [0.06346292793750763, 0.04613516479730606, 0.4792240560054779],  # 34
    [0.13398391008377075, 0.02204025723040104, 0.41907867789268494],  # 35
    [-0.38675081729888916, -0.3133975565433502, 0.259631872177124],  # 36
    [-0.3166607916355133, -0.35007160902023315, 0.3285270035266876],  # 37
    [-0.2341379076242447, -0.35491427779197693, 0.3334933817386627],  # 38
    [-0.15516234934329987, -0.31524932384490967, 0.3143281042575836],  # 39
    [-0.23092176020145416, -0.28427040576934814, 0.3255828619003296],  # 40
    [-0.3175090253353119, -0.28516536951065063, 0.3098825216293335],  # 41
    [0.13895708322525024, -0.30982404947280884, 0.3182835876941681],  # 42
    [0.21945592761039734, -0.35319215059280396, 0.33802759647369385],  # 43
    [0.30174651741981506, -0.349665105342865, 0.333102285861969],  # 44
    [0.37665316462516785, -0.31351813673973083, 0.26322856545448303],  # 45
    [0.2966947853565216, -0.2871439754962921, 0.3220130503177643],  # 46
    [0.21462441980838776, -0.2905276417732239, 0.33124178647994995],  # 47
    [-0.20143844187259674, 0.23736143112182617, 0.37953662872314453],  # 48
    [-0.13732077181339264, 0.18578563630580902, 0.46525245904922485],  # 49
    [-0.07648587226867676, 0.15119342505931854, 0.5035716891288757],  # 50
    [-0.002535885199904442, 0.16872699558734894, 0.5164376497268677],  # 51
    [0.06442102789878845, 0.15088020265102386, 0.5045241117477417],  # 52
    [0.126465305685997, 0.17947596311569214, 0.4685916602611542],  # 53
    [0.21824784576892853, 0.23899227380752563, 0.37567368149757385],  # 54
    [0.13288259506225586, 0.28392839431762695, 0.4400508999824524],  # 55
    [0.06802233308553696, 0.2973543107509613, 0.4774041771888733],  # 56
    [-0.0004690653004217893, 0.30004069209098816, 0.4871094226837158],  # 57
    [-0.06934267282485962, 0.29696860909461975, 0.4805404841899872],  # 58
    [-0.14252015948295593, 0.2743033170700073, 0.43808019161224365],  # 59
    [-0.1781347393989563, 0.23059049248695374, 0.3963589668273926],  # 60
    [-0.07403063774108887, 0.2147187888622284, 0.4653262794017792],  # 61
    [-0.002636224264279008, 0.21414154767990112, 0.4832296073436737],  # 62
    [0.05981616675853729, 0.21076396107673645, 0.47224411368370056],  # 63
    [0.16690002381801605, 0.23127099871635437, 0.396789014339447],  # 64
    [0.059809282422065735, 0.22376428544521332, 0.46641337871551514],  # 65
    [-0.0014343614457175136, 0.2257590889930725, 0.4752439558506012],  # 66
    [-0.07522077113389969, 0.23065608739852905, 0.4671475291252136],  # 67
], dtype=np.float32)

# faces.base's five keypoints as mean-shape points: eye centres, nose tip, mouth corners
MEANSHAPE_5 = np.stack([MEANSHAPE_68[36:42].mean(0), MEANSHAPE_68[42:48].mean(0), MEANSHAPE_68[30],
                        MEANSHAPE_68[48], MEANSHAPE_68[54]]).astype(np.float32)


def euler_angles(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of R [3, 3], decomposed as insightface's matrix2angle does."""
    R = np.asarray(R, np.float64)
    sy = math.sqrt(R[0, 0] * R[0, 0] + R[1, 0] * R[1, 0])
    if sy >= 1e-6:
        pitch = math.atan2(R[2, 1], R[2, 2])
        roll = math.atan2(R[1, 0], R[0, 0])
    else:   # yaw at +-90 degrees: roll and pitch are one axis; insightface gives it all to pitch
        pitch = math.atan2(-R[1, 2], R[1, 1])
        roll = 0.0
    yaw = math.atan2(-R[2, 0], sy)
    return tuple(float(v) * 180.0 / math.pi for v in (yaw, pitch, roll))


def pose_from_landmarks3d(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from 68 3D landmarks [68, 3] (1k3d68, image pixels), as insightface.

    P [3, 4] solves landmarks ~ [MEANSHAPE_68, 1] @ P.T in least squares; R's rows are P's first
    two rows normalised and their cross product.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 3):
        raise ValueError(f"expected 68 3D landmarks of shape [68, 3], got {list(lm.shape)}")
    X = np.hstack([MEANSHAPE_68.astype(np.float64), np.ones((68, 1))])
    P = np.linalg.lstsq(X, lm, rcond=None)[0].T
    r1 = P[0, :3] / np.linalg.norm(P[0, :3])
    r2 = P[1, :3] / np.linalg.norm(P[1, :3])
    return euler_angles(np.stack([r1, r2, np.cross(r1, r2)]))


def _weak_perspective_rotation(points2d: np.ndarray, model3d: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] of a scaled orthographic fit of model3d [N, 3] to points2d [N, 2] (same frame)."""
    x = np.asarray(points2d, np.float64)
    X = np.asarray(model3d, np.float64)
    A = np.linalg.lstsq(X - X.mean(0), x - x.mean(0), rcond=None)[0].T     # [2, 3] ~ scale * R[:2]
    u, _, vt = np.linalg.svd(A, full_matrices=False)
    r12 = u @ vt                                                            # nearest orthonormal rows
    return np.vstack([r12, np.cross(r12[0], r12[1])])


def pose_from_landmarks2d(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from 68 2D landmarks [68, 2] (dlib, image pixels), weak perspective."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape [68, 2], got {list(lm.shape)}")
    return euler_angles(_weak_perspective_rotation(lm, MEANSHAPE_68))


def pose_from_kps5(kps: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from the five keypoints [5, 2] of faces.base (coarser than 68 points)."""
    k = np.asarray(kps, np.float64)
    if k.shape != (5, 2):
        raise ValueError(f"expected 5 keypoints of shape [5, 2], got {list(k.shape)}")
    return euler_angles(_weak_perspective_rotation(k, MEANSHAPE_5))


def kps5_from_landmarks68(landmarks: np.ndarray) -> np.ndarray:
    """faces.base's five keypoints [5, 2] float32 from 68 landmarks: eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks, np.float32)[:, :2]
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]]).astype(np.float32)
