"""Mv2ID Face Analyzer, Face Views and Region Mask nodes through the real ComfyUI host (dlib backend)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import comfy_server
from graphs import Graph
from mv2id_core.faces import available_backends
from photos import fit, load_photos, t1_face

pytestmark = pytest.mark.skipif("dlib" not in available_backends(), reason="dlib backend not installed")

# the known set of test_views.py: face 3 of t1.jpg, face 4 mirrored, face 0 (frontal), face 4, face 3 mirrored
SET = ["mv2id_fv_half.png", "mv2id_fv_turned_mirror.png", "mv2id_fv_frontal.png", "mv2id_fv_turned.png",
       "mv2id_fv_half_mirror.png"]


@pytest.fixture(scope="module")
def media(comfy):
    _, t1 = load_photos()
    turned, half, frontal = (fit(t1_face(t1, i), 192) for i in (4, 3, 0))
    for name, a in zip(SET, [half, turned[:, ::-1], frontal, turned, half[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(a)).save(comfy.input_dir / name)
    Image.new("RGB", (192, 192), (128, 128, 128)).save(comfy.input_dir / "mv2id_fv_wall.png")
    return SET


def analyzer(g: Graph, backend="dlib", **kw):
    opts = dict(backend=backend, insightface_pack="antelopev2", provider="cpu", det_size=640, retry=True,
                dlib_detector="hog")
    opts.update(kw)
    return g.add("Mv2IDFaceAnalyzer", **opts)


def batch(g: Graph, names):
    imgs = [g.add("LoadImage", image=n)[0] for n in names]
    out = imgs[0]
    for im in imgs[1:]:
        out = g.add("ImageBatch", image1=out, image2=im)
    return out


def face_views(g: Graph, images, an, **kw):
    opts = dict(images=images, analyzer=an, num_views=3, width=160, height=192, margin=1.0, upright=True,
                if_no_face="error", pitch_weight=0.5, mask_meaning="subject")
    opts.update(kw)
    return g.add("Mv2IDFaceViews", **opts)


def test_face_views_node_selects_and_crops(comfy, media):
    g = Graph()
    fv = face_views(g, batch(g, media), analyzer(g))
    g.add("SaveImage", _id="refs", images=fv[0], filename_prefix="mv2id_fv_refs")
    g.add("SaveImage", _id="masks", images=g.add("MaskToImage", mask=fv[1]), filename_prefix="mv2id_fv_masks")
    g.add("PreviewAny", _id="json", source=fv[2])
    g.add("SaveImage", _id="preview", images=fv[3], filename_prefix="mv2id_fv_preview")
    entry = comfy.run(g.prompt(), timeout=300)
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    assert [v["source_index"] for v in rep["views"]] == [3, 2, 1]
    assert rep["faces_found"] == 5 and rep["analyzer"].startswith("dlib")
    yaws = [v["yaw"] for v in rep["views"]]
    assert yaws == sorted(yaws) and yaws[0] < -25 < 25 < yaws[2]
    refs = sorted(comfy.output_files(entry, "refs"))
    assert len(refs) == 3 and all(Image.open(p).size == (160, 192) for p in refs)
    assert len(comfy.output_files(entry, "masks")) == 3
    (prev,) = comfy.output_files(entry, "preview")
    assert Image.open(prev).size[0] == 3 * 160 and Image.open(prev).size[1] > 192


def test_face_views_to_region_mask(comfy, media):
    g = Graph()
    fv = face_views(g, batch(g, media), analyzer(g), width=128, height=128)
    rm = g.add("Mv2IDRegionMask", images=fv[0], ratio=0.6, block_size=16, seed=5, fill=0.5, complementary=True)
    g.add("SaveImage", _id="masked", images=rm[0], filename_prefix="mv2id_rm_img")
    g.add("SaveImage", _id="masks", images=g.add("MaskToImage", mask=rm[1]), filename_prefix="mv2id_rm_mask")
    entry = comfy.run(g.prompt(), timeout=300)
    masks = [np.asarray(Image.open(p).convert("L")) > 127 for p in sorted(comfy.output_files(entry, "masks"))]
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(comfy.output_files(entry, "masked"))]
    assert len(masks) == 3 and len(imgs) == 3
    for m, im in zip(masks, imgs):
        assert m.shape == (128, 128)
        assert abs(m.mean() - round(0.6 * 64) / 64) < 1e-6          # 8x8 blocks of 16 px, exact
        assert np.all(np.abs(im[m].astype(int) - 128) <= 1)          # fill 0.5
    assert np.logical_or.reduce([~m for m in masks]).all()          # complementary: every block seen once


def test_image_without_face_is_named_and_server_stays_healthy(healthy, media):
    g = Graph()
    fv = face_views(g, batch(g, [media[0], "mv2id_fv_wall.png", media[2]]), analyzer(g), num_views=2)
    g.add("PreviewAny", source=fv[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=300)
    msg = str(ei.value)
    assert "Mv2IDFaceViews" in msg and "no face found in input image(s) 1 (0-based index in the batch) of 3" in msg
    g = Graph()
    fv = face_views(g, batch(g, [media[0], "mv2id_fv_wall.png", media[2]]), analyzer(g), num_views=3,
                    if_no_face="skip")
    g.add("PreviewAny", source=fv[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=300)
    assert "3 views requested but only 2 of 3 image(s) have a usable face (no face in: 1)" in str(ei.value)


def test_insightface_without_models_says_where_they_go(healthy):
    g = Graph()
    an = analyzer(g, backend="insightface")
    g.add("PreviewAny", source=face_views(g, g.add("LoadImage", image="mv2id_fv_wall.png")[0], an)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    msg = str(ei.value)
    assert "Mv2IDFaceAnalyzer" in msg
    assert "models/antelopev2" in msg.replace("\\", "/") and "Folders searched" in msg
    assert "switch backend to dlib" in msg


def test_insightface_pack_in_the_models_folder_runs_through_face_views(comfy):
    """A pack dropped into <models>/insightface/models/<pack>/ is offered by the Face Analyzer and runs.

    The pack is the small ONNX models of test_faces_insightface.py (real signatures, known outputs): its
    detector fires on bright stride-8 cells, so a white square is the 'face' Face Views must crop."""
    import test_faces_insightface as tiny

    pack = comfy.base_dir / "models" / "insightface" / "models" / "mv2id_test_pack"
    pack.mkdir(parents=True, exist_ok=True)
    tiny.make_detector(pack / "scrfd_10g_bnkps.onnx")
    tiny.make_landmark(pack / "1k3d68.onnx", yaw=-35.0)
    tiny.make_recognition(pack / "glintr100.onnx")
    info = comfy.get("/object_info/Mv2IDFaceAnalyzer")["Mv2IDFaceAnalyzer"]
    typ, opts = info["input"]["required"]["insightface_pack"][:2]
    assert "mv2id_test_pack" in (typ if isinstance(typ, list) else opts["options"])   # found on a fresh reload
    Image.fromarray(tiny._cell_image()).save(comfy.input_dir / "mv2id_fv_square.png")
    g = Graph()
    fv = face_views(g, g.add("LoadImage", image="mv2id_fv_square.png")[0],
                    analyzer(g, backend="insightface", insightface_pack="mv2id_test_pack"), num_views=1,
                    width=64, height=64, margin=0.0)
    g.add("PreviewAny", _id="json", source=fv[2])
    entry = comfy.run(g.prompt(), timeout=300)
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    (view,) = rep["views"]
    assert rep["analyzer"].startswith("insightface mv2id_test_pack (CPU")
    assert view["bbox"] == [224.0, 144.0, 256.0, 176.0] and view["yaw"] == pytest.approx(-35, abs=0.5)
