"""Identity metrics: the math by hand, the copy-paste readings on synthetic videos with known truth,
the driver on coded images, FaceSim-Cur's protocol, then real faces with the offline dlib backend."""
from __future__ import annotations

import math

import numpy as np
import pytest

from faces_helpers import CodeAnalyzer, coded, unit
from mv2id_core import metrics as M
from mv2id_core.errors import InputError, NoReferenceFaceError
from mv2id_core.faces.base import Face
from mv2id_core.plot import plot_report
from photos import T1_FACES, fit, load_photos, rot, t1_face

img = coded
TABLE = {1: [1, 0, 0, 0], 2: [0.8, 0.6, 0, 0], 3: [0, 0, 1, 0], 9: [0, 0, 0, 1]}


# ----------------------------------------------------------------------------- pure functions
def test_sample_frame_indices_follow_opens2v():
    np.testing.assert_array_equal(M.sample_frame_indices(81), np.linspace(0, 80, 32, dtype=int))
    short = M.sample_frame_indices(10)
    assert len(short) == 32 and short[0] == 0 and short[-1] == 9 and len(set(short)) == 10   # repeats
    np.testing.assert_array_equal(M.sample_frame_indices(7, 0), np.arange(7))
    np.testing.assert_array_equal(M.sample_frame_indices(5, 3), [0, 2, 4])
    with pytest.raises(InputError, match="no frames"):
        M.sample_frame_indices(0)


def test_mvrc_facesim_and_facesim_cur_by_hand():
    n = np.nan
    sim = np.array([[0.5, -0.2], [n, n], [1.0, 0.3], [-0.4, -0.1]])
    assert M.mvrc(sim) == pytest.approx((0.5 - 0.2 + 1.0 + 0.3 - 0.4 - 0.1) / 6)
    # Arc: max(0, cos) per pair, mean over references, then over frames with a face, zeros kept
    assert M.facesim(sim) == pytest.approx(((0.5 + 0.0) / 2 + (1.0 + 0.3) / 2 + 0.0) / 3)
    # Cur: the same per-frame scores, but the frame scoring 0 is dropped (OpenS2V's `if cur_score != 0.0`)
    assert M.facesim_cur(sim) == pytest.approx(((0.5 + 0.0) / 2 + (1.0 + 0.3) / 2) / 2)
    assert M.face_fraction(~np.isnan(sim).any(axis=1)) == pytest.approx(3 / 4)
    assert math.isnan(M.mvrc(np.full((3, 2), np.nan)))
    assert M.facesim(np.full((3, 2), np.nan)) == 0.0 and M.facesim_cur(np.full((3, 2), np.nan)) == 0.0
    assert M.facesim_cur(np.array([[-0.5], [-0.1]])) == 0.0          # every frame dropped: 0.0, as OpenS2V


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


def test_pose_match_is_soft_and_splits_ties():
    refs = np.array([[-60.0, 0, 0], [0, 0, 0], [60, 0, 0]])
    w = M.pose_match(np.array([[-60.0, 0, 0], [-30, 0, 0], [-29.9, 0, 0], [-30.1, 0, 0], [5, 2, 0]]), refs)
    np.testing.assert_allclose(w.sum(1), 1)
    assert w[0, 0] > 0.999 and w[1, 0] == pytest.approx(0.5) and w[1, 1] == pytest.approx(0.5)
    assert abs(w[2, 0] - w[3, 0]) < 0.05                            # no jump across the tie
    assert M.pose_distance(np.array([[10.0, 0, 40]]), np.array([[0.0, 0, 0]]), (1, 1, 0))[0, 0] == pytest.approx(10)


# ----------------------------------------------------------------------------- copy-paste: synthetic truth
REF_YAWS = np.array([-60.0, 0.0, 60.0])
REF_POSE = np.stack([REF_YAWS, np.zeros(3), np.zeros(3)], 1)


def _refs():
    """Three views of one person: unit vectors sharing a common part (reference similarities 0.45-0.6)."""
    rng = np.random.default_rng(0)
    common = rng.normal(size=64)
    return np.stack([unit(common + rng.normal(size=64)) for _ in range(3)]).astype(np.float64), common


def _reading(kind: str, yaws=None, seed: int = 1) -> M.CopyPaste:
    """The copy-paste readings of a synthetic video whose frame at yaw y shows `kind`."""
    refs, common = _refs()
    rng = np.random.default_rng(seed)
    yaws = np.linspace(-65, 65, 41) if yaws is None else np.asarray(yaws, np.float64)
    embs = []
    for y in yaws:
        k = int(np.argmin(np.abs(REF_YAWS - y)))
        e = {"paste": lambda: refs[k],                                   # the pose-matched view
             "fixed": lambda: refs[0],                                   # one view, whatever the pose
             "blend": lambda: unit(refs.sum(0)),                        # all views mixed
             "other": lambda: unit(rng.normal(size=64)),                # other people
             "synth": lambda: unit(common + rng.normal(size=64)),        # the same person, a new view each frame
             "mirror": lambda: refs[2 - k],                             # the view of the mirrored pose
             "rotate": lambda: refs[(k + 1) % 3]}[kind]()               # the view of another pose
        embs.append(e)
    pose = np.stack([yaws, np.zeros_like(yaws), np.zeros_like(yaws)], 1)
    return M.copy_paste(M.similarity_matrix(np.stack(embs), refs), pose, REF_POSE, M.similarity_matrix(refs, refs))


def test_pasting_the_pose_matched_view_reads_one_and_one():
    r = _reading("paste")
    assert r.near_copy_rate == pytest.approx(1.0) and r.pose_following == pytest.approx(1.0, abs=0.02)
    assert r.reason is None and [v["near_copy_rate"] for v in r.per_view] == [1.0, 1.0, 1.0]


def test_pasting_one_fixed_view_is_a_copy_that_does_not_follow_pose():
    r = _reading("fixed")
    assert r.near_copy_rate == pytest.approx(1.0) and abs(r.pose_following) < 1e-9


@pytest.mark.parametrize("kind,most", [("blend", 0.0), ("other", 0.0), ("synth", 0.1)])
def test_blends_other_people_and_new_faces_are_no_copies_and_do_not_follow_pose(kind, most):
    """('synth': new views of the person, as far from each reference as the references are from each other;
    by chance one of 41 may land within half that distance of a reference.)"""
    r = _reading(kind)
    assert r.near_copy_rate <= most + 1e-12 and abs(r.pose_following) < 0.15, (kind, r)


def test_identity_decoupled_from_pose_reads_negative():
    assert _reading("rotate").pose_following < -0.3                     # every frame shows another pose's view
    assert _reading("rotate").near_copy_rate == pytest.approx(1.0)
    refs, _ = _refs()
    two, pose2 = refs[[0, 2]], REF_POSE[[0, 2]]
    yaws = np.linspace(-60, 60, 21)
    embs = np.stack([two[1] if y < 0 else two[0] for y in yaws])        # mirrored: left pose shows the right view
    r = M.copy_paste(M.similarity_matrix(embs, two), np.stack([yaws, 0 * yaws, 0 * yaws], 1), pose2,
                     M.similarity_matrix(two, two))
    assert r.pose_following == pytest.approx(-1.0) and r.near_copy_rate == pytest.approx(1.0)


def test_readings_do_not_depend_on_dwell_time():
    sweep = np.linspace(-60, 60, 13)
    dwell = np.concatenate([np.full(80, -60.0), sweep])                  # 80 extra frames at one pose
    for kind in ("paste", "fixed", "blend"):
        a, b = _reading(kind, sweep), _reading(kind, dwell)
        assert a.near_copy_rate == pytest.approx(b.near_copy_rate, abs=0.02), kind
        assert a.pose_following == pytest.approx(b.pose_following, abs=0.05), kind


def test_near_tied_reference_poses_do_not_flip_the_sign():
    """Copies of the left view shown at yaw -30, halfway between the left (-60) and frontal (0) views, in a
    video that otherwise pastes its matching views: moving those frames by one degree across the tie
    barely changes the soft reading; hard matching (a tiny bandwidth) jumps."""
    base = np.linspace(-60, 60, 9)
    refs, _ = _refs()

    def reading(y, bandwidth):
        yaws = np.concatenate([base, np.full(10, y)])
        embs = np.stack([refs[int(np.argmin(np.abs(REF_YAWS - v)))] for v in base] + [refs[0]] * 10)
        pose = np.stack([yaws, 0 * yaws, 0 * yaws], 1)
        return M.copy_paste(M.similarity_matrix(embs, refs), pose, REF_POSE, M.similarity_matrix(refs, refs),
                            bandwidth=bandwidth).pose_following
    soft = [reading(y, M.POSE_BANDWIDTH) for y in (-30.5, -30.0, -29.5)]
    hard = [reading(y, 0.1) for y in (-30.5, -29.5)]
    assert max(soft) - min(soft) < 0.1 and min(soft) > 0.8, soft
    assert hard[0] - hard[1] > 0.3, hard


def test_static_video_cannot_show_pose_following_and_says_why():
    r = _reading("paste", np.full(20, -60.0))
    assert r.near_copy_rate == pytest.approx(1.0) and r.pose_following is None
    assert "do not move between reference views" in r.reason
    one = M.copy_paste(np.array([[0.9]]), np.zeros((1, 3)), np.zeros((1, 3)), np.ones((1, 1)))
    assert one.near_copy_rate is None and "at least two references" in one.reason
    twins = M.copy_paste(np.array([[0.9, 0.9]]), np.zeros((1, 3)), np.zeros((2, 3)), np.ones((2, 2)))
    assert twins.pose_following is None and "near-duplicates" in twins.reason


# ----------------------------------------------------------------------------- the driver on coded images
def test_score_video_counts_and_skips_faceless_frames():
    an = CodeAnalyzer(TABLE)
    refs = [img(1, yaw=0), img(2, yaw=40)]
    video = [img(1), img(0), img(2, yaw=38), img(0), img(9)]       # two frames without a face
    rep = M.score_video(video, refs, an, num_frames=0, retry=False)
    s = M.similarity_matrix(np.stack([unit(TABLE[c]) for c in (1, 2, 9)]),
                            np.stack([unit(TABLE[c]) for c in (1, 2)]))
    assert rep["mvrc"] == pytest.approx(s.mean(), abs=1e-6)
    assert rep["facesim"] == pytest.approx(np.maximum(s, 0).mean(), abs=1e-6)
    assert rep["facesim_cur"] is None and "not computed" in rep["protocol"]["facesim_cur"]
    assert rep["frames_with_face"] == 3 and rep["frames_without_face"] == 2
    assert rep["frames_without_face_indices"] == [1, 3]
    assert rep["face_fraction"] == pytest.approx(0.6)
    assert [p["face"] for p in rep["per_frame"]] == [True, False, True, False, True]
    assert rep["per_frame"][2]["yaw"] == 38 and rep["per_frame"][2]["pose_matched_reference"] == 1
    assert rep["yaw_range"] == [0, 38] and rep["notes"] == []


def test_score_video_samples_32_frames_analyses_each_once_and_says_frames_repeat():
    an = CodeAnalyzer(TABLE)
    video = np.stack([img(1 if i % 2 else 2) for i in range(10)])     # [T, H, W, 3] array
    rep = M.score_video(video, [img(1)], an, retry=False)
    assert rep["sampled_frames"] == 32 and rep["total_frames"] == 10
    assert an.calls == 1 + 10                                        # 1 reference + 10 distinct frames
    assert rep["copy_paste"]["near_copy_rate"] is None                # one reference: nothing to compare
    assert rep["notes"] == ["the video has 10 frames but 32 were sampled, so 22 samples repeat a frame and count "
                            "again (as OpenS2V-Eval does); set num_frames to 10 or 0 to score every frame once."]


def test_score_video_with_presampled_frames_keeps_original_indices():
    an = CodeAnalyzer(TABLE)
    idx = np.array([0, 0, 3, 3, 6])                                  # as read_sampled_frames returns them
    frames = [img(1), img(1), img(0), img(0), img(2)]
    rep = M.score_video(frames, [img(1)], an, frame_indices=idx, total_frames=7, retry=False, num_frames=5)
    assert an.calls == 1 + 3                                         # repeated indices analysed once
    assert [p["frame"] for p in rep["per_frame"]] == [0, 0, 3, 3, 6]
    assert rep["total_frames"] == 7 and rep["frames_without_face_indices"] == [3]
    assert rep["face_fraction"] == pytest.approx(3 / 5)
    with pytest.raises(InputError, match="frame_indices has 2 entries for 5 frames"):
        M.score_video(frames, [img(1)], an, frame_indices=[0, 1])


def test_retry_follows_the_analyzer_unless_overridden():
    class BorderShy(CodeAnalyzer):
        def analyze(self, image, embed=True):
            if tuple(image[0, 0]) != (128, 128, 128):
                return []
            h, w = image.shape[:2]
            return super().analyze(np.ascontiguousarray(image[h // 2 - 4:, w // 2 - 4:]), embed)

    frame = np.zeros((8, 8, 3), np.uint8)
    frame[:] = (1, 128, 128)
    an = BorderShy(TABLE)
    rep = M.score_video([frame], [frame], an, num_frames=0)
    assert rep["frames_with_face"] == 1 and rep["per_frame"][0]["padded"] is True and rep["settings"]["retry"]
    assert rep["mvrc"] == pytest.approx(1.0)
    with pytest.raises(NoReferenceFaceError, match="no face found in any of the 1 reference images"):
        M.score_video([frame], [frame], an, num_frames=0, retry=False)
    an.retry = False
    with pytest.raises(NoReferenceFaceError):
        M.score_video([frame], [frame], an, num_frames=0)


def test_no_face_in_any_reference_names_them():
    with pytest.raises(NoReferenceFaceError, match=r"front\.png, side\.png"):
        M.score_video([img(1)], [img(0), img(0)], CodeAnalyzer(TABLE), reference_names=["front.png", "side.png"])


def test_reference_without_face_is_dropped_reported_and_stops_the_copy_paste_readings():
    rep = M.score_video([img(1)], [img(0), img(1)], CodeAnalyzer(TABLE), num_frames=0)
    assert rep["references_without_face"] == ["ref0"] and rep["references_used"] == ["ref1"]
    assert rep["per_frame"][0]["similarity"] == [None, pytest.approx(1.0)]
    # with three references one of which shows no face, the frames are not silently matched to the other two
    refs = [img(1, yaw=-40), img(0), img(3, yaw=40)]
    video = [img(1, yaw=-40), img(3, yaw=0), img(3, yaw=40)]
    rep = M.score_video(video, refs, CodeAnalyzer(TABLE), num_frames=0)
    cp = rep["copy_paste"]
    assert cp["near_copy_rate"] is None and cp["pose_following"] is None
    assert cp["reason"].startswith("reference(s) ref1 show no face, so their views cannot be matched")
    assert rep["notes"][0] == "no face in reference(s) ref1: they are left out of every number."


def test_copy_paste_in_the_report_uses_every_frame_with_a_face():
    refs = [img(1, yaw=-40), img(3, yaw=40)]
    video = [img(1, yaw=-40), img(0), img(3, yaw=40), img(1, yaw=-35), img(3, yaw=38)]   # pastes the matching view
    rep = M.score_video(video, refs, CodeAnalyzer(TABLE), num_frames=0)
    cp = rep["copy_paste"]
    assert cp["near_copy_rate"] == pytest.approx(1.0) and cp["pose_following"] == pytest.approx(1.0, abs=0.02)
    assert [v["frames_matched"] for v in cp["per_view"]] == pytest.approx([2, 2], abs=1e-3)
    assert [p.get("nearest_reference") for p in rep["per_frame"]] == [0, None, 1, 0, 1]


def test_protocol_says_which_opens2v_number_it_is():
    class Insight(CodeAnalyzer):
        name = "insightface"
        det_size, det_thresh = 320, 0.5
        detector = type("D", (), {"path": "/m/buffalo_l/det_10g.onnx"})()
        recognition = type("R", (), {"path": "/m/buffalo_l/w600k_r50.onnx"})()
    an = Insight(TABLE)
    rep = M.score_video([img(1)] * 3, [img(1)], an)
    assert rep["protocol"]["facesim"] == "equals OpenS2V-Eval's FaceSim-Arc (arc_score)"
    assert rep["metric_names"]["facesim"] == "FaceSim-Arc"
    an.det_size = 640
    p = M.opens2v_protocol(an, 16, 2, cur=True)
    assert p["facesim"].startswith("follows OpenS2V-Eval's FaceSim-Arc protocol but is not its number: ")
    assert "det_size 640 instead of 320" in p["facesim"] and "16 sampled frame(s) instead of 32" in p["facesim"]
    assert "2 references" in p["facesim_cur"] and p["equal"] == {"facesim": False, "facesim_cur": False}
    dl = M.opens2v_protocol(CodeAnalyzer(TABLE), 32, 1, cur=False)
    assert "the code backend instead of insightface" in dl["facesim"]


def test_mismatched_types_give_clear_errors():
    an = CodeAnalyzer(TABLE)
    with pytest.raises(InputError, match="analyzer must be a face analyzer"):
        M.score_video([img(1)], [img(1)], "dlib")
    with pytest.raises(InputError, match="got one image"):
        M.score_video(img(1), [img(1)], an)
    with pytest.raises(InputError, match="frames must be a batch"):
        M.score_video("video.mp4", [img(1)], an)
    with pytest.raises(InputError, match=r"references\[0\] must be one RGB image"):
        M.score_video([img(1)], [np.zeros((4, 4, 5), np.uint8)], an)

    class OtherDims(CodeAnalyzer):
        def analyze(self, image, embed=True):
            faces = super().analyze(image, embed)
            if faces and image[0, 0, 0] == 2 and embed:
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


# ----------------------------------------------------------------------------- FaceSim-Cur through the driver
def test_facesim_cur_follows_opens2v(tmp_path):
    """Faces with keypoints (one frame found only by the grey-padding retry): FaceSim-Cur = OpenS2V's rule on
    CurricularFace embeddings of crops from the UNPADDED image at the moved-back keypoints."""
    torch = pytest.importorskip("torch")
    from mv2id_core.faces.align import ARCFACE_TEMPLATE
    from mv2id_core.faces.curricularface import CurricularFace
    from test_faces_curricularface import small_ir101_state_dict

    torch.save(small_ir101_state_dict(), tmp_path / "cur.bin")
    cur = CurricularFace(tmp_path / "cur.bin")

    class KpsAnalyzer(CodeAnalyzer):
        """A face with keypoints at a fixed place; frames whose (1, 1) pixel is 7 are found only when padded."""
        def analyze(self, image, embed=True):
            h, w = image.shape[:2]
            padded = tuple(image[0, 0]) == (128, 128, 128)
            core = image[h // 6: h - h // 6, w // 6: w - w // 6] if padded else image   # 25% pads: 1/6 of it
            if core[1, 1, 0] == 7 and not padded:
                return []
            faces = super().analyze(np.ascontiguousarray(core), embed)
            off = np.array([w // 6, h // 6], np.float32) if padded else np.zeros(2, np.float32)
            for f in faces:
                f.kps = (ARCFACE_TEMPLATE * 0.6 + [-12, -15]).astype(np.float32) + off   # crops run off the image
            return faces

    rng = np.random.default_rng(0)

    def frame(code, shy=False):
        a = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
        a[0, :] = 0
        a[0, 0] = (code, 128, 128)
        a[1, 1, 0] = 7 if shy else 0
        return a
    ref, video = frame(1), [frame(1), frame(2, shy=True), frame(0), frame(3)]
    rep = M.score_video(video, [ref], KpsAnalyzer(TABLE), num_frames=0, curricularface=cur)
    kps = (ARCFACE_TEMPLATE * 0.6 + [-12, -15]).astype(np.float32)
    e_ref = cur.embed(ref, kps)
    scores = [max(0.0, float(cur.embed(v, kps) @ e_ref)) for v in (video[0], video[1], video[3])]
    kept = [s for s in scores if s != 0.0]
    assert rep["facesim_cur"] == pytest.approx(np.mean(kept) if kept else 0.0, abs=2e-4)
    assert rep["per_frame"][1]["padded"] is True
    # the retry's frame: cropped from the unpadded frame (black outside it), not from the grey-padded one
    assert rep["per_frame"][1]["similarity_cur"][0] == pytest.approx(float(cur.embed(video[1], kps) @ e_ref), abs=2e-4)
    big = np.full((150, 150, 3), 128, np.uint8)
    big[25:125, 25:125] = video[1]
    assert abs(rep["per_frame"][1]["similarity_cur"][0] - float(cur.embed(big, kps + 25) @ e_ref)) > 1e-3
    assert rep["settings"]["curricularface"] == "CurricularFace IR-101 (cur.bin)"


# ----------------------------------------------------------------------------- real faces (dlib)
def _fit(a, size=128):
    return fit(a, size)


@pytest.fixture(scope="module")
def photos():
    return load_photos()


def same_person_frames(tom):
    """Tom Hanks: crops, scales, small rotations and a flip of the one photo, 128x128."""
    h, w = tom.shape[:2]
    return [_fit(tom), _fit(tom[:, ::-1]), _fit(rot(tom, 10)), _fit(rot(tom, -10)),
            _fit(tom[4:h - 2, 3:w - 5]), _fit((tom * 0.75).astype(np.uint8))]


def different_people_frames(t1):
    """The six people of the group photo, each cropped with half a face of context, 128x128."""
    return [_fit(t1_face(t1, i)) for i in range(len(T1_FACES))]


def test_real_same_person_scores_far_above_different_people(photos, dlib_an):
    tom, t1 = photos
    refs = [_fit(tom), _fit(tom[:, ::-1])]
    people = different_people_frames(t1)
    assert len(people) == 6
    same = M.score_video(same_person_frames(tom), refs, dlib_an, num_frames=0)
    diff = M.score_video(people, refs, dlib_an, num_frames=0)
    assert same["frames_with_face"] == 6 and diff["frames_with_face"] == 6
    assert same["mvrc"] > diff["mvrc"] + 0.08, (same["mvrc"], diff["mvrc"])
    assert same["facesim"] > diff["facesim"] + 0.08
    s_same = [p["mean_similarity"] for p in same["per_frame"]]
    s_diff = [p["mean_similarity"] for p in diff["per_frame"]]
    assert min(s_same) > max(s_diff)
    assert same["identity_std"] < diff["identity_std"]          # one identity is steadier than six
    assert diff["copy_paste"]["near_copy_rate"] == 0.0


def test_real_faceless_frames_are_skipped_and_counted(photos, dlib_an):
    tom, _ = photos
    rng = np.random.default_rng(0)
    blank = np.full((128, 128, 3), 200, np.uint8)
    noise = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    frames = [_fit(tom), blank, _fit(rot(tom, 8)), noise, _fit(tom[:, ::-1])]
    rep = M.score_video(frames, [_fit(tom)], dlib_an, num_frames=0)
    assert rep["frames_with_face"] == 3 and rep["frames_without_face"] == 2
    assert rep["frames_without_face_indices"] == [1, 3]
    assert rep["face_fraction"] == pytest.approx(0.6)
    only_faces = M.score_video([frames[0], frames[2], frames[4]], [_fit(tom)], dlib_an, num_frames=0)
    assert rep["mvrc"] == pytest.approx(only_faces["mvrc"], abs=1e-6)   # skipped, not scored as zero


def test_real_copies_are_near_copies_and_blends_are_not(photos, dlib_an):
    tom, _ = photos
    refs = [_fit(tom), _fit(tom[:, ::-1])]          # two views: the photo (yaw > 0) and its mirror (yaw < 0)
    pasted = [refs[0], refs[1]] * 3                  # a video pasting each reference at its own pose
    o, f = refs[0].astype(np.float32), refs[1].astype(np.float32)
    mixed = [(a * o + (1 - a) * f).astype(np.uint8) for a in (0.4, 0.45, 0.5, 0.55, 0.6)]  # views blended
    rp = M.score_video(pasted, refs, dlib_an, num_frames=0)
    rm = M.score_video(mixed, refs, dlib_an, num_frames=0)
    assert rm["frames_with_face"] == 5
    assert rp["copy_paste"]["near_copy_rate"] == pytest.approx(1.0)
    assert rp["copy_paste"]["pose_following"] == pytest.approx(1.0, abs=0.05)
    assert rm["copy_paste"]["near_copy_rate"] < 0.5, rm["copy_paste"]
    fixed = M.score_video([refs[0]] * 6, refs, dlib_an, num_frames=0)          # one view, one pose
    assert fixed["copy_paste"]["near_copy_rate"] == pytest.approx(1.0)
    assert fixed["copy_paste"]["pose_following"] is None and "do not move" in fixed["copy_paste"]["reason"]


def test_real_plot_is_not_blank(photos, dlib_an):
    tom, _ = photos
    frames = same_person_frames(tom) + [np.full((128, 128, 3), 90, np.uint8)]
    rep = M.score_video(frames, [_fit(tom), _fit(tom[:, ::-1])], dlib_an, num_frames=0)
    im = plot_report(rep, 1024, 640)
    a = np.asarray(im)
    assert im.size == (1024, 640) and a.std() > 10
    assert (a != 255).any(axis=-1).mean() > 0.03       # more than axes: lines, labels, legend


def test_real_no_face_in_any_reference(photos, dlib_an):
    tom, _ = photos
    grey = np.full((96, 96, 3), 128, np.uint8)
    with pytest.raises(NoReferenceFaceError, match=r"wall\.png, sky\.png"):
        M.score_video([_fit(tom)], [grey, grey + 20], dlib_an, reference_names=["wall.png", "sky.png"])


def test_face_dataclass_shift_moves_landmarks_too():
    f = Face(bbox=np.array([1, 2, 3, 4], np.float32), kps=np.ones((5, 2), np.float32), det_score=1.0,
             landmarks=np.ones((68, 3), np.float32))
    g = f.shifted(-1, 2)
    assert g.bbox.tolist() == [0, 4, 2, 6] and g.kps[0].tolist() == [0, 3] and g.landmarks[0].tolist() == [0, 3, 1]
