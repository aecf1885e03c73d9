"""Mv2ID Face Analyzer, Load Face Photos, Face Views and Region Mask through the real ComfyUI host (dlib
backend; the insightface backend with the small ONNX models of faces_helpers)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import comfy_server
import faces_helpers as tiny
from faces_helpers import analyzer_node, image_batch
from graphs import Graph
from mv2id_core.faces import available_backends
from photos import fit, load_photos, t1_face

pytestmark = pytest.mark.skipif("dlib" not in available_backends(), reason="dlib backend not installed")

# the known set of test_views.py: face 3 of t1.jpg, face 4 mirrored, face 0 (frontal), face 4, face 3 mirrored
SET = ["mv2id_fv_half.png", "mv2id_fv_turned_mirror.png", "mv2id_fv_frontal.png", "mv2id_fv_turned.png",
       "mv2id_fv_half_mirror.png"]
PHOTOS = "mv2id_face_photos"        # a folder in input/: a portrait and a landscape photo


@pytest.fixture(scope="module")
def media(comfy):
    tom, t1 = load_photos()
    turned, half, frontal = (fit(t1_face(t1, i), 192) for i in (4, 3, 0))
    for name, a in zip(SET, [half, turned[:, ::-1], frontal, turned, half[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(a)).save(comfy.input_dir / name)
    Image.new("RGB", (192, 192), (128, 128, 128)).save(comfy.input_dir / "mv2id_fv_wall.png")
    # a portrait with the face high up, a landscape with the face at its left edge: batched to the
    # portrait's shape, the landscape is centre-cropped and loses its face
    folder = comfy.input_dir / PHOTOS
    folder.mkdir(exist_ok=True)
    portrait = np.full((600, 300, 3), 150, np.uint8)
    portrait[30:190, 70:230] = fit(tom, 160)
    landscape = np.full((300, 900, 3), 110, np.uint8)
    landscape[70:230, 15:175] = fit(tom[:, ::-1], 160)
    Image.fromarray(portrait).save(folder / "a_portrait.png")
    Image.fromarray(landscape).save(folder / "b_landscape.jpg", quality=95)
    Image.fromarray(portrait).save(comfy.input_dir / "mv2id_portrait.png")
    Image.fromarray(landscape).save(comfy.input_dir / "mv2id_landscape.png")
    (comfy.input_dir / "mv2id_no_photos").mkdir(exist_ok=True)
    (comfy.input_dir / "mv2id_no_photos" / "notes.txt").write_text("no photos here")
    return SET


def face_views(g: Graph, images, an, **kw):
    opts = dict(images=images, analyzer=an, num_views=3, width=160, height=192, margin=1.0, upright=True,
                if_no_face="error", pitch_weight=0.5, mask_meaning="subject")
    opts.update(kw)
    return g.add("Mv2IDFaceViews", **opts)


def test_face_views_node_selects_and_crops(comfy, media):
    g = Graph()
    fv = face_views(g, image_batch(g, media), analyzer_node(g))
    g.add("SaveImage", _id="refs", images=fv[0], filename_prefix="mv2id_fv_refs")
    g.add("SaveImage", _id="masks", images=g.add("MaskToImage", mask=fv[1]), filename_prefix="mv2id_fv_masks")
    g.add("PreviewAny", _id="json", source=fv[2])
    g.add("SaveImage", _id="preview", images=fv[3], filename_prefix="mv2id_fv_preview")
    entry = comfy.run(g.prompt(), timeout=300)
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    assert [v["source_index"] for v in rep["views"]] == [3, 2, 1]
    assert rep["faces_found"] == 5 and rep["analyzer"].startswith("dlib")
    assert rep["background"].startswith("kept: no subject mask was given")
    yaws = [v["yaw"] for v in rep["views"]]
    assert yaws == sorted(yaws) and yaws[0] < -25 < 25 < yaws[2]
    refs = sorted(comfy.output_files(entry, "refs"))
    assert len(refs) == 3 and all(Image.open(p).size == (160, 192) for p in refs)
    assert len(comfy.output_files(entry, "masks")) == 3
    (prev,) = comfy.output_files(entry, "preview")
    w, h = Image.open(prev).size
    assert w == 3 * 160 and h > 192 + 2 * 28 - 1               # labels and the background note


def test_face_views_to_region_mask(comfy, media):
    g = Graph()
    fv = face_views(g, image_batch(g, media), analyzer_node(g), width=128, height=128)
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


def test_load_face_photos_keeps_every_photo_whole(comfy, media):
    """Through an image batch node the landscape photo is centre-cropped to the portrait's shape and its face is
    lost; Load Face Photos keeps both whole, and its mask makes the padding count as outside the photo."""
    g = Graph()
    cropped = face_views(g, image_batch(g, ["mv2id_portrait.png", "mv2id_landscape.png"]), analyzer_node(g),
                         num_views=2)
    g.add("PreviewAny", source=cropped[2])
    with pytest.raises(comfy_server.ComfyError, match=r"no face found in input image\(s\) 1"):
        comfy.run(g.prompt(), timeout=300)

    g = Graph()
    photos = g.add("Mv2IDLoadFacePhotos", folder=PHOTOS, max_size=0)
    g.add("PreviewAny", _id="names", source=photos[2])
    g.add("SaveImage", _id="batch", images=photos[0], filename_prefix="mv2id_lfp")
    g.add("SaveImage", _id="area", images=g.add("MaskToImage", mask=photos[1]), filename_prefix="mv2id_lfp_mask")
    fv = face_views(g, photos[0], analyzer_node(g), num_views=2, width=128, height=128, mask=photos[1])
    g.add("PreviewAny", _id="json", source=fv[2])
    g.add("SaveImage", _id="refs", images=fv[0], filename_prefix="mv2id_lfp_refs")
    g.add("SaveImage", _id="vmask", images=g.add("MaskToImage", mask=fv[1]), filename_prefix="mv2id_lfp_vmask")
    entry = comfy.run(g.prompt(), timeout=300)
    assert comfy.ui_outputs(entry, "names")["text"][0] == "a_portrait.png\nb_landscape.jpg"
    batch = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(comfy.output_files(entry, "batch"))]
    area = [np.asarray(Image.open(p).convert("L")) for p in sorted(comfy.output_files(entry, "area"))]
    assert [b.shape for b in batch] == [(600, 900, 3)] * 2               # the largest width x height
    assert (batch[0][:, :300] == 255).all() and (batch[0][200:, 300:600] == 150).all()   # centred, white around
    assert (area[0][:, 300:600] == 255).all() and (area[0][:, :300] == 0).all()
    assert (area[1][150:450] == 255).all() and (area[1][:150] == 0).all()
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    assert sorted(v["source_index"] for v in rep["views"]) == [0, 1] and rep["faces_found"] == 2
    assert rep["background"] == "white outside the subject mask"
    refs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(comfy.output_files(entry, "refs"))]
    vmask = [np.asarray(Image.open(p).convert("L")) for p in sorted(comfy.output_files(entry, "vmask"))]
    assert any((m == 0).mean() > 0.01 for m in vmask)                     # the crops reach the padding
    for r, m in zip(refs, vmask):                                         # which came out white
        assert (r[m == 0] == 255).all()


def test_load_face_photos_scales_big_photos_down(comfy, media):
    g = Graph()
    photos = g.add("Mv2IDLoadFacePhotos", folder=PHOTOS, max_size=450)
    g.add("SaveImage", _id="batch", images=photos[0], filename_prefix="mv2id_lfp_small")
    entry = comfy.run(g.prompt(), timeout=120)
    sizes = {Image.open(p).size for p in comfy.output_files(entry, "batch")}
    assert sizes == {(450, 450)}              # portrait 300x600 -> 225x450, landscape 900x300 -> 450x150


@pytest.mark.parametrize("folder,msg", [
    ("mv2id_no_photos", "no photos in input/mv2id_no_photos (looked for .png, .jpg"),
    ("mv2id_missing_folder", "folder 'mv2id_missing_folder' is not a folder in ComfyUI's input directory"),
    ("../", "folder '../' is not a folder in ComfyUI's input directory")])
def test_load_face_photos_bad_folders(healthy, media, folder, msg):
    g = Graph()
    g.add("PreviewAny", source=g.add("Mv2IDLoadFacePhotos", folder=folder, max_size=0)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=60)
    # newer hosts refuse a combo value outside the list themselves (naming the value and the valid ones)
    host_check = f'"received_value": "{folder}"' in str(ei.value) and PHOTOS in str(ei.value)
    assert msg in str(ei.value) or host_check, str(ei.value)


def test_image_without_face_is_named_and_server_stays_healthy(healthy, media):
    g = Graph()
    fv = face_views(g, image_batch(g, [media[0], "mv2id_fv_wall.png", media[2]]), analyzer_node(g), num_views=2)
    g.add("PreviewAny", source=fv[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=300)
    msg = str(ei.value)
    assert "Mv2IDFaceViews" in msg and "no face found in input image(s) 1 (0-based index in the batch) of 3" in msg
    g = Graph()
    fv = face_views(g, image_batch(g, [media[0], "mv2id_fv_wall.png", media[2]]), analyzer_node(g), num_views=3,
                    if_no_face="skip")
    g.add("PreviewAny", source=fv[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=300)
    assert "3 views requested but only 2 of 3 image(s) have a usable face (no face in: 1)" in str(ei.value)


def test_empty_batch_is_a_clear_error(healthy, media):
    g = Graph()
    g.add("PreviewAny", source=face_views(g, g.add("Mv2IDTestImage", width=64, height=64, batch=0, bad_pixel="none"), analyzer_node(g), num_views=1)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=60)
    assert "images is an empty IMAGE batch [0, 64, 64, 3]: connect at least one image" in str(ei.value)


def test_masks_that_would_whiten_everything_are_refused(healthy, media):
    """An all-zero subject mask (or an all-one background mask) would turn every reference pure white; a mask
    that misses the face would whiten the face: each is refused, naming the image."""
    def run(mask, meaning):
        g = Graph()
        fv = face_views(g, g.add("LoadImage", image=media[2])[0], analyzer_node(g), num_views=1, mask=mask(g),
                        mask_meaning=meaning)
        g.add("PreviewAny", source=fv[2])
        with pytest.raises(comfy_server.ComfyError) as ei:
            healthy.run(g.prompt(), timeout=120)
        return str(ei.value)
    msg = run(lambda g: g.add("SolidMask", value=0.0, width=192, height=192), "subject")
    assert "the subject mask of image(s) 0 (0-based) marks no subject at all" in msg and "'subject'" in msg
    msg = run(lambda g: g.add("SolidMask", value=1.0, width=192, height=192), "background")
    assert "marks no subject at all" in msg and "'background'" in msg

    def corner(g):
        return g.add("MaskComposite", destination=g.add("SolidMask", value=0.0, width=192, height=192),
                     source=g.add("SolidMask", value=1.0, width=24, height=24), x=0, y=0, operation="add")
    assert "the subject mask hides the face in image(s) 0 (0-based)" in run(corner, "subject")


@pytest.mark.parametrize("node,name,bad,valid", [
    ("views", "mask_meaning", "person", "subject, background"),
    ("views", "if_no_face", "ignore", "error, skip"),
    ("analyzer", "backend", "mtcnn", "dlib, insightface"),
    ("analyzer", "provider", "tpu", "auto, cpu, cuda"),
    ("analyzer", "dlib_detector", "mmod", "hog, cnn")])
def test_unknown_combo_values_list_the_valid_ones(healthy, media, node, name, bad, valid):
    g = Graph()
    an = analyzer_node(g, **({name: bad} if node == "analyzer" else {}))
    fv = face_views(g, g.add("LoadImage", image=media[2])[0], an, num_views=1,
                    **({name: bad} if node == "views" else {}))
    g.add("PreviewAny", source=fv[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    msg = str(ei.value)
    assert bad in msg and all(v in msg for v in valid.split(", ")), msg


def test_insightface_without_models_says_where_they_go(healthy, media):
    g = Graph()
    an = analyzer_node(g, backend="insightface")
    g.add("PreviewAny", source=face_views(g, g.add("LoadImage", image="mv2id_fv_wall.png")[0], an)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=120)
    msg = str(ei.value)
    assert "Mv2IDFaceAnalyzer" in msg
    assert "models/antelopev2" in msg.replace("\\", "/") and "Folders searched" in msg
    assert "switch backend to dlib" in msg


def test_insightface_pack_in_the_models_folder_runs_through_face_views(comfy):
    """A pack dropped into <models>/insightface/models/<pack>/ is offered by the Face Analyzer and runs.

    The pack is the small ONNX models of faces_helpers (real signatures, known outputs): its detector fires on
    bright stride-8 cells, so a white square is the 'face' Face Views must crop."""
    pack = comfy.base_dir / "models" / "insightface" / "models" / "mv2id_test_pack"
    tiny.make_pack(pack, landmark_yaw=-35.0, genderage=False)
    info = comfy.get("/object_info/Mv2IDFaceAnalyzer")["Mv2IDFaceAnalyzer"]
    typ, opts = info["input"]["required"]["insightface_pack"][:2]
    assert "mv2id_test_pack" in (typ if isinstance(typ, list) else opts["options"])   # found on a fresh reload
    Image.fromarray(tiny.cell_image()).save(comfy.input_dir / "mv2id_fv_square.png")
    g = Graph()
    fv = face_views(g, g.add("LoadImage", image="mv2id_fv_square.png")[0],
                    analyzer_node(g, backend="insightface", insightface_pack="mv2id_test_pack"), num_views=1,
                    width=64, height=64, margin=0.0)
    g.add("PreviewAny", _id="json", source=fv[2])
    entry = comfy.run(g.prompt(), timeout=300)
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    (view,) = rep["views"]
    assert rep["analyzer"].startswith("insightface mv2id_test_pack (CPU")
    g_ = (255 - 127.5) / 128                                    # the detector's green input on a white cell
    want = [240 - (tiny.BOX + g_) * 8, 160 - (tiny.BOX + g_) * 8, 240 + (tiny.BOX + g_ / 2) * 8,
            160 + (tiny.BOX + g_ / 2) * 8]
    assert view["bbox"] == pytest.approx([round(v, 1) for v in want], abs=0.051)
    assert view["yaw"] == pytest.approx(-35, abs=0.01) and view["pitch"] == pytest.approx(10, abs=0.01)
