"""Mv2ID Load Face Photos on the real host: every photo mode beside core Load Image on the same files, links
out of input/, a decompression bomb, and a huge photo scaled at load that Face Views' views_json names.

Core Load Image differs between hosts: 0.3.75 reads through Pillow, 0.33.0 through PyAV (ffmpeg). Where a
core gets a file wrong, the pack reads the pixels the file holds (tests/photo_modes.py computes them from
the numbers written) and CORE_DEVIATIONS documents it; everywhere else the pack and core agree within 1.5
levels (ffmpeg's conversions of 8-bit pixels round to within a level, composites on white add half a level;
JPEGs within what JPEG changes, as ffmpeg's decoder differs from libjpeg's).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

import comfy_server
from faces_helpers import analyzer_node
from graphs import Graph
from mv2id_core import photos
from mv2id_core.faces import available_backends
from mv2id_core.video_io import IMAGE_EXTENSIONS
from photo_modes import levels, write_modes
from photos import fit, load_photos

MODES = "mv2id_modes"             # input/mv2id_modes/<stem>/<file> for Load Face Photos
# what each core version reads wrong, by file, with the pack's answer (checked: they do deviate)
CORE_DEVIATIONS = {
    "0.3.75": {
        "mode_I16.png": "16-bit grey clipped to white (Pillow's convert('RGB') of I;16)",
        "mode_I16.tif": "16-bit grey clipped to white",
        "mode_I16B.tif": "16-bit grey clipped to white",
        "mode_I.tif": "'I' divided by 255, not 257: the top of the range turns white (2 levels off)",
        "mode_F.tif": "float 0..1 grey clipped to black",
        "mode_L_transparent.png": "the transparent grey value (tRNS) ignored: no mask, not on white",
        "mode_RGB_transparent.png": "the transparent colour (tRNS) ignored: no mask, not on white",
    },
    "0.33.0": {
        "mode_I.tif": "32-bit integer grey clipped to white (PyAV cannot read it; Pillow fallback)",
        "mode_F.tif": "float 0..1 grey clipped to black",
        "mode_PA.tif": "palette + alpha TIFF decoded to wrong colours by ffmpeg",
        "mode_YCbCr.tif": "YCbCr TIFF converted with another matrix by ffmpeg (up to ~20 levels)",
        "mode_CMYK.tif": "ffmpeg's CMYK conversion rounds differently (2 levels)",
        "exif_2.png": "mirroring EXIF orientations ignored (PyAV applies rotations only)",
        "exif_4.png": "mirroring EXIF orientations ignored",
        "exif_5.png": "mirroring EXIF orientations ignored",
        "exif_7.png": "mirroring EXIF orientations ignored",
    },
}


def _stem(name: str) -> str:
    return name.replace(".", "_")


@pytest.fixture(scope="module")
def modes(comfy):
    src = comfy.input_dir / "mv2id_modes_src"
    cases = {n: c for n, c in write_modes(src).items() if n.endswith(IMAGE_EXTENSIONS)}   # GIF: a video here
    for name in cases:
        folder = comfy.input_dir / MODES / _stem(name)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, folder / name)
        shutil.copy(src / name, comfy.input_dir / f"mv2id_mode_{name}")     # core Load Image lists input/ only
    return src, cases


def _tensors(comfy, entry, name):
    path = next(p for p in comfy.output_files(entry) if p.name == f"{name}.safetensors")
    return {k: v.numpy() for k, v in load_file(str(path)).items()}


def test_load_face_photos_reads_every_mode_and_matches_core_load_image(comfy, modes):
    src, cases = modes
    g = Graph()
    for name in cases:
        s = _stem(name)
        core = g.add("LoadImage", image=f"mv2id_mode_{name}")
        g.add("Mv2IDTestSaveTensors", image=core[0], mask=core[1], filename=f"core_{s}")
        ours = g.add("Mv2IDLoadFacePhotos", folder=f"{MODES}/{s}", max_size=0)
        g.add("Mv2IDTestSaveTensors", image=ours[0], mask=ours[1], filename=f"ours_{s}")
    entry = comfy.run(g.prompt(), timeout=300)
    known = CORE_DEVIATIONS.get(comfy.host.version)
    problems, deviating = [], {}
    for name, case in cases.items():
        s = _stem(name)
        ours, core = _tensors(comfy, entry, f"ours_{s}"), _tensors(comfy, entry, f"core_{s}")
        lib = photos.read_photo(src / name, 0)
        img = ours["image"][0]
        if not np.array_equal(img, lib.rgb.astype(np.float32) / 255.0):      # the node is the library's reader
            problems.append(f"{name}: the node's pixels differ from mv2id_core.photos.read_photo")
        if not np.array_equal(ours["mask"][0], lib.area):
            problems.append(f"{name}: the node's mask is not the photo's area")
        mx, mean = levels(img, case.rgb)
        if mx > case.tol + 1e-3 or (case.mean_tol and mean > case.mean_tol):
            problems.append(f"{name}: {mx:.1f} levels (mean {mean:.2f}) from the pixels written")
        cimg, cmask = core["image"][0], core["mask"][0]
        if cmask.shape == cimg.shape[:2]:                                   # core's MASK is 1 - alpha
            cimg = cimg * (1.0 - cmask[..., None]) + cmask[..., None]
        cmx, cmean = levels(img, cimg) if cimg.shape == img.shape else (255.0, 255.0)
        if cmx > max(case.tol, 1.0) + 0.5 or (case.mean_tol and cmean > case.mean_tol):
            deviating[name] = f"{cmx:.2f}/{cmean:.2f}"
    assert not problems, "\n".join(problems)
    if known is not None:       # a pinned host: core is right everywhere else, and wrong where documented
        assert set(deviating) == set(known), (f"core Load Image of ComfyUI {comfy.host.version} deviates (max/mean "
                                              f"levels) on {deviating}; documented: {sorted(known)}")


def test_a_link_out_of_input_is_refused_and_one_inside_is_read(healthy, modes, tmp_path):
    src, _ = modes
    folder = healthy.input_dir / "mv2id_links"
    folder.mkdir(exist_ok=True)
    shutil.copy(src / "mode_RGB.png", folder / "a_real.png")
    outside = tmp_path / "private.png"
    shutil.copy(src / "mode_L.png", outside)
    for name, target in (("b_inside.png", src / "mode_P.png"), ("c_outside.png", outside)):
        if not (folder / name).is_symlink():
            os.symlink(target, folder / name)
    g = Graph()
    g.add("PreviewAny", source=g.add("Mv2IDLoadFacePhotos", folder="mv2id_links", max_size=0)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=60)
    assert ("input/mv2id_links/c_outside.png is a link to a file outside ComfyUI's input directory; the pack reads "
            "photos only from there: copy the photo into input/mv2id_links/ instead of linking it") in str(ei.value)
    assert str(outside) not in str(ei.value)
    (folder / "c_outside.png").unlink()
    g = Graph()
    g.add("PreviewAny", _id="names", source=g.add("Mv2IDLoadFacePhotos", folder="mv2id_links", max_size=0)[2])
    entry = healthy.run(g.prompt(), timeout=60)
    assert healthy.ui_outputs(entry, "names")["text"][0] == "a_real.png\nb_inside.png"


def test_a_decompression_bomb_is_refused_naming_the_file_and_the_limit(healthy):
    from test_photos import _bomb_png
    folder = healthy.input_dir / "mv2id_bomb"
    folder.mkdir(exist_ok=True)
    _bomb_png(folder / "bomb.png", 20000, 10000)
    g = Graph()
    g.add("PreviewAny", source=g.add("Mv2IDLoadFacePhotos", folder="mv2id_bomb", max_size=4096)[2])
    with pytest.raises(comfy_server.ComfyError) as ei:
        healthy.run(g.prompt(), timeout=60)
    assert ("the photo input/mv2id_bomb/bomb.png (200 megapixels) is larger than the limit of 179 megapixels for "
            "one photo (a guard against decompression bombs, which would fill the memory). Scale it down"
            in str(ei.value)), str(ei.value)


@pytest.mark.skipif("dlib" not in available_backends(), reason="dlib backend not installed")
def test_a_huge_photo_is_scaled_at_load_and_views_json_says_so(comfy):
    tom, _ = load_photos()
    folder = comfy.input_dir / "mv2id_huge"
    folder.mkdir(exist_ok=True)
    big = np.full((3000, 6000, 3), 140, np.uint8)
    big[800:1800, 2500:3500] = fit(tom, 1000)
    Image.fromarray(big).save(folder / "a_huge.jpg", quality=90)
    Image.new("RGB", (300, 200), (90, 90, 90)).save(folder / "b_wall.png")
    default = comfy.object_info()["Mv2IDLoadFacePhotos"]["input"]["required"]["max_size"][1]["default"]
    assert default == photos.MAX_SIDE == 4096
    g = Graph()
    lfp = g.add("Mv2IDLoadFacePhotos", folder="mv2id_huge", max_size=default)
    g.add("PreviewAny", _id="photos", source=lfp[3])
    fv = g.add("Mv2IDFaceViews", images=lfp[0], analyzer=analyzer_node(g), num_views=1, width=128, height=128,
               margin=1.0, upright=True, if_no_face="skip", pitch_weight=0.5, mask=lfp[1], mask_meaning="subject",
               photos_json=lfp[3])
    g.add("PreviewAny", _id="json", source=fv[2])
    entry = comfy.run(g.prompt(), timeout=600)
    records = json.loads(comfy.ui_outputs(entry, "photos")["text"][0])
    assert [r["file"] for r in records] == ["a_huge.jpg", "b_wall.png"]
    assert records[0]["size"] == [4096, 2048] and records[0]["scaled_from"] == [6000, 3000]
    assert records[1]["size"] == [300, 200] and "scaled_from" not in records[1]
    rep = json.loads(comfy.ui_outputs(entry, "json")["text"][0])
    assert [v["file"] for v in rep["views"]] == ["a_huge.jpg"] and rep["views"][0]["scaled_from"] == [6000, 3000]
    assert rep["scaled"] == ["a_huge.jpg: 6000x3000 -> 4096x2048"] and rep["no_face_files"] == ["b_wall.png"]
    assert "input/mv2id_huge/a_huge.jpg: scaled from 6000x3000 to 4096x2048" in comfy.log_path.read_text()
