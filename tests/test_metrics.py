"""Identity metrics: the math by hand, identity over time, the driver on coded images, FaceSim-Cur's
protocol, then real faces with the offline dlib backend. (The copy-paste readings: test_copy_paste.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest

from faces_helpers import CodeAnalyzer, coded, unit
from mv2id_core import metrics as M
from mv2id_core import sampling as S
from mv2id_core.errors import InputError, NoReferenceFaceError
from mv2id_core.faces.base import Face
from mv2id_core.plot import plot_report
from photos import T1_FACES, fit, load_photos, rot, t1_face

img = coded
TABLE = {1: [1, 0, 0, 0], 2: [0.8, 0.6, 0, 0], 3: [0, 0, 1, 0], 9: [0, 0, 0, 1]}


# ----------------------------------------------------------------------------- pure functions
def test_sample_frame_indices_follow_opens2v():
    np.testing.assert_array_equal(S.sample_frame_indices(81), np.linspace(0, 80, 32, dtype=int))
    short = S.sample_frame_indices(10)
    assert len(short) == 32 and short[0] == 0 and short[-1] == 9 and len(set(short)) == 10   # repeats
    np.testing.assert_array_equal(S.sample_frame_indices(7, 0), np.arange(7))
    np.testing.assert_array_equal(S.sample_frame_indices(5, 3), [0, 2, 4])
    with pytest.raises(InputError, match="no frames"):
        S.sample_frame_indices(0)


def test_sampling_lives_below_video_io_and_metrics():
    """Frame sampling is one rule in mv2id_core.sampling; video_io does not import the metrics."""
    import ast
    import inspect

    from mv2id_core import video_io
    tree = ast.parse(inspect.getsource(video_io))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "metrics" not in imported and "sampling" in imported, imported
    assert M.sample_frame_indices is S.sample_frame_indices


def test_segments_cover_the_video_and_merge_a_short_tail():
    assert S.segment_bounds(81, 16) == [(0, 16), (16, 32), (32, 48), (48, 64), (64, 81)]   # 4n+1: tail merged
    assert S.segment_bounds(96, 16) == [(0, 16), (16, 32), (32, 48), (48, 64), (64, 80), (80, 96)]
    assert S.segment_bounds(90, 16)[-1] == (80, 90)                                        # 10 >= 8: kept
    b = S.segment_bounds(100, 29.97)                                                       # 1 s at 29.97 fps
    assert b == [(0, 29), (29, 59), (59, 100)] and S.segment_bounds(10, 81) == [(0, 10)]
    np.testing.assert_array_equal(S.segment_of([0, 15, 16, 80], S.segment_bounds(81, 16)), [0, 0, 1, 4])
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="positive, finite number of frames"):
            S.segment_bounds(81, bad)


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


# ----------------------------------------------------------------------------- identity over time
def _sim_video(values):
    """sim [F, 1] with these per-frame similarities (None = no face)."""
    return np.array([[np.nan] if v is None else [v] for v in values], np.float64)


def test_identity_over_time_per_second_and_per_window():
    """96 frames at 16 fps, all sampled: the identity holds for 3 s, then falls to 0.2 (frames 48-95)."""
    vals = [0.8] * 48 + [0.2] * 48
    vals[20] = None                                                   # a frame without a face is skipped
    sim, idx = _sim_video(vals), np.arange(96)
    over, notes = M.identity_over_time(sim, None, idx, 96, fps=16.0, segment_seconds=1.0, segment_frames=48)
    sec, win = over
    assert (sec["unit"], sec["length"], sec["frames_per_segment"]) == ("seconds", 1.0, 16.0)
    assert [s["first_frame"] for s in sec["segments"]] == [0, 16, 32, 48, 64, 80]
    assert [s["start_s"] for s in sec["segments"]] == [0, 1, 2, 3, 4, 5]
    assert [s["mvrc"] for s in sec["segments"]] == pytest.approx([0.8, 0.8, 0.8, 0.2, 0.2, 0.2])
    assert sec["segments"][1]["with_face"] == 15 and sec["segments"][1]["sampled"] == 16
    assert sec["drift"]["mvrc"] == pytest.approx(-0.6) and sec["drift"]["facesim"] == pytest.approx(-0.6)
    assert sec["lowest_facesim_segment"] == 3 and "facesim_cur" not in sec["drift"]
    assert [(s["first_frame"], s["last_frame"]) for s in win["segments"]] == [(0, 47), (48, 95)]
    assert win["drift"]["mvrc"] == pytest.approx(-0.6) and notes == []


def test_identity_over_time_facesim_rules_hold_per_segment():
    """Per segment FaceSim clips at 0 like the whole video's; FaceSim-Cur drops zero frames; a segment without a
    face has no scores (None), and the drift runs from the first to the last segment that has one."""
    sim = _sim_video([0.5, -0.5, None, None, 0.3, 0.1])
    cur = _sim_video([0.4, -0.2, None, None, 0.0, 0.2])
    (seg,), _ = M.identity_over_time(sim, cur, np.arange(6), 6, fps=None, segment_seconds=0, segment_frames=2)
    a, b, c = seg["segments"]
    assert a["mvrc"] == pytest.approx(0.0) and a["facesim"] == pytest.approx(0.25) and a["facesim_cur"] == 0.4
    assert b["with_face"] == 0 and b["mvrc"] is None and b["facesim"] is None and b["facesim_cur"] is None
    assert c["facesim"] == pytest.approx(0.2) and c["facesim_cur"] == pytest.approx(0.2)
    assert seg["drift"] == pytest.approx({"mvrc": 0.2, "facesim": -0.05, "facesim_cur": -0.2})
    assert "start_s" not in a                                          # no fps: no times


def test_identity_over_time_needs_a_frame_rate_for_seconds_and_says_so():
    sim = _sim_video([0.5] * 40)
    over, notes = M.identity_over_time(sim, None, np.arange(0, 80, 2), 80, fps=None, segment_seconds=1.0,
                                       segment_frames=0)
    assert over == [] and notes[0].startswith("identity over time per 1 s needs the video's frame rate")
    over, notes = M.identity_over_time(sim[:4], None, np.array([0, 26, 53, 79]), 80, fps=16.0, segment_seconds=1.0,
                                       segment_frames=0)
    assert len(over[0]["segments"]) == 5 and "segments hold fewer than 3 sampled frames" in notes[0]
    for bad in (dict(fps=float("nan")), dict(segment_seconds=-1), dict(segment_frames=2.5), dict(fps="fast")):
        args = {"fps": 16, "segment_seconds": 1, "segment_frames": 0, **bad}
        with pytest.raises(InputError, match=next(iter(bad))):
            M.check_timing(**args)


# ----------------------------------------------------------------------------- the driver on coded images
def _coded(table=TABLE, retry=False):
    an = CodeAnalyzer(table)
    an.retry = retry
    return an


def test_score_video_counts_and_skips_faceless_frames():
    an = _coded()
    refs = [img(1, yaw=0), img(2, yaw=40)]
    video = [img(1), img(0), img(2, yaw=38), img(0), img(9)]       # two frames without a face
    rep = M.score_video(video, refs, an, num_frames=0)
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
    assert rep["yaw_range"] == [0, 38] and rep["over_time"] == []
    assert rep["notes"] == [M.identity_over_time(s, None, np.arange(3), 5, None, 1.0, 0)[1][0]]   # no fps known


def test_score_video_samples_32_frames_analyses_each_once_and_says_frames_repeat():
    an = _coded()
    video = np.stack([img(1 if i % 2 else 2) for i in range(10)])     # [T, H, W, 3] array
    rep = M.score_video(video, [img(1)], an, segment_seconds=0)
    assert rep["sampled_frames"] == 32 and rep["total_frames"] == 10
    assert an.calls == 1 + 10                                        # 1 reference + 10 distinct frames
    cp = rep["copy_paste"]
    assert cp["near_copy_rate"] == 0.0 and cp["pose_following"] is None   # coded images have no face structure
    assert cp["reason"].startswith("pose_following needs two reference views")
    assert rep["notes"] == ["the video has 10 frames but 32 were sampled, so 22 samples repeat a frame and count "
                            "again (as OpenS2V-Eval does); set num_frames to 10 or 0 to score every frame once."]


def test_score_video_with_presampled_frames_keeps_original_indices():
    an = _coded()
    idx = np.array([0, 0, 3, 3, 6])                                  # as read_sampled_frames returns them
    frames = [img(1), img(1), img(0), img(0), img(2)]
    rep = M.score_video(frames, [img(1)], an, frame_indices=idx, total_frames=7, num_frames=5, fps=2,
                        segment_seconds=2)
    assert an.calls == 1 + 3                                         # repeated indices analysed once
    assert [p["frame"] for p in rep["per_frame"]] == [0, 0, 3, 3, 6]
    assert rep["total_frames"] == 7 and rep["frames_without_face_indices"] == [3]
    assert rep["face_fraction"] == pytest.approx(3 / 5)
    segs = rep["over_time"][0]["segments"]                           # 4-frame segments of the 7-frame video
    assert [(s["first_frame"], s["last_frame"], s["sampled"], s["with_face"]) for s in segs] == [(0, 3, 4, 2),
                                                                                                   (4, 6, 1, 1)]
    with pytest.raises(InputError, match="frame_indices has 2 entries for 5 frames"):
        M.score_video(frames, [img(1)], an, frame_indices=[0, 1])


def test_retry_is_the_analyzers_setting():
    """One place decides the grey-padding retry: the analyzer's settings (faces.load_analyzer, the Face
    Analyzer node, mv2id-eval --option retry=... / --no-pad-retry); score_video has no second switch."""
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
    an.retry = False
    with pytest.raises(NoReferenceFaceError, match="no face found in any of the 1 reference images"):
        M.score_video([frame], [frame], an, num_frames=0)
    with pytest.raises(TypeError):
        M.score_video([frame], [frame], an, retry=True)


def test_no_face_in_any_reference_names_them():
    with pytest.raises(NoReferenceFaceError, match=r"front\.png, side\.png"):
        M.score_video([img(1)], [img(0), img(0)], _coded(), reference_names=["front.png", "side.png"])


def test_reference_without_face_is_dropped_reported_and_stops_the_copy_paste_readings():
    rep = M.score_video([img(1)], [img(0), img(1)], _coded(), num_frames=0)
    assert rep["references_without_face"] == ["ref0"] and rep["references_used"] == ["ref1"]
    assert rep["per_frame"][0]["similarity"] == [None, pytest.approx(1.0)]
    # with three references one of which shows no face, the frames are not silently matched to the other two
    refs = [img(1, yaw=-40), img(0), img(3, yaw=40)]
    video = [img(1, yaw=-40), img(3, yaw=0), img(3, yaw=40)]
    rep = M.score_video(video, refs, _coded(), num_frames=0)
    cp = rep["copy_paste"]
    assert cp["near_copy_rate"] is None and cp["pose_following"] is None
    assert cp["reason"].startswith("reference(s) ref1 show no face, so their views cannot be matched")
    assert rep["notes"][0] == "no face in reference(s) ref1: they are left out of every number."


def test_identity_that_changes_part_way_shows_in_the_segments():
    """A 64-frame video at 16 fps: the reference's person for 2 s, then someone else; every frame sampled."""
    video = [img(1)] * 32 + [img(3)] * 32
    rep = M.score_video(video, [img(1)], _coded(), num_frames=0, fps=16, segment_frames=32)
    sec, win = rep["over_time"]
    assert [s["facesim"] for s in sec["segments"]] == [1.0, 1.0, 0.0, 0.0]
    assert sec["drift"] == {"mvrc": -1.0, "facesim": -1.0} and sec["lowest_facesim_segment"] == 2
    assert [s["mvrc"] for s in win["segments"]] == [1.0, 0.0] and win["unit"] == "frames" and win["length"] == 32
    assert rep["settings"]["fps"] == 16 and rep["settings"]["segment_frames"] == 32
    row = M.summary_row(rep, "v.mp4")
    assert (row["mvrc_drift"], row["facesim_drift"], row["drift_per"]) == (-1.0, -1.0, "1 seconds")


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
    dl = M.opens2v_protocol(_coded(), 32, 1, cur=False)
    assert "the code backend instead of insightface" in dl["facesim"]
    assert "the grey-padding retry off (OpenS2V retries once)" in dl["facesim"]


def test_mismatched_types_give_clear_errors():
    an = _coded()
    with pytest.raises(InputError, match="analyzer must be a face analyzer"):
        M.score_video([img(1)], [img(1)], "dlib")

    class LooksLikeOne:                       # one import name: no duck-typing for "another copy of the package"
        retry, name = True, "fake"

        def analyze(self, image, embed=True):
            return []
    with pytest.raises(InputError, match="got LooksLikeOne"):
        M.score_video([img(1)], [img(1)], LooksLikeOne())
    with pytest.raises(InputError, match="got one image"):
        M.score_video(img(1), [img(1)], an)
    with pytest.raises(InputError, match="frames must be a batch"):
        M.score_video("video.mp4", [img(1)], an)
    with pytest.raises(InputError, match=r"references\[0\] must be one RGB image"):
        M.score_video([img(1)], [np.zeros((4, 4, 5), np.uint8)], an)
    with pytest.raises(InputError, match="fps must be a finite number >= 0"):
        M.score_video([img(1)], [img(1)], an, fps=float("inf"))

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
    rep = M.score_video(f[None], [img(1)], _coded(), num_frames=0)
    assert rep["frames_with_face"] == 1


def test_plot_has_requested_size_and_draws_every_series():
    rep = M.score_video([img(1, yaw=-30), img(2, yaw=0), img(0), img(3, yaw=30)],
                        [img(1, yaw=-30), img(2), img(3, yaw=30)], _coded(), num_frames=0, fps=2)
    im = plot_report(rep, 800, 500)
    assert im.size == (800, 500) and im.mode == "RGB"
    a = np.asarray(im)
    assert a.std() > 10, "plot is blank"
    from mv2id_core.plot import PALETTE, POSE_COLOURS, SEGMENT_COLOUR
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    for c in [*PALETTE[:3], POSE_COLOURS["yaw"], SEGMENT_COLOUR]:
        assert c in colours, f"series colour {c} not drawn"
    no_segments = np.asarray(plot_report({**rep, "over_time": []}, 800, 500))
    assert SEGMENT_COLOUR not in {tuple(c) for c in no_segments.reshape(-1, 3)}
    with pytest.raises(ValueError, match="too small"):
        plot_report(rep, 100, 100)


def test_summary_row():
    rep = M.score_video([img(1), img(2)], [img(1), img(2)], _coded(), num_frames=0)
    row = M.summary_row(rep, "a.mp4")
    assert set(row) == set(M.SUMMARY_FIELDS) and row["mvrc"] == rep["mvrc"] and row["error"] == ""
    assert row["facesim_drift"] == "" and row["drift_per"] == ""                  # no fps: no segments
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
