"""Benchmark of the identity metrics (not a test): frames per second of scoring on CPU, per backend.

A video is made at run time from the real test photo that ships with insightface
(Tom_Hanks_54745.png), pasted at varying positions, scales and angles onto a grey canvas of the
video size (default 832x480, Wan 2.1's output); every --faceless-every-th frame has no face, so the
grey-padding retry is part of the cost as in real videos. score_video() runs on --frames sampled
frames against --refs references; the median over --rounds runs is reported (after one warm-up).

  python bench/bench_metrics.py                          # every backend that can load here
  python bench/bench_metrics.py --backend dlib --width 416 --height 240 --json bench/results/metrics.json

fps counts sampled frames per second of the whole score_video call (references included, each
distinct frame analysed once); "per frame ms" is its inverse. A backend that cannot load (missing
library or model files) is listed with the reason and skipped.

--separation measures instead how the copy-paste readings separate the synthetic-truth classes of
tests/face_videos.py (copies, blends, the same person in new poses, other people; references of one
person and of several; three noise levels) over --seeds videos per cell, with the dlib backend, and
prints the table docs/metrics.md shows (min / median / max of near_copy_rate and pose_following, and of
the frames' structure distance to the nearest reference).

  python bench/bench_metrics.py --separation --seeds 5 --json bench/results/separation.json
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from benchlib import backend_options, write_results
from mv2id_core import metrics as M

BACKENDS = ("dlib", "insightface")


def _photo() -> np.ndarray:
    """The test photo: from $MV2ID_TEST_PHOTOS (the library environment's unpacked copy) or the insightface wheel."""
    if os.environ.get("MV2ID_TEST_PHOTOS"):
        return np.asarray(Image.open(Path(os.environ["MV2ID_TEST_PHOTOS"]) / "Tom_Hanks_54745.png").convert("RGB"))
    spec = importlib.util.find_spec("insightface")
    if spec is None:
        raise SystemExit("the benchmark photo ships with the insightface package (pip install insightface)")
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "Tom_Hanks_54745.png"
    return np.asarray(Image.open(p).convert("RGB"))


def make_video(width: int, height: int, frames: int, faceless_every: int, seed: int = 0) -> list[np.ndarray]:
    """[frames] of [height, width, 3] uint8: the face at random places/scales/angles; some frames empty."""
    rng = np.random.default_rng(seed)
    face = Image.fromarray(_photo())
    out = []
    for i in range(frames):
        canvas = Image.new("RGB", (width, height), (118, 120, 124))
        if not (faceless_every and i % faceless_every == faceless_every - 1):
            side = int(min(width, height) * rng.uniform(0.3, 0.6))
            f = face.resize((side, side), Image.BICUBIC).rotate(float(rng.uniform(-15, 15)), resample=Image.BICUBIC,
                                                                fillcolor=(118, 120, 124))
            if rng.random() < 0.5:
                f = f.transpose(Image.FLIP_LEFT_RIGHT)
            canvas.paste(f, (int(rng.integers(0, width - side)), int(rng.integers(0, height - side))))
        out.append(np.asarray(canvas))
    return out


def make_references(n: int, size: int = 256) -> list[np.ndarray]:
    face = Image.fromarray(_photo()).resize((size, size), Image.BICUBIC)
    views = [face, face.transpose(Image.FLIP_LEFT_RIGHT), face.rotate(10, resample=Image.BICUBIC, fillcolor=(255,) * 3)]
    return [np.asarray(views[i % len(views)]) for i in range(n)]


def bench_backend(name: str, options: dict, video, refs, frames: int, rounds: int) -> dict:
    from mv2id_core.faces import load_analyzer

    t = time.perf_counter()
    try:
        analyzer = load_analyzer(name, **options)
    except Exception as e:  # missing library / model files: report and go on
        return {"backend": name, "available": False, "reason": f"{type(e).__name__}: {e}"}
    load_s = time.perf_counter() - t
    times, report = [], None
    for r in range(rounds + 1):
        t = time.perf_counter()
        report = M.score_video(video, refs, analyzer, num_frames=frames)
        if r:  # the first run is a warm-up
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"backend": name, "available": True, "analyzer": analyzer.describe(), "load_s": round(load_s, 3),
            "sampled_frames": report["sampled_frames"], "frames_with_face": report["frames_with_face"],
            "references": len(refs), "median_s": round(med, 4), "fps": round(report["sampled_frames"] / med, 2),
            "per_frame_ms": round(1000 * med / report["sampled_frames"], 1),
            "runs_s": [round(x, 4) for x in times], "mvrc": report["mvrc"]}


def separation(seeds: int) -> list[dict]:
    """One row per (references, class, noise level): the readings of `seeds` synthetic-truth videos."""
    sys.path.insert(0, str(ROOT / "tests"))
    import face_videos as FV
    from mv2id_core.faces import load_analyzer

    an = load_analyzer("dlib")
    faces = FV.Faces(an)
    rows = []
    for kind in ("one", "several"):
        refs = FV.reference_frames(faces, kind)
        for cls in FV.CLASSES:
            for level in FV.LEVELS:
                row = {"references": kind, "class": cls, "level": level, "near_copy_rate": [], "pose_following": [],
                       "distance": [], "frames": 0, "with_face": 0}
                for seed in range(seeds):
                    video = FV.video(faces, kind, cls, level, seed)
                    rep = M.score_video(video, refs, an, num_frames=0, segment_seconds=0)
                    row["near_copy_rate"].append(rep["copy_paste"]["near_copy_rate"])
                    row["pose_following"].append(rep["copy_paste"]["pose_following"])
                    row["distance"] += [1 - max(v for v in p["structure_similarity"] if v is not None)
                                        for p in rep["per_frame"] if p["face"]]
                    row["frames"] += len(video)
                    row["with_face"] += rep["frames_with_face"]
                rows.append(row)
                print(separation_line(row), flush=True)
    return rows


def _spread(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "null"
    def f(x):
        return f"{0.0 if abs(x) < 0.005 else x:.2f}"            # no "-0.00"
    return f"{f(min(v))} / {f(statistics.median(v))} / {f(max(v))}"


def separation_line(row: dict) -> str:
    """A markdown table row: references, class, level, near_copy_rate, pose_following, distance (min/med/max)."""
    names = {"one": "one person", "several": "several people"}
    return (f"| {names[row['references']]} | {row['class']} | {row['level']} | {_spread(row['near_copy_rate'])} | "
            f"{_spread(row['pose_following'])} | {_spread(row['distance'])} | {row['with_face']}/{row['frames']} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="backend(s) to time (default: all)")
    ap.add_argument("--option", action="append", default=[], metavar="BACKEND:KEY=VALUE",
                    help="backend option, e.g. insightface:model_dir=/path (values parsed as JSON when possible)")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--video-frames", type=int, default=81, help="frames in the synthetic video")
    ap.add_argument("--frames", type=int, default=M.FACESIM_FRAMES, help="frames sampled per score (OpenS2V: 32)")
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--faceless-every", type=int, default=8, help="every n-th frame has no face (0: none)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OMP/MKL threads (default: library default)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--separation", action="store_true",
                    help="measure how the copy-paste readings separate the synthetic-truth classes (dlib)")
    ap.add_argument("--seeds", type=int, default=5, help="--separation: videos per cell")
    a = ap.parse_args(argv)
    if a.separation:
        print("| references | class | noise | near_copy_rate | pose_following | structure distance | faces |")
        print("|---|---|---|---|---|---|---|")
        write_results(a.json, {"seeds": a.seeds}, separation(a.seeds))
        return 0
    if a.threads:
        for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[v] = str(a.threads)
    options = backend_options(a.option)
    video = make_video(a.width, a.height, a.video_frames, a.faceless_every)
    refs = make_references(a.refs)
    results = []
    for b in a.backend or BACKENDS:
        res = bench_backend(b, options.get(b, {}), video, refs, a.frames, a.rounds)
        results.append(res)
        if res["available"]:
            print(f"{b:12s} {res['fps']:7.2f} frames/s  ({res['per_frame_ms']:.1f} ms/frame; {res['sampled_frames']} "
                  f"frames, {res['frames_with_face']} with a face, {res['references']} refs, {a.width}x{a.height}; "
                  f"load {res['load_s']:.2f} s)")
        else:
            print(f"{b:12s} unavailable: {res['reason']}")
    meta = {"width": a.width, "height": a.height, "video_frames": a.video_frames, "frames": a.frames, "refs": a.refs,
            "faceless_every": a.faceless_every, "rounds": a.rounds}
    write_results(a.json, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
