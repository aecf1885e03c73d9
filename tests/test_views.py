"""View selection and cropping: pure selection logic, then real photos with the dlib backend."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mv2id_core import views as V
from mv2id_core.errors import InputError, NoFaceError
from mv2id_core.faces import find_face
from mv2id_core.faces.base import Face
from photos import fit, load_photos, rot, t1_face


# ----------------------------------------------------------------------------- selection (pure)
def test_select_views_picks_extremes_and_middle_ordered_by_yaw():
    yaws = [10, -60, 35, 0, 60, -25, 58]
    pick = V.select_views(yaws, [0] * 7, [1] * 7, 3)
    assert [yaws[i] for i in pick] == [-60, 0, 60]
    pick5 = V.select_views(yaws, [0] * 7, [1] * 7, 5)
    assert [yaws[i] for i in pick5] == sorted(yaws[i] for i in pick5)
    assert yaws[pick5[0]] == -60 and yaws[pick5[-1]] == 60


def test_select_views_prefers_quality_near_an_extreme_and_ignores_poor_faces():
    yaws = [-60, -58, 0, 59, 90]
    q = [0.2, 0.9, 0.9, 0.9, 0.05]   # -60 is blurry; 90 is far below the quality floor
    pick = V.select_views(yaws, [0] * 5, q, 3)
    assert [yaws[i] for i in pick] == [-58, 0, 59]


def test_select_views_uses_pitch_when_yaw_is_flat():
    yaws = [0, 1, -1, 0]
    pitches = [0, 30, -30, 2]
    pick = V.select_views(yaws, pitches, [1] * 4, 3)
    assert {pitches[i] for i in pick} == {30, -30, 0} or {pitches[i] for i in pick} == {30, -30, 2}
    assert V.select_views(yaws, pitches, [1] * 4, 2, pitch_weight=0.0) != []


def test_select_one_view_is_the_most_frontal():
    assert V.select_views([40, -5, 20], [0, 3, 0], [1, 1, 1], 1) == [1]


def test_select_too_few_faces_says_how_many():
    with pytest.raises(NoFaceError, match="3 views requested but only 2"):
        V.select_views([1, 2], [0, 0], [1, 1], 3)


def _face(box, kps=None, yaw=0.0):
    x1, y1, x2, y2 = box
    if kps is None:
        w = x2 - x1
        kps = [(x1 + 0.3 * w, y1 + 0.4 * w), (x1 + 0.7 * w, y1 + 0.4 * w), (x1 + 0.5 * w, y1 + 0.6 * w),
               (x1 + 0.35 * w, y1 + 0.8 * w), (x1 + 0.65 * w, y1 + 0.8 * w)]
    return Face(bbox=np.array(box, np.float32), kps=np.array(kps, np.float32), det_score=1.0, yaw=yaw)


def test_crop_view_geometry_and_white_background():
    img = np.zeros((200, 300, 3), np.uint8)
    img[80:120, 130:170] = 200                                   # the "face"
    face = _face((130, 80, 170, 120))
    out, valid = V.crop_view(img, face, size=(64, 96), margin=1.0)
    assert out.shape == (96, 64, 3) and valid.shape == (96, 64)
    # the face is (1 + 2 * margin) = 3 face heights tall in the crop: about 32 px of 96, centred horizontally
    rows = np.nonzero(out[:, 32, 0] > 100)[0]
    assert 28 <= rows.size <= 36
    cols = np.nonzero(out[int(rows.mean()), :, 0] > 100)[0]
    assert abs(cols.mean() - 31.5) < 1.5
    # a subject mask turns the rest white
    m = np.zeros((200, 300), np.float32)
    m[80:120, 130:170] = 1
    out2, mk = V.crop_view(img, face, size=(64, 96), margin=1.0, subject_mask=m)
    assert out2[2, 2].tolist() == [255, 255, 255] and mk[2, 2] == 0
    assert out2[int(rows.mean()), 32, 0] == 200 and mk[int(rows.mean()), 32] > 0.99
    # a window past the border is filled white and marked invalid
    edge = _face((0, 0, 40, 40))
    out3, valid3 = V.crop_view(img, edge, size=(64, 64), margin=1.0)
    assert valid3[0, 0] == 0 and out3[0, 0].tolist() == [255, 255, 255] and valid3[40, 40] == 1


def test_crop_view_removes_roll():
    # eyes on a line tilted by 20 degrees clockwise; after the crop they must be level
    img = np.full((200, 200, 3), 255, np.uint8)
    c, a = np.array([100.0, 100.0]), np.radians(20)
    d = np.array([np.cos(a), np.sin(a)]) * 20
    le, re_ = c - d, c + d
    for p in (le, re_):
        img[int(p[1]) - 3:int(p[1]) + 4, int(p[0]) - 3:int(p[0]) + 4] = 0
    face = _face((70, 70, 130, 130), kps=[le, re_, c + (0, 15), c + (-12, 30), c + (12, 30)])
    assert V.eye_roll(face) == pytest.approx(20, abs=0.01)
    out, _ = V.crop_view(img, face, size=(128, 128), margin=0.5)
    ys, xs = np.nonzero(out[..., 0] < 80)
    left, right = ys[xs < 64].mean(), ys[xs >= 64].mean()
    assert abs(left - right) < 1.0
    out_tilted, _ = V.crop_view(img, face, size=(128, 128), margin=0.5, upright=False)
    ys, xs = np.nonzero(out_tilted[..., 0] < 80)
    assert ys[xs >= 64].mean() - ys[xs < 64].mean() > 5


def test_laplacian_variance_separates_sharp_from_blurred():
    rng = np.random.default_rng(0)
    sharp = rng.uniform(0, 255, (64, 64))
    blurred = (sharp + np.roll(sharp, 1, 0) + np.roll(sharp, 1, 1) + np.roll(sharp, (1, 1), (0, 1))) / 4
    assert V.laplacian_variance(sharp) > 4 * V.laplacian_variance(blurred)


def test_crop_view_antialiases_when_shrinking():
    """A 1-px checkerboard shrunk 6x must come out flat grey (aliasing would leave a pattern)."""
    img = ((np.indices((600, 600)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    face = _face((200, 200, 400, 400))
    out, _ = V.crop_view(img, face, size=(100, 100), margin=0.5)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 4


def test_subject_masks_are_checked_resized_and_read_by_meaning():
    imgs = [np.zeros((40, 60, 3), np.uint8), np.zeros((20, 30, 3), np.uint8)]
    m = np.zeros((10, 15), np.float32)
    m[2:8, 3:12] = 1
    one = V.subject_masks_for(imgs, [m])                       # one mask for all, resized to each image
    assert [x.shape for x in one] == [(40, 60), (20, 30)] and one[0].max() == 1
    inv = V.subject_masks_for(imgs, [1 - m, 1 - m], "background")
    np.testing.assert_allclose(inv[0], one[0], atol=1e-6)
    with pytest.raises(InputError, match="3 masks for 2 images"):
        V.subject_masks_for(imgs, [m] * 3)
    with pytest.raises(InputError, match="mask 1 contains NaN"):
        V.subject_masks_for(imgs, [m, np.full((10, 15), np.nan, np.float32)])
    with pytest.raises(InputError, match=r"image\(s\) 0, 1 \(0-based\) marks no subject at all.*'subject'"):
        V.subject_masks_for(imgs, [np.zeros((10, 15), np.float32)])
    with pytest.raises(InputError, match="marks no subject at all.*now 'background'"):
        V.subject_masks_for(imgs, [np.ones((10, 15), np.float32)], "background")
    with pytest.raises(InputError, match="mask_meaning must be one of subject, background, got 'person'"):
        V.subject_masks_for(imgs, [m], "person")
    assert V.subject_masks_for(imgs, None) is None


def test_face_views_rejects_bad_settings_before_any_analysis():
    class Never(V.FaceAnalyzer):
        def analyze(self, image, embed=True):
            raise AssertionError("must not be called")
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="if_no_face must be one of error, skip, got 'ignore'"):
        V.face_views([img], Never(), num_views=1, if_no_face="ignore")
    with pytest.raises(InputError, match="no images given"):
        V.face_views([], Never(), num_views=1)
    with pytest.raises(InputError, match="mask_meaning must be one of"):
        V.face_views([img], Never(), num_views=1, subject_masks=[np.ones((32, 32))], mask_meaning="person")


def test_preview_note_is_written_under_the_labels():
    crops = np.full((2, 96, 96, 3), 200, np.uint8)
    plain = V.preview_strip(crops, [{}, {}])
    noted = V.preview_strip(crops, [{}, {}], note="background kept (no mask): the method expects references on "
                                                  "white; connect a subject mask")
    assert noted.shape[0] > plain.shape[0] and noted.shape[1] == plain.shape[1] == 192
    extra = noted[plain.shape[0]:]
    assert (np.abs(extra.astype(int) - [255, 200, 80]).sum(-1) < 60).mean() > 0.005      # the note's colour


def test_report_names_each_views_file_and_the_photos_scaled_at_load():
    cands = [V.ViewCandidate(0, _face((10, 10, 40, 40))), V.ViewCandidate(1, None),
             V.ViewCandidate(2, _face((5, 5, 30, 30)))]
    fv = V.FaceViews(np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 8, 8), np.float32),
                     [cands[2].record(), cands[0].record()], cands)
    sources = V.read_sources(json.dumps([
        {"file": "a.png", "size": [64, 64], "mode": "RGB", "alpha": False},
        {"file": "b.jpg", "size": [32, 32], "mode": "RGB", "alpha": False},
        {"file": "huge.jpg", "size": [4096, 3072], "scaled_from": [12000, 9000], "mode": "RGB", "alpha": False}]), 3)
    rep = fv.report(sources)
    assert [v["file"] for v in rep["views"]] == ["huge.jpg", "a.png"]
    assert rep["views"][0]["scaled_from"] == [12000, 9000] and "scaled_from" not in rep["views"][1]
    assert rep["scaled"] == ["huge.jpg: 12000x9000 -> 4096x3072"] and rep["no_face_files"] == ["b.jpg"]
    assert "file" not in fv.report()["views"][0] and "scaled" not in fv.report()


def test_inert_face_views_settings_are_named():
    assert V.inert_settings(3, True) == {}
    assert set(V.inert_settings(1, False)) == {"pitch_weight", "mask_meaning"}
    assert V.inert_settings(2, False) == {"mask_meaning": "no effect: no mask is connected"}


@pytest.mark.parametrize("text,n,expected", [
    ("not json", 1, "photos_json must be the photos_json output of Mv2ID Load Face Photos"),
    ('[{"size": [1, 1]}]', 1, "photos_json must be the photos_json output"),
    ('[{"file": "a.png", "size": [1, 1]}]', 2, "photos_json describes 1 photo(s) but images has 2")])
def test_photo_records_that_do_not_fit_the_batch_are_refused(text, n, expected):
    with pytest.raises(InputError) as ei:
        V.read_sources(text, n)
    assert expected in str(ei.value)


# ----------------------------------------------------------------------------- real photos (dlib)
@pytest.fixture(scope="module")
def photos():
    return load_photos()


def test_face_views_picks_the_yaw_extremes_of_a_known_set(dlib_an, photos):
    """A strongly turned face (face 4 of t1.jpg), its mirror image (the same face turned the other way by
    construction), a less turned face and its mirror, and a frontal face: the extremes must be the turned face and
    its mirror, the middle view the frontal face."""
    _, t1 = photos
    turned, half, frontal = (fit(t1_face(t1, i), 192) for i in (4, 3, 0))
    images = [half, turned[:, ::-1].copy(), frontal, turned, half[:, ::-1].copy()]
    r = V.face_views(images, dlib_an, num_views=3, size=(128, 160))
    src = [v["source_index"] for v in r.views]
    assert src == [3, 2, 1], r.views
    yaws = [v["yaw"] for v in r.views]
    assert yaws[0] < -25 and yaws[2] > 25 and abs(yaws[1]) < 12
    assert yaws[0] == pytest.approx(-yaws[2], abs=6)            # mirror images: opposite yaw
    assert r.images.shape == (3, 160, 128, 3) and r.images.dtype == np.uint8
    assert r.masks.shape == (3, 160, 128)
    assert all("identity_similarity" in v for v in r.views)
    rep = r.report()
    assert rep["faces_found"] == 5 and rep["no_face"] == []
    json.dumps(rep)


def test_face_views_crop_is_upright_and_centred(dlib_an, photos):
    tom, _ = photos
    big = fit(tom, 224)
    canvas = np.full((480, 480, 3), 90, np.uint8)
    canvas[100:324, 150:374] = big
    tilted = rot(canvas, 25)
    r = V.face_views([tilted], dlib_an, num_views=1, size=(256, 256), margin=0.8)
    again, _ = find_face(dlib_an, r.images[0], embed=False)
    assert again is not None
    assert abs(V.eye_roll(again)) < 5                            # roll removed
    cx = (again.bbox[0] + again.bbox[2]) / 2
    assert abs(cx - 128) < 20
    assert abs(r.views[0]["roll"]) > 15                           # the record keeps the source's roll


def test_face_views_names_the_image_without_a_face(dlib_an, photos):
    tom, _ = photos
    wall = np.full((128, 128, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match=r"no face found in input image\(s\) 1 \(0-based"):
        V.face_views([fit(tom), wall, fit(tom[:, ::-1])], dlib_an, num_views=2)
    r = V.face_views([fit(tom), wall, fit(tom[:, ::-1])], dlib_an, num_views=2, if_no_face="skip")
    assert [v["source_index"] for v in r.views] == [2, 0] and r.report()["no_face"] == [1]
    with pytest.raises(NoFaceError, match=r"3 views requested but only 2 of 3 image\(s\) have a usable face "
                                             r"\(no face in: 1\)"):
        V.face_views([fit(tom), wall, fit(tom[:, ::-1])], dlib_an, num_views=3, if_no_face="skip")


def test_face_views_subject_mask_whitens_background(dlib_an, photos):
    tom, _ = photos
    img = fit(tom, 192)
    mask = np.zeros(img.shape[:2], np.float32)
    mask[20:172, 30:162] = 1
    r = V.face_views([img], dlib_an, num_views=1, size=(128, 128), subject_masks=[mask])
    out, mk = r.images[0], r.masks[0]
    assert np.all(out[mk == 0] == 255)
    assert r.report()["background"] == V.BACKGROUND_WHITE
    assert mk.max() > 0.99 and 0.05 < mk.mean() < 0.9
    assert (out[mk > 0.99] != 255).any(axis=-1).mean() > 0.9         # the person is kept


def test_a_small_photo_padded_to_a_big_canvas_is_searched_at_its_own_scale(dlib_an, photos):
    """Load Face Photos pads a small photo to the largest one's canvas; the detector sees the whole canvas
    at det_size, where the small photo's face shrinks below what it finds. With the photo's area as mask
    the face is searched in the photo's box, and found where it is in the canvas."""
    tom, _ = photos
    canvas = np.full((3000, 4000, 3), 255, np.uint8)
    small = np.full((400, 300, 3), 150, np.uint8)
    small[60:220, 70:230] = fit(tom, 160)
    canvas[1300:1700, 1850:2150] = small
    area = np.zeros(canvas.shape[:2], np.float32)
    area[1300:1700, 1850:2150] = 1
    assert V.subject_box(area) == (1820, 1260, 2180, 1740) and V.subject_box(np.ones((40, 40))) is None
    with pytest.raises(NoFaceError):
        V.face_views([canvas], dlib_an, num_views=1, size=(96, 96))
    r = V.face_views([canvas], dlib_an, num_views=1, size=(96, 96), subject_masks=[area])
    x1, y1, x2, y2 = r.views[0]["bbox"]
    assert 1850 + 60 < (x1 + x2) / 2 < 1850 + 240 and 1300 + 50 < (y1 + y2) / 2 < 1300 + 230   # canvas pixels
    direct = V.face_views([small], dlib_an, num_views=1, size=(96, 96))
    assert abs(r.views[0]["yaw"] - direct.views[0]["yaw"]) < 1.0


def test_preview_strip_has_a_label_row(dlib_an, photos):
    tom, _ = photos
    r = V.face_views([fit(tom), fit(tom[:, ::-1])], dlib_an, num_views=2, size=(160, 160))
    p = V.preview_strip(r.images, r.views)
    assert p.shape[1] == 320 and p.shape[0] > 160
    label = p[160:]
    assert (label > 200).mean() > 0.005                          # some text was written


def test_default_embed_face_takes_the_best_overlapping_face():
    from mv2id_core.faces.base import FaceAnalyzer

    class Two(FaceAnalyzer):
        def analyze(self, image, embed=True):
            a, b = _face((0, 0, 40, 40)), _face((100, 100, 160, 160))
            if embed:
                a.embedding, b.embedding = np.array([1.0, 0, 0], np.float32), np.array([0, 1.0, 0], np.float32)
            return [b, a]

    an = Two()
    img = np.zeros((200, 200, 3), np.uint8)
    assert an.embed_face(img, _face((2, 1, 41, 39))).tolist() == [1.0, 0, 0]
    assert an.embed_face(img, _face((110, 95, 150, 165))).tolist() == [0, 1.0, 0]
    assert an.embed_face(img, _face((60, 60, 80, 80))) is None            # overlaps neither


def test_face_views_without_mask_says_the_background_is_kept(dlib_an, photos):
    tom, _ = photos
    r = V.face_views([fit(tom)], dlib_an, num_views=1, size=(96, 96))
    assert r.report()["background"] == V.BACKGROUND_KEPT and "expects references on white" in V.BACKGROUND_KEPT
    assert r.report()["inert"] == V.inert_settings(1, False)         # pitch_weight and mask_meaning unused


def test_face_views_names_the_image_whose_mask_hides_the_face(dlib_an, photos):
    tom, _ = photos
    img = fit(tom, 192)
    corner = np.zeros(img.shape[:2], np.float32)
    corner[:30, :30] = 1                                          # a subject, but not where the face is
    with pytest.raises(InputError, match=r"hides the face in image\(s\) 1 \(0-based\)"):
        V.face_views([img, img[:, ::-1].copy()], dlib_an, num_views=2, subject_masks=[np.ones_like(corner), corner])
    with pytest.raises(InputError, match=r"hides the face in image\(s\) 0 \(0-based\).*now 'background'"):
        V.face_views([img], dlib_an, num_views=1, subject_masks=[1 - corner], mask_meaning="background")
