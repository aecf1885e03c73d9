"""Copy-paste readings: is a generated face a near-copy of a reference image, and does the copying follow
the head pose (the view-dependent copy-paste the Mv2ID paper fights with RD-RoPE and region masking)?

The evidence is the face's *structure*, not its identity: identity embeddings of one person's views are
alike by design, so they cannot tell a pasted reference from a new view of the same person. A face is
compared with a reference on its aligned crop (docs/metrics.md, "Copy-paste readings"):

1. ``structure_crop``: the crop aligned on the five keypoints to the ArcFace template (64 px, the template
   scaled by 64/112), in grey; log intensity (a lighting gain becomes an offset); a band-pass (difference
   of Gaussians, 1 and 4 px: finer detail is compression noise, coarser shading is lighting); local
   contrast normalisation (a light falling off across the face).
2. ``structure_similarity``: the correlation of two such crops over the inner face (an ellipse from the
   brows to the chin) where both show the image: 1 for the same picture, about 0.4 or less for other
   people; ``structure_distance`` = 1 - correlation.
3. ``closeness`` = 1 / (1 + (distance / COPY_DISTANCE) ** COPY_STEEPNESS): 1 for an exact copy, 0.5 at
   COPY_DISTANCE, about 0 for a new view, a new expression or another person; bounded by its form.

``copy_paste`` turns the closeness of every frame to every reference and the head poses into the two
readings. Crops are RGB uint8 [H, W, 3] images with keypoints [5, 2] (faces.base conventions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from .faces.align import ARCFACE_TEMPLATE, similarity_transform, warp_affine

STRUCTURE_SIZE = 64            # side of the aligned crop (ArcFace template * 64/112)
STRUCTURE_MARGIN = 12          # context warped around it so the filters see past its edge
FINE_SIGMA = 1.0               # band-pass, crop pixels: finer detail is compression noise...
COARSE_SIGMA = 4.0             # ...coarser shading is lighting
CONTRAST_FLOOR = 1e-4          # local contrast normalisation: variance floor (log-intensity units)
INNER_FACE = (56.0, 70.0, 36.0, 40.0)   # ellipse in ArcFace-template pixels: centre x, y, half-axes
MIN_OVERLAP = 0.5              # share of the inner face both crops must show to be compared
COPY_DISTANCE = 0.035          # structure distance at which closeness is 0.5 (docs: measured separation)
COPY_STEEPNESS = 6.0
NEAR_COPY = 0.5                # closeness from which a frame counts as a near-copy
DEFAULT_POSE_WEIGHTS = (1.0, 1.0, 1.0)   # yaw, pitch, roll
POSE_BANDWIDTH = 5.0           # degrees: softness of matching a frame's pose to the reference poses
MIN_VIEW_WEIGHT = 1.0          # frames' worth of pose match a reference view needs to be read


# ----------------------------------------------------------------------------- structure of one face
@dataclass
class StructureCrop:
    """A face's structure on the aligned canvas (the crop plus STRUCTURE_MARGIN on every side): band [C, C]
    float32 (band-passed, contrast-normalised log intensity) and inside [C, C] bool (pixels inside the image,
    away from its edge by the filters' reach). `values` / `valid` are the crop itself [S, S]."""
    band: np.ndarray
    inside: np.ndarray

    @property
    def values(self) -> np.ndarray:
        return self.band[_CUT, _CUT]

    @property
    def valid(self) -> np.ndarray:
        return self.inside[_CUT, _CUT]


_CUT = slice(STRUCTURE_MARGIN, STRUCTURE_MARGIN + STRUCTURE_SIZE)


def _inner_face_mask(size: int = STRUCTURE_SIZE) -> np.ndarray:
    s = size / 112.0
    cx, cy, ax, ay = (v * s for v in INNER_FACE)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


INNER_MASK = _inner_face_mask()


@lru_cache(maxsize=8)
def _gaussian(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A 2D array [H, W] blurred by a Gaussian of `sigma` px (3 sigma each side, mirrored at the edges without
    repeating the edge pixel). Shifted sums, no matrix product: these images are small, and a BLAS thread
    pool costs more than the work."""
    g = _gaussian(sigma)
    r = len(g) // 2
    for axis in (0, 1):
        p = np.pad(a, [(r, r) if ax == axis else (0, 0) for ax in (0, 1)], mode="reflect")
        n = a.shape[axis]
        a = sum(w * (p[k:k + n] if axis == 0 else p[:, k:k + n]) for k, w in enumerate(g))
    return a


def _face_region(image: np.ndarray, M: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of the image the canvas [side, side] samples under M (source -> canvas pixels), and M for that
    part: only the face's pixels go through the warp."""
    Minv = np.linalg.inv(np.vstack([M, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0, 1], [side - 1, 0, 1], [0, side - 1, 1], [side - 1, side - 1, 1]], np.float64)
    src = corners @ Minv.T
    h, w = image.shape[:2]
    lo, hi = src.min(0), src.max(0)
    if hi[0] < 0 or hi[1] < 0 or lo[0] > w - 1 or lo[1] > h - 1 or min(h, w) < 2:   # nothing of the image to sample
        return np.zeros((2, 2) + image.shape[2:], image.dtype), M + [[0, 0, 1e6], [0, 0, 1e6]]
    x0, y0 = int(max(0, np.floor(lo[0]) - 1)), int(max(0, np.floor(lo[1]) - 1))
    x1, y1 = int(min(w, np.ceil(hi[0]) + 2)), int(min(h, np.ceil(hi[1]) + 2))
    x0, y0 = min(x0, x1 - 2), min(y0, y1 - 2)           # at least 2 x 2: the warp normalises by the size - 1
    shift = M[:, :2] @ np.array([x0, y0], np.float64)  # region pixel q is image pixel q + (x0, y0)
    return image[y0:y1, x0:x1], np.hstack([M[:, :2], (M[:, 2] + shift)[:, None]])


def structure_crop(image: np.ndarray, kps: np.ndarray) -> StructureCrop:
    """The structure of the face with keypoints kps [5, 2] in the RGB uint8 image [H, W, 3]."""
    side = STRUCTURE_SIZE + 2 * STRUCTURE_MARGIN
    M = similarity_transform(kps, ARCFACE_TEMPLATE * (STRUCTURE_SIZE / 112.0) + STRUCTURE_MARGIN)
    if not abs(np.linalg.det(M[:, :2])) > 1e-9:        # keypoints on one spot: no crop, nothing to compare
        return StructureCrop(np.zeros((side, side), np.float32), np.zeros((side, side), bool))
    region, M = _face_region(np.asarray(image), M, side)
    rgba = np.concatenate([region, np.full(region.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    crop = warp_affine(rgba, M, (side, side)).astype(np.float64)                       # black outside
    log = np.log1p(crop[..., :3] @ np.array([0.299, 0.587, 0.114]))
    band = _blur(log, FINE_SIGMA) - _blur(log, COARSE_SIGMA)
    band = band / np.sqrt(_blur(band * band, COARSE_SIGMA) + CONTRAST_FLOOR)
    inside = crop[..., 3] >= 255.0
    reach = (_blur(inside.astype(np.float64), COARSE_SIGMA) > 0.99) & inside        # the filters saw no edge
    return StructureCrop(band.astype(np.float32), reach)


# ----------------------------------------------------------------------------- comparing two structures
# Registration: the five keypoints of a small, compressed face are off by a few pixels and degrees (dlib's
# landmarks on a JPEG'd 80-px face: up to 5 degrees and 5 %), which a copy must survive. The frame's structure
# is moved by the similarity (rotation about the inner face's centre, scale, shift) that best matches the
# reference, searched coarse to fine: per level 3 values of each parameter around the best so far. In all at
# most 11 degrees, 12 % and 6 px (of 64): a correction of the alignment, far from turning a face into another.
REGISTRATION_LEVELS = ((6.0, 0.06, 3.0), (3.0, 0.03, 1.5), (1.5, 0.015, 0.75), (0.75, 0.0075, 0.375))
# the search stops once the faces are clearly apart after a level (correlation below this), where closeness is
# already below 1e-4: the rest of the search only sharpens copies and near-copies
REGISTRATION_GIVE_UP = (0.7, 0.85, 0.9)


def _candidates(centre, levels_step):
    rot, scale, shift = levels_step
    steps = np.array(np.meshgrid([-rot, 0, rot], [-scale, 0, scale], [-shift, 0, shift], [-shift, 0, shift],
                                 indexing="ij")).reshape(4, -1).T
    return centre[None, :] + steps                                           # [81, 4]: degrees, log scale, dx, dy


def _warp(frame: StructureCrop, params: np.ndarray, out: int = STRUCTURE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The frame's crop under each similarity: params [K, 4] -> (values [K, n, n], inside [K, n, n] bool),
    n = `out` points across the crop (fewer than its pixels for a coarse search); bilinear, zero outside. Crop
    pixel p samples the canvas at A (p - c) + c + margin + (dx, dy), A = exp(log scale) R(degrees), c the inner
    face's centre. (numpy: thousands of tiny warps are faster without a thread pool)"""
    c = np.array([INNER_FACE[0], INNER_FACE[1]]) * STRUCTURE_SIZE / 112.0
    a, sc = np.radians(params[:, 0]), np.exp(params[:, 1])
    A = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], 1) * sc[:, None, None]
    g = np.linspace(0, STRUCTURE_SIZE - 1, out) - c[:, None]                       # [2, n] about the centre
    xs = (A[:, 0, 0, None, None] * g[0][None, None, :] + A[:, 0, 1, None, None] * g[1][None, :, None]
          + (c[0] + STRUCTURE_MARGIN + 1 + params[:, 2])[:, None, None])       # +1: the zero border below
    ys = (A[:, 1, 0, None, None] * g[0][None, None, :] + A[:, 1, 1, None, None] * g[1][None, :, None]
          + (c[1] + STRUCTURE_MARGIN + 1 + params[:, 3])[:, None, None])
    planes = np.pad(np.stack([frame.band, frame.inside.astype(np.float32)]), ((0, 0), (1, 1), (1, 1)))
    hi, width = planes.shape[1] - 2, planes.shape[2]
    x0, y0 = np.clip(np.floor(xs), 0, hi), np.clip(np.floor(ys), 0, hi)
    fx, fy = np.clip(xs - x0, 0, 1), np.clip(ys - y0, 0, 1)
    i = (y0 * width + x0).astype(np.int64)             # flat indices: one gather per corner for both planes
    flat = planes.reshape(2, -1).astype(np.float64)
    top = flat[:, i] + (flat[:, i + 1] - flat[:, i]) * fx
    bottom = flat[:, i + width] + (flat[:, i + width + 1] - flat[:, i + width]) * fx
    out_ = top + (bottom - top) * fy
    return out_[0], out_[1] > 0.999


def _reference_at(ref: StructureCrop, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's crop values and its comparable pixels (inner face, inside the image) at `out` points
    across, where _warp samples the frame: ([n, n], [n, n] bool)."""
    if out == STRUCTURE_SIZE:
        return ref.values, INNER_MASK & ref.valid
    idx = np.round(np.linspace(0, STRUCTURE_SIZE - 1, out)).astype(np.int64)
    return _warp(ref, np.zeros((1, 4)), out)[0][0], (INNER_MASK & ref.valid)[np.ix_(idx, idx)]


def _correlations(values: np.ndarray, inside: np.ndarray, ref_values: np.ndarray, ref_mask: np.ndarray) -> np.ndarray:
    """Masked correlation of each warped crop with the reference's over the inner face both show: [K] (NaN where
    they share less than MIN_OVERLAP of it)."""
    k = len(values)
    w = (inside & ref_mask[None]).reshape(k, -1).astype(np.float64)
    x, y = values.reshape(k, -1).astype(np.float64), ref_values.reshape(1, -1).astype(np.float64)
    n = w.sum(1)
    sx, sy = (w * x).sum(1), (w * y).sum(1)
    cov = (w * x * y).sum(1) - sx * sy / np.maximum(n, 1)
    vx = (w * x * x).sum(1) - sx * sx / np.maximum(n, 1)
    vy = (w * y * y).sum(1) - sy * sy / np.maximum(n, 1)
    r = cov / np.sqrt(np.maximum(vx * vy, 1e-24))
    r[n < MIN_OVERLAP * ref_mask.size * INNER_MASK.mean()] = np.nan
    return r


def structure_similarity(frame: StructureCrop, ref: StructureCrop) -> float:
    """Correlation of a frame's structure with a reference's over the inner face both show, after the
    registration (REGISTRATION_LEVELS; the coarse levels on every other pixel) that best matches them: -1..1,
    1 for the same picture; NaN when they share less than MIN_OVERLAP of the inner face (a face mostly outside
    its image). For faces clearly apart (REGISTRATION_GIVE_UP) it is the correlation as first aligned."""
    coarse, fine = _reference_at(ref, STRUCTURE_SIZE // 2), _reference_at(ref, STRUCTURE_SIZE)
    best = np.zeros(4)
    score = _correlations(*_warp(frame, best[None]), *fine)[0]
    coarse_score = _correlations(*_warp(frame, best[None], STRUCTURE_SIZE // 2), *coarse)[0]
    for i, level in enumerate(REGISTRATION_LEVELS):
        last = i == len(REGISTRATION_LEVELS) - 1
        params = _candidates(best, level)
        r = _correlations(*_warp(frame, params, STRUCTURE_SIZE if last else STRUCTURE_SIZE // 2),
                          *(fine if last else coarse))
        if np.isfinite(r).any() and not np.nanmax(r) <= (score if last else coarse_score):
            best = params[int(np.nanargmax(r))]
            score, coarse_score = (float(np.nanmax(r)), coarse_score) if last else (score, float(np.nanmax(r)))
        if not last and not coarse_score >= REGISTRATION_GIVE_UP[i]:
            break
    return float(score)


def structure_matrix(frames: Sequence[StructureCrop | None], refs: Sequence[StructureCrop]) -> np.ndarray:
    """Structure similarity of every frame to every reference: [F, M] (NaN rows for frames without a face)."""
    out = np.full((len(frames), len(refs)), np.nan)
    for i, f in enumerate(frames):
        if f is not None:
            out[i] = [structure_similarity(f, r) for r in refs]
    return out


def closeness(similarity: np.ndarray) -> np.ndarray:
    """Structure similarity -> closeness to a copy, 1 / (1 + ((1 - s) / COPY_DISTANCE) ** COPY_STEEPNESS):
    1 at s = 1, 0.5 at s = 1 - COPY_DISTANCE, in (0, 1] for every s in [-1, 1]. NaN (a face too far
    outside its image to compare) gives 0: it cannot be shown to be a copy. Keeps the input's shape."""
    s = np.asarray(similarity, dtype=np.float64)
    d = np.clip(1.0 - np.nan_to_num(s, nan=-1.0), 0.0, 2.0)       # rounding can put s a hair above 1
    return 1.0 / (1.0 + (d / COPY_DISTANCE) ** COPY_STEEPNESS)


# ----------------------------------------------------------------------------- pose matching
def pose_distance(frame_pose: np.ndarray, ref_pose: np.ndarray,
                  weights: Sequence[float] = DEFAULT_POSE_WEIGHTS) -> np.ndarray:
    """Weighted Euclidean distance in degrees between head poses.

    frame_pose [F, 3], ref_pose [M, 3] (yaw, pitch, roll) -> [F, M] (NaN rows for NaN poses).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(1, 1, 3)
    d = (np.asarray(frame_pose, np.float64)[:, None, :] - np.asarray(ref_pose, np.float64)[None, :, :]) * w
    return np.sqrt((d ** 2).sum(axis=-1))


def pose_match(frame_pose: np.ndarray, ref_pose: np.ndarray, weights: Sequence[float] = DEFAULT_POSE_WEIGHTS,
               bandwidth: float = POSE_BANDWIDTH) -> np.ndarray:
    """Soft pose matching: w[f, k] = softmax_k(-d[f, k]^2 / (2 bandwidth^2)) over the references.

    frame_pose [F, 3], ref_pose [M, 3] -> [F, M], rows summing to 1. A frame posed like one reference
    gets ~1 there; a frame halfway between two references splits ~0.5 / 0.5 (no jump on near-ties).
    """
    d = pose_distance(frame_pose, ref_pose, weights)
    z = -(d ** 2) / (2.0 * bandwidth ** 2)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- the readings
@dataclass
class CopyPaste:
    """The copy-paste readings over the frames with a face.

    near_copy_rate: 0..1, pose_following: -1..1 (each None with `reason` when it cannot be read).
    """
    closeness: np.ndarray            # [F, M] closeness of each frame to each reference (NaN rows: no face)
    nearest: np.ndarray              # [F] int, the reference it is closest to (-1 = no face)
    matched: np.ndarray              # [F] int, the reference whose pose is closest (-1 = no face)
    near_copy_rate: float | None
    pose_following: float | None
    per_view: list[dict] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self, names: Sequence[str]) -> dict:
        def num(v):
            return None if v is None or not np.isfinite(v) else round(float(v), 6)
        return {"near_copy_rate": num(self.near_copy_rate), "pose_following": num(self.pose_following),
                "reason": self.reason,
                "per_view": [{"reference": str(names[k]), **{a: num(b) if isinstance(b, float) else b
                                                                for a, b in v.items()}}
                             for k, v in enumerate(self.per_view)]}


def unreadable(frames: int, refs: int, reason: str) -> CopyPaste:
    """Readings that cannot be made, with the reason."""
    return CopyPaste(np.full((frames, refs), np.nan), np.full(frames, -1), np.full(frames, -1), None, None, [],
                     reason)


def copy_paste(close: np.ndarray, frame_pose: np.ndarray, ref_pose: np.ndarray,
               pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS, bandwidth: float = POSE_BANDWIDTH,
               near_copy: float = NEAR_COPY, min_view_weight: float = MIN_VIEW_WEIGHT) -> CopyPaste:
    """The two readings from the closeness of frames to references and the head poses.

    close [F, M] (``closeness`` of each frame's structure to each reference's; NaN rows = no face),
    frame_pose [F, 3], ref_pose [M, 3] (yaw, pitch, roll degrees). Frames are matched to the reference
    views softly by pose (``pose_match``, w[f, k]); a view k is read when sum_f w[f, k] >= min_view_weight.

    near_copy_rate (0..1): per view, the w-weighted share of frames whose largest closeness is at least
    `near_copy`; the mean over the views read (so dwelling on one pose does not weigh more). With one
    reference, the share of near-copies.

    pose_following (-1..1): per view k, the w-weighted mean closeness to reference k of the frames posed
    like k, minus the (1 - w)-weighted mean closeness to k of the frames posed otherwise; the mean over the
    views read on both sides. 1: every view is copied whenever the head takes its pose, and only then;
    0: no copying that depends on the pose (no copies at all: a new face, a blend, another person); < 0:
    copies of a view while the head is posed otherwise. None, with the reason, when the frames' poses do
    not reach two views (one reference, or a shot that stays at one view).
    """
    c = np.asarray(close, dtype=np.float64)
    f, m = c.shape
    pose = np.asarray(frame_pose, np.float64)
    rows = ~np.isnan(c).any(axis=1) & ~np.isnan(pose).any(axis=1)
    if m < 1 or not rows.any():
        return unreadable(f, m, "no sampled frame shows a face")
    cr = c[rows]
    w = pose_match(pose[rows], ref_pose, pose_weights, bandwidth)       # [F', M]
    nearest = np.full(f, -1, dtype=np.int64)
    matched = np.full(f, -1, dtype=np.int64)
    nearest[rows] = cr.argmax(axis=1)
    matched[rows] = w.argmax(axis=1)
    near = (cr.max(axis=1) >= near_copy).astype(np.float64)
    on, off = w.sum(axis=0), (1.0 - w).sum(axis=0)
    seen = on >= min_view_weight
    rate_k = (w * near[:, None]).sum(axis=0) / np.maximum(on, 1e-12)
    rate = float(rate_k[seen].mean()) if seen.any() else None
    when_posed = (w * cr).sum(axis=0) / np.maximum(on, 1e-12)               # [M]
    otherwise = ((1.0 - w) * cr).sum(axis=0) / np.maximum(off, 1e-12)
    both = seen & (off >= min_view_weight)
    follow, reason = None, None
    if both.any():
        follow = float((when_posed[both] - otherwise[both]).mean())
    elif m == 1:
        reason = "pose_following needs two reference views: with one, copying cannot depend on the pose"
    else:
        reason = ("pose_following cannot be read: the frames' head poses do not move between reference views "
                  "(they stay at one view), so whether copying follows the pose does not show")
    per_view = [{"frames_matched": float(on[k]), "near_copy_rate": float(rate_k[k]) if seen[k] else None,
                 "closeness_when_posed": float(when_posed[k]) if seen[k] else None,
                 "closeness_otherwise": float(otherwise[k]) if both[k] else None} for k in range(m)]
    full = np.full((f, m), np.nan)
    full[rows] = cr
    return CopyPaste(full, nearest, matched, rate, follow, per_view, reason)
