"""Identity metrics: the math on hand-made embeddings, then real faces with the offline dlib backend."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mv2id_core import metrics as M
from mv2id_core.errors import InputError, NoReferenceFaceError
from mv2id_core.faces.base import Face, FaceAnalyzer
from mv2id_core.plot import plot_report
from photos import load_photos, fit, rot


# ----------------------------------------------------------------------------- deterministic analyzers
def _unit(v):
    v = np.asarray(v, np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


class CodeAnalyzer(FaceAnalyzer):
    """Reads a 'face' from pixel (0, 0): R = identity code (0 = no face), G = yaw + 128, B = roll + 128.

    Embeddings come from a table code -> vector; the face box is the whole image.
    """
    name = "code"

    def __init__(self, table: dict[int, np.ndarray]):
        self.table = {k: _unit(v) for k, v in table.items()}
        self.calls = 0

    def analyze(self, image, embed=True):
        self.calls += 1
        code, g, b = (int(v) for v in image[0, 0])
        if code == 0 or code not in self.table:
            return []
        h, w = image.shape[:2]
        return [Face(bbox=np.array([0, 0, w, h], np.float32), kps=np.zeros((5, 2), np.float32), det_score=1.0,
                     yaw=float(g - 128), pitch=0.0, roll=float(b - 128),
                     embedding=self.table[code] if embed else None)]


def img(code, yaw=0, roll=0, size=8):
    a = np.zeros((size, size, 3), np.uint8)
    a[0, 0] = (code, yaw + 128, roll + 128)
    return a


# ----------------------------------------------------------------------------- pure functions
def test_sample_frame_indices_follow_opens2v():
    np.testing.assert_array_equal(M.sample_frame_indices(81), np.linspace(0, 80, 32, dtype=int))
    short = M.sample_frame_indices(10)
    assert len(short) == 32 and short[0] == 0 and short[-1] == 9 and len(set(short)) == 10   # repeats
    np.testing.assert_array_equal(M.sample_frame_indices(7, 0), np.arange(7))
    np.testing.assert_array_equal(M.sample_frame_indices(5, 3), [0, 2, 4])
    with pytest.raises(InputError, match="no frames"):
        M.sample_frame_indices(0)


def test_pad_image_is_grey_border_like_opens2v():
    im = np.full((40, 20, 3), 7, np.uint8)
    out, (left, top) = M.pad_image(im, 1.25)
    assert (left, top) == (5, 10) and out.shape == (60, 30, 3)
    assert (out[top:top + 40, left:left + 20] == 7).all()
    border = out.copy()
    border[top:top + 40, left:left + 20] = 128
    assert (border == 128).all()


def test_mvrc_and_facesim_by_hand():
    n = np.nan
    sim = np.array([[0.5, -0.2], [n, n], [1.0, 0.3]])
    assert M.mvrc(sim) == pytest.approx((0.5 - 0.2 + 1.0 + 0.3) / 4)
    # max(0, cos) per pair, mean over references, then over frames with a face
    assert M.facesim(sim) == pytest.approx(((0.5 + 0.0) / 2 + (1.0 + 0.3) / 2) / 2)
    assert M.face_fraction(~np.isnan(sim).any(axis=1)) == pytest.approx(2 / 3)
    assert math.isnan(M.mvrc(np.full((3, 2), np.nan)))
    assert M.facesim(np.full((3, 2), np.nan)) == 0.0        # OpenS2V: no face anywhere -> 0


def test_similarity_matrix_renormalises_and_checks_dims():
    a = np.array([[2.0, 0.0], [0.0, 3.0], [np.nan, np.nan]])
    b = np.array([[1.0, 1.0]])
    s = M.similarity_matrix(a, b)
    np.testing.assert_allclose(s[:2, 0], [1 / math.sqrt(2)] * 2)
    assert np.isnan(s[2]).all()
    with pytest.raises(InputError, match="same analyzer"):
        M.similarity_matrix(np.ones((2, 3)), np.ones((1, 4)))


def test_identity_spread():
    steady = np.array([[0.6, 0.6], [0.6, 0.6], [np.nan, np.nan]])
    assert M.identity_spread(steady) == pytest.approx({"std": 0.0, "min": 0.6, "max": 0.6, "range": 0.0})
    wobbly = np.array([[0.2, 0.4], [0.8, 1.0]])      # per-frame means 0.3 and 0.9
    sp = M.identity_spread(wobbly)
    assert sp["std"] == pytest.approx(0.3) and sp["range"] == pytest.approx(0.6)
    assert M.identity_spread(np.full((2, 2), np.nan))["std"] is None


def test_copy_paste_exact_copy_is_one_and_balanced_frame_is_zero():
    refs = np.stack([_unit([1, 0.3, 0]), _unit([0.2, 1, 0.1]), _unit([0.1, 0.2, 1])]).astype(np.float64)
    ref_pose = np.array([[0, 0, 0], [45, 0, 0], [-45, 0, 0]], float)
    ref_sim = M.similarity_matrix(refs, refs)
    # frame 0: a copy of reference 1 at its pose; frame 1: equally like every reference, posed like ref 2;
    # frame 2: looks like reference 0 but is posed like reference 1 (not a paste of its matching view)
    balanced = _unit(refs.sum(0) / 3)
    frames = np.stack([refs[1], balanced, refs[0]])
    poses = np.array([[44, 2, 0], [-40, 0, 3], [46, 0, 0]], float)
    cp = M.copy_paste(M.similarity_matrix(frames, refs), poses, ref_pose, ref_sim)
    np.testing.assert_array_equal(cp.matched, [1, 2, 1])
    assert cp.normalized[0] == pytest.approx(1.0)
    s1 = M.similarity_matrix(balanced[None], refs)[0]
    assert cp.margin[1] == pytest.approx(s1[2] - (s1[0] + s1[1]) / 2)
    assert abs(cp.normalized[1]) < 0.15
    assert cp.normalized[2] < 0
    assert cp.index == pytest.approx(np.mean(cp.normalized))


def test_copy_paste_needs_two_references_and_skips_faceless_frames():
    one = M.copy_paste(np.array([[0.9]]), np.zeros((1, 3)), np.zeros((1, 3)), np.ones((1, 1)))
    assert one.index is None and one.matched[0] == -1
    refs = np.eye(2)
    sim = np.array([[1.0, 0.0], [np.nan, np.nan]])
    cp = M.copy_paste(sim, np.array([[0, 0, 0], [np.nan] * 3]), np.array([[0, 0, 0], [30, 0, 0]]),
                      M.similarity_matrix(refs, refs))
    assert list(cp.matched) == [0, -1] and cp.index == pytest.approx(1.0)


def test_pose_distance_weights():
    d = M.pose_distance(np.array([[10.0, 0, 40]]), np.array([[0.0, 0, 0]]), (1, 1, 0))
    assert d[0, 0] == pytest.approx(10.0)


# ----------------------------------------------------------------------------- the driver on coded images
TABLE = {1: [1, 0, 0, 0], 2: [0.8, 0.6, 0, 0], 3: [0, 0, 1, 0], 9: [0, 0, 0, 1]}


def test_score_video_counts_and_skips_faceless_frames():
    an = CodeAnalyzer(TABLE)
    refs = [img(1, yaw=0), img(2, yaw=40)]
    video = [img(1), img(0), img(2, yaw=38), img(0), img(9)]       # two frames without a face
    rep = M.score_video(video, refs, an, num_frames=0, pad_retry=False)
    s = M.similarity_matrix(np.stack([_unit(TABLE[c]) for c in (1, 2, 9)]),
                            np.stack([_unit(TABLE[c]) for c in (1, 2)]))
    assert rep["mvrc"] == pytest.approx(s.mean(), abs=1e-6)
    assert rep["facesim"] == pytest.approx(np.maximum(s, 0).mean(), abs=1e-6)
    assert rep["frames_with_face"] == 3 and rep["frames_without_face"] == 2
    assert rep["frames_without_face_indices"] == [1, 3]
    assert rep["face_fraction"] == pytest.approx(0.6)
    assert [p["face"] for p in rep["per_frame"]] == [True, False, True, False, True]
    assert rep["per_frame"][2]["yaw"] == 38 and rep["per_frame"][2]["matched_reference"] == 1
    assert rep["yaw_range"] == [0, 38]
    assert rep["copy_paste"]["matched_reference_counts"] == {"ref0": 2, "ref1": 1}


def test_score_video_samples_32_frames_and_analyses_each_once():
    an = CodeAnalyzer(TABLE)
    video = np.stack([img(1 if i % 2 else 2) for i in range(10)])     # [T, H, W, 3] array
    rep = M.score_video(video, [img(1)], an, pad_retry=False)
    assert rep["sampled_frames"] == 32 and rep["total_frames"] == 10
    assert an.calls == 1 + 10                                        # 1 reference + 10 distinct frames
    assert rep["copy_paste"]["index"] is None                        # one reference: nothing to compare


def test_score_video_with_presampled_frames_keeps_original_indices():
    an = CodeAnalyzer(TABLE)
    idx = np.array([0, 0, 3, 3, 6])                                  # as read_sampled_frames returns them
    frames = [img(1), img(1), img(0), img(0), img(2)]
    rep = M.score_video(frames, [img(1)], an, frame_indices=idx, total_frames=7, pad_retry=False)
    assert an.calls == 1 + 3                                         # repeated indices analysed once
    assert [p["frame"] for p in rep["per_frame"]] == [0, 0, 3, 3, 6]
    assert rep["total_frames"] == 7 and rep["frames_without_face_indices"] == [3]
    assert rep["face_fraction"] == pytest.approx(3 / 5)
    with pytest.raises(InputError, match="frame_indices has 2 entries for 5 frames"):
        M.score_video(frames, [img(1)], an, frame_indices=[0, 1])


def test_pad_retry_finds_a_face_touching_the_border():
    class BorderShy(CodeAnalyzer):
        """Finds the face only when a grey margin surrounds it (as detectors miss border-cut faces)."""

        def analyze(self, image, embed=True):
            self.calls += 1
            if tuple(image[0, 0]) != (128, 128, 128):
                return []
            h, w = image.shape[:2]
            faces = super().analyze(image[h // 2 - 4:, w // 2 - 4:], embed)   # code at the centre block
            for f in faces:
                f.bbox = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4], np.float32)
            return faces

    frame = np.zeros((8, 8, 3), np.uint8)
    frame[:] = (1, 128, 128)
    ref = np.zeros((8, 8, 3), np.uint8)
    ref[:] = (1, 128, 128)
    rep = M.score_video([frame], [ref], BorderShy(TABLE), num_frames=0)
    assert rep["frames_with_face"] == 1 and rep["per_frame"][0]["padded"] is True
    assert rep["mvrc"] == pytest.approx(1.0)
    face, padded = M.detect_face(BorderShy(TABLE), frame)
    np.testing.assert_allclose(face.bbox, [12 / 4 - 2, 12 / 4 - 2, 36 / 4 - 2, 36 / 4 - 2])  # 12x12 padded, offset 2
    with pytest.raises(NoReferenceFaceError):
        M.score_video([frame], [ref], BorderShy(TABLE), num_frames=0, pad_retry=False)


def test_no_face_in_any_reference_names_them():
    with pytest.raises(NoReferenceFaceError, match=r"front\.png, side\.png"):
        M.score_video([img(1)], [img(0), img(0)], CodeAnalyzer(TABLE), reference_names=["front.png", "side.png"])


def test_reference_without_face_is_dropped_and_reported():
    rep = M.score_video([img(1)], [img(0), img(1)], CodeAnalyzer(TABLE), num_frames=0)
    assert rep["references_without_face"] == ["ref0"] and rep["references_used"] == ["ref1"]
    assert rep["per_frame"][0]["similarity"] == [None, pytest.approx(1.0)]


def test_mismatched_types_give_clear_errors():
    an = CodeAnalyzer(TABLE)
    with pytest.raises(InputError, match="analyzer must be a face analyzer"):
        M.score_video([img(1)], [img(1)], "dlib")
    with pytest.raises(InputError, match="got one image"):
        M.score_video(img(1), [img(1)], an)
    with pytest.raises(InputError, match="frames must be a batch"):
        M.score_video("video.mp4", [img(1)], an)
    with pytest.raises(InputError, match=r"reference 0 .* must be one RGB image"):
        M.score_video([img(1)], [np.zeros((4, 4, 5), np.uint8)], an)

    class OtherDims(CodeAnalyzer):
        def analyze(self, image, embed=True):
            faces = super().analyze(image, embed)
            if faces and image[0, 0, 0] == 2:
                faces[0].embedding = np.ones(3, np.float32)
            return faces
    with pytest.raises(InputError, match="same analyzer"):
        M.score_video([img(2)], [img(1)], OtherDims(TABLE), num_frames=0)


def test_float_frames_in_0_1_are_accepted():
    f = img(1).astype(np.float32) / 255.0
    rep = M.score_video(f[None], [img(1)], CodeAnalyzer(TABLE), num_frames=0)
    assert rep["frames_with_face"] == 1


def test_plot_has_requested_size_and_draws_every_series():
    rep = M.score_video([img(1, yaw=-30), img(2, yaw=0), img(0), img(3, yaw=30)],
                        [img(1, yaw=-30), img(2), img(3, yaw=30)], CodeAnalyzer(TABLE), num_frames=0)
    im = plot_report(rep, 800, 500)
    assert im.size == (800, 500) and im.mode == "RGB"
    a = np.asarray(im)
    assert a.std() > 10, "plot is blank"
    from mv2id_core.plot import PALETTE, POSE_COLOURS
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    for c in [*PALETTE[:3], POSE_COLOURS["yaw"]]:
        assert c in colours, f"series colour {c} not drawn"
    with pytest.raises(ValueError, match="too small"):
        plot_report(rep, 100, 100)


def test_summary_row():
    rep = M.score_video([img(1), img(2)], [img(1), img(2)], CodeAnalyzer(TABLE), num_frames=0)
    row = M.summary_row(rep, "a.mp4")
    assert set(row) == set(M.SUMMARY_FIELDS) and row["mvrc"] == rep["mvrc"] and row["error"] == ""
    assert M.summary_row(None, "b.mp4", "bad")["error"] == "bad"


# ----------------------------------------------------------------------------- real faces (dlib)
def _fit(a, size=128):
    return fit(a, size)


@pytest.fixture(scope="module")
def photos():
    return load_photos()


@pytest.fixture(scope="module")
def dlib_analyzer():
    try:
        from mv2id_core.faces import load_analyzer
    except ImportError:
        pytest.skip("the dlib face backend (mv2id_core.faces.load_analyzer) is not in this build yet")
    return load_analyzer("dlib")


def same_person_frames(tom):
    """Tom Hanks: crops, scales, small rotations and a flip of the one photo, 128x128."""
    h, w = tom.shape[:2]
    return [_fit(tom), _fit(tom[:, ::-1]), _fit(rot(tom, 10)), _fit(rot(tom, -10)),
            _fit(tom[4:h - 2, 3:w - 5]), _fit((tom * 0.75).astype(np.uint8))]


def different_people_frames(t1, analyzer):
    faces = sorted(analyzer.analyze(t1, embed=False), key=lambda f: f.bbox[0])
    out = []
    for f in faces:
        x1, y1, x2, y2 = (int(v) for v in f.bbox)
        m = (x2 - x1) // 2
        out.append(_fit(np.ascontiguousarray(t1[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m])))
    return out


def test_real_same_person_scores_far_above_different_people(photos, dlib_analyzer):
    tom, t1 = photos
    refs = [_fit(tom), _fit(tom[:, ::-1])]
    people = different_people_frames(t1, dlib_analyzer)
    assert len(people) == 6
    same = M.score_video(same_person_frames(tom), refs, dlib_analyzer, num_frames=0)
    diff = M.score_video(people, refs, dlib_analyzer, num_frames=0)
    assert same["frames_with_face"] == 6 and diff["frames_with_face"] == 6
    assert same["mvrc"] > diff["mvrc"] + 0.08, (same["mvrc"], diff["mvrc"])
    assert same["facesim"] > diff["facesim"] + 0.08
    # per frame: every Tom frame is closer to the references than every other person
    s_same = [p["mean_similarity"] for p in same["per_frame"]]
    s_diff = [p["mean_similarity"] for p in diff["per_frame"]]
    assert min(s_same) > max(s_diff)
    assert same["identity_std"] < diff["identity_std"]          # one identity is steadier than six


def test_real_faceless_frames_are_skipped_and_counted(photos, dlib_analyzer):
    tom, _ = photos
    rng = np.random.default_rng(0)
    blank = np.full((128, 128, 3), 200, np.uint8)
    noise = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    frames = [_fit(tom), blank, _fit(rot(tom, 8)), noise, _fit(tom[:, ::-1])]
    rep = M.score_video(frames, [_fit(tom)], dlib_analyzer, num_frames=0)
    assert rep["frames_with_face"] == 3 and rep["frames_without_face"] == 2
    assert rep["frames_without_face_indices"] == [1, 3]
    assert rep["face_fraction"] == pytest.approx(0.6)
    only_faces = M.score_video([frames[0], frames[2], frames[4]], [_fit(tom)], dlib_analyzer, num_frames=0)
    assert rep["mvrc"] == pytest.approx(only_faces["mvrc"], abs=1e-6)   # skipped, not scored as zero


def test_real_copy_paste_high_for_repeated_reference_low_for_mixed_views(photos, dlib_analyzer):
    tom, _ = photos
    refs = [_fit(tom), _fit(tom[:, ::-1])]          # two views: the photo and its mirror
    pasted = [refs[0]] * 6                            # a video that repeats one reference
    o, f = refs[0].astype(np.float32), refs[1].astype(np.float32)
    mixed = [(a * o + (1 - a) * f).astype(np.uint8) for a in (0.4, 0.45, 0.5, 0.55, 0.6)]  # views blended
    rp = M.score_video(pasted, refs, dlib_analyzer, num_frames=0)
    rm = M.score_video(mixed, refs, dlib_analyzer, num_frames=0)
    assert rm["frames_with_face"] == 5
    assert rp["copy_paste"]["index"] == pytest.approx(1.0, abs=1e-3)
    assert rm["copy_paste"]["index"] < 0.5, rm["copy_paste"]
    assert rp["copy_paste"]["index"] - rm["copy_paste"]["index"] > 0.5


def test_real_plot_is_not_blank(photos, dlib_analyzer):
    tom, _ = photos
    frames = same_person_frames(tom) + [np.full((128, 128, 3), 90, np.uint8)]
    rep = M.score_video(frames, [_fit(tom), _fit(tom[:, ::-1])], dlib_analyzer, num_frames=0)
    im = plot_report(rep, 1024, 640)
    a = np.asarray(im)
    assert im.size == (1024, 640) and a.std() > 10
    assert (a != 255).any(axis=-1).mean() > 0.03       # more than axes: lines, labels, legend


def test_real_no_face_in_any_reference(photos, dlib_analyzer):
    tom, _ = photos
    grey = np.full((96, 96, 3), 128, np.uint8)
    with pytest.raises(NoReferenceFaceError, match=r"wall\.png, sky\.png"):
        M.score_video([_fit(tom)], [grey, grey + 20], dlib_analyzer, reference_names=["wall.png", "sky.png"])
