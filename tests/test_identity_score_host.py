"""Mv2ID Identity Score on the real ComfyUI host, with real faces and the offline dlib backend.

The videos are written with PyAV into the server's input folder at run time and enter the
graph the way a user's would: Load Video -> Get Video Components -> IMAGE frames.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

import comfy_server
from graphs import Graph
from faces_helpers import analyzer_node, image_batch
from mv2id_core import metrics as M
from mv2id_core.faces import load_analyzer
from photos import T1_FACES, fit, load_photos, rot, t1_face
from video_files import write_video

SIZE = 128


def _fit(a):
    return fit(a, SIZE)


@pytest.fixture(scope="module")
def media(comfy):
    tom, t1 = load_photos()
    d = comfy.input_dir
    Image.fromarray(_fit(tom)).save(d / "mv2id_id_front.png")
    Image.fromarray(_fit(tom[:, ::-1])).save(d / "mv2id_id_mirror.png")
    Image.new("RGB", (SIZE, SIZE), (128, 128, 128)).save(d / "mv2id_id_wall.png")
    same = [_fit(tom), _fit(rot(tom, 8)), np.full((SIZE, SIZE, 3), 70, np.uint8), _fit(tom[4:-2, 3:-5]),
            _fit(tom[:, ::-1]), _fit(rot(tom, -8))]
    others = [_fit(t1_face(t1, i)) for i in range(len(T1_FACES))]
    write_video(d / "mv2id_id_same.mp4", same)
    write_video(d / "mv2id_id_others.mp4", others)
    cut = np.full((SIZE, SIZE, 3), 118, np.uint8)                  # a face cut by the left edge: found by the retry
    cut[:, :88] = _fit(tom)[:, 40:]
    drift = [_fit(tom), cut, _fit(rot(tom, 6)), cut] * 4 + others * 2
    write_video(d / "mv2id_id_drift.mp4", drift, fps=8)
    stills = []                                                    # the same kind of frames as lossless images
    for i, frame in enumerate(drift[:8] + others[:4]):
        Image.fromarray(frame).save(d / f"mv2id_id_still_{i:02d}.png")
        stills.append(f"mv2id_id_still_{i:02d}.png")
    return {"same": "mv2id_id_same.mp4", "others": "mv2id_id_others.mp4", "drift": "mv2id_id_drift.mp4",
            "stills": stills}


def _frames(g: Graph, name: str):
    return g.add("GetVideoComponents", video=g.add("LoadVideo", file=name))[0]


def _components(g: Graph, name: str):
    """(frames, fps) of a video file, as Get Video Components gives them."""
    parts = g.add("GetVideoComponents", video=g.add("LoadVideo", file=name))
    return parts[0], parts[2]


def _score(g: Graph, tag: str, frames, refs, analyzer, **kw):
    extra = {"curricularface_model": kw["cur"]} if "cur" in kw else {}
    node = g.add("Mv2IDIdentityScore", frames=frames, references=refs, analyzer=analyzer,
                 num_frames=kw.get("num_frames", 32), plot_width=kw.get("w", 800), plot_height=kw.get("h", 480),
                 fps=kw.get("fps", 0.0), segment_seconds=kw.get("segment_seconds", 1.0),
                 segment_frames=kw.get("segment_frames", 0), **extra)
    for slot, what in enumerate(("mvrc", "facesim", "report")):
        g.add("PreviewAny", _id=f"{tag}_{what}", source=node[slot])
    g.add("PreviewAny", _id=f"{tag}_cur", source=node[4])
    g.add("SaveImage", _id=f"{tag}_plot", images=node[3], filename_prefix=f"mv2id_identity_{tag}")
    return node


def _text(comfy, entry, nid):
    return comfy.ui_outputs(entry, nid)["text"][0]


def test_identity_score_same_person_far_above_other_people(comfy, media):
    g = Graph()
    an = analyzer_node(g)
    refs = image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"])
    _score(g, "same", _frames(g, media["same"]), refs, an)
    _score(g, "others", _frames(g, media["others"]), refs, an, w=640, h=400)
    entry = comfy.run(g.prompt(), timeout=300)
    rep = {t: json.loads(_text(comfy, entry, f"{t}_report")) for t in ("same", "others")}
    mvrc = {t: float(_text(comfy, entry, f"{t}_mvrc")) for t in ("same", "others")}
    facesim = {t: float(_text(comfy, entry, f"{t}_facesim")) for t in ("same", "others")}
    assert mvrc["same"] == pytest.approx(rep["same"]["mvrc"], abs=1e-5)
    assert facesim["others"] == pytest.approx(rep["others"]["facesim"], abs=1e-5)
    assert mvrc["same"] > mvrc["others"] + 0.08, (mvrc, facesim)
    assert facesim["same"] > facesim["others"] + 0.08
    same = rep["same"]
    assert same["total_frames"] == 6 and same["sampled_frames"] == 32
    # 32 samples of a 6-frame video repeat frames: the report (the node's output) says so
    assert same["notes"][0].startswith("the video has 6 frames but 32 were sampled, so 26 samples repeat a frame")
    assert math.isnan(float(_text(comfy, entry, "same_cur"))) and same["facesim_cur"] is None
    assert "not computed" in same["protocol"]["facesim_cur"]
    assert same["frames_without_face_indices"] == [2]                      # the flat grey frame, skipped
    assert 0 < same["face_fraction"] < 1
    assert rep["others"]["frames_with_face"] == 32
    assert all(len(p["similarity"]) == 2 for p in same["per_frame"] if p["face"])
    for tag, size in (("same", (800, 480)), ("others", (640, 400))):
        pngs = [p for p in comfy.output_files(entry, f"{tag}_plot") if p.suffix == ".png"]
        assert len(pngs) == 1
        im = Image.open(pngs[0])
        assert im.size == size and np.asarray(im.convert("RGB")).std() > 10


def test_no_face_in_references_is_a_clear_error(healthy, media):
    g = Graph()
    an = analyzer_node(g)
    _score(g, "noref", _frames(g, media["same"]), image_batch(g, ["mv2id_id_wall.png", "mv2id_id_wall.png"]), an,
           num_frames=4)
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    msg = str(ei.value)
    assert "Mv2IDIdentityScore" in msg and "no face found in any of the 2 reference images (ref0, ref1)" in msg


def test_mismatched_socket_types_are_rejected(healthy, media):
    g = Graph()
    refs = image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"])
    # an IMAGE where the face analyzer belongs
    _score(g, "wrong", _frames(g, media["same"]), refs, refs)
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.queue(g.prompt())
    errors = json.dumps(ei.value.payload)
    assert "analyzer" in errors and "MV2ID_FACE_ANALYZER" in errors


def test_no_face_in_any_frame_gives_nan_mvrc_and_zero_facesim(comfy, media):
    g = Graph()
    an = analyzer_node(g)
    refs = image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"])
    walls = image_batch(g, ["mv2id_id_wall.png", "mv2id_id_wall.png"])          # a two-frame "video" of a wall
    _score(g, "empty", walls, refs, an, num_frames=0)
    entry = comfy.run(g.prompt(), timeout=120)
    rep = json.loads(_text(comfy, entry, "empty_report"))
    assert rep["frames_with_face"] == 0 and rep["frames_without_face"] == 2 and rep["mvrc"] is None
    assert math.isnan(float(_text(comfy, entry, "empty_mvrc")))
    assert float(_text(comfy, entry, "empty_facesim")) == 0.0


def test_facesim_cur_with_a_curricularface_file(comfy, media):
    torch = pytest.importorskip("torch")
    from test_faces_curricularface import small_ir101_state_dict
    folder = comfy.base_dir / "models" / "curricularface"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(small_ir101_state_dict(), folder / "mv2id_test_cur.bin")
    g = Graph()
    an = analyzer_node(g)
    _score(g, "cur", _frames(g, media["same"]), image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"]), an,
           num_frames=6, cur="mv2id_test_cur.bin", segment_seconds=0)
    entry = comfy.run(g.prompt(), timeout=300)
    rep = json.loads(_text(comfy, entry, "cur_report"))
    assert 0 < float(_text(comfy, entry, "cur_cur")) <= 1
    assert float(_text(comfy, entry, "cur_cur")) == pytest.approx(rep["facesim_cur"], abs=1e-5)
    assert rep["settings"]["curricularface"] == "CurricularFace IR-101 (mv2id_test_cur.bin)" and rep["notes"] == []
    assert all(len(p["similarity_cur"]) == 2 for p in rep["per_frame"] if p["face"])


def test_curricularface_file_with_wrong_shapes_is_named(healthy, media):
    torch = pytest.importorskip("torch")
    from test_faces_curricularface import small_ir101_state_dict
    folder = healthy.base_dir / "models" / "curricularface"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({**small_ir101_state_dict(), "output_layer.3.weight": torch.zeros(512, 100)}, folder / "mv2id_odd.bin")
    g = Graph()
    _score(g, "odd", _frames(g, media["same"]), image_batch(g, ["mv2id_id_front.png"]), analyzer_node(g),
           num_frames=4, cur="mv2id_odd.bin")
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    assert ("mv2id_odd.bin does not match the CurricularFace IR-101 layout: tensor output_layer.3.weight: "
            "[512, 100] where IR-101 has [512, 3136]") in str(ei.value)


def test_unknown_curricularface_file_lists_the_choices(healthy, media):
    g = Graph()
    an = analyzer_node(g)
    _score(g, "nocur", _frames(g, media["same"]), image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"]), an,
           num_frames=4, cur="missing.bin")
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    msg = str(ei.value)
    assert "missing.bin" in msg and "none" in msg, msg


def test_empty_frames_are_a_clear_error(healthy, media):
    g = Graph()
    an = analyzer_node(g)
    _score(g, "noframes", g.add("Mv2IDTestImage", width=64, height=64, batch=0, bad_pixel="none"), image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"]), an)
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    assert "frames is an empty IMAGE batch [0, 64, 64, 3]" in str(ei.value)


def test_the_same_analyzer_settings_give_the_same_numbers_as_the_python_api(comfy, media):
    """The Face Analyzer's settings reach scoring through mv2id_core.faces.analyzer_settings, as
    load_analyzer's do: with the retry off (and another det_size) the node's report equals score_video's on
    the same pixels (lossless frames), and differs from the retry-on report (faces cut by the edge are lost).
    On a video, the fps comes from Get Video Components: per-second segments and the drift from 2 s of the
    reference's person to 1.5 s of other people."""
    g = Graph()
    refs = image_batch(g, ["mv2id_id_front.png", "mv2id_id_mirror.png"])
    stills = image_batch(g, media["stills"])
    for tag, retry in (("on", True), ("off", False)):
        _score(g, tag, stills, refs, analyzer_node(g, retry=retry, det_size=512), num_frames=0, fps=8.0,
               segment_frames=4)
    frames, fps = _components(g, media["drift"])
    _score(g, "video", frames, refs, analyzer_node(g), num_frames=0, fps=fps, segment_frames=16)
    entry = comfy.run(g.prompt(), timeout=600)
    rep = {t: json.loads(_text(comfy, entry, f"{t}_report")) for t in ("on", "off", "video")}
    load = lambda n: np.asarray(Image.open(comfy.input_dir / n).convert("RGB"))      # noqa: E731
    for tag, retry in (("on", True), ("off", False)):
        py = M.score_video([load(n) for n in media["stills"]], [load("mv2id_id_front.png"), load("mv2id_id_mirror.png")],
                           load_analyzer("dlib", retry=retry, det_size=512), num_frames=0, fps=8.0, segment_frames=4)
        node = rep[tag]
        assert node["settings"]["retry"] is retry and node["analyzer"] == py["analyzer"]
        for key in ("mvrc", "facesim", "frames_with_face", "copy_paste", "over_time"):
            assert node[key] == py[key], (tag, key)
    assert rep["on"]["frames_with_face"] > rep["off"]["frames_with_face"]
    video = rep["video"]
    sec, win = video["over_time"]
    assert video["settings"]["fps"] == 8.0 and sec["unit"] == "seconds" and len(sec["segments"]) == 4
    assert sec["drift"]["facesim"] < -0.05 and [s["first_frame"] for s in win["segments"]] == [0, 16]


def test_identity_score_refuses_nan_timing(healthy, media):
    g = Graph()
    an = analyzer_node(g)
    _score(g, "nan", _frames(g, media["same"]), image_batch(g, ["mv2id_id_front.png"]), an, fps=float("nan"))
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    # the pack's one check of FLOAT inputs (nodes.utils.Mv2IDNode) names it before scoring starts
    assert "Mv2ID Identity Score: fps is nan, not a finite number: set fps to a number from 0 to 1000 (default 0)" \
        in str(ei.value)
