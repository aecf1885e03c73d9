"""mv2id-data: build an in-paired training manifest from a folder of videos.

    mv2id-data VIDEOS --out DATA [--backend dlib] [--frames 81 --train-fps 16] [--refs 3]
               [--min-yaw-span 40] [--shard i/n]

Per video: sample frames at --sample-fps, detect the faces, track the main face (the largest
face of the first frames, then the same identity by embedding), estimate head pose per frame,
drop the video when other faces compete with it, keep it when the main face's yaw span passes
--min-yaw-span, cut up to --max-clips training clips of --frames (4n+1) frames at --train-fps,
and for each clip pick --refs reference frames from OUTSIDE the clip that spread over yaw
(mv2id_core.views.select_views), cropped as Face Views crops (crop_view: head and shoulders,
upright) and saved as PNG under DATA/refs/.

Writes DATA/manifest.jsonl (one row per clip: video, frame range and indices, reference crops,
poses, caption slot) and DATA/summary.json (videos and clips kept or dropped, and why). A run
is resumable (videos already processed are skipped: DATA/state-<shard>.jsonl); --shard i/n
takes every n-th video starting at i, so several machines can split a collection into the same
DATA folder (each writes its own manifest-/summary-/state- files; the merged manifest.jsonl and
summary.json are rewritten from all shard files at the end of every run).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from mv2id_core.cli import args as A
from mv2id_core.errors import Mv2IDError, UsageError
from mv2id_core.video_io import VIDEO_EXTENSIONS

from . import progress_bar
from .files import append_jsonl, read_jsonl, write_json, write_jsonl

PROG = "mv2id-data"

# reasons a video or clip is dropped (keys of the summary)
NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
SMALL_YAW_SPAN = "small_yaw_span"
TOO_SHORT = "too_short"
FEW_REFERENCES = "few_reference_frames"
FACE_MISSING = "main_face_missing_in_clip"
UNREADABLE = "unreadable"


def video_info(path) -> tuple[int, float]:
    """(frame count, frames per second) of a video file."""
    import av
    from mv2id_core.video_io import count_frames
    frames = count_frames(path)             # first: a MediaError that says what is wrong with the file
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate or Fraction(16)
    return frames, float(rate)


def clip_indices(start: int, frames: int, fps: float, train_fps: float) -> list[int]:
    """Source frame indices of a clip of `frames` frames at train_fps starting at source frame `start`."""
    step = fps / train_fps
    return [int(round(start + k * step)) for k in range(frames)]


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


class MainFaceTracker:
    """Online tracking of one identity through the analysed frames.

    The main face starts as the largest face of the first frame that has one; in later frames it
    is the face most similar in identity (cosine of embeddings >= same_identity; the largest face
    when a backend gives no embeddings). A frame is crowded when another face is at least
    `competing` times the main face's size.
    """

    def __init__(self, same_identity: float = 0.5, competing: float = 0.6):
        self.same_identity, self.competing = same_identity, competing
        self.anchor = None

    def update(self, faces: list):
        """-> (main face or None, crowded)."""
        if not faces:
            return None, False
        if self.anchor is None:
            pick = max(faces, key=lambda f: f.area)
        elif self.anchor.embedding is not None and all(f.embedding is not None for f in faces):
            sims = [float(_unit(f.embedding) @ _unit(self.anchor.embedding)) for f in faces]
            k = int(np.argmax(sims))
            pick = faces[k] if sims[k] >= self.same_identity else None
        else:
            pick = max(faces, key=lambda f: f.area)
        if pick is None:
            return None, False
        self.anchor = pick
        return pick, any(f is not pick and f.size >= self.competing * pick.size for f in faces)


def iter_frames(path, wanted):
    """Decode a video once, yielding (index, RGB uint8 frame) for the indices in `wanted` only.

    Always decodes to the end: closing a frame-threaded decoder in the middle of a stream can
    deadlock in PyAV/FFmpeg (seen here), so there is no early exit.
    """
    import av
    wanted = set(int(i) for i in wanted)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for n, frame in enumerate(c.decode(stream)):
            if n in wanted:
                yield n, frame.to_ndarray(format="rgb24")


@dataclass
class Track:
    """The main face through the analysed frames of one video, one entry per sampled frame."""
    frames: list = field(default_factory=list)     # source frame index
    faces: list = field(default_factory=list)      # the main face, or None
    crowded: list = field(default_factory=list)    # another face competes with it
    quality: list = field(default_factory=list)    # views.face_quality of the main face (0 without one)

    def with_face(self) -> list[int]:
        return [i for i, f in enumerate(self.faces) if f is not None]

    def pose(self, i: int) -> list:
        f = self.faces[i]
        return [round(float(f.yaw), 2), round(float(f.pitch), 2), round(float(f.roll), 2)] if f is not None else [None] * 3


def track_main_face(path: Path, analyzer, a, total: int, fps: float) -> Track:
    """Analyse every --sample-fps frame as it is decoded (frames are dropped at once: bounded memory)."""
    from mv2id_core.views import face_quality, face_sharpness
    step = max(1, int(round(fps / a.sample_fps)))
    tracker = MainFaceTracker(a.same_identity, a.competing_face)
    track = Track()
    for n, frame in iter_frames(path, range(0, total, step)):
        face, busy = tracker.update(analyzer.analyze(frame, embed=True))
        track.frames.append(n), track.faces.append(face), track.crowded.append(busy)
        track.quality.append(face_quality(face, face_sharpness(frame, face)) if face is not None else 0.0)
    return track


def plan_clips(path: Path, a, track: Track, total: int, fps: float, span_src: int, stats: Counter) -> list[tuple]:
    """Clips to cut: (clip id, start, end, sampled positions inside, sampled positions of its references),
    each with its references picked OUTSIDE the clip to spread over yaw; dropped clips are counted in stats."""
    from mv2id_core.errors import NoFaceError
    from mv2id_core.views import select_views
    have = track.with_face()
    stride = max(span_src, int(round(a.clip_stride * fps))) if a.clip_stride else span_src
    planned = []
    for start in range(0, total - span_src + 1, stride):
        if len(planned) >= a.max_clips:
            break
        end = start + span_src                         # source frames [start, end) are the clip
        inside = [i for i, s in enumerate(track.frames) if start <= s < end]
        present = [i for i in inside if track.faces[i] is not None and not track.crowded[i]]
        if not inside or len(present) < a.min_presence * len(inside):
            stats[FACE_MISSING] += 1
            continue
        outside = [i for i in have if not (start <= track.frames[i] < end) and not track.crowded[i]]
        if len(outside) < a.refs:
            stats[FEW_REFERENCES] += 1
            continue
        try:
            pick = select_views([track.faces[i].yaw for i in outside], [track.faces[i].pitch for i in outside],
                                [track.quality[i] for i in outside], a.refs)
        except NoFaceError:
            stats[FEW_REFERENCES] += 1
            continue
        planned.append((f"{path.stem}__{start:06d}", start, end, inside, [outside[j] for j in pick]))
    return planned


def save_reference(frame, face, a, path: Path, background_remover=None) -> None:
    """The reference crop of one frame as Face Views crops it (on white with a background remover)."""
    from PIL import Image
    from mv2id_core.views import crop_view
    crop, _ = crop_view(frame, face, size=tuple(a.ref_size), margin=a.margin)
    if background_remover is not None:
        from .background import on_white
        crop = on_white(background_remover, crop)
    Image.fromarray(crop).save(path)


def process_video(path: Path, analyzer, a, refs_dir: Path, background_remover=None) -> tuple[list[dict], Counter, dict]:
    """Analyse one video -> (manifest rows, Counter of clip outcomes, video record).

    With a background remover (see main), every reference crop is put on white as inference
    references are.

    Memory stays bounded on long videos: frames are analysed as they are decoded and dropped;
    the few frames that become references are decoded again at the end.
    """
    stats = Counter()
    total, fps = video_info(path)
    span_src = int(np.ceil((a.frames - 1) * fps / a.train_fps)) + 1
    rec = {"video": str(path), "frames": total, "fps": fps}
    if total < span_src:
        return [], stats, {**rec, "status": TOO_SHORT}
    track = track_main_face(path, analyzer, a, total, fps)
    have = track.with_face()
    if not have:
        return [], stats, {**rec, "status": NO_FACE}
    crowded_frac = sum(track.crowded) / len(have)
    if crowded_frac > a.max_crowded:
        return [], stats, {**rec, "status": SEVERAL_FACES, "crowded_fraction": round(crowded_frac, 3)}
    yaws = np.array([track.faces[i].yaw for i in have])
    span = float(np.percentile(yaws, 95) - np.percentile(yaws, 5)) if len(yaws) > 1 else 0.0
    rec.update({"yaw_span": round(span, 2), "face_frames": len(have), "sampled_frames": len(track.frames)})
    if span < a.min_yaw_span:
        return [], stats, {**rec, "status": SMALL_YAW_SPAN}

    planned = plan_clips(path, a, track, total, fps, span_src, stats)
    needed = sorted({track.frames[i] for *_, refs in planned for i in refs})
    frames = dict(iter_frames(path, needed)) if needed else {}
    rows = []
    for cid, start, end, inside, refs in planned:
        names = [f"{cid}_{k}.png" for k in range(len(refs))]
        for name, i in zip(names, refs):
            save_reference(frames[track.frames[i]], track.faces[i], a, refs_dir / name, background_remover)
        rows.append({
            "id": cid, "video": str(path.resolve()), "fps": fps, "train_fps": a.train_fps,
            "start": start, "end": end, "num_frames": a.frames,
            "frame_indices": clip_indices(start, a.frames, fps, a.train_fps),
            "references": [f"refs/{name}" for name in names],
            "reference_frames": [int(track.frames[i]) for i in refs],
            "reference_poses": [track.pose(i) for i in refs],
            "clip_poses": [[int(track.frames[i])] + track.pose(i) for i in inside],
            "yaw_span": round(span, 2), "caption": "",
        })
        stats["clips_kept"] += 1
    return rows, stats, {**rec, "status": "kept" if rows else "no_clip", "clips": len(rows)}


# settings that decide what a run writes: recorded in DATA/settings.json by the first run, and a
# later run into the same folder must use the same ones (else old and new rows would mix)
SETTINGS = ("backend", "frames", "train_fps", "sample_fps", "refs", "ref_size", "margin", "min_yaw_span",
            "competing_face", "max_crowded", "same_identity", "min_presence", "max_clips", "clip_stride",
            "bg_model")


def build_parser():
    from mv2id_core.faces import backend_names
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=A.HelpFormatter)
    ap.add_argument("videos", type=A.existing_dir, help="folder of videos (searched recursively)")
    ap.add_argument("--out", required=True, type=A.out_dir, help="data folder (manifest, summary, reference crops)")
    ap.add_argument("--backend", default="dlib", choices=backend_names(),
                    help="face backend: dlib (offline) or insightface")
    ap.add_argument("--frames", type=A.frame_count, default=81, help="frames per training clip (4n+1)")
    ap.add_argument("--train-fps", type=A.positive_float, default=16.0, help="frame rate of the training clips")
    ap.add_argument("--sample-fps", type=A.positive_float, default=2.0,
                    help="frames per second analysed for faces and pose")
    ap.add_argument("--refs", type=A.positive_int, default=3, help="reference frames per clip (K)")
    ap.add_argument("--ref-size", type=A.size, default=(512, 512), help="reference crop size WxH")
    ap.add_argument("--margin", type=A.nonnegative_float, default=1.0, help="crop context in face sizes (as Face Views)")
    ap.add_argument("--bg-model", type=A.existing_file, default=None,
                    help="background-removal model (e.g. models/background_removal/birefnet.safetensors), loaded "
                         "by ComfyUI's own loader: reference crops get a white background as at inference. "
                         "Without it the crops keep their background")
    ap.add_argument("--min-yaw-span", type=A.nonnegative_float, default=40.0,
                    help="keep videos whose main-face yaw spans at least this (degrees, 5th-95th percentile)")
    ap.add_argument("--competing-face", type=A.positive_float, default=0.6,
                    help="another face at least this fraction of the main face's size competes with it")
    ap.add_argument("--max-crowded", type=A.fraction, default=0.2,
                    help="drop a video when more than this fraction of its face frames have a competing face")
    ap.add_argument("--same-identity", type=A.number(float, -1.0, 1.0), default=0.5,
                    help="embedding cosine for the same person")
    ap.add_argument("--min-presence", type=A.fraction, default=0.8,
                    help="the main face must be in this fraction of a clip's analysed frames")
    ap.add_argument("--max-clips", type=A.positive_int, default=4, help="clips per video at most (non-overlapping)")
    ap.add_argument("--clip-stride", type=A.nonnegative_float, default=0.0,
                    help="seconds between clip starts (0: back to back)")
    ap.add_argument("--shard", type=A.shard, default=(0, 1), help="i/n: this machine's share of the videos")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def _latest(states: list[dict]) -> dict[str, dict]:
    """video -> its newest state record (a retried video has several)."""
    return {s["video"]: s for s in states}


def summarise(out: Path) -> dict:
    """Merge every shard's files into manifest.jsonl and summary.json."""
    states = list(_latest([r for p in sorted(out.glob("state-*.jsonl")) for r in read_jsonl(p)]).values())
    rows = [r for p in sorted(out.glob("manifest-*.jsonl")) for r in read_jsonl(p)]
    done = {s["video"] for s in states}
    rows = [r for r in rows if r["video"] in done]
    videos = Counter(s["status"] for s in states)
    clips = Counter()
    for s in states:
        for k, v in s.get("clip_outcomes", {}).items():
            clips[k] += v
    summary = {"videos": len(states), "videos_by_status": dict(sorted(videos.items())),
               "clips_kept": len(rows), "clips_dropped": {k: v for k, v in sorted(clips.items()) if k != "clips_kept"},
               "dropped_videos": {k: v for k, v in sorted(videos.items()) if k not in ("kept",)},
               "unreadable": {s["video"]: s.get("error", "") for s in states if s["status"] == UNREADABLE},
               "background_removal": _settings_note(out)}
    write_jsonl(out / "manifest.jsonl", rows)
    write_json(out / "summary.json", summary)
    return summary


def _settings_note(out: Path) -> str:
    p = out / "settings.json"
    model = json.loads(p.read_text()).get("bg_model") if p.is_file() else None
    if model:
        how = "" if model.endswith("(given by the caller)") else " through ComfyUI's background-removal loader"
        return f"reference crops on white: background removed with {model}{how}"
    return "off: reference crops keep their background (give --bg-model to remove it, as inference references are on white)"


def check_settings(out: Path, a, background_remover=None) -> None:
    """Record this run's settings in OUT/settings.json, or refuse when an earlier run used others."""
    current = {k: getattr(a, k) for k in SETTINGS}
    current["bg_model"] = (a.bg_model.name if a.bg_model else None) if background_remover is None else \
        f"{type(background_remover).__name__} (given by the caller)"
    current["shards"] = a.shard[1]
    path = out / "settings.json"
    started = any(read_jsonl(p) for p in out.glob("state-*.jsonl"))
    if path.is_file() and started:
        changes = A.settings_changes(json.loads(path.read_text()), current)
        if changes:
            raise UsageError(f"{out} holds data prepared with other settings ({'; '.join(changes)}); rows made "
                             f"with different settings must not mix: use a new --out, or delete {out} to start over")
    else:
        write_json(path, current)


def list_videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def main(argv=None, background_remover=None) -> int:
    """mv2id-data. `background_remover` (an object with encode_image(image [B, H, W, 3] float 0..1)
    -> mask [B, H, W], 1 = foreground, like ComfyUI's background-removal model) replaces the model
    --bg-model would load: the seam for tests and for callers with their own segmentation."""
    a = build_parser().parse_args(argv)
    try:
        return run(a, background_remover)
    except (Mv2IDError, OSError) as e:
        print(A.error_line(PROG, e), file=sys.stderr)
        return 2


def run(a, background_remover=None) -> int:
    from mv2id_core.faces import load_analyzer
    out, src = a.out, a.videos
    videos = list_videos(src)
    if not videos:
        raise UsageError(f"no videos found in {src} (searched recursively for {', '.join(VIDEO_EXTENSIONS)})")
    (out / "refs").mkdir(parents=True, exist_ok=True)
    check_settings(out, a, background_remover)
    i, n = a.shard
    tag = f"{i:05d}-of-{n:05d}"
    mine = [p for k, p in enumerate(videos) if k % n == i]
    state_path, manifest_path = out / f"state-{tag}.jsonl", out / f"manifest-{tag}.jsonl"
    # unreadable videos are tried again (the file may have been replaced since)
    done = {v for v, s in _latest(read_jsonl(state_path)).items() if s["status"] != UNREADABLE}
    # a manifest row whose video has no state line comes from an interrupted run: drop it
    write_jsonl(manifest_path, [r for r in read_jsonl(manifest_path) if r["video"] in done])
    todo = [p for p in mine if str(p.resolve()) not in done]
    analyzer = load_analyzer(a.backend) if todo else None
    remover = background_remover
    if remover is None and a.bg_model and todo:
        from .background import load_background_remover
        remover = load_background_remover(a.bg_model)
    if not a.bg_model and background_remover is None:
        print(f"{PROG}: no --bg-model: reference crops keep their background (inference references are on white)",
              file=sys.stderr)
    bar = progress_bar(a.progress, len(mine), len(mine) - len(todo), PROG, "video")
    unreadable = []
    for p in todo:
        try:
            rows, stats, rec = process_video(p, analyzer, a, out / "refs", remover)
        except Exception as e:  # an unreadable file must not stop a long run
            rows, stats, rec = [], Counter(), {"status": UNREADABLE, "error": f"{type(e).__name__}: {e}"}
            unreadable.append((p, rec["error"]))
        rec["video"] = str(p.resolve())
        rec["clip_outcomes"] = dict(stats)
        append_jsonl(manifest_path, rows)
        append_jsonl(state_path, [rec])   # the state line last: a video counts as done once its rows are written
        if bar is not None:
            bar.update(1)
            bar.set_postfix(kept=len(rows))
    if bar is not None:
        bar.close()
    summary = summarise(out)
    for p, why in unreadable:
        print(f"{PROG}: could not read {p}: {why}", file=sys.stderr)
    if unreadable:
        print(f"{PROG}: {len(unreadable)} of {len(todo)} videos could not be read (listed above and in "
              f"summary.json); they are tried again on the next run", file=sys.stderr)
    print(json.dumps({"manifest": str(out / "manifest.jsonl"), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
