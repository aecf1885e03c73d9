"""Identity metrics for a generated video against M reference images of the identity.

Names follow the paper (Mv2ID) and OpenS2V-Eval:

- **MvRC** (multi-view reference consistency): mean over the sampled frames that show a face
  and over all M references of the cosine similarity of identity embeddings (no clipping).
  With the insightface recognition model this is the paper's MvRC-Arc.
- **FaceSim** (OpenS2V-Eval protocol): 32 frames sampled evenly
  (``linspace(0, T-1, 32)`` truncated to int, so short videos repeat frames), the largest face
  per image, a retry on a grey-padded image when no face is found (each side padded by
  (scale - 1) x its size, scale 1.25, grey 128), per-pair score ``max(0, cos)``, frames without
  a face skipped, mean over frames (0.0 when no frame has a face). OpenS2V uses one reference;
  with M references the per-frame score is the mean over the references, so M = 1 is exactly
  the OpenS2V number.
- per-frame head pose (yaw, pitch, roll in degrees, conventions of ``faces.base``), the
  fraction of sampled frames with a face, and the identity spread over time (standard
  deviation, min and max of the per-frame mean similarity).
- **copy-paste index**: for every frame, the reference closest to the frame's own head pose
  (Euclidean distance over weighted yaw/pitch/roll) is its *pose-matched* reference. The
  frame's *margin* is its similarity to that reference minus its mean similarity to the other
  references. An exact copy of reference k would have the margin ``1 - mean_j R[k, j]`` (R: the
  reference-to-reference similarities), so the index divides by that ceiling: 1.0 means
  "pastes the pose-matched reference", 0 means "no more like the matching view than the
  others", negative means less. The index is the mean over frames with a face (needs M >= 2).

Everything here is numpy only (no torch, no ComfyUI). Conventions: images are RGB uint8
``[H, W, 3]``; embeddings are ``[D]`` vectors; frames without a face have NaN rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import InputError, NoReferenceFaceError
from .faces.base import Face, FaceAnalyzer
from .faces.base import as_rgb_uint8 as _as_rgb_uint8

FACESIM_FRAMES = 32          # OpenS2V-Eval samples 32 frames
PAD_SCALE = 1.25             # OpenS2V-Eval grey padding retry
PAD_VALUE = 128
DEFAULT_POSE_WEIGHTS = (1.0, 1.0, 1.0)   # yaw, pitch, roll
MIN_COPY_CEILING = 1e-3      # an exact copy must stand out by more than this, else copy-paste is undefined


# ----------------------------------------------------------------------------- input checks
def as_rgb_uint8(image, what: str = "image") -> np.ndarray:
    """One image -> RGB uint8 [H, W, 3] (faces.base.as_rgb_uint8), raising InputError naming `what`."""
    return _as_rgb_uint8(image, what, InputError)


def _as_image_list(images, what: str) -> list:
    """A batch [N, H, W, C] or a sequence of images -> list of N images (not converted yet)."""
    if images is None or isinstance(images, (str, bytes)):
        raise InputError(f"{what} must be a batch [N, H, W, 3] or a list of images, got {images!r:.80}.")
    if hasattr(images, "ndim") and hasattr(images, "shape"):
        if images.ndim == 3 and images.shape[-1] in (1, 3, 4):
            raise InputError(f"{what} must be several images [N, H, W, 3]; got one image "
                               f"{list(images.shape)}: wrap it in a list or add a batch axis.")
        if images.ndim != 4:
            raise InputError(f"{what} must be a batch of images [N, H, W, 3], got shape {list(images.shape)}.")
        return [images[i] for i in range(images.shape[0])]
    try:
        return list(images)
    except TypeError:
        raise InputError(f"{what} must be a batch [N, H, W, 3] or a list of images, "
                           f"got {type(images).__name__}.") from None


def check_analyzer(analyzer) -> FaceAnalyzer:
    """A FaceAnalyzer, or any object with its analyze(image, embed) method (the class may come from
    a second copy of this package, e.g. when ComfyUI imports the pack under its folder name)."""
    if not (isinstance(analyzer, FaceAnalyzer) or callable(getattr(analyzer, "analyze", None))):
        raise InputError(
            f"analyzer must be a face analyzer (mv2id_core.faces.FaceAnalyzer; in ComfyUI the output of "
            f"'Mv2ID Face Analyzer', in Python mv2id_core.faces.load_analyzer('dlib')), got "
            f"{type(analyzer).__name__}.")
    return analyzer


# ----------------------------------------------------------------------------- pure functions
def sample_frame_indices(total_frames: int, num_frames: int | None = FACESIM_FRAMES) -> np.ndarray:
    """OpenS2V sampling: ``linspace(0, total-1, num_frames)`` cast to int -> [num_frames] int64.

    num_frames None or 0 -> every frame [total_frames]. Short videos repeat indices (as OpenS2V).
    """
    if total_frames < 1:
        raise InputError("the video has no frames.")
    if not num_frames:
        return np.arange(total_frames, dtype=np.int64)
    if num_frames < 0:
        raise InputError(f"num_frames must be >= 0 (0 = every frame), got {num_frames}.")
    return np.linspace(0, total_frames - 1, int(num_frames)).astype(np.int64)


def pad_image(image: np.ndarray, scale: float = PAD_SCALE, value: int = PAD_VALUE) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey border as in OpenS2V: each side padded by int((scale-1)*H) rows / int((scale-1)*W) cols.

    image [H, W, 3] uint8 -> ([H + 2*top, W + 2*left, 3] uint8, (left, top)).
    """
    if scale < 1.0:
        raise InputError(f"pad scale must be >= 1.0, got {scale}.")
    h, w = image.shape[:2]
    top, left = int(h * (scale - 1.0)), int(w * (scale - 1.0))
    out = np.full((h + 2 * top, w + 2 * left, 3), value, dtype=np.uint8)
    out[top:top + h, left:left + w] = image
    return out, (left, top)


def similarity_matrix(frame_emb: np.ndarray, ref_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of every frame to every reference.

    frame_emb [F, D] (NaN rows = no face), ref_emb [M, D] -> [F, M] float64 (NaN rows kept).
    Vectors are re-normalised, so non-unit embeddings are fine.
    """
    a = np.asarray(frame_emb, dtype=np.float64)
    b = np.asarray(ref_emb, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"embedding shapes do not match: frames {list(a.shape)} vs references "
                           f"{list(b.shape)}; score frames and references with the same analyzer.")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def _rows_with_face(sim: np.ndarray) -> np.ndarray:
    return ~np.isnan(np.asarray(sim, dtype=np.float64)).any(axis=1)


def mvrc(sim: np.ndarray) -> float:
    """MvRC: mean cosine over frames with a face and all references. sim [F, M] -> float (NaN if none)."""
    s = np.asarray(sim, dtype=np.float64)
    s = s[_rows_with_face(s)]
    return float(s.mean()) if s.size else float("nan")


def facesim(sim: np.ndarray) -> float:
    """FaceSim (OpenS2V): mean over frames with a face of mean_m max(0, cos). sim [F, M] -> float.

    0.0 when no frame has a face (as OpenS2V).
    """
    s = np.asarray(sim, dtype=np.float64)
    s = s[_rows_with_face(s)]
    return float(np.maximum(s, 0.0).mean(axis=1).mean()) if s.size else 0.0


def face_fraction(has_face: np.ndarray) -> float:
    """Fraction of sampled frames with a detected face. has_face [F] bool -> float in [0, 1]."""
    h = np.asarray(has_face, dtype=bool)
    return float(h.mean()) if h.size else 0.0


def per_frame_similarity(sim: np.ndarray) -> np.ndarray:
    """Mean similarity over references per frame. sim [F, M] -> [F] (NaN for frames without a face)."""
    s = np.asarray(sim, dtype=np.float64)
    out = np.full(s.shape[0], np.nan)
    rows = _rows_with_face(s)
    if s.shape[1]:
        out[rows] = s[rows].mean(axis=1)
    return out


def identity_spread(sim: np.ndarray) -> dict:
    """Identity stability over time: spread of the per-frame mean similarity.

    sim [F, M] -> {"std", "min", "max", "range"} over frames with a face (None when there are none).
    std is the population standard deviation (0 for a perfectly steady identity).
    """
    s = per_frame_similarity(sim)
    s = s[~np.isnan(s)]
    if not s.size:
        return {"std": None, "min": None, "max": None, "range": None}
    return {"std": float(s.std()), "min": float(s.min()), "max": float(s.max()), "range": float(s.max() - s.min())}


def pose_distance(frame_pose: np.ndarray, ref_pose: np.ndarray,
                  weights: Sequence[float] = DEFAULT_POSE_WEIGHTS) -> np.ndarray:
    """Weighted Euclidean distance in degrees between head poses.

    frame_pose [F, 3], ref_pose [M, 3] (yaw, pitch, roll) -> [F, M] (NaN rows for NaN poses).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(1, 1, 3)
    d = (np.asarray(frame_pose, np.float64)[:, None, :] - np.asarray(ref_pose, np.float64)[None, :, :]) * w
    return np.sqrt((d ** 2).sum(axis=-1))


@dataclass
class CopyPaste:
    """Per-frame copy-paste diagnostics; arrays are [F] (NaN / -1 for frames without a face)."""
    matched: np.ndarray      # [F] int, index of the pose-matched reference, -1 = no face
    margin: np.ndarray       # [F] sim to matched ref - mean sim to the other refs
    normalized: np.ndarray   # [F] margin / (margin of an exact copy of the matched ref)
    index: float | None      # mean of `normalized` over frames with a face
    mean_margin: float | None

    def to_dict(self, num_refs: int) -> dict:
        """JSON-ready summary; matched_reference_counts [num_refs]: frames matched to each reference."""
        counts = np.bincount(self.matched[self.matched >= 0], minlength=num_refs)
        return {"index": _num(self.index), "mean_margin": _num(self.mean_margin),
                "matched_reference_counts": [int(c) for c in counts]}


def copy_paste(sim: np.ndarray, frame_pose: np.ndarray, ref_pose: np.ndarray, ref_sim: np.ndarray,
               pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS) -> CopyPaste:
    """Copy-paste index: does each frame resemble its pose-matched reference more than the others?

    sim [F, M] frame-to-reference cosine (NaN rows = no face), frame_pose [F, 3], ref_pose [M, 3]
    (yaw, pitch, roll degrees), ref_sim [M, M] reference-to-reference cosine.
    margin_f = sim[f, k] - mean_{j != k} sim[f, j] with k the pose-matched reference;
    normalized_f = margin_f / (1 - mean_{j != k} ref_sim[k, j]) (1.0 for an exact copy of k).
    With M < 2 nothing can be compared: arrays are NaN and index None.
    """
    s = np.asarray(sim, dtype=np.float64)
    f, m = s.shape
    matched = np.full(f, -1, dtype=np.int64)
    margin = np.full(f, np.nan)
    normalized = np.full(f, np.nan)
    rows = _rows_with_face(s) & ~np.isnan(np.asarray(frame_pose, np.float64)).any(axis=1)
    if m >= 2 and rows.any():
        r = np.asarray(ref_sim, dtype=np.float64)
        ceiling = np.array([1.0 - np.delete(r[k], k).mean() for k in range(m)])
        dist = pose_distance(np.asarray(frame_pose)[rows], ref_pose, pose_weights)
        k = np.argmin(dist, axis=1)
        sr = s[rows]
        own = sr[np.arange(len(k)), k]
        others = (sr.sum(axis=1) - own) / (m - 1)
        mg = own - others
        ceil_k = ceiling[k]
        nz = np.where(ceil_k > MIN_COPY_CEILING, mg / np.where(ceil_k > MIN_COPY_CEILING, ceil_k, 1.0), np.nan)
        matched[rows], margin[rows], normalized[rows] = k, mg, nz
    valid = normalized[~np.isnan(normalized)]
    margins = margin[~np.isnan(margin)]
    return CopyPaste(matched, margin, normalized,
                     float(valid.mean()) if valid.size else None,
                     float(margins.mean()) if margins.size else None)


def _num(v, nd: int = 6):
    """float -> rounded float, NaN/None -> None (JSON null)."""
    if v is None:
        return None
    v = float(v)
    return None if np.isnan(v) else round(v, nd)


# ----------------------------------------------------------------------------- face detection
def detect_face(analyzer: FaceAnalyzer, image: np.ndarray, pad_retry: bool = True,
                pad_scale: float = PAD_SCALE) -> tuple[Face | None, bool]:
    """The largest face (by box area) with its embedding; retried on a grey-padded image.

    image [H, W, 3] uint8 -> (Face or None, padded). Boxes and keypoints of a face found on the
    padded image are shifted back to the original image's coordinates.
    """
    faces = analyzer.analyze(image, embed=True)
    padded = False
    if not faces and pad_retry:
        big, (left, top) = pad_image(image, pad_scale)
        faces = analyzer.analyze(big, embed=True)
        padded = True
        for fc in faces:
            fc.bbox = np.asarray(fc.bbox, np.float32) - np.array([left, top, left, top], np.float32)
            fc.kps = np.asarray(fc.kps, np.float32) - np.array([left, top], np.float32)
    if not faces:
        return None, padded
    face = max(faces, key=lambda fc: fc.area)
    if face.embedding is None:
        raise InputError(f"the face analyzer {analyzer.describe()!r} returned a face without an identity "
                           "embedding; use a backend with a recognition model (dlib or insightface).")
    return face, padded


# ----------------------------------------------------------------------------- the driver
def score_video(frames, references, analyzer: FaceAnalyzer, *, num_frames: int | None = FACESIM_FRAMES,
                frame_indices: Sequence[int] | None = None, total_frames: int | None = None,
                reference_names: Sequence[str] | None = None, pad_retry: bool = True,
                pad_scale: float = PAD_SCALE, pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Score one generated video against M reference images; returns a JSON-ready report.

    frames: the video, [T, H, W, 3] array or a sequence of T images (uint8, or float 0..1).
        The frames are sampled OpenS2V-style (`num_frames`, default 32; None/0 = all) unless
        `frame_indices` is given, in which case `frames` are already the sampled frames and
        `frame_indices` [F] their indices in a video of `total_frames` frames.
    references: M >= 1 reference images of the identity ([M, H, W, 3] or a list; sizes may differ).
    analyzer: any FaceAnalyzer (dlib, insightface, ...); the same one embeds frames and references.
    progress(done, total) is called after every analysed image (references, then unique frames).
    Raises InputError for bad input, NoReferenceFaceError when no reference shows a face.
    """
    check_analyzer(analyzer)
    ref_list = _as_image_list(references, "references")
    if not ref_list:
        raise InputError("no reference images: give 1 or more images of the identity.")
    names = list(reference_names) if reference_names is not None else [f"ref{i}" for i in range(len(ref_list))]
    if len(names) != len(ref_list):
        raise InputError(f"{len(names)} reference names for {len(ref_list)} references.")
    frame_list = _as_image_list(frames, "frames")
    if not frame_list:
        raise InputError("the video has no frames.")
    if frame_indices is not None:
        idx = np.asarray(frame_indices, dtype=np.int64)
        if idx.shape != (len(frame_list),):
            raise InputError(f"frame_indices has {idx.size} entries for {len(frame_list)} frames.")
        total = int(total_frames) if total_frames is not None else int(idx.max()) + 1
        first = {}
        for pos, i in enumerate(idx):
            first.setdefault(int(i), pos)
        slots = np.array([first[int(i)] for i in idx], dtype=np.int64)   # repeated indices share one frame
    else:
        total = len(frame_list)
        idx = sample_frame_indices(total, num_frames)
        slots = idx
    unique_slots = sorted(set(int(s) for s in slots))
    steps, done = len(ref_list) + len(unique_slots), 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps)

    # references
    ref_faces: list[Face | None] = []
    ref_info = []
    for i, (img, name) in enumerate(zip(ref_list, names)):
        face, padded = detect_face(analyzer, as_rgb_uint8(img, f"reference {i} ({name})"), pad_retry, pad_scale)
        ref_faces.append(face)
        info = {"index": i, "name": str(name), "face": face is not None, "padded": bool(padded and face is not None)}
        if face is not None:
            info.update({"yaw": _num(face.yaw, 2), "pitch": _num(face.pitch, 2), "roll": _num(face.roll, 2),
                         "bbox": [round(float(v), 1) for v in face.bbox]})
        ref_info.append(info)
        tick()
    used = [i for i, fc in enumerate(ref_faces) if fc is not None]
    missing = [names[i] for i, fc in enumerate(ref_faces) if fc is None]
    if not used:
        raise NoReferenceFaceError(
            f"no face found in any of the {len(ref_list)} reference images ({', '.join(map(str, names))}), "
            f"even after grey padding; use clear, reasonably large face photos as references "
            f"(analyzer: {analyzer.describe()}).")
    ref_emb = np.stack([np.asarray(ref_faces[i].embedding, np.float64).ravel() for i in used])
    ref_pose = np.array([[ref_faces[i].yaw, ref_faces[i].pitch, ref_faces[i].roll] for i in used], np.float64)

    # frames (each distinct frame analysed once)
    analysed: dict[int, tuple[Face | None, bool]] = {}
    for s in unique_slots:
        analysed[s] = detect_face(analyzer, as_rgb_uint8(frame_list[s], f"frame {s}"), pad_retry, pad_scale)
        tick()
    d = ref_emb.shape[1]
    frame_emb = np.full((len(slots), d), np.nan)
    frame_pose = np.full((len(slots), 3), np.nan)
    for row, s in enumerate(slots):
        face = analysed[int(s)][0]
        if face is not None:
            e = np.asarray(face.embedding, np.float64).ravel()
            if e.shape[0] != d:
                raise InputError(f"frame embeddings have {e.shape[0]} dimensions but the references' have {d}; "
                                   "score frames and references with the same analyzer.")
            frame_emb[row] = e
            frame_pose[row] = (face.yaw, face.pitch, face.roll)

    sim = similarity_matrix(frame_emb, ref_emb)                  # [F, M'] NaN rows = no face
    ref_sim = similarity_matrix(ref_emb, ref_emb)                # [M', M']
    has_face = _rows_with_face(sim)
    cp = copy_paste(sim, frame_pose, ref_pose, ref_sim, pose_weights)
    per_frame_mean = per_frame_similarity(sim)

    per_frame = []
    for row, (s, fidx) in enumerate(zip(slots, idx)):
        face, padded = analysed[int(s)]
        entry = {"frame": int(fidx), "face": bool(face is not None)}
        if face is not None:
            full = [None] * len(ref_list)
            for col, i in enumerate(used):
                full[i] = _num(sim[row, col])
            entry.update({"padded": bool(padded), "yaw": _num(face.yaw, 2), "pitch": _num(face.pitch, 2),
                          "roll": _num(face.roll, 2), "similarity": full,
                          "mean_similarity": _num(per_frame_mean[row]),
                          "matched_reference": int(used[cp.matched[row]]) if cp.matched[row] >= 0 else None,
                          "copy_paste": _num(cp.normalized[row])})
        per_frame.append(entry)

    cpd = cp.to_dict(len(used))
    counts = cpd.pop("matched_reference_counts")
    cpd["matched_reference_counts"] = {names[i]: counts[col] for col, i in enumerate(used)}
    label = "Arc" if "insightface" in analyzer.name.lower() else analyzer.name
    yaw = frame_pose[has_face, 0]
    report = {
        "analyzer": analyzer.describe(),
        "metric_names": {"mvrc": f"MvRC-{label}", "facesim": f"FaceSim-{label}"},
        "mvrc": _num(mvrc(sim)),
        "facesim": _num(facesim(sim)),
        "face_fraction": _num(face_fraction(has_face)),
        "identity_std": identity_spread(sim)["std"],
        "identity_spread": {k: _num(v) for k, v in identity_spread(sim).items()},
        "copy_paste": cpd,
        "yaw_range": [_num(yaw.min(), 2), _num(yaw.max(), 2)] if yaw.size else None,
        "total_frames": int(total),
        "sampled_frames": int(len(slots)),
        "frames_with_face": int(has_face.sum()),
        "frames_without_face": int((~has_face).sum()),
        "frames_without_face_indices": sorted({int(i) for i, h in zip(idx, has_face) if not h}),
        "references": ref_info,
        "references_used": [names[i] for i in used],
        "references_without_face": missing,
        "reference_similarity": [[_num(v) for v in row] for row in ref_sim],
        "settings": {"num_frames": None if frame_indices is not None else (int(num_frames) if num_frames else 0),
                     "pad_retry": bool(pad_retry), "pad_scale": float(pad_scale),
                     "pose_weights": [float(w) for w in pose_weights]},
        "per_frame": per_frame,
    }
    report["identity_std"] = _num(report["identity_std"])
    return report


SUMMARY_FIELDS = ("video", "mvrc", "facesim", "face_fraction", "identity_std", "copy_paste_index",
                  "copy_paste_margin", "yaw_min", "yaw_max", "total_frames", "sampled_frames",
                  "frames_with_face", "references_used", "error")


def summary_row(report: dict | None, video: str, error: str = "") -> dict:
    """One CSV row (SUMMARY_FIELDS) for a report; a failed video gets its error and empty values."""
    row = {k: "" for k in SUMMARY_FIELDS}
    row["video"], row["error"] = video, error
    if report is None:
        return row
    yr = report.get("yaw_range") or [None, None]
    row.update({"mvrc": report["mvrc"], "facesim": report["facesim"], "face_fraction": report["face_fraction"],
                "identity_std": report["identity_std"], "copy_paste_index": report["copy_paste"]["index"],
                "copy_paste_margin": report["copy_paste"]["mean_margin"], "yaw_min": yr[0], "yaw_max": yr[1],
                "total_frames": report["total_frames"], "sampled_frames": report["sampled_frames"],
                "frames_with_face": report["frames_with_face"],
                "references_used": len(report["references_used"])})
    return {k: ("" if v is None else v) for k, v in row.items()}
