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
  frames with a face, the identity spread over time, and **identity over time**: MvRC and FaceSim
  per time segment (per second at the video's fps, per N frames, e.g. a context window) and their
  drift from the first segment to the last.
- **copy-paste readings** (``copy_paste``): ``near_copy_rate`` and ``pose_following``, from the
  structure of the aligned face crops, not from identity embeddings.

``score_video`` runs the steps: sample the frames (``sample_frames``), read the references' faces
(``read_references``), read the frames' faces (``read_frames``), score identity, identity over time
(``identity_over_time``) and copy-paste, and write the report (``build_report``).

Conventions: images are RGB uint8 ``[H, W, 3]``; embeddings ``[D]``; frames without a face have
NaN rows. Numbers are numpy; torch is used for the face crops (kornia warps) and CurricularFace.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import copy_paste as CP
from .errors import InputError, NoReferenceFaceError
from .faces.base import Face, FaceAnalyzer, as_image_list, find_face
from .faces.curricularface import EMBEDDING_DIM as CUR_DIM
from .sampling import FACESIM_FRAMES, sample_frame_indices, segment_bounds, segment_of

OPENS2V_DET_SIZE = 320       # OpenS2V-Eval: FaceAnalysis.prepare(det_size=(320, 320))
DEFAULT_POSE_WEIGHTS = CP.DEFAULT_POSE_WEIGHTS
SEGMENT_SECONDS = 1.0        # identity over time: one segment per second when the fps is known

__all__ = ["FACESIM_FRAMES", "sample_frame_indices", "score_video", "summary_row", "SUMMARY_FIELDS"]


# ----------------------------------------------------------------------------- input checks
def check_analyzer(analyzer) -> FaceAnalyzer:
    """The analyzer, when it is a FaceAnalyzer; InputError otherwise."""
    if not isinstance(analyzer, FaceAnalyzer):
        raise InputError(f"analyzer must be a face analyzer (mv2id_core.faces.load_analyzer('dlib'), for example), "
                         f"got {type(analyzer).__name__}.")
    return analyzer


def check_timing(fps, segment_seconds, segment_frames) -> tuple[float | None, float, int]:
    """(fps or None when unknown, seconds per segment, frames per segment), checked. 0 turns a setting off."""
    def number(v, name):
        try:
            v = float(0 if v is None else v)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number, got {v!r}.") from None
        if not math.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a finite number >= 0 (0 = {'unknown' if name == 'fps' else 'none'}), "
                             f"got {v}.")
        return v
    fps, seconds, frames = number(fps, "fps"), number(segment_seconds, "segment_seconds"), \
        number(segment_frames, "segment_frames")
    if frames != int(frames):
        raise InputError(f"segment_frames must be a whole number of frames, got {frames}.")
    return (fps or None), seconds, int(frames)


# ----------------------------------------------------------------------------- pure functions
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


def _num(v, nd: int = 6):
    """float -> rounded float, NaN/None -> None (JSON null)."""
    if v is None:
        return None
    v = float(v)
    return None if np.isnan(v) else round(v, nd)


# ----------------------------------------------------------------------------- identity over time
def _segment_scores(sim: np.ndarray, cur_sim: np.ndarray | None) -> dict:
    """MvRC, FaceSim (and FaceSim-Cur) of the sampled frames of one segment; None where no frame has a face."""
    has = _rows_with_face(sim)
    out = {"sampled": int(len(sim)), "with_face": int(has.sum()),
           "mvrc": _num(mvrc(sim)) if has.any() else None, "facesim": _num(facesim(sim)) if has.any() else None}
    if cur_sim is not None:
        out["facesim_cur"] = _num(facesim_cur(cur_sim)) if has.any() else None
    return out


def segmentation(sim: np.ndarray, cur_sim: np.ndarray | None, indices: np.ndarray, total: int, length: float,
                 unit: str, amount: float, fps: float | None) -> dict:
    """Scores per segment of `length` frames (sampling.segment_bounds) and the drift last - first.

    sim [F, M], cur_sim [F, M] or None, indices [F] (the sampled frames' indices in the video).
    unit/amount say what a segment is ("seconds", 1.0 or "frames", 81); fps gives times when known.
    """
    bounds = segment_bounds(total, length)
    where = segment_of(indices, bounds)
    segments = []
    for i, (first, end) in enumerate(bounds):
        rows = where == i
        seg = {"first_frame": first, "last_frame": end - 1}
        if fps:
            seg.update({"start_s": round(first / fps, 4), "end_s": round(end / fps, 4)})
        seg.update(_segment_scores(sim[rows], cur_sim[rows] if cur_sim is not None else None))
        segments.append(seg)
    keys = ("mvrc", "facesim") + (("facesim_cur",) if cur_sim is not None else ())
    scored = [s for s in segments if s["with_face"]]
    drift = {k: (_num(scored[-1][k] - scored[0][k]) if len(scored) > 1 else None) for k in keys}
    lowest = min(range(len(segments)), key=lambda i: segments[i]["facesim"]
                 if segments[i]["facesim"] is not None else math.inf) if scored else None
    return {"unit": unit, "length": amount, "frames_per_segment": round(float(length), 4), "segments": segments,
            "drift": drift, "lowest_facesim_segment": lowest}


def identity_over_time(sim: np.ndarray, cur_sim: np.ndarray | None, indices: np.ndarray, total: int,
                       fps: float | None, segment_seconds: float, segment_frames: int) -> tuple[list[dict], list[str]]:
    """The segmentations the settings ask for (per `segment_seconds` at `fps`, per `segment_frames`) and notes
    (e.g. why there is no per-second one). Returns (segmentations, notes)."""
    out, notes = [], []
    if segment_seconds:
        if fps:
            out.append(segmentation(sim, cur_sim, indices, total, segment_seconds * fps, "seconds", segment_seconds,
                                    fps))
        else:
            notes.append(f"identity over time per {segment_seconds:g} s needs the video's frame rate, which is not "
                         f"known here: give the fps (mv2id-eval reads it from the file; in ComfyUI connect Get Video "
                         f"Components' fps), or segments of a number of frames (segment_frames).")
    if segment_frames:
        out.append(segmentation(sim, cur_sim, indices, total, float(segment_frames), "frames", segment_frames, fps))
    for s in out:
        thin = [i for i, seg in enumerate(s["segments"]) if seg["sampled"] < 3]
        if thin:
            notes.append(f"identity over time per {s['length']:g} {s['unit']}: {len(thin)} of {len(s['segments'])} "
                         f"segments hold fewer than 3 sampled frames; sample more frames (num_frames, 0 = every "
                         f"frame) for steadier segment scores.")
    return out, notes


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
    if not getattr(analyzer, "retry", True):
        differences.append("the grey-padding retry off (OpenS2V retries once)")
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


# ----------------------------------------------------------------------------- step 1: the frames
@dataclass
class Sampling:
    """images: the distinct frames to analyse; indices [F]: each sample's frame index in the video;
    slots [F]: each sample's position in `images` (repeated indices share one image); total: video length."""
    images: list[np.ndarray]
    indices: np.ndarray
    slots: np.ndarray
    total: int

    def frame_of(self, n: int) -> int:
        """The video frame index of images[n]."""
        return int(self.indices[int(np.argmax(self.slots == n))])


def sample_frames(frames, num_frames: int | None, frame_indices=None, total_frames: int | None = None) -> Sampling:
    """The sampled frames of a video [T, H, W, 3] (or a list), OpenS2V-style; or, with `frame_indices` [F],
    frames that are already the samples (e.g. decoded by video_io.read_sampled_frames) of a video of
    `total_frames` frames."""
    frame_list = as_image_list(frames, "frames")
    if not frame_list:
        raise InputError("the video has no frames.")
    if frame_indices is None:
        idx = sample_frame_indices(len(frame_list), num_frames)
        used = sorted(set(int(i) for i in idx))
        pos = {i: n for n, i in enumerate(used)}
        return Sampling([frame_list[i] for i in used], idx, np.array([pos[int(i)] for i in idx]), len(frame_list))
    idx = np.asarray(frame_indices, dtype=np.int64)
    if idx.shape != (len(frame_list),):
        raise InputError(f"frame_indices has {idx.size} entries for {len(frame_list)} frames.")
    first: dict[int, int] = {}
    for p, i in enumerate(idx):
        first.setdefault(int(i), p)
    used = sorted(set(first.values()))
    pos = {p: n for n, p in enumerate(used)}
    total = int(total_frames) if total_frames is not None else int(idx.max()) + 1
    return Sampling([frame_list[p] for p in used], idx, np.array([pos[first[int(i)]] for i in idx]), total)


# ----------------------------------------------------------------------------- steps 2-3: the faces
@dataclass
class Reading:
    """What scoring keeps of one analysed image (face None: no face found)."""
    face: Face | None = None
    padded: bool = False
    cur: np.ndarray | None = None                 # CurricularFace embedding [512]
    structure: CP.StructureCrop | None = None     # the aligned crop the copy-paste readings compare


def read_face(analyzer: FaceAnalyzer, image: np.ndarray, what: str, curricularface=None) -> Reading:
    """The face find_face picks in one image, with its embedding, CurricularFace embedding and structure
    (both from the unpadded image, as OpenS2V crops FaceSim-Cur's faces)."""
    face, padded = find_face(analyzer, image, embed=True, what=what)
    if face is None:
        return Reading()
    if face.embedding is None:
        raise InputError(f"the face analyzer {analyzer.describe()!r} returned a face without an identity "
                         "embedding; use a backend with a recognition model (dlib or insightface).")
    cur = curricularface.embed(image, face.kps) if curricularface is not None else None
    return Reading(face, padded, cur, CP.structure_crop(image, face.kps))


def _pose(face: Face) -> tuple[float, float, float]:
    return float(face.yaw), float(face.pitch), float(face.roll)


@dataclass
class References:
    names: list[str]
    readings: list[Reading]
    used: list[int]                    # references with a face, in order
    emb: np.ndarray                    # [M', D]
    pose: np.ndarray                   # [M', 3]

    @property
    def missing(self) -> list[str]:
        return [n for i, n in enumerate(self.names) if i not in self.used]


def read_references(images: list[np.ndarray], names: list[str], analyzer: FaceAnalyzer, curricularface,
                    tick: Callable[[], None]) -> References:
    """Every reference's face; NoReferenceFaceError when none shows one."""
    readings = []
    for i, (img, name) in enumerate(zip(images, names)):
        readings.append(read_face(analyzer, img, f"reference {i} ({name})", curricularface))
        tick()
    used = [i for i, r in enumerate(readings) if r.face is not None]
    if not used:
        raise NoReferenceFaceError(
            f"no face found in any of the {len(images)} reference images ({', '.join(map(str, names))})"
            + (", even after the grey-padding retry" if analyzer.retry else "")
            + f"; use clear, reasonably large face photos as references (analyzer: {analyzer.describe()}).")
    emb = np.stack([np.asarray(readings[i].face.embedding, np.float64).ravel() for i in used])
    return References(names, readings, used, emb, np.array([_pose(readings[i].face) for i in used], np.float64))


@dataclass
class Frames:
    readings: list[Reading]            # one per sample (repeated frames share a reading)
    emb: np.ndarray                    # [F, D], NaN rows = no face
    pose: np.ndarray                   # [F, 3]
    cur: np.ndarray                    # [F, 512], NaN without a CurricularFace model

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.emb).any(axis=1)


def read_frames(sampling: Sampling, analyzer: FaceAnalyzer, curricularface, dim: int,
                tick: Callable[[], None]) -> Frames:
    """Every distinct sampled frame analysed once; rows per sample."""
    distinct = []
    for n, img in enumerate(sampling.images):
        distinct.append(read_face(analyzer, img, f"frame {sampling.frame_of(n)}", curricularface))
        tick()
    readings = [distinct[int(s)] for s in sampling.slots]
    f = len(readings)
    emb, pose, cur = np.full((f, dim), np.nan), np.full((f, 3), np.nan), np.full((f, CUR_DIM), np.nan)
    for row, r in enumerate(readings):
        if r.face is None:
            continue
        e = np.asarray(r.face.embedding, np.float64).ravel()
        if e.shape[0] != dim:
            raise InputError(f"frame embeddings have {e.shape[0]} dimensions but the references' have {dim}; "
                             "score frames and references with the same analyzer.")
        emb[row], pose[row] = e, _pose(r.face)
        if r.cur is not None:
            cur[row] = r.cur
    return Frames(readings, emb, pose, cur)


# ----------------------------------------------------------------------------- step 4: copy-paste
def copy_paste_readings(frames: Frames, refs: References, pose_weights) -> tuple[CP.CopyPaste, np.ndarray]:
    """The copy-paste readings and the structure similarity [F, M'] of each frame to each used reference."""
    ref_structs = [refs.readings[i].structure for i in refs.used]
    structure = CP.structure_matrix([r.structure if r.face is not None else None for r in frames.readings],
                                    ref_structs)
    if refs.missing:
        return CP.unreadable(len(frames.readings), len(refs.used), (
            f"reference(s) {', '.join(map(str, refs.missing))} show no face, so their views cannot be matched to "
            f"the frames' poses; the copy-paste readings need every reference's pose")), structure
    return CP.copy_paste(CP.closeness(structure), frames.pose, refs.pose, pose_weights), structure


# ----------------------------------------------------------------------------- step 5: the report
def per_frame_entries(sampling: Sampling, frames: Frames, refs: References, sim, cur_sim, structure,
                      cp: CP.CopyPaste) -> list[dict]:
    """One entry per sample: face, pose, similarities (per reference, None for references without a face)."""
    m = len(refs.names)

    def full(row):
        out = [None] * m
        for col, i in enumerate(refs.used):
            out[i] = _num(row[col])
        return out
    mean = per_frame_similarity(sim)
    entries = []
    for row, (fidx, r) in enumerate(zip(sampling.indices, frames.readings)):
        e = {"frame": int(fidx), "face": r.face is not None}
        if r.face is not None:
            e.update({"padded": bool(r.padded), "yaw": _num(r.face.yaw, 2), "pitch": _num(r.face.pitch, 2),
                      "roll": _num(r.face.roll, 2), "similarity": full(sim[row]), "mean_similarity": _num(mean[row]),
                      "structure_similarity": full(structure[row]),
                      "pose_matched_reference": int(refs.used[cp.matched[row]]) if cp.matched[row] >= 0 else None,
                      "nearest_reference": int(refs.used[cp.nearest[row]]) if cp.nearest[row] >= 0 else None,
                      "closeness": _num(np.nanmax(cp.closeness[row])) if cp.nearest[row] >= 0 else None})
            if cur_sim is not None:
                e["similarity_cur"] = full(cur_sim[row])
        entries.append(e)
    return entries


def report_notes(sampling: Sampling, refs: References, has_face: np.ndarray, ref_structure: np.ndarray) -> list[str]:
    """What a reader of the numbers should know about this run."""
    notes = []
    sampled, distinct = len(sampling.indices), len(sampling.images)
    if sampled > sampling.total:
        notes.append(f"the video has {sampling.total} frames but {sampled} were sampled, so {sampled - distinct} "
                     f"samples repeat a frame and count again (as OpenS2V-Eval does); set num_frames to "
                     f"{sampling.total} or 0 to score every frame once.")
    if refs.missing:
        notes.append(f"no face in reference(s) {', '.join(map(str, refs.missing))}: they are left out of every number.")
    if not has_face.any():
        notes.append(f"no face in any of the {sampled} sampled frames: MvRC is undefined (null) and FaceSim is 0.0.")
    twins = [(refs.names[refs.used[a]], refs.names[refs.used[b]]) for a in range(len(refs.used))
             for b in range(a + 1, len(refs.used)) if CP.closeness(ref_structure[a, b]) >= CP.NEAR_COPY]
    if twins:
        notes.append("references " + ", ".join(f"{a} and {b}" for a, b in twins) + " are near-copies of each other: "
                     "a copy of one reads as a copy of both.")
    return notes


def build_report(analyzer, sampling: Sampling, refs: References, frames: Frames, sim, cur_sim, structure,
                 cp: CP.CopyPaste, over_time: list[dict], notes: list[str], settings: dict) -> dict:
    """The JSON-ready report (docs/metrics.md, "The report")."""
    has_face = frames.has_face
    ref_structure = CP.structure_matrix([refs.readings[i].structure for i in refs.used],
                                        [refs.readings[i].structure for i in refs.used])
    label = "Arc" if analyzer.name == "insightface" else analyzer.name
    yaw = frames.pose[has_face, 0]
    spread = identity_spread(sim)
    ref_info = []
    for i, (r, name) in enumerate(zip(refs.readings, refs.names)):
        info = {"index": i, "name": str(name), "face": r.face is not None, "padded": bool(r.padded)}
        if r.face is not None:
            info.update({"yaw": _num(r.face.yaw, 2), "pitch": _num(r.face.pitch, 2), "roll": _num(r.face.roll, 2),
                         "bbox": [round(float(v), 1) for v in r.face.bbox]})
        ref_info.append(info)
    return {
        "analyzer": analyzer.describe(),
        "metric_names": {"mvrc": f"MvRC-{label}", "facesim": f"FaceSim-{label}", "facesim_cur": "FaceSim-Cur"},
        "mvrc": _num(mvrc(sim)),
        "facesim": _num(facesim(sim)),
        "facesim_cur": _num(facesim_cur(cur_sim)) if cur_sim is not None else None,
        "protocol": opens2v_protocol(analyzer, settings["num_frames"], len(refs.used), cur_sim is not None),
        "notes": report_notes(sampling, refs, has_face, ref_structure) + notes,
        "face_fraction": _num(face_fraction(has_face)),
        "identity_std": _num(spread["std"]),
        "identity_spread": {k: _num(v) for k, v in spread.items()},
        "over_time": over_time,
        "copy_paste": cp.to_dict([refs.names[i] for i in refs.used]),
        "yaw_range": [_num(yaw.min(), 2), _num(yaw.max(), 2)] if yaw.size else None,
        "total_frames": int(sampling.total),
        "sampled_frames": int(len(sampling.indices)),
        "frames_with_face": int(has_face.sum()),
        "frames_without_face": int((~has_face).sum()),
        "frames_without_face_indices": sorted({int(i) for i, h in zip(sampling.indices, has_face) if not h}),
        "references": ref_info,
        "references_used": [refs.names[i] for i in refs.used],
        "references_without_face": refs.missing,
        "reference_similarity": [[_num(v) for v in row] for row in similarity_matrix(refs.emb, refs.emb)],
        "reference_structure_similarity": [[_num(v) for v in row] for row in ref_structure],
        "settings": settings,
        "per_frame": per_frame_entries(sampling, frames, refs, sim, cur_sim, structure, cp),
    }


# ----------------------------------------------------------------------------- the driver
def score_video(frames, references, analyzer: FaceAnalyzer, *, num_frames: int | None = FACESIM_FRAMES,
                frame_indices: Sequence[int] | None = None, total_frames: int | None = None,
                reference_names: Sequence[str] | None = None, pose_weights: Sequence[float] = DEFAULT_POSE_WEIGHTS,
                curricularface=None, fps: float | None = None, segment_seconds: float = SEGMENT_SECONDS,
                segment_frames: int = 0, progress: Callable[[int, int], None] | None = None) -> dict:
    """Score one generated video against M reference images; returns a JSON-ready report.

    frames: the video, [T, H, W, 3] array or a sequence of T images (uint8, or float 0..1).
        The frames are sampled OpenS2V-style (`num_frames`, default 32; None/0 = all) unless
        `frame_indices` is given, in which case `frames` are already the sampled frames,
        `frame_indices` [F] their indices in a video of `total_frames` frames and `num_frames` says
        how they were sampled (for the report).
    references: M >= 1 reference images of the identity ([M, H, W, 3] or a list; sizes may differ).
    analyzer: any FaceAnalyzer (dlib, insightface, ...); the same one embeds frames and references, and its
        settings (e.g. `retry`, OpenS2V's grey-padding retry) are the run's (faces.load_analyzer).
    curricularface: an optional faces.curricularface.CurricularFace for FaceSim-Cur.
    fps: the video's frame rate (None/0 = unknown); segment_seconds / segment_frames: identity over time per
        that many seconds (needs fps) / frames (0 = none).
    progress(done, total) is called after every analysed image (references, then unique frames).
    Raises InputError for bad input, NoReferenceFaceError when no reference shows a face.
    """
    check_analyzer(analyzer)
    fps, segment_seconds, segment_frames = check_timing(fps, segment_seconds, segment_frames)
    ref_images = as_image_list(references, "references")
    if not ref_images:
        raise InputError("no reference images: give 1 or more images of the identity.")
    names = [str(n) for n in reference_names] if reference_names is not None else \
        [f"ref{i}" for i in range(len(ref_images))]
    if len(names) != len(ref_images):
        raise InputError(f"{len(names)} reference names for {len(ref_images)} references.")
    sampling = sample_frames(frames, num_frames, frame_indices, total_frames)
    steps, done = len(ref_images) + len(sampling.images), [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], steps)

    refs = read_references(ref_images, names, analyzer, curricularface, tick)
    frames_read = read_frames(sampling, analyzer, curricularface, refs.emb.shape[1], tick)
    sim = similarity_matrix(frames_read.emb, refs.emb)                       # [F, M'] NaN rows = no face
    cur_sim = None
    if curricularface is not None:
        cur_sim = similarity_matrix(frames_read.cur, np.stack([refs.readings[i].cur for i in refs.used]))
    over_time, time_notes = identity_over_time(sim, cur_sim, sampling.indices, sampling.total, fps,
                                               segment_seconds, segment_frames)
    cp, structure = copy_paste_readings(frames_read, refs, pose_weights)
    settings = {"num_frames": int(num_frames or 0), "retry": bool(analyzer.retry),
                "pose_weights": [float(w) for w in pose_weights], "pose_bandwidth": CP.POSE_BANDWIDTH,
                "near_copy": CP.NEAR_COPY, "copy_distance": CP.COPY_DISTANCE, "copy_steepness": CP.COPY_STEEPNESS,
                "fps": fps, "segment_seconds": segment_seconds, "segment_frames": segment_frames,
                "curricularface": curricularface.describe() if curricularface is not None else None}
    return build_report(analyzer, sampling, refs, frames_read, sim, cur_sim, structure, cp, over_time, time_notes,
                        settings)


SUMMARY_FIELDS = ("video", "mvrc", "facesim", "facesim_cur", "face_fraction", "identity_std", "near_copy_rate",
                  "pose_following", "mvrc_drift", "facesim_drift", "drift_per", "yaw_min", "yaw_max", "total_frames",
                  "sampled_frames", "frames_with_face", "references_used", "error")


def summary_row(report: dict | None, video: str, error: str = "") -> dict:
    """One CSV row (SUMMARY_FIELDS) for a report; a failed video gets its error and empty values. The drift is
    the report's first segmentation's (per second when the fps is known)."""
    row = {k: "" for k in SUMMARY_FIELDS}
    row["video"], row["error"] = video, error
    if report is None:
        return row
    yr = report.get("yaw_range") or [None, None]
    first = (report.get("over_time") or [None])[0]
    row.update({"mvrc": report["mvrc"], "facesim": report["facesim"], "facesim_cur": report["facesim_cur"],
                "face_fraction": report["face_fraction"], "identity_std": report["identity_std"],
                "near_copy_rate": report["copy_paste"]["near_copy_rate"],
                "pose_following": report["copy_paste"]["pose_following"], "yaw_min": yr[0], "yaw_max": yr[1],
                "total_frames": report["total_frames"], "sampled_frames": report["sampled_frames"],
                "frames_with_face": report["frames_with_face"],
                "references_used": len(report["references_used"])})
    if first is not None:
        row.update({"mvrc_drift": first["drift"]["mvrc"], "facesim_drift": first["drift"]["facesim"],
                    "drift_per": f"{first['length']:g} {first['unit']}"})
    return {k: ("" if v is None else v) for k, v in row.items()}
