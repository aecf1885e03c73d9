"""The insightface backend computes what insightface computes: resize, blob, anchors, decode, NMS,
crops and warps, input normalisation rules, landmarks and pose, embeddings; and its loading errors.

The small ONNX models of faces_helpers have the real packs' signatures. Rules are checked on their
own (against the numbers insightface's rules give by hand), and, where the insightface package
(2.1, pure Python) and OpenCV are importable, against insightface's own model_zoo classes and
FaceAnalysis running on the same ONNX files.
"""
from __future__ import annotations

import numpy as np
import pytest

from faces_helpers import (BOX, KPS, REC_W, cell_image, landmark_rows, make_detector, make_genderage, make_landmark,
                           make_pack, make_recognition, project)
from mv2id_core.errors import FaceAnalysisError, InputError
from mv2id_core.faces import find_face, load_analyzer
from mv2id_core.faces import align as A
from mv2id_core.faces import insightface_backend as IB
from mv2id_core.faces import pose as P

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")   # skimage 0.26 on insightface's estimate()
pytest.importorskip("onnxruntime")


def _cv2():
    return pytest.importorskip("cv2", reason="OpenCV is not installed: the comparison with OpenCV's own resize and "
                                             "warp needs it (pip install opencv-python-headless)")


def _insightface():
    pytest.importorskip("insightface", reason="the insightface package is not installed: the comparison with its own "
                                              "model_zoo code needs it (pip install insightface)")
    _cv2()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """<root>/models/antelopev2 with the real file names; a buffalo_l with a grey-firing detector and an
    in-graph-normalised recognition model and no landmark model."""
    r = tmp_path_factory.mktemp("insightface")
    make_pack(r / "models" / "antelopev2")
    make_pack(r / "models" / "buffalo_l", detector="det_10g.onnx", recognition="w600k_r50.onnx", landmark=False,
              genderage=False, detector_mode="grey", normalised_in_graph=True)
    return r


@pytest.fixture(scope="module")
def an(root):
    return load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="cpu")


def _norm(pixels):
    """The detector's view of pixel values: (v - 127.5) / 128."""
    return (np.asarray(pixels, np.float64) - 127.5) / 128.0


def _scene(h, w, seed=0, blocks=6):
    """Bright 24x24 blocks (red 200..255, green/blue random) on black: several 'faces' of varying scores,
    box sizes and keypoints."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    for _ in range(blocks):
        y, x = rng.integers(0, h - 24), rng.integers(0, w - 24)
        img[y:y + 24, x:x + 24] = (rng.integers(200, 256), rng.integers(0, 256), rng.integers(0, 256))
    return img


# ----------------------------------------------------------------------------- the rules, by hand
def test_detector_input_truncates_and_uses_one_scale():
    img = np.full((480, 832, 3), 200, np.uint8)
    canvas, scale = IB.detector_input(img, (320, 320))
    # width pinned: new height int(320 * 480 / 832) = int(184.6) = 184 (rounding would give 185)
    assert canvas.shape == (320, 320, 3) and scale == 184 / 480
    assert (canvas[:184] == 200).all() and (canvas[184:] == 0).all()      # top-left, black below
    portrait = np.full((832, 480, 3), 200, np.uint8)
    canvas, scale = IB.detector_input(portrait, (320, 320))
    # height pinned: new width int(320 / (832 / 480)) = 184; det_scale = new height / height = 320 / 832
    assert scale == 320 / 832 and (canvas[:, :184] == 200).all() and (canvas[:, 184:] == 0).all()


def test_nms_counts_the_extra_pixel_and_keeps_iou_at_the_threshold():
    # boxes 10 wide, 4.5 apart: IoU 0.379 without the +1, 0.419 with it: insightface suppresses the second
    dets = np.array([[0, 0, 10, 10, 0.9], [4.5, 0, 14.5, 10, 0.8]], np.float32)
    assert IB.nms(dets, 0.4) == [0]
    assert IB.nms(dets, 0.42) == [0, 1]
    # ties in score keep the earlier row first (insightface 2.1's stable sort)
    same = np.array([[0, 0, 10, 10, 0.5], [50, 50, 60, 60, 0.5], [1, 0, 11, 10, 0.9]], np.float32)
    assert IB.nms(same, 0.4) == [2, 1]


def test_decodes_boxes_and_keypoints_from_anchor_distances(an):
    img = cell_image(value=(255, 160, 96))                             # cell (20, 30) at stride 8
    (f,) = an.analyze(img)                                               # two anchors fired; NMS kept one
    cx, cy = 30 * 8, 20 * 8                                              # the anchor centre, no +0.5
    g, b = _norm(160), _norm(96)
    want = [cx - (BOX + g) * 8, cy - (BOX + g) * 8, cx + (BOX + 0.5 * g) * 8, cy + (BOX + 0.5 * g) * 8]
    np.testing.assert_allclose(f.bbox, want, atol=1e-4)
    np.testing.assert_allclose(f.kps, np.array([cx, cy]) + (KPS + [0.5 * b, 0]) * 8, atol=1e-4)
    assert f.det_score == pytest.approx(1 / (1 + np.exp(-(20 * _norm(255) - 10))), abs=1e-6)   # anchor 0
    assert f.yaw == pytest.approx(30, abs=1e-3) and f.pitch == pytest.approx(10, abs=1e-3) and abs(f.roll) < 1e-3
    assert f.landmarks.shape == (68, 3)
    assert f.embedding.shape == (512,) and np.linalg.norm(f.embedding) == pytest.approx(1, abs=1e-5)
    assert an.describe() == "insightface antelopev2 (CPU, det_size 640, pose from 1k3d68 landmarks)"


def test_boxes_are_divided_by_the_one_det_scale(an):
    img = np.zeros((320, 320, 3), np.uint8)
    img[76:88, 116:128] = 255                         # 12 px -> 24 px at det size 640: one full cell (20, 30)
    (f,) = an.analyze(img, embed=False)                # its blurred neighbours score lower and are suppressed
    g = _norm(255)
    np.testing.assert_allclose(f.bbox, [120 - (BOX + g) * 4, 80 - (BOX + g) * 4, 120 + (BOX + g / 2) * 4,
                                        80 + (BOX + g / 2) * 4], atol=1e-4)
    assert f.embedding is None


def test_nothing_found_gives_an_empty_list(an):
    assert an.analyze(np.zeros((200, 300, 3), np.uint8)) == []


def test_landmark_pose_recovers_known_rotations(tmp_path):
    """The pose the backend reports from 1k3d68's 68 3D landmarks, through the crop and back: within
    2 degrees (here: to 0.01) for |yaw| <= 75, |pitch| <= 40 and any roll."""
    for i, (yaw, pitch, roll) in enumerate([(0, 0, 0), (75, 0, 0), (-75, 20, 0), (-40, -40, 35), (60, 40, -120),
                                            (10, 5, 179)]):
        pack = make_pack(tmp_path / "models" / f"p{i}", landmark=False, genderage=False)
        make_landmark(pack / "1k3d68.onnx", yaw=yaw, pitch=pitch, roll=roll)
        (f,) = load_analyzer("insightface", pack=f"p{i}", model_dir=tmp_path, provider="cpu").analyze(cell_image(),
                                                                                                       embed=False)
        assert (f.yaw, f.pitch, f.roll) == pytest.approx((yaw, pitch, roll), abs=0.01)


def test_input_normalisation_rules(tmp_path):
    lm_names = {"plain": ("a", "b", "c", "d"), "bn_data": ("bn_data", "b", "c", "d"),
                "bn_data_late": ("a", "b", "c", "bn_data"), "sub_mul": ("_minusscalar0", "_mulscalar0", "c", "d")}
    want_lm = {"plain": (127.5, 128.0), "bn_data": (0.0, 1.0), "bn_data_late": (127.5, 128.0), "sub_mul": (0.0, 1.0)}
    for k, names in lm_names.items():
        make_landmark(tmp_path / f"lm_{k}.onnx", first_names=names)
        assert IB.input_normalisation(str(tmp_path / f"lm_{k}.onnx"), "landmark_3d_68") == want_lm[k], k
    # recognition models: no bn_data rule and a 127.5 std
    make_recognition(tmp_path / "rec.onnx")
    make_recognition(tmp_path / "rec_graph.onnx", normalised_in_graph=True)
    assert IB.input_normalisation(str(tmp_path / "rec.onnx"), "recognition") == (127.5, 127.5)
    assert IB.input_normalisation(str(tmp_path / "rec_graph.onnx"), "recognition") == (0.0, 1.0)
    assert IB.input_normalisation(str(tmp_path / "lm_bn_data.onnx"), "recognition") == (127.5, 127.5)
    # the node names are read without the onnx package, as onnx reads them
    assert IB.first_node_names(str(tmp_path / "rec_graph.onnx")) == [
        n.name for n in onnx.load(str(tmp_path / "rec_graph.onnx")).graph.node][:8]


def test_in_graph_normalisation_gives_the_same_embedding(root, an):
    buffalo = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu")
    assert (buffalo.recognition.mean, buffalo.recognition.std) == (0.0, 1.0)
    assert (an.recognition.mean, an.recognition.std) == (127.5, 127.5)
    img = np.random.default_rng(2).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(buffalo.recognition.embed(img, A.ARCFACE_TEMPLATE),
                               an.recognition.embed(img, A.ARCFACE_TEMPLATE), atol=1e-5)


def test_recognition_crop_and_embedding(an):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    # keypoints already at the ArcFace template: the aligned crop is the top-left 112x112, exactly
    crop = an.recognition.aligned_crop(img, A.ARCFACE_TEMPLATE)
    assert np.array_equal(crop, img[:112, :112])
    x = (crop.astype(np.float32) - 127.5) / 127.5
    pooled = x.transpose(2, 0, 1).reshape(3, 14, 8, 14, 8).mean((2, 4)).reshape(-1)
    want = pooled @ REC_W
    np.testing.assert_allclose(an.recognition.raw_embedding(img, A.ARCFACE_TEMPLATE), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(an.recognition.embed(img, A.ARCFACE_TEMPLATE), want / np.linalg.norm(want), atol=1e-5)


def test_norm_matrix_reference_values():
    """insightface's estimate_norm on one set of keypoints (values computed with insightface 0.7.3). skimage
    solves it in float32 for float32 keypoints, this in float64: equal to float32 precision (< 1e-4 px)."""
    lmk = np.array([[200.5, 180.25], [260, 178], [231, 215.5], [205, 250], [255.5, 248]], np.float32)
    np.testing.assert_allclose(A.norm_matrix(lmk, 112), [[0.58330694, -0.00542039, -77.20589348],
                                                         [0.00542039, 0.58330694, -54.3799225]], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(A.norm_matrix(lmk, 224), [[1.16661387, -0.01084077, -154.41178696],
                                                         [0.01084077, 1.16661387, -108.75984501]], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(A.norm_matrix(lmk, 128), [[0.58330694, -0.00542039, -69.20589348],
                                                         [0.00542039, 0.58330694, -54.3799225]], rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        A.norm_matrix(lmk, 100)


def test_halve_is_the_rounded_2x2_mean():
    img = np.array([[[0], [1]], [[1], [0]]], np.uint8)                   # mean 0.5 -> 1 (half up)
    assert A.halve(img)[0, 0, 0] == 1
    img = np.array([[[1], [1]], [[1], [0]]], np.uint8)                   # mean 0.75 -> 1
    assert A.halve(img)[0, 0, 0] == 1
    img = np.array([[[1], [0]], [[0], [0]]], np.uint8)                   # mean 0.25 -> 0
    assert A.halve(img)[0, 0, 0] == 0


# ----------------------------------------------------------------------------- against OpenCV and insightface
def test_resize_and_warps_match_opencv_within_one_level():
    cv2 = _cv2()
    rng = np.random.default_rng(4)
    for trial in range(12):
        h, w = (int(v) for v in rng.integers(60, 900, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if trial % 2:
            img = cv2.GaussianBlur(img, (0, 0), 2)
        nw, nh = (int(v) for v in rng.integers(20, 700, 2))
        assert np.abs(A.resize_bilinear(img, (nw, nh)).astype(int) - cv2.resize(img, (nw, nh))).max() <= 1
        a, s = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 2.5)
        M = np.array([[s * np.cos(a), -s * np.sin(a), rng.uniform(-300, 100)],
                      [s * np.sin(a), s * np.cos(a), rng.uniform(-300, 100)]])
        assert np.abs(A.warp_affine(img, M, (224, 192)).astype(int)
                      - cv2.warpAffine(img, M, (224, 192), borderValue=0.0)).max() <= 1
        even = img[: h // 2 * 2, : w // 2 * 2]
        assert np.array_equal(A.halve(even), cv2.resize(even, (w // 2, h // 2)))       # exact


def test_alignment_matches_insightface_face_align():
    _insightface()
    from insightface.utils import face_align
    from skimage.transform import SimilarityTransform
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
    for _ in range(10):
        kps = (A.ARCFACE_TEMPLATE * rng.uniform(1.5, 3.0) + rng.uniform(0, 150, 2) + rng.normal(0, 3, (5, 2)))
        kps = kps.astype(np.float32)
        for size in (112, 224, 128):
            np.testing.assert_allclose(A.norm_matrix(kps, size), face_align.estimate_norm(kps, size), rtol=1e-5,
                                       atol=1e-3)
            assert np.abs(A.norm_crop(img, kps, size).astype(int) - face_align.norm_crop(img, kps, size)).max() <= 1
        t = SimilarityTransform()
        t.estimate(kps.astype(np.float64), A.ARCFACE_TEMPLATE.astype(np.float64))   # Umeyama in float64
        np.testing.assert_allclose(A.similarity_transform(kps, A.ARCFACE_TEMPLATE), t.params[:2], atol=1e-9)


def test_detector_input_matches_insightface_resize():
    cv2 = _cv2()
    rng = np.random.default_rng(6)
    for h, w, size in [(480, 832, 320), (832, 480, 320), (640, 640, 640), (333, 1000, 640), (1080, 1920, 640),
                       (200, 150, 640)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        canvas, scale = IB.detector_input(img, (size, size))
        # insightface's _detect_candidates, verbatim rules
        im_ratio = float(h) / w
        if im_ratio > 1.0:
            nh, nw = size, int(size / im_ratio)
        else:
            nw, nh = size, int(size * im_ratio)
        ref = np.zeros((size, size, 3), np.uint8)
        ref[:nh, :nw] = cv2.resize(img, (nw, nh))
        assert scale == float(nh) / h
        assert np.abs(canvas.astype(int) - ref).max() <= 1


def test_nms_matches_insightface_on_random_boxes():
    _insightface()
    from insightface.model_zoo.scrfd import SCRFD
    rng = np.random.default_rng(7)
    for _ in range(20):
        xy = rng.uniform(0, 100, (40, 2))
        wh = rng.uniform(5, 40, (40, 2))
        dets = np.hstack([xy, xy + wh, rng.uniform(0.5, 1, (40, 1))]).astype(np.float32)
        theirs = SCRFD.nms(type("S", (), {"nms_thresh": 0.4})(), dets)
        assert IB.nms(dets, 0.4) == [int(i) for i in theirs]


@pytest.fixture(scope="module")
def insightface_app(root):
    """insightface's own FaceAnalysis (buffalo_l-style legacy loading) on the antelopev2 test pack."""
    _insightface()
    from insightface.app import FaceAnalysis
    app = FaceAnalysis(name=str(root / "models" / "antelopev2"), root=str(root), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    return app


@pytest.mark.parametrize("h,w,seed", [(480, 832, 0), (832, 480, 1), (640, 640, 2), (360, 1000, 3), (256, 256, 4)])
def test_analyze_matches_insightface_face_analysis(an, insightface_app, h, w, seed):
    """Every face, in the same order, with the same box, score, keypoints, 68 landmarks, pose and embedding as
    FaceAnalysis.get on the BGR image (tolerances: OpenCV's fixed-point resize can differ by one grey level)."""
    img = _scene(h, w, seed)
    theirs = insightface_app.get(np.ascontiguousarray(img[..., ::-1]))
    ours = an.analyze(img)
    assert len(ours) == len(theirs) >= 2
    for a, b in zip(theirs, ours):
        np.testing.assert_allclose(b.bbox, a.bbox, atol=0.05)
        np.testing.assert_allclose(b.kps, a.kps, atol=0.05)
        assert b.det_score == pytest.approx(float(a.det_score), abs=0.01)
        np.testing.assert_allclose(b.landmarks, a.landmark_3d_68, atol=0.05)
        pitch, yaw, roll = (float(v) for v in a.pose)                   # insightface's pose is pitch, yaw, roll
        assert (b.yaw, b.pitch, b.roll) == pytest.approx((yaw, pitch, roll), abs=1e-3)
        assert float(b.embedding @ a.normed_embedding) > 0.9999


def test_model_classes_match_insightface_model_zoo(tmp_path):
    """Landmark and ArcFaceONNX on models of every normalisation rule: same mean/std, same landmarks and
    pose, same raw embedding as the package's classes."""
    _insightface()
    from insightface.app.common import Face as InsFace
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.landmark import Landmark
    import onnxruntime as ort

    img = _scene(300, 400, 9)
    box = np.array([100.5, 80.25, 190.0, 175.5], np.float32)
    bgr = np.ascontiguousarray(img[..., ::-1])
    for names in (("a", "b", "c", "d"), ("bn_data", "b", "c", "d"), ("_minus0", "_mul0", "c", "d")):
        path = tmp_path / f"lm_{names[0]}.onnx"
        make_landmark(path, yaw=-50, pitch=15, roll=20, first_names=names)
        theirs = Landmark(str(path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        ours = IB.Landmark3D68(str(path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        assert (ours.mean, ours.std) == (theirs.input_mean, theirs.input_std)
        face = InsFace(bbox=box)
        theirs.get(bgr, face)
        lm = ours.landmarks(img, box)
        np.testing.assert_allclose(lm, face.landmark_3d_68, atol=0.02)
        pitch, yaw, roll = (float(v) for v in face.pose)
        assert P.pose_from_landmarks3d(lm) == pytest.approx((yaw, pitch, roll), abs=1e-3)
    kps = (A.ARCFACE_TEMPLATE * 1.4 + [120, 90]).astype(np.float32)
    for graph in (False, True):
        path = tmp_path / f"rec_{graph}.onnx"
        make_recognition(path, normalised_in_graph=graph)
        theirs = ArcFaceONNX(str(path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        ours = IB.ArcFace(str(path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        assert (ours.mean, ours.std) == (theirs.input_mean, theirs.input_std)
        face = InsFace(kps=kps)
        theirs.get(bgr, face)
        raw = ours.raw_embedding(img, kps)
        assert float(raw @ face.embedding / np.linalg.norm(raw) / np.linalg.norm(face.embedding)) > 0.99999


# ----------------------------------------------------------------------------- the face policy with this backend
def test_retry_is_one_grey_padding_and_boxes_come_back_into_the_image(root):
    """buffalo_l here fires on mid-grey only, so a black image shows a 'face' only in find_face's one retry on
    the image padded by 25% per side with grey 128; boxes and keypoints are moved back into the image's
    pixels (these lie in the padding, outside the image)."""
    an = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu", det_size=128)
    assert an.landmark is None and "pose from 5 keypoints" in an.describe()
    img = np.zeros((256, 320, 3), np.uint8)
    assert an.analyze(img) == []                                         # no retry inside the backend
    face, padded = find_face(an, img)
    assert padded and face is not None
    big = np.full((256 + 2 * 64, 320 + 2 * 80, 3), 128, np.uint8)          # int(0.25 * 256), int(0.25 * 320)
    big[64:320, 80:400] = 0
    from mv2id_core.faces.base import largest_face
    want = largest_face(an.analyze(big))
    np.testing.assert_allclose(face.bbox, want.bbox - [80, 64, 80, 64], atol=1e-4)
    np.testing.assert_allclose(face.kps, want.kps - [80, 64], atol=1e-4)
    np.testing.assert_allclose(face.embedding, want.embedding)           # embedded on the padded image, as OpenS2V
    no_retry = load_analyzer("insightface", pack="buffalo_l", model_dir=root, provider="cpu", retry=False,
                             det_size=128)
    assert find_face(no_retry, img) == (None, False)
    assert find_face(an, img, retry=False) == (None, False)


# ----------------------------------------------------------------------------- loading errors
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
    make_genderage(d / "genderage.onnx")
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
    with pytest.raises(InputError, match="multiple of 32"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, det_size=100)
    with pytest.raises(InputError, match="provider must be one of auto, cpu, cuda"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, provider="tpu")
    with pytest.raises(InputError, match="det_thresh must be between 0 and 1"):
        load_analyzer("insightface", pack="antelopev2", model_dir=root, det_thresh=1.5)


def test_synthetic_helpers_agree():
    """landmark_rows is the mean face at the pose (the test models' ground truth)."""
    rows = landmark_rows(20, -10, 5).reshape(-1, 3)[-68:]
    assert P.pose_from_landmarks3d(rows) == pytest.approx((20, -10, 5), abs=1e-4)
    assert P.pose_from_landmarks2d(project(20, -10, 5)) == pytest.approx((20, -10, 5), abs=1e-6)
