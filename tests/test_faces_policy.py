"""The one face policy (faces.base.find_face) is OpenS2V-Eval's FaceSim rule, and the one image converter.

OpenS2V-Eval (eval/get_facesim.py): get_face_keypoints takes sorted(faces, key=box area)[-1] (the
largest box, the LAST of equal areas in detection order); when no face is found, pad_np_bgr_image
pads int(0.25 * H) rows top and bottom and int(0.25 * W) columns left and right with (128, 128, 128)
and detects once more; the keypoints are then moved back by (left, top) and the embedding is the one
computed on the padded image.
"""
from __future__ import annotations

import numpy as np
import pytest

from faces_helpers import CodeAnalyzer, coded
from mv2id_core.errors import InputError
from mv2id_core.faces.base import Face, as_image_list, as_rgb_uint8, find_face, largest_face, pad_for_retry

TABLE = {1: [1, 0, 0], 2: [0, 1, 0], 3: [0, 0, 1]}


def _box(x1, y1, x2, y2, tag=0.0):
    return Face(bbox=np.array([x1, y1, x2, y2], np.float32), kps=np.zeros((5, 2), np.float32), det_score=tag)


def test_largest_face_follows_opens2vs_sort_and_tie_rule():
    faces = [_box(0, 0, 10, 10, 0.9), _box(0, 0, 20, 5, 0.8), _box(5, 5, 15, 15, 0.7), _box(0, 0, 3, 3, 0.6)]
    # areas 100, 100, 100, 9: OpenS2V's stable ascending sort puts the last 100 at the end
    opens2v = sorted(faces, key=lambda x: (x.bbox[2] - x.bbox[0]) * (x.bbox[3] - x.bbox[1]))[-1]
    assert largest_face(faces) is opens2v is faces[2]
    assert largest_face([_box(0, 0, 30, 30, 0.1), _box(0, 0, 10, 10, 0.99)]).det_score == pytest.approx(0.1)
    assert largest_face([]) is None


def test_pad_for_retry_is_opens2vs_grey_border():
    im = np.full((41, 23, 3), 7, np.uint8)
    out, (left, top) = pad_for_retry(im)
    assert (left, top) == (int(23 * 0.25), int(41 * 0.25)) == (5, 10)
    assert out.shape == (41 + 20, 23 + 10, 3)
    assert (out[top:top + 41, left:left + 23] == 7).all()
    border = out.copy()
    border[top:top + 41, left:left + 23] = 128
    assert (border == 128).all()


class BorderShy(CodeAnalyzer):
    """Finds the coded face only when the image has a grey (128) top-left pixel, i.e. after the padding
    retry; the code is read at the centre of the padded image; the face box is the central half."""

    def analyze(self, image, embed=True):
        if tuple(image[0, 0]) != (128, 128, 128):
            self.calls += 1
            return []
        h, w = image.shape[:2]
        faces = super().analyze(np.ascontiguousarray(image[h // 2 - 4:, w // 2 - 4:]), embed)
        for f in faces:
            f.bbox = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4], np.float32)
            f.kps = np.full((5, 2), [w / 2, h / 2], np.float32)
        return faces


def test_find_face_retries_once_and_maps_back_into_the_image():
    an = BorderShy(TABLE)
    frame = np.zeros((8, 12, 3), np.uint8)
    frame[:] = (1, 128, 128)
    face, padded = find_face(an, frame)
    assert padded and an.calls == 2                                   # one pass, one retry
    # padded image 12 x 18, (left, top) = (3, 2); box = central half of it, moved back by (3, 2)
    np.testing.assert_allclose(face.bbox, [18 / 4 - 3, 12 / 4 - 2, 3 * 18 / 4 - 3, 3 * 12 / 4 - 2])
    np.testing.assert_allclose(face.kps[0], [9 - 3, 6 - 2])
    assert face.embedding is not None
    an.calls = 0
    assert find_face(an, frame, retry=False) == (None, False) and an.calls == 1
    an.retry = False                                                   # the analyzer's own setting
    assert find_face(an, frame) == (None, False)
    assert find_face(an, frame, retry=True)[1] is True
    nothing = np.zeros((8, 12, 3), np.uint8)
    an.calls = 0
    assert find_face(BorderShy(TABLE), nothing) == (None, False)


def test_find_face_takes_the_largest_of_several():
    an = CodeAnalyzer(TABLE)
    img = coded(0, faces=[(1, 0, 0, 3), (2, 10, 0, 5), (3, -10, 0, 5)])   # sides 3, 5, 5: the last 5 wins
    face, padded = find_face(an, img)
    assert not padded and face.yaw == -10


def test_one_converter_for_uint8_float_torch_and_batches():
    import torch
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    f = img.astype(np.float32) / 255.0
    assert np.array_equal(as_rgb_uint8(f), img)                       # floats round to the nearest level
    assert np.array_equal(as_rgb_uint8(torch.from_numpy(f)), img)
    alpha = np.array([[0, 255, 255], [51, 255, 0]], np.uint8)[..., None]
    rgba = np.concatenate([img, alpha], -1)
    on_white = np.round(img * (alpha / 255.0) + 255 * (1 - alpha / 255.0)).astype(np.uint8)
    assert np.array_equal(as_rgb_uint8(rgba), on_white)               # composited on white, as photos are
    assert (on_white[0, 0] == 255).all() and np.array_equal(on_white[0, 1], img[0, 1])
    assert np.array_equal(as_rgb_uint8(np.concatenate([f, alpha / 255.0], -1)), on_white)
    assert as_rgb_uint8(img[..., 0]).shape == (2, 3, 3)
    batch = torch.from_numpy(np.stack([f, f]))
    out = as_image_list(batch, "frames")
    assert len(out) == 2 and np.array_equal(out[1], img)
    with pytest.raises(InputError, match=r"frames\[1\] contains NaN"):
        as_image_list(np.stack([f, np.full_like(f, np.nan)]), "frames")
    with pytest.raises(InputError, match="got one image"):
        as_image_list(img, "frames")
    with pytest.raises(InputError, match=r"reference must be one RGB image.*\[4, 4, 5\]"):
        as_rgb_uint8(np.zeros((4, 4, 5)), "reference")
    with pytest.raises(InputError, match="load files first"):
        as_rgb_uint8("photo.png")
