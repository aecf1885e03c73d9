"""Identity metrics for a generated video against M reference images of the identity.

Names follow the paper (Mv2ID) and OpenS2V-Eval (``eval/get_facesim.py``; insightface 2.1's
FaceAnalysis, which for det_size (320, 320) computes what 0.7.3 computes):

- **MvRC** (multi-view reference consistency): mean over the sampled frames that show a face
  and over all M references of the cosine similarity of identity embeddings (no clipping).
  With the insightface recognition model this is the paper's MvRC-Arc.
- **FaceSim-Arc** (``facesim``): OpenS2V's ``arc_score`` protocol: 32 frames at
  ``linspace(0, T-1, 32)`` truncated to int (short videos repeat frames), the face
  ``faces.find_face`` picks (largest box, later one on ties; one retry on the image padded by 25%
  per side with grey 128), per frame ``max(0, cos)`` (zeros kept), frames without a face skipped,
  the mean over frames (0.0 when no frame has a face). With M references the per-frame score is the
  mean over the references. It equals OpenS2V-Eval's ``arc_score`` when the analyzer is insightface's
  buffalo_l pack (det_10g + w600k_r50) at det_size 320 with the retry on, with one reference and 32
  frames: ``opens2v_protocol`` says which of these hold.
- **FaceSim-Cur** (``facesim_cur``, with a CurricularFace IR-101 weights file): OpenS2V's
  ``cur_score``, the number its leaderboard uses: the same frames and faces, the face crops taken
  from the unpadded image (faces.curricularface), per frame ``max(0, cos)`` and frames scoring 0
  dropped (OpenS2V's rule), the mean over the kept frames (0.0 when none).
- per-frame head pose (yaw, pitch, roll in degrees, ``faces.pose``), the fraction of sampled
  frames with a face, and the identity spread over time.
- **copy-paste readings** (``copy_paste``), two numbers on the frames with a face:
  ``near_copy_rate`` (how often frames are near-copies of some reference) and
  ``pose_following`` (whether the identity follows the head pose: view-dependent pasting); see
  ``copy_paste``.

Conventions: images are RGB uint8 ``[H, W, 3]``; embeddings ``[D]``; frames without a face have
NaN rows. Everything here is numpy (torch only for the optional CurricularFace model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import InputError, NoReferenceFaceError
from .faces.base import FaceAnalyzer, as_image_list, find_face
from .faces.curricularface import EMBEDDING_DIM as CUR_DIM

FACESIM_FRAMES = 32          # OpenS2V-Eval samples 32 frames
OPENS2V_DET_SIZE = 320       # OpenS2V-Eval: FaceAnalysis.prepare(det_size=(320, 320))
DEFAULT_POSE_WEIGHTS = (1.0, 1.0, 1.0)   # yaw, pitch, roll
POSE_BANDWIDTH = 10.0        # degrees: softness of matching a frame's pose to the reference poses
NEAR_COPY = 0.5              # closeness from which a frame counts as a near-copy of a reference
MIN_VIEW_WEIGHT = 1.0        # frames' worth of pose match a reference view needs to be read
MIN_COPY_CEILING = 1e-3      # references this alike cannot be told apart from copies


# ----------------------------------------------------------------------------- input checks
def check_analyzer(analyzer) -> FaceAnalyzer:
    """A FaceAnalyzer, or any object with its analyze(image, embed) method (the class may come from
    a second copy of this package, e.g. when ComfyUI imports the pack under its folder name)."""
    if not (isinstance(analyzer, FaceAnalyzer) or callable(getattr(analyzer, "analyze", None))):
        raise InputError(f"analyzer must be a face analyzer (mv2id_core.faces.load_analyzer('dlib'), for example), "
                         f"got {type(analyzer).__name__}.")
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
    """FaceSim-Arc (OpenS2V's arc_score): mean over frames with a face of mean_m max(0, cos). sim [F, M]
    -> float; zeros are kept (OpenS2V's `if arc_scores != 0.0` compares a list, so it keeps every frame);
    0.0 when no frame has a face."""
    s = np.asarray(sim, dtype=np.float64)
    s = s[_rows_with_face(s)]
    return float(np.maximum(s, 0.0).mean(axis=1).mean()) if s.size else 0.0


def facesim_cur(sim: np.ndarray) -> float:
    """FaceSim-Cur (OpenS2V's cur_score): per frame with a face mean_m max(0, cos); frames scoring exactly 0
    are dropped (OpenS2V's `if cur_score != 0.0`); mean of the rest, 0.0 when none is left. sim [F, M]."""
    s = np.asarray(sim, dtype=np.float64)
    s = np.maximum(s[_rows_with_face(s)], 0.0).mean(axis=1) if s.size else np.zeros(0)
    s = s[s != 0.0]
    return float(s.mean()) if s.size else 0.0


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


@dataclass
class CopyPaste:
    """The copy-paste readings over the frames with a face (arrays [F], NaN for frames without one).

    near_copy_rate: share of frames that are near-copies of some reference, balanced over the
        pose-matched views; 0..1. pose_following: -1..1. reason: why a reading is None.
    """
    closeness: np.ndarray            # [F] max_k closeness to a reference (1 = an exact copy)
    nearest: np.ndarray              # [F] int, the reference it is closest to (-1 = none)
    matched: np.ndarray              # [F] int, the reference whose pose is closest (-1 = none)
    near_copy_rate: float | None
    pose_following: float | None
    per_view: list[dict] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self, names: Sequence[str]) -> dict:
        return {"near_copy_rate": _num(self.near_copy_rate), "pose_following": _num(self.pose_following),
                "reason": self.reason,
                "per_view": [{"reference": str(names[k]), **{a: _num(b) if isinstance(b, float) else b
                                                                for a, b in v.items()}}
                             for k, v in enumerate(self.per_view)]}


def copy_paste(sim: np.ndarray, frame_pose: np.ndarray, ref_pose: np.ndarray, ref_sim: np.ndarray,
               pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS, bandwidth: float = POSE_BANDWIDTH,
               near_copy: float = NEAR_COPY, min_view_weight: float = MIN_VIEW_WEIGHT) -> CopyPaste:
    """Copy-paste readings of a video: near-copies and pose-following.

    sim [F, M] frame-to-reference cosine (NaN rows = no face), frame_pose [F, 3], ref_pose [M, 3]
    (yaw, pitch, roll degrees), ref_sim [M, M] reference-to-reference cosine. Needs M >= 2. Every
    number is computed on the same frames: those with a face.

    Pose matching is soft (``pose_match``, w[f, k]); a view k is read when its frames' worth of match
    sum_f w[f, k] >= min_view_weight (for pose_following also sum_f (1 - w[f, k])).

    near_copy_rate (0..1): closeness[f, k] is 1 for an exact copy of reference k and 0 at the distance
    of reference k's nearest other view; it is the smaller of two such scales, both of which a copy must
    pass: the identity distance (1 - (1 - sim[f, k]) / (1 - max_j ref_sim[k, j])) and the similarity
    profile (1 - |sim[f, :] - ref_sim[k, :]| / the distance from ref_sim[k, :] to the nearest other
    reference's profile; a blend of the views, resembling all of them alike, fails this one). A frame is
    a near-copy when its largest closeness is >= near_copy (0.5: within half the distance to the nearest
    other view). The rate is the share of near-copies among the frames matched to each view, averaged
    over the views (so dwelling on one pose does not weigh more).

    pose_following (-1..1): does a frame resemble the references that match its pose more than the
    others? c[f, k] = sim[f, k] - mean_j sim[f, j]; per view k, the w-weighted mean of c[f, k] over the
    frames posed like k minus its (1 - w)-weighted mean over the other frames: D_k. The same for a
    video that pastes its pose-matched views (sim*[f, j] = sum_i w[f, i] ref_sim[i, j]): D*_k. The
    reading is sum_k D_k / sum_k D*_k over the read views, clipped to [-1, 1]: 1 = as pose-dependent
    as pasting the matching view, 0 = the identity does not follow the pose (a synthesised face, or a
    paste of one fixed view), < 0 = frames resemble the views of other poses. A video whose poses reach
    only one reference view cannot show it (None, with the reason).
    """
    s = np.asarray(sim, dtype=np.float64)
    f, m = s.shape
    closeness = np.full(f, np.nan)
    nearest = np.full(f, -1, dtype=np.int64)
    matched = np.full(f, -1, dtype=np.int64)
    pose = np.asarray(frame_pose, np.float64)
    rows = _rows_with_face(s) & ~np.isnan(pose).any(axis=1)
    if m < 2:
        return CopyPaste(closeness, nearest, matched, None, None, [],
                         "needs at least two references with a face to compare views")
    if not rows.any():
        return CopyPaste(closeness, nearest, matched, None, None, [], "no sampled frame shows a face")
    r = np.asarray(ref_sim, dtype=np.float64)
    others = r - 2.0 * np.eye(m)                                       # a reference's similarity to the others
    room = 1.0 - others.max(axis=1)                                    # [M] cosine distance to the nearest view
    gaps = np.linalg.norm(r[:, None, :] - r[None, :, :], axis=-1)      # [M, M] between reference profiles
    np.fill_diagonal(gaps, np.inf)
    spacing = gaps.min(axis=1)                                         # [M] to the nearest other view's profile
    if (room <= MIN_COPY_CEILING).any() or (spacing <= MIN_COPY_CEILING).any():
        return CopyPaste(closeness, nearest, matched, None, None, [],
                         "the references are near-duplicates of each other, so a copy cannot be told from "
                         "another view")
    sr = s[rows]
    w = pose_match(pose[rows], ref_pose, pose_weights, bandwidth)      # [F', M]
    direct = 1.0 - (1.0 - sr) / room                                   # [F', M]
    profile = 1.0 - np.linalg.norm(sr[:, None, :] - r[None, :, :], axis=-1) / spacing
    close = np.minimum(direct, profile)
    closeness[rows] = close.max(axis=1)
    nearest[rows] = close.argmax(axis=1)
    matched[rows] = w.argmax(axis=1)
    near = (close.max(axis=1) >= near_copy).astype(np.float64)

    def contrast(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per view: (D_k, weight of frames posed like k, weight of the others)."""
        c = x - x.mean(axis=1, keepdims=True)
        on, off = w.sum(axis=0), (1.0 - w).sum(axis=0)
        a = (w * c).sum(axis=0) / np.maximum(on, 1e-12)
        b = ((1.0 - w) * c).sum(axis=0) / np.maximum(off, 1e-12)
        return a - b, on, off

    d, on, off = contrast(sr)
    d_ideal, _, _ = contrast(w @ r)
    seen = on >= min_view_weight
    rate_k = (w * near[:, None]).sum(axis=0) / np.maximum(on, 1e-12)
    rate = float(rate_k[seen].mean()) if seen.any() else None
    both = seen & (off >= min_view_weight)
    reason, follow = None, None
    if not both.any() or d_ideal[both].sum() <= MIN_COPY_CEILING:
        reason = ("the frames' head poses do not move between reference views (they match one view, or sit at "
                  "the same place between views), so whether the identity follows the pose cannot be read")
    else:
        follow = float(np.clip(d[both].sum() / d_ideal[both].sum(), -1.0, 1.0))
    per_view = [{"frames_matched": float(on[k]), "near_copy_rate": float(rate_k[k]) if seen[k] else None,
                 "contrast": float(d[k]) if both[k] else None, "contrast_if_pasted": float(d_ideal[k])
                 if both[k] else None} for k in range(m)]
    return CopyPaste(closeness, nearest, matched, rate, follow, per_view, reason)


def _num(v, nd: int = 6):
    """float -> rounded float, NaN/None -> None (JSON null)."""
    if v is None:
        return None
    v = float(v)
    return None if np.isnan(v) else round(v, nd)


# ----------------------------------------------------------------------------- protocol
def opens2v_protocol(analyzer, num_frames, num_references: int, cur: bool) -> dict:
    """Which OpenS2V-Eval numbers `facesim` and `facesim_cur` equal with these settings.

    Returns {"facesim": sentence, "facesim_cur": sentence, "equal": {"facesim": bool, "facesim_cur": bool}}.
    """
    differences = []
    if getattr(analyzer, "name", "") != "insightface":
        differences.append(f"the {getattr(analyzer, 'name', '?')} backend instead of insightface")
    else:
        files = (Path(getattr(getattr(analyzer, "detector", None), "path", "")).name,
                 Path(getattr(getattr(analyzer, "recognition", None), "path", "")).name)
        if files != ("det_10g.onnx", "w600k_r50.onnx"):
            differences.append(f"models {files[0]} + {files[1]} instead of buffalo_l's det_10g.onnx + w600k_r50.onnx")
        if getattr(analyzer, "det_size", None) != OPENS2V_DET_SIZE:
            differences.append(f"det_size {getattr(analyzer, 'det_size', '?')} instead of {OPENS2V_DET_SIZE}")
        if float(getattr(analyzer, "det_thresh", 0.5)) != 0.5:
            differences.append(f"det_thresh {analyzer.det_thresh} instead of 0.5")
    if num_frames != FACESIM_FRAMES:
        differences.append(f"{num_frames or 'every'} sampled frame(s) instead of {FACESIM_FRAMES}")
    if num_references != 1:
        differences.append(f"{num_references} references (OpenS2V scores one; here the per-frame score is their "
                           f"mean)")
    same = not differences
    arc = ("equals OpenS2V-Eval's FaceSim-Arc (arc_score)" if same else
           "follows OpenS2V-Eval's FaceSim-Arc protocol but is not its number: " + "; ".join(differences))
    if not cur:
        cur_text = ("not computed: give a CurricularFace IR-101 weights file for OpenS2V-Eval's FaceSim-Cur "
                    "(cur_score, the number its leaderboard uses)")
    else:
        cur_text = ("equals OpenS2V-Eval's FaceSim-Cur (cur_score, its leaderboard number)" if same else
                    "follows OpenS2V-Eval's FaceSim-Cur protocol but is not its number: " + "; ".join(differences))
    return {"facesim": arc, "facesim_cur": cur_text, "equal": {"facesim": same, "facesim_cur": same and cur}}


# ----------------------------------------------------------------------------- the driver
def score_video(frames, references, analyzer: FaceAnalyzer, *, num_frames: int | None = FACESIM_FRAMES,
                frame_indices: Sequence[int] | None = None, total_frames: int | None = None,
                reference_names: Sequence[str] | None = None, retry: bool | None = None,
                pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS, curricularface=None,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Score one generated video against M reference images; returns a JSON-ready report.

    frames: the video, [T, H, W, 3] array or a sequence of T images (uint8, or float 0..1).
        The frames are sampled OpenS2V-style (`num_frames`, default 32; None/0 = all) unless
        `frame_indices` is given, in which case `frames` are already the sampled frames,
        `frame_indices` [F] their indices in a video of `total_frames` frames and `num_frames` says
        how they were sampled (for the report).
    references: M >= 1 reference images of the identity ([M, H, W, 3] or a list; sizes may differ).
    analyzer: any FaceAnalyzer (dlib, insightface, ...); the same one embeds frames and references.
    retry: the grey-padding retry of ``find_face`` (None: the analyzer's setting).
    curricularface: an optional faces.curricularface.CurricularFace for FaceSim-Cur.
    progress(done, total) is called after every analysed image (references, then unique frames).
    Raises InputError for bad input, NoReferenceFaceError when no reference shows a face.
    """
    check_analyzer(analyzer)
    ref_list = as_image_list(references, "references")
    if not ref_list:
        raise InputError("no reference images: give 1 or more images of the identity.")
    names = list(reference_names) if reference_names is not None else [f"ref{i}" for i in range(len(ref_list))]
    if len(names) != len(ref_list):
        raise InputError(f"{len(names)} reference names for {len(ref_list)} references.")
    frame_list = as_image_list(frames, "frames")
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
    retry = analyzer.retry if retry is None else bool(retry)

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps)

    def analyse(image, what):
        face, padded = find_face(analyzer, image, embed=True, retry=retry, what=what)
        if face is None:
            return None, False, None
        if face.embedding is None:
            raise InputError(f"the face analyzer {analyzer.describe()!r} returned a face without an identity "
                             "embedding; use a backend with a recognition model (dlib or insightface).")
        cur = curricularface.embed(image, face.kps) if curricularface is not None else None   # unpadded image
        return face, padded, cur

    # references
    ref_faces, ref_cur, ref_info = [], [], []
    for i, (img, name) in enumerate(zip(ref_list, names)):
        face, padded, cur = analyse(img, f"reference {i} ({name})")
        ref_faces.append(face)
        ref_cur.append(cur)
        info = {"index": i, "name": str(name), "face": face is not None, "padded": bool(padded)}
        if face is not None:
            info.update({"yaw": _num(face.yaw, 2), "pitch": _num(face.pitch, 2), "roll": _num(face.roll, 2),
                         "bbox": [round(float(v), 1) for v in face.bbox]})
        ref_info.append(info)
        tick()
    used = [i for i, fc in enumerate(ref_faces) if fc is not None]
    missing = [names[i] for i, fc in enumerate(ref_faces) if fc is None]
    if not used:
        raise NoReferenceFaceError(
            f"no face found in any of the {len(ref_list)} reference images ({', '.join(map(str, names))})"
            + (", even after the grey-padding retry" if retry else "")
            + f"; use clear, reasonably large face photos as references (analyzer: {analyzer.describe()}).")
    ref_emb = np.stack([np.asarray(ref_faces[i].embedding, np.float64).ravel() for i in used])
    ref_pose = np.array([[ref_faces[i].yaw, ref_faces[i].pitch, ref_faces[i].roll] for i in used], np.float64)

    # frames (each distinct frame analysed once)
    analysed = {}
    for s in unique_slots:
        analysed[s] = analyse(frame_list[s], f"frame {s}")
        tick()
    d = ref_emb.shape[1]
    frame_emb = np.full((len(slots), d), np.nan)
    frame_pose = np.full((len(slots), 3), np.nan)
    frame_cur = np.full((len(slots), CUR_DIM), np.nan)
    for row, s in enumerate(slots):
        face, _, cur = analysed[int(s)]
        if face is not None:
            e = np.asarray(face.embedding, np.float64).ravel()
            if e.shape[0] != d:
                raise InputError(f"frame embeddings have {e.shape[0]} dimensions but the references' have {d}; "
                                 "score frames and references with the same analyzer.")
            frame_emb[row] = e
            frame_pose[row] = (face.yaw, face.pitch, face.roll)
            if cur is not None:
                frame_cur[row] = cur

    sim = similarity_matrix(frame_emb, ref_emb)                  # [F, M'] NaN rows = no face
    ref_sim = similarity_matrix(ref_emb, ref_emb)                # [M', M']
    has_face = _rows_with_face(sim)
    if missing:
        cp = CopyPaste(np.full(len(slots), np.nan), np.full(len(slots), -1), np.full(len(slots), -1), None, None, [],
                       f"reference(s) {', '.join(map(str, missing))} show no face, so their views cannot be matched "
                       f"to the frames' poses; the copy-paste readings need every reference's pose")
    else:
        cp = copy_paste(sim, frame_pose, ref_pose, ref_sim, pose_weights)
    cur_sim = None
    if curricularface is not None:
        cur_sim = similarity_matrix(frame_cur, np.stack([ref_cur[i] for i in used]))
    per_frame_mean = per_frame_similarity(sim)

    per_frame = []
    for row, (s, fidx) in enumerate(zip(slots, idx)):
        face, padded, _ = analysed[int(s)]
        entry = {"frame": int(fidx), "face": bool(face is not None)}
        if face is not None:
            full = [None] * len(ref_list)
            for col, i in enumerate(used):
                full[i] = _num(sim[row, col])
            entry.update({"padded": bool(padded), "yaw": _num(face.yaw, 2), "pitch": _num(face.pitch, 2),
                          "roll": _num(face.roll, 2), "similarity": full,
                          "mean_similarity": _num(per_frame_mean[row]),
                          "pose_matched_reference": int(used[cp.matched[row]]) if cp.matched[row] >= 0 else None,
                          "nearest_reference": int(used[cp.nearest[row]]) if cp.nearest[row] >= 0 else None,
                          "closeness": _num(cp.closeness[row])})
            if cur_sim is not None:
                entry["similarity_cur"] = [None] * len(ref_list)
                for col, i in enumerate(used):
                    entry["similarity_cur"][i] = _num(cur_sim[row, col])
        per_frame.append(entry)

    notes = []
    sampled = len(slots)
    if sampled > total:
        notes.append(f"the video has {total} frames but {sampled} were sampled, so {sampled - len(unique_slots)} "
                     f"samples repeat a frame and count again (as OpenS2V-Eval does); set num_frames to {total} or "
                     f"0 to score every frame once.")
    if missing:
        notes.append(f"no face in reference(s) {', '.join(map(str, missing))}: they are left out of every number.")
    if not has_face.any():
        notes.append(f"no face in any of the {sampled} sampled frames: MvRC is undefined (null) and FaceSim is 0.0.")
    label = "Arc" if analyzer.name == "insightface" else analyzer.name
    yaw = frame_pose[has_face, 0]
    spread = identity_spread(sim)
    report = {
        "analyzer": analyzer.describe(),
        "metric_names": {"mvrc": f"MvRC-{label}", "facesim": f"FaceSim-{label}", "facesim_cur": "FaceSim-Cur"},
        "mvrc": _num(mvrc(sim)),
        "facesim": _num(facesim(sim)),
        "facesim_cur": _num(facesim_cur(cur_sim)) if cur_sim is not None else None,
        "protocol": opens2v_protocol(analyzer, int(num_frames or 0), len(used), curricularface is not None),
        "notes": notes,
        "face_fraction": _num(face_fraction(has_face)),
        "identity_std": _num(spread["std"]),
        "identity_spread": {k: _num(v) for k, v in spread.items()},
        "copy_paste": cp.to_dict([names[i] for i in used]),
        "yaw_range": [_num(yaw.min(), 2), _num(yaw.max(), 2)] if yaw.size else None,
        "total_frames": int(total),
        "sampled_frames": int(sampled),
        "frames_with_face": int(has_face.sum()),
        "frames_without_face": int((~has_face).sum()),
        "frames_without_face_indices": sorted({int(i) for i, h in zip(idx, has_face) if not h}),
        "references": ref_info,
        "references_used": [names[i] for i in used],
        "references_without_face": missing,
        "reference_similarity": [[_num(v) for v in row] for row in ref_sim],
        "settings": {"num_frames": int(num_frames or 0),
                     "retry": retry, "pose_weights": [float(w) for w in pose_weights],
                     "pose_bandwidth": POSE_BANDWIDTH, "near_copy": NEAR_COPY,
                     "curricularface": curricularface.describe() if curricularface is not None else None},
        "per_frame": per_frame,
    }
    return report


SUMMARY_FIELDS = ("video", "mvrc", "facesim", "facesim_cur", "face_fraction", "identity_std", "near_copy_rate",
                  "pose_following", "yaw_min", "yaw_max", "total_frames", "sampled_frames", "frames_with_face",
                  "references_used", "error")


def summary_row(report: dict | None, video: str, error: str = "") -> dict:
    """One CSV row (SUMMARY_FIELDS) for a report; a failed video gets its error and empty values."""
    row = {k: "" for k in SUMMARY_FIELDS}
    row["video"], row["error"] = video, error
    if report is None:
        return row
    yr = report.get("yaw_range") or [None, None]
    row.update({"mvrc": report["mvrc"], "facesim": report["facesim"], "facesim_cur": report["facesim_cur"],
                "face_fraction": report["face_fraction"], "identity_std": report["identity_std"],
                "near_copy_rate": report["copy_paste"]["near_copy_rate"],
                "pose_following": report["copy_paste"]["pose_following"], "yaw_min": yr[0], "yaw_max": yr[1],
                "total_frames": report["total_frames"], "sampled_frames": report["sampled_frames"],
                "frames_with_face": report["frames_with_face"],
                "references_used": len(report["references_used"])})
    return {k: ("" if v is None else v) for k, v in row.items()}
