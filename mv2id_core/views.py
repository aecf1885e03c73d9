"""Multi-view references: pick the views that spread widest over head pose, crop them cleanly.

The method wants a few references of one face seen from clearly different angles (e.g. left
profile, frontal, right profile), each a head-and-shoulders crop, upright, on a white
background. From a set of photos or the frames of a clip:

1. analyse every image: the face ``faces.find_face`` picks (the pack's one face policy: the largest,
   one grey-padding retry; within the subject's box when a mask shows one), its pose and a quality score
   (face size, detection score, sharpness);
2. select_views: farthest-point sampling in (yaw, pitch) among the good-quality faces, starting
   from the two yaw extremes, then ordered by yaw (left-most first);
3. crop_view: rotate about the face so the eyes are level (roll removed), cut a head-and-shoulders
   window around it (`margin` face sizes on each side), replace the background by white where a
   subject mask is given, fit to the target size (one kornia warp; antialiased when shrinking).

Without a subject mask the crops keep the photos' own background; the method expects references
on white (the report and the preview say so).

Images are RGB uint8 [H, W, 3] numpy arrays here; the node converts from ComfyUI's IMAGE.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, NoFaceError, check_choice
from .faces.base import Face, FaceAnalyzer, cosine, find_face

IF_NO_FACE = ("error", "skip")
MASK_MEANINGS = ("subject", "background")
# a chosen view whose subject mask covers less than this share of its face box has its face whitened
MIN_FACE_COVER = 0.25
BACKGROUND_KEPT = ("kept: no subject mask was given, so the crops keep the photos' background; the method expects "
                   "references on white: give a subject mask (e.g. from a background-removal model) to whiten it")
BACKGROUND_WHITE = "white outside the subject mask"

# faces are searched in the subject's box grown by this share of its size per side, when that box covers
# at most SUBJECT_BOX_MAX of the image (analyze_candidates)
SUBJECT_BOX_PAD = 0.1
SUBJECT_BOX_MAX = 0.8
# quality: faces this many pixels wide (or more) count as full size
FULL_FACE_SIZE = 112.0
# Laplacian variance of a face crop resized to 112 px at which sharpness counts as 0.5
SHARPNESS_HALF = 60.0


@dataclass
class ViewCandidate:
    index: int                   # position in the input batch
    face: Face | None
    sharpness: float = 0.0       # Laplacian variance at 112 px
    quality: float = 0.0         # 0..1
    padded: bool = False         # found by the grey-padding retry

    def record(self) -> dict:
        f = self.face
        out = {"source_index": self.index, "face": f is not None}
        if f is not None:
            out.update({"yaw": round(float(f.yaw), 2), "pitch": round(float(f.pitch), 2),
                        "roll": round(float(f.roll), 2), "det_score": round(float(f.det_score), 4),
                        "face_size": round(f.size, 1), "sharpness": round(self.sharpness, 1),
                        "quality": round(self.quality, 4), "bbox": [round(float(v), 1) for v in f.bbox],
                        "padded": self.padded})
        return out


@dataclass
class FaceViews:
    images: np.ndarray           # [V, h, w, 3] uint8
    masks: np.ndarray            # [V, h, w] float32, 1 = subject (or inside the source image)
    views: list[dict]            # one record per view, in view order
    candidates: list[ViewCandidate] = field(default_factory=list)
    background: str = BACKGROUND_KEPT
    inert: dict = field(default_factory=dict)     # settings that had no effect (inert_settings)

    def report(self, sources: list[dict] | None = None) -> dict:
        """What was chosen and why; with `sources` (one photo record per input image, see read_sources) each
        view also names its file and, when the photo was scaled down at load, its size before."""
        no_face = [c.index for c in self.candidates if c.face is None]
        views = self.views
        out = {"images": len(self.candidates), "faces_found": len(self.candidates) - len(no_face),
               "no_face": no_face, "background": self.background}
        if self.inert:
            out["inert"] = dict(self.inert)
        if sources is not None:
            views = [_with_source(v, sources[v["source_index"]]) for v in views]
            out["no_face_files"] = [sources[i]["file"] for i in no_face]
            out["scaled"] = [f"{s['file']}: {s['scaled_from'][0]}x{s['scaled_from'][1]} -> {s['size'][0]}x"
                             f"{s['size'][1]}" for s in sources if s.get("scaled_from")]
        return {"views": views, **out}


def _with_source(view: dict, source: dict) -> dict:
    out = dict(view, file=source["file"])
    if source.get("scaled_from"):
        out["scaled_from"] = source["scaled_from"]
    return out


def read_sources(text, num_images: int) -> list[dict]:
    """Load Face Photos' photos_json -> one record per image ({file, size, scaled_from?, ...}); InputError
    when it is not that list or describes another number of images than the batch has."""
    try:
        records = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        records = None
    if not (isinstance(records, list) and all(isinstance(r, dict) and isinstance(r.get("file"), str)
                                              and isinstance(r.get("size"), list) for r in records)):
        raise InputError(f"photos_json must be the photos_json output of Mv2ID Load Face Photos (a JSON list with "
                         f"one record per photo), got {str(text)[:80]!r}: connect that output, or nothing.")
    if len(records) != num_images:
        raise InputError(f"photos_json describes {len(records)} photo(s) but images has {num_images}: connect the "
                         f"photos_json of the Load Face Photos node whose images these are (a node between them "
                         f"added or dropped images), or leave photos_json unconnected.")
    return records


# ------------------------------------------------------------------------------------ quality
def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a float [H, W] image (a standard focus measure)."""
    g = np.asarray(gray, np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1]) - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def face_sharpness(image: np.ndarray, face: Face) -> float:
    """Laplacian variance of the face box resized to 112x112 (so it does not grow with face size)."""
    from PIL import Image

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in face.bbox)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    crop = Image.fromarray(np.ascontiguousarray(image[y1:y2, x1:x2])).convert("L").resize((112, 112), Image.BILINEAR)
    return laplacian_variance(np.asarray(crop, np.float32))


def face_quality(face: Face, sharpness: float) -> float:
    """0..1: face size (saturating at FULL_FACE_SIZE px), detection score and sharpness, multiplied."""
    size_q = min(1.0, face.size / FULL_FACE_SIZE)
    sharp_q = sharpness / (sharpness + SHARPNESS_HALF)
    return float(size_q * max(0.0, min(1.0, face.det_score)) * (0.25 + 0.75 * sharp_q))


def analyze_candidates(images, analyzer: FaceAnalyzer, progress=None, masks=None) -> list[ViewCandidate]:
    """The face ``find_face`` picks in every image (no embeddings: selection needs pose and quality only).

    masks: None or one subject mask [H, W] per image: where the subject fills only part of an image (a
    small photo padded to a large one's canvas by Load Face Photos, a person in a wide shot), faces are
    searched in its box (subject_box) first, so the detector sees the face at the photo's own scale instead
    of shrunk with the whole canvas to its det_size, then in the whole image. Faces are in the full image's
    pixels either way.
    progress: optional callback(done, total), called before each image (it may raise to cancel)."""
    out = []
    for i, img in enumerate(images):
        if progress is not None:
            progress(i, len(images))
        box = None if masks is None else subject_box(masks[i])
        face = padded = None
        if box is not None:
            x0, y0, x1, y1 = box
            face, padded = find_face(analyzer, img[y0:y1, x0:x1], embed=False, what=f"image {i}")
            face = None if face is None else face.shifted(x0, y0)
        if face is None:      # no subject box, or no face in it (a mask that misses the face: said later)
            face, padded = find_face(analyzer, img, embed=False, what=f"image {i}")
        if face is None:
            out.append(ViewCandidate(i, None))
            continue
        s = face_sharpness(img, face)
        out.append(ViewCandidate(i, face, s, face_quality(face, s), padded))
    if progress is not None:
        progress(len(images), len(images))
    return out


def subject_box(mask: np.ndarray, pad: float = SUBJECT_BOX_PAD) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the subject (mask >= 0.5), grown by `pad` of its size on every side and
    clipped to the image; None when that box covers most of the image (no smaller region to search)."""
    ys, xs = np.nonzero(np.asarray(mask) >= 0.5)
    if len(xs) == 0:
        return None
    h, w = mask.shape[:2]
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    x0, x1 = max(0, int(xs.min() - pad * bw)), min(w, int(xs.max() + 1 + pad * bw))
    y0, y1 = max(0, int(ys.min() - pad * bh)), min(h, int(ys.max() + 1 + pad * bh))
    if (x1 - x0) * (y1 - y0) > SUBJECT_BOX_MAX * w * h:
        return None
    return x0, y0, x1, y1


# ------------------------------------------------------------------------------------ selection
def select_views(yaws, pitches, quality, num_views: int, pitch_weight: float = 0.5,
                 min_relative_quality: float = 0.35) -> list[int]:
    """Indices of `num_views` candidates spread widest over head pose, ordered by yaw (ascending).

    yaws, pitches, quality: [N] sequences (degrees, degrees, 0..1). Candidates below
    `min_relative_quality` x the best quality are used only when too few remain. Selection is
    farthest-point sampling in (yaw, pitch_weight * pitch) starting from the yaw extremes, with
    distances weighted by quality so a sharp view wins over a blurry one at a similar angle.
    """
    yaw = np.asarray(yaws, np.float64)
    pitch = np.asarray(pitches, np.float64)
    q = np.clip(np.asarray(quality, np.float64), 0.0, 1.0)
    n = len(yaw)
    if not (len(pitch) == len(q) == n):
        raise ValueError("yaws, pitches and quality must have the same length")
    if num_views < 1:
        raise ValueError(f"num_views must be at least 1, got {num_views}")
    if n < num_views:
        raise NoFaceError(f"{num_views} views requested but only {n} usable face(s) found")
    good = np.nonzero(q >= min_relative_quality * (q.max() if n else 0))[0]
    pool = good if len(good) >= num_views else np.arange(n)
    pts = np.stack([yaw, pitch_weight * pitch], 1)
    weight = 0.5 + 0.5 * q                       # quality breaks near-ties, never overrides a clear spread

    if num_views == 1:
        # the most frontal good face
        score = weight[pool] / (1.0 + np.abs(yaw[pool]) / 30.0 + np.abs(pitch[pool]) / 60.0)
        return [int(pool[int(np.argmax(score))])]

    # the yaw extremes; among faces within 3 degrees of an extreme, the best quality
    def extreme(sign: float) -> int:
        v = sign * yaw[pool]
        near = pool[v >= v.max() - 3.0]
        return int(near[int(np.argmax(q[near]))])

    chosen = [extreme(-1.0)]
    right = extreme(1.0)
    if right != chosen[0]:
        chosen.append(right)
    while len(chosen) < num_views:
        rest = np.array([i for i in pool if i not in chosen])
        if len(rest) == 0:
            rest = np.array([i for i in range(n) if i not in chosen])
        d = np.linalg.norm(pts[rest, None, :] - pts[None, chosen, :], axis=-1).min(1)
        chosen.append(int(rest[int(np.argmax(d * weight[rest]))]))
    return sorted(chosen, key=lambda i: (yaw[i], i))


# ------------------------------------------------------------------------------------ cropping
def eye_roll(face: Face) -> float:
    """Angle (degrees, clockwise positive in the image) of the eye line of the 5 keypoints."""
    (lx, ly), (rx, ry) = face.kps[0], face.kps[1]
    return math.degrees(math.atan2(float(ry - ly), float(rx - lx)))


def crop_window(face: Face, size: tuple[int, int], margin: float = 1.0, shoulders: float = 0.35):
    """(centre x, centre y, scale) of the head-and-shoulders window in source pixels.

    The window is (1 + 2 * margin) face sizes tall (the face box plus `margin` face sizes above
    and below), the target aspect ratio wide, and shifted down by `shoulders` face sizes so the
    shoulders are in and the space above the head is not wasted. scale = source px per output px.
    """
    w, h = size
    fs = max(face.size, 1.0)
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0 + shoulders * fs * (margin / (margin + 0.5))
    win_h = (1.0 + 2.0 * margin) * fs
    return cx, cy, win_h / h


def crop_view(image: np.ndarray, face: Face, size: tuple[int, int] = (512, 512), margin: float = 1.0,
              subject_mask: np.ndarray | None = None, upright: bool = True,
              background: tuple[int, int, int] = (255, 255, 255)) -> tuple[np.ndarray, np.ndarray]:
    """Head-and-shoulders crop of one face: (RGB uint8 [h, w, 3], mask float32 [h, w]).

    image: RGB uint8 [H, W, 3]; size: (w, h) of the output; margin: face sizes of context on each
    side (vertically; the width follows the output aspect ratio); subject_mask: float [H, W],
    1 = the person (the rest becomes `background`). upright: rotate so the eyes are level. Parts of
    the window outside the source image are filled with `background`. The returned mask is the
    subject mask in the crop (or 1 inside the source image when no mask is given).
    One kornia warp (bicubic for the image, bilinear for the masks; pixel centres at integer
    coordinates); when the crop shrinks the source by more than 1.25x the source is first scaled
    down with antialiasing, so fine detail does not alias.
    """
    import kornia
    import torch
    from einops import rearrange

    w, h = int(size[0]), int(size[1])
    if w < 8 or h < 8:
        raise InputError(f"crop size must be at least 8x8, got {w}x{h}")
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    cx, cy, s = crop_window(face, (w, h), margin)
    a = math.radians(eye_roll(face)) if upright else 0.0
    fx, fy = (float(face.bbox[0]) + float(face.bbox[2])) / 2.0, (float(face.bbox[1]) + float(face.bbox[3])) / 2.0
    cos, sin = math.cos(a), math.sin(a)
    # the window centre, rotated about the face centre by the roll angle
    wcx = fx + cos * (cx - fx) - sin * (cy - fy)
    wcy = fy + sin * (cx - fx) + cos * (cy - fy)
    # source -> output: rotate by -roll about the window centre, scale by 1/s, centre in the output
    A = np.array([[cos, sin], [-sin, cos]]) / s
    M = np.hstack([A, ((np.array([w - 1, h - 1]) / 2.0) - A @ np.array([wcx, wcy]))[:, None]])

    H, W = image.shape[:2]
    planes = [rearrange(torch.from_numpy(np.array(image, np.float32)), "h w c -> c h w"), torch.ones(1, H, W)]
    if subject_mask is not None:
        m = np.asarray(subject_mask, np.float32)
        if m.shape != (H, W):
            raise InputError(f"mask size {list(m.shape)} does not match its image {[H, W]}")
        planes.append(torch.from_numpy(np.clip(m, 0.0, 1.0))[None])
    src = torch.cat(planes)[None]                                    # [1, 4 or 5, H, W]
    if s > 1.25:                                                     # shrink first, with antialiasing
        nh, nw = max(1, round(H / s)), max(1, round(W / s))
        src = torch.nn.functional.interpolate(src, size=(nh, nw), mode="bilinear", antialias=True,
                                              align_corners=False)
        # pixel centres: x_small = (x + 0.5) * nw / W - 0.5, so out = M @ [x, 1] becomes M' @ [x_small, 1]
        S = np.array([[nw / W, 0.0, 0.5 * nw / W - 0.5], [0.0, nh / H, 0.5 * nh / H - 0.5], [0.0, 0.0, 1.0]])
        M = (np.vstack([M, [0.0, 0.0, 1.0]]) @ np.linalg.inv(S))[:2]
    Mt = torch.as_tensor(M[None], dtype=torch.float32)
    warp = kornia.geometry.transform.warp_affine
    rgb = warp(src[:, :3], Mt, dsize=(h, w), mode="bicubic", padding_mode="border", align_corners=True)[0]
    masks = warp(src[:, 3:], Mt, dsize=(h, w), mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    keep = masks[-1].clamp(0, 1)                  # the subject mask, or the inside of the source image
    bg = torch.tensor(background, dtype=torch.float32)[:, None, None]
    comp = rgb.clamp(0, 255) * keep + bg * (1 - keep)
    return rearrange((comp + 0.5).floor().clamp(0, 255).byte(), "c h w -> h w c").numpy(), keep.numpy().astype(np.float32)


# ------------------------------------------------------------------------------------ the whole step
def subject_masks_for(images: list[np.ndarray], masks, meaning: str = "subject") -> list[np.ndarray] | None:
    """Masks (None, or a sequence of float [h, w], one per image or one for all, any size) -> one float
    [H, W] subject mask per image (1 = the person; resized bilinearly to its image).

    meaning: "subject" (1 = the person) or "background" (1 = the background, inverted here).
    Raises InputError for the wrong count, NaN or infinite values, or masks with no subject at all.
    """
    check_choice(meaning, MASK_MEANINGS, "mask_meaning")
    if masks is None:
        return None
    masks = [np.asarray(m, np.float32) for m in masks]
    if len(masks) not in (1, len(images)):
        raise InputError(f"{len(masks)} masks for {len(images)} images: give one mask per image or a single mask "
                         f"for all")
    if len(masks) == 1:
        masks = masks * len(images)
    out, empty = [], []
    for i, (m, img) in enumerate(zip(masks, images)):
        if m.ndim != 2 or min(m.shape) < 1:
            raise InputError(f"mask {i} must be one [H, W] mask, got shape {list(m.shape)}")
        if not np.isfinite(m).all():
            raise InputError(f"mask {i} contains NaN or infinite values; fix the step that made it.")
        if m.shape != img.shape[:2]:
            import torch
            m = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=img.shape[:2], mode="bilinear",
                                                align_corners=False)[0, 0].numpy()
        m = np.clip(1.0 - m if meaning == "background" else m, 0.0, 1.0)
        if m.max() < 0.5:
            empty.append(i)
        out.append(m)
    if empty:
        raise InputError(
            f"the subject mask of image(s) {', '.join(map(str, empty))} (0-based) marks no subject at all, so the "
            f"reference would be blank white. Check mask_meaning (now {meaning!r}: "
            + ("1 = the person" if meaning == "subject" else "1 = the background")
            + ") and that each mask belongs to its image.")
    return out


def face_views(images, analyzer: FaceAnalyzer, num_views: int = 3, size: tuple[int, int] = (512, 512),
               margin: float = 1.0, subject_masks=None, if_no_face: str = "error", pitch_weight: float = 0.5,
               upright: bool = True, identity_check: bool = True, progress=None,
               mask_meaning: str = "subject") -> FaceViews:
    """Select and crop `num_views` references from images (sequence of RGB uint8 [H, W, 3]).

    subject_masks: None or a sequence of float [h, w] masks, one per image (a single mask is used for
    every image; resized to each image), read per `mask_meaning` ("subject": 1 = the person;
    "background": 1 = the background). if_no_face: "error" (a photo without a face is a mistake) or
    "skip" (frames of a clip). Raises NoFaceError naming the images without a face, or how many
    usable faces were found when fewer than num_views; InputError for bad masks (none of the subject,
    or hiding a chosen view's face). progress: callback(done, total).
    identity_check: embed the chosen views and add each view's mean cosine similarity to the other
    views to its record (low values hint at a photo of someone else).
    """
    check_choice(if_no_face, IF_NO_FACE, "if_no_face")
    images = list(images)
    if not images:
        raise InputError("no images given: give at least one photo or video frame.")
    masks = subject_masks_for(images, subject_masks, mask_meaning)
    cands = analyze_candidates(images, analyzer, progress, masks)
    missing = [c.index for c in cands if c.face is None]
    usable = [c for c in cands if c.face is not None]
    if missing and if_no_face == "error":
        which = ", ".join(str(i) for i in missing)
        raise NoFaceError(
            f"no face found in input image(s) {which} (0-based index in the batch) of {len(images)}. Use photos "
            f"where the face is clearly visible, remove those images, or set if_no_face to 'skip' for video "
            f"frames.")
    if len(usable) < num_views:
        raise NoFaceError(
            f"{num_views} views requested but only {len(usable)} of {len(images)} image(s) have a usable face"
            + (f" (no face in: {', '.join(map(str, missing))})" if missing else "")
            + f". Add photos of the person from other angles or lower num_views to {max(1, len(usable))}.")
    pick = select_views([c.face.yaw for c in usable], [c.face.pitch for c in usable],
                        [c.quality for c in usable], num_views, pitch_weight=pitch_weight)
    chosen = [usable[i] for i in pick]
    if masks is not None:
        hidden = [c.index for c in chosen if _face_cover(masks[c.index], c.face) < MIN_FACE_COVER]
        if hidden:
            raise InputError(
                f"the subject mask hides the face in image(s) {', '.join(map(str, hidden))} (0-based): less than "
                f"{MIN_FACE_COVER:.0%} of the face box is subject, so the reference would show a white face. Check "
                f"mask_meaning (now {mask_meaning!r}) and that each mask belongs to its image.")
    crops, out_masks, records = [], [], []
    for v, c in enumerate(chosen):
        img, mk = crop_view(images[c.index], c.face, size, margin, None if masks is None else masks[c.index], upright)
        crops.append(img)
        out_masks.append(mk)
        records.append({"view": v, **c.record()})
    if identity_check and len(chosen) > 1:
        embs = [analyzer.embed_face(images[c.index], c.face) for c in chosen]
        if all(e is not None for e in embs):
            for v in range(len(chosen)):
                sims = [cosine(embs[v], embs[u]) for u in range(len(chosen)) if u != v]
                records[v]["identity_similarity"] = round(float(np.mean(sims)), 4)
    return FaceViews(np.stack(crops), np.stack(out_masks).astype(np.float32), records, cands,
                     BACKGROUND_KEPT if masks is None else BACKGROUND_WHITE,
                     inert_settings(num_views, masks is not None))


def inert_settings(num_views: int, has_mask: bool) -> dict[str, str]:
    """The Face Views settings that have no effect with these inputs -> {input: why} (views_json's "inert")."""
    out = {}
    if num_views == 1:
        out["pitch_weight"] = "no effect: one view is the most frontal face; pitch_weight spreads several views"
    if not has_mask:
        out["mask_meaning"] = "no effect: no mask is connected"
    return out


def _face_cover(mask: np.ndarray, face: Face) -> float:
    """Mean of the subject mask over the face box (clipped to the image); 0 when the box is outside it."""
    h, w = mask.shape
    x1, y1, x2, y2 = (int(round(float(v))) for v in face.bbox)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    return float(mask[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 0.0


# ------------------------------------------------------------------------------------ preview
def preview_strip(crops: np.ndarray, views: list[dict], label_height: int = 0, note: str = "") -> np.ndarray:
    """The chosen views side by side with 'view i  yaw / pitch / roll' under each (and `note` on a line
    of its own under them): RGB uint8."""
    from PIL import Image, ImageDraw, ImageFont

    v, h, w = crops.shape[:3]
    lh = label_height or max(28, h // 8)
    nh = lh if note else 0
    canvas = Image.new("RGB", (v * w, h + lh + nh), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=max(12, int(lh * 0.42)))
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    for i in range(v):
        canvas.paste(Image.fromarray(crops[i]), (i * w, 0))
        r = views[i] if i < len(views) else {}
        text = (f"view {i}  yaw {r.get('yaw', 0):+.0f}  pitch {r.get('pitch', 0):+.0f}  "
                f"roll {r.get('roll', 0):+.0f}")
        tw = draw.textlength(text, font=font)
        if tw > w - 8:  # narrow views: two lines
            text = f"view {i}  yaw {r.get('yaw', 0):+.0f}\np {r.get('pitch', 0):+.0f} r {r.get('roll', 0):+.0f}"
        draw.multiline_text((i * w + 6, h + 4), text, fill=(240, 240, 240), font=font, spacing=2)
        if i:
            draw.line([(i * w, 0), (i * w, h + lh)], fill=(24, 24, 24), width=2)
    if note:
        words, line, lines = note.split(), "", []
        for word in words:                          # wrap the note to the strip's width
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) > v * w - 12 and line:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
        draw.multiline_text((6, h + lh + 2), "\n".join(lines[:2]), fill=(255, 200, 80), font=font, spacing=1)
    return np.asarray(canvas, np.uint8)
