"""The insightface backend's loading, decoding and error paths, with small ONNX models made here.

The real packs cannot be downloaded here, so these models have the real ones' signatures (SCRFD's
nine outputs over strides 8/16/32 with two anchors and keypoints; 1k3d68's [N, 3309] from a
192x192 crop; ArcFace's [N, 512] from a 112x112 crop) and simple, known behaviour: the detector
fires where a stride-8 cell of the red channel is bright, the landmark model returns a face
at a chosen pose, the recognition model is a fixed linear map. So the decoding (anchors,
distances, scale, NMS), the crops, the pose and the error messages can be checked exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mv2id_core.errors import FaceAnalysisError  # noqa: E402
from mv2id_core.faces import load_analyzer  # noqa: E402
from mv2id_core.faces import insightface_backend as IB  # noqa: E402
from mv2id_core.faces import pose as P  # noqa: E402

OPSET = [helper.make_opsetid("", 13)]
BOX = 2.0                                        # box half-size in stride units (16 px at stride 8)
KPS = np.array([[-0.75, -0.5], [0.75, -0.5], [0.0, 0.2], [-0.5, 1.0], [0.5, 1.0]], np.float32)


def _save(graph, path, names=None):
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def make_detector(path, mode: str = "bright"):
    """SCRFD signature: input [1, 3, ?, ?]; outputs score/bbox/kps for strides 8, 16, 32 (2 anchors)."""
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])
    nodes, inits, outs = [], [], {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"p{s}"], kernel_shape=[s, s], strides=[s, s]))
        live = s == 8
        if mode == "bright":      # logit 20 * red - 10: fires on a fully bright cell
            w_sc = np.array([[20.0, 0, 0]] * 2) if live else np.zeros((2, 3))
            b_sc = [-10.0, -10.0] if live else [-30.0, -30.0]
            src = f"p{s}"
        else:                     # "grey": logit 10 - 40 |red|, fires on mid-grey cells only
            nodes.append(helper.make_node("Abs", [f"p{s}"], [f"a{s}"]))
            w_sc = np.array([[-40.0, 0, 0]] * 2) if live else np.zeros((2, 3))
            b_sc = [10.0, 10.0] if live else [-30.0, -30.0]
            src = f"a{s}"
        heads = {"score": (w_sc, b_sc, 1), "bbox": (np.zeros((8, 3)), [BOX] * 8, 4),
                 "kps": (np.zeros((20, 3)), list(KPS.reshape(-1)) * 2, 10)}
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
    graph = helper.make_graph(nodes, "scrfd_test", [x], outs["score"] + outs["bbox"] + outs["kps"], inits)
    _save(graph, path)


def landmark_rows(yaw, pitch, roll) -> np.ndarray:
    """1k3d68-style output [3309]: 1103 rows of (x, y, z) in [-1, 1] crop units, the 68 landmarks last;
    the nose tip (30) at the crop centre."""
    pts = np.zeros((68, 2))
    pts[P._IDX_68] = P.project(P._PTS_68, yaw, pitch, roll, scale=0.0015)
    rows = np.zeros((1103, 3), np.float32)
    rows[-68:, :2] = pts
    return rows.reshape(-1)


def make_landmark(path, yaw=30.0, pitch=10.0, roll=0.0):
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3309])
    nodes = [helper.make_node("ReduceMean", ["data"], ["m"], axes=[1, 2, 3], keepdims=0),   # [1]
             helper.make_node("Unsqueeze", ["m", "ax"], ["m2"]),                            # [1, 1]
             helper.make_node("Mul", ["m2", "zero"], ["z"]),
             helper.make_node("Add", ["z", "rows"], ["fc1"])]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ax"), _const("zero", [0.0]),
             _const("rows", landmark_rows(yaw, pitch, roll)[None])]
    _save(helper.make_graph(nodes, "landmark_test", [x], [y], inits), path)


REC_W = np.random.default_rng(0).standard_normal((588, 512)).astype(np.float32)


def make_recognition(path, normalised_in_graph: bool = False):
    """ArcFace signature: [N, 3, 112, 112] -> [N, 512]: 8x8 average pool, flatten, fixed linear map."""
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
    """A model the backend must ignore (genderage: 96x96 input)."""
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])
    nodes = [helper.make_node("ReduceMean", ["data"], ["m"], axes=[2, 3], keepdims=0)]
    _save(helper.make_graph(nodes, "ga_test", [x], [helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 3])]),
          path)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """<root>/models/antelopev2 with the real file names; also a buffalo_l with a grey-firing detector."""
    r = tmp_path_factory.mktemp("insightface")
    a = r / "models" / "antelopev2"
    a.mkdir(parents=True)
    make_detector(a / "scrfd_10g_bnkps.onnx")
    make_landmark(a / "1k3d68.onnx")
    make_recognition(a / "glintr100.onnx")
    make_genderage(a / "genderage.onnx")
    b = r / "models" / "buffalo_l"
    b.mkdir(parents=True)
    make_detector(b / "det_10g.onnx", mode="grey")
    make_recognition(b / "w600k_r50.onnx", normalised_in_graph=True)
    return r


def _cell_image(size=640, row=20, col=30, stride=8):
    img = np.zeros((size, size, 3), np.uint8)
    img[row * stride:(row + 1) * stride, col * stride:(col + 1) * stride] = 255
    return img


def test_decodes_one_face_with_box_keypoints_and_pose(root):
    an = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu")
    faces = an.analyze(_cell_image())
    assert len(faces) == 1                                           # two anchors fired; NMS kept one
    f = faces[0]
    cx, cy = 30 * 8, 20 * 8                                          # the anchor centre of cell (20, 30)
    np.testing.assert_allclose(f.bbox, [cx - 16, cy - 16, cx + 16, cy + 16], atol=1e-3)
    np.testing.assert_allclose(f.kps, np.array([cx, cy]) + KPS * 8, atol=1e-3)
    assert f.det_score > 0.99 and f.extra["attempt"] == "as is"
    assert f.yaw == pytest.approx(30, abs=0.5) and f.pitch == pytest.approx(10, abs=0.5)
    # the landmark model put the nose tip at the crop centre = the box centre, in image pixels
    np.testing.assert_allclose(f.landmarks[30], [cx, cy], atol=0.05)
    assert f.embedding.shape == (512,) and np.linalg.norm(f.embedding) == pytest.approx(1, abs=1e-5)
    assert "insightface antelopev2 (CPU, det_size 640, pose from 1k3d68 landmarks)" == an.describe()


def test_boxes_are_scaled_back_to_the_input_image(root):
    an = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu", retry=False)
    small = _cell_image(size=320, row=20, col=30, stride=4)          # 4 px cell -> 8 px at det size 640
    (f,) = an.analyze(small, embed=False)
    np.testing.assert_allclose(f.bbox, [120 - 8, 80 - 8, 120 + 8, 80 + 8], atol=0.5)
    assert f.embedding is None


def test_nothing_found_gives_an_empty_list(root):
    an = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu")
    assert an.analyze(np.zeros((200, 300, 3), np.uint8)) == []


def test_grey_padding_retry_and_kps_pose_without_landmark_model(root):
    """buffalo_l here fires on mid-grey only, so a black image is found only in the grey-padded retry;
    its boxes are mapped back through the padding (they lie outside the image)."""
    an = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu")
    assert an.landmark is None and "pose from 5 keypoints" in an.describe()
    img = np.zeros((256, 256, 3), np.uint8)
    boxes, scores, kps, attempt = an.detect(img)
    assert attempt == "grey padding" and len(boxes) > 0
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    outside = (centres < 0).any(1) | (centres >= 256).any(1)       # pixels 0..255 are the image
    assert outside.all()
    no_retry = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu", retry=False)
    assert no_retry.analyze(img) == []


def test_recognition_crop_and_embedding(root):
    an = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    # keypoints already at the ArcFace template: the aligned crop is the top-left 112x112
    crop = an.recognition.aligned_crop(img, P.ARCFACE_TEMPLATE)
    assert np.abs(crop.astype(int) - img[:112, :112]).max() <= 1
    emb = an.recognition.embed(img, P.ARCFACE_TEMPLATE)
    x = (crop.astype(np.float32) - 127.5) / 127.5
    pooled = x.transpose(2, 0, 1).reshape(3, 14, 8, 14, 8).mean((2, 4)).reshape(-1)
    want = pooled @ REC_W
    np.testing.assert_allclose(emb, want / np.linalg.norm(want), atol=1e-4)
    # a shifted face (keypoints shifted with it) gives the same embedding
    shifted = np.zeros((200, 200, 3), np.uint8)
    shifted[20:180, 30:190] = img
    emb2 = an.recognition.embed(shifted, P.ARCFACE_TEMPLATE + np.array([30, 20], np.float32))
    assert float(emb @ emb2) > 0.999


def test_graph_normalisation_is_detected_like_insightface(root):
    a = root / "models" / "antelopev2" / "glintr100.onnx"
    b = root / "models" / "buffalo_l" / "w600k_r50.onnx"
    assert IB.first_node_names(str(b))[:2] == ["_minusscalar0", "_mulscalar0"]
    assert IB.first_node_names(str(b)) == [n.name for n in onnx.load(str(b)).graph.node][:8]
    assert not IB._normalised_in_graph(str(a)) and IB._normalised_in_graph(str(b))
    an = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu")
    assert (an.recognition.mean, an.recognition.std) == (0.0, 1.0)
    # raw-input model + in-graph normalisation == normalised input + plain model
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    plain = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu")
    np.testing.assert_allclose(an.recognition.embed(img, P.ARCFACE_TEMPLATE),
                               plain.recognition.embed(img, P.ARCFACE_TEMPLATE), atol=1e-5)


def test_missing_pack_names_the_folder_and_files(tmp_path):
    with pytest.raises(FaceAnalysisError) as ei:
        load_analyzer("insightface", pack="antelopev2", model_dir=tmp_path, provider="cpu")
    msg = str(ei.value)
    assert str(tmp_path / "models" / "antelopev2") in msg and "scrfd_10g_bnkps.onnx, glintr100.onnx" in msg


def test_nested_pack_says_move_up(tmp_path):
    d = tmp_path / "models" / "antelopev2" / "antelopev2"
    d.mkdir(parents=True)
    make_recognition(d / "glintr100.onnx")
    with pytest.raises(FaceAnalysisError, match="nested one folder too deep") as ei:
        load_analyzer("insightface", pack="antelopev2", model_dir=tmp_path, provider="cpu")
    assert f"Move them up into {tmp_path / 'models' / 'antelopev2'}" in str(ei.value)


def test_loose_onnx_files_say_where_they_belong(tmp_path):
    (tmp_path / "models").mkdir()
    make_recognition(tmp_path / "models" / "w600k_r50.onnx")
    with pytest.raises(FaceAnalysisError, match="each insightface pack needs its own folder") as ei:
        load_analyzer("insightface", pack="buffalo_l", model_dir=tmp_path, provider="cpu")
    assert str(tmp_path / "models" / "buffalo_l") in str(ei.value)


def test_incomplete_pack_names_the_missing_model(tmp_path):
    d = tmp_path / "models" / "antelopev2"
    d.mkdir(parents=True)
    make_detector(d / "scrfd_10g_bnkps.onnx")
    with pytest.raises(FaceAnalysisError, match=r"has no a recognition model \(glintr100.onnx or w600k_r50.onnx\)"):
        load_analyzer("insightface", pack="antelopev2", model_dir=tmp_path, provider="cpu")
    (d / "glintr100.onnx").write_bytes(b"not a model")
    with pytest.raises(FaceAnalysisError, match="cannot load .*glintr100.onnx.*download the antelopev2 pack again"):
        load_analyzer("insightface", pack="antelopev2", model_dir=tmp_path, provider="cpu")


def test_cuda_without_cuda_runtime_explains_the_conflict(root):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(FaceAnalysisError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cuda")
    an = load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="auto")
    assert an.providers == ["CPUExecutionProvider"]


def test_bad_options(root):
    with pytest.raises(ValueError, match="multiple of 32"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, det_size=100)
    with pytest.raises(ValueError, match="provider must be"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="tpu")


def test_nms_and_similarity_helpers():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert IB.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.4) == [0, 2]
    assert IB.nms(boxes, np.array([0.7, 0.8, 0.9]), 0.4) == [2, 1]
    src = np.array([[0, 0], [10, 0], [0, 10], [7, 3]], np.float64)
    ang, sc, t = np.radians(30), 1.7, np.array([5, -2])
    R = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    M = IB.similarity_transform(src, src @ R.T + t)
    np.testing.assert_allclose(M, np.hstack([R, t[:, None]]), atol=1e-9)
