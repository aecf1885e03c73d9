"""The one photo reader (mv2id_core.photos): every Pillow mode, EXIF orientations, transparency on white,
bounded memory (decompression bombs refused, huge photos scaled at load, JPEGs while decoding), and the
readers built on it (mv2id-eval's references, the face converter). Expected pixels come from the numbers
written (tests/photo_modes.py), never from the code under test."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mv2id_core import photos
from mv2id_core.errors import MediaError
from mv2id_core.faces.base import as_rgb_uint8
from mv2id_core.video_io import load_reference
from photo_modes import ORIENT, levels, source_rgb, write_modes


@pytest.fixture(scope="module")
def modes(tmp_path_factory):
    d = tmp_path_factory.mktemp("modes")
    return d, write_modes(d)


def test_every_mode_reads_as_the_pixels_written(modes):
    d, cases = modes
    assert {c.mode for c in cases.values()} >= {"1", "L", "LA", "P", "PA", "I;16", "I;16B", "I", "F", "RGB", "RGBA",
                                                "CMYK", "YCbCr"}
    bad = []
    for name, case in cases.items():
        p = photos.read_photo(d / name)
        mx, mean = levels(p.rgb, case.rgb)
        if (p.mode != case.mode or p.rgb.dtype != np.uint8 or p.rgb.shape != case.rgb.shape or mx > case.tol
                or (case.mean_tol and mean > case.mean_tol) or (p.alpha is None) != (case.alpha is None)
                or (case.alpha is not None and levels(p.alpha, case.alpha)[0] > 0.5)):
            bad.append(f"{name}: mode {p.mode} (expected {case.mode}), max {mx:.2f} mean {mean:.2f} levels")
    assert not bad, "\n".join(bad)


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white(modes):
    """The issue's case: a mid-grey 16-bit PNG read as 0.5, where convert('RGB') clips it to white."""
    d, _ = modes
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(d / "grey16.png")
    p = photos.read_photo(d / "grey16.png")
    assert p.mode == "I;16" and (p.rgb == 128).all()                         # 32768 / 65535 = 0.50001
    with Image.open(d / "grey16.png") as im:
        assert np.asarray(im.convert("RGB")).mean() > 250                      # what a plain convert gives


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_a_viewer_shows_it(modes, orientation):
    d, cases = modes
    p = photos.read_photo(d / f"exif_{orientation}.png")
    assert np.array_equal(p.rgb, ORIENT[orientation](source_rgb()))
    assert p.exif_orientation == orientation and p.oriented and not p.scaled
    assert p.original_size == p.size
    unturned = photos.read_photo(d / f"exif_{orientation}.png", orient=False)
    assert np.array_equal(unturned.rgb, source_rgb()) and not unturned.oriented


def test_transparency_is_composited_on_white_or_kept_on_request(modes):
    d, cases = modes
    p = photos.read_photo(d / "mode_RGBA.png")
    assert np.array_equal(p.rgb[:, 0], np.full((p.rgb.shape[0], 3), 255, np.uint8))   # alpha 0 -> white
    assert np.array_equal(p.area, p.alpha) and p.record()["alpha"] is True
    straight = photos.read_photo(d / "mode_RGBA.png", on_white=False)
    assert np.array_equal(straight.rgb, source_rgb())                            # the colour under the alpha
    opaque = photos.read_photo(d / "mode_RGB.png")
    assert opaque.alpha is None and (opaque.area == 1).all()


def test_composite_on_white_is_one_rule_for_uint8_and_float():
    import torch
    rgb = np.array([[[0, 100, 255], [10, 20, 30]]], np.uint8)
    a = np.array([[0.0, 0.5]], np.float32)
    out = photos.composite_on_white(rgb, a)
    assert out.tolist() == [[[255, 255, 255], [133, 138, 143]]]
    f = photos.composite_on_white(torch.from_numpy(rgb / 255.0), torch.from_numpy(a)[..., None].double())
    assert np.allclose(f.numpy() * 255, [[[255, 255, 255], [132.5, 137.5, 142.5]]])
    rgba = np.dstack([rgb, (a * 255).astype(np.uint8)])
    assert as_rgb_uint8(rgba)[0, 0].tolist() == [255, 255, 255]                  # the face converter too


def test_animated_file_reads_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 12), c) for c in ((200, 0, 0), (0, 200, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    p = photos.read_photo(tmp_path / "anim.gif")
    assert p.size == (16, 12) and abs(int(p.rgb[0, 0, 0]) - 200) <= 2 and p.rgb[0, 0, 1] < 5


def test_huge_photo_is_scaled_to_the_default_maximum(tmp_path):
    Image.new("L", (6000, 1500), 90).save(tmp_path / "wide.png")
    p = photos.read_photo(tmp_path / "wide.png")
    assert photos.MAX_SIDE == 4096 and p.size == (4096, 1024) and p.original_size == (6000, 1500)
    assert p.scaled and p.record()["scaled_from"] == [6000, 1500] and (p.rgb == 90).all()
    assert "scaled from 6000x1500 to 4096x1024" in p.notes[0]
    assert photos.read_photo(tmp_path / "wide.png", max_side=0).size == (6000, 1500)      # 0: never


def test_big_jpeg_is_reduced_while_decoding(tmp_path, monkeypatch):
    """A JPEG above the limit is decoded at a fraction of its size (draft mode), then resized exactly."""
    from PIL import JpegImagePlugin
    yy, xx = np.mgrid[0:3000, 0:4000]
    img = np.stack([(xx // 16) % 256, (yy // 16) % 256, ((xx + yy) // 32) % 256], -1).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "big.jpg", quality=92)
    calls = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: calls.append((mode, size)) or real(self, mode, size))
    p = photos.read_photo(tmp_path / "big.jpg", max_side=900)
    assert calls == [("RGB", (900, 675))] and p.size == (900, 675) and p.original_size == (4000, 3000)
    reference = np.asarray(Image.fromarray(img).resize((900, 675), Image.LANCZOS))
    assert levels(p.rgb, reference)[1] < 3.0                                       # the same picture


def _bomb_png(path, w, h):
    """A real 1-bit PNG of w x h zero pixels: a few kB on disk, w*h bytes once Pillow decodes it."""
    row = b"\0" + bytes((w + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_naming_the_file_and_the_limit(tmp_path, monkeypatch):
    _bomb_png(tmp_path / "bomb.png", 20000, 10000)
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(MediaError) as ei:
        photos.read_photo(tmp_path / "bomb.png")
    assert ("the photo bomb.png (200 megapixels) is larger than the limit of 179 megapixels for one photo"
            in str(ei.value))
    # the pack's own limit holds when another package raised or removed Pillow's
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(MediaError) as ei:
        photos.read_photo(tmp_path / "bomb.png", name="input/faces/bomb.png")
    assert ("the photo input/faces/bomb.png is 20000x10000 (200 megapixels), larger than the limit of 179 "
            "megapixels for one photo") in str(ei.value)


@pytest.mark.parametrize("kind,expected", [("text", "cannot read the photo"), ("missing", "photo not found")])
def test_unreadable_files_name_the_file(tmp_path, kind, expected):
    path = tmp_path / f"{kind}.jpg"
    if kind == "text":
        path.write_text("not a photo")
    with pytest.raises(MediaError) as ei:
        photos.read_photo(path)
    assert expected in str(ei.value) and f"{kind}.jpg" in str(ei.value)


def test_a_cut_short_file_is_read_as_far_as_it_goes_with_a_note(tmp_path):
    """As core Load Image (many cameras and sites write JPEGs with a broken end), but never silently."""
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    whole, cut = photos.read_photo(tmp_path / "whole.jpg"), photos.read_photo(tmp_path / "cut.jpg")
    assert not whole.damaged and whole.notes == [] and "notes" not in whole.record()
    assert "truncated" in cut.damaged and (cut.rgb[-40:] == 128).all()             # the missing part is grey
    assert np.array_equal(cut.rgb[:40], whole.rgb[:40])
    assert cut.record()["notes"][0].startswith("cut.jpg is damaged or cut short")
    from PIL import ImageFile
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False                                 # Pillow's setting restored


def test_eval_references_are_read_as_opens2v_reads_them_with_notes(modes):
    d, cases = modes
    rgb, notes = load_reference(d / "mode_RGBA.png")
    assert np.array_equal(rgb, source_rgb()) and "not composited (as in OpenS2V-Eval)" in notes[0]
    rgb, notes = load_reference(d / "exif_6.png")
    assert np.array_equal(rgb, source_rgb()) and "EXIF orientation (6) is not applied" in notes[0]
    rgb, notes = load_reference(d / "mode_I16.png")                                # not clipped to white
    assert np.array_equal(rgb, cases["mode_I16.png"].rgb) and "I;16 grey read as 8-bit grey" in notes[0]
    rgb, notes = load_reference(d / "mode_CMYK.tif")
    assert np.array_equal(rgb, cases["mode_CMYK.tif"].rgb) and notes == []
