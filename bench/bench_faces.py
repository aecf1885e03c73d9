"""Benchmark of face analysis (not a test): milliseconds per image on CPU, per backend, and the
whole Face Views step on 30 frames.

Images are 640 px on the long side: frames made from the real test photo that ships with
insightface (the face pasted at varying places, scales and angles, as bench_metrics does) and
the group photo t1.jpg (six faces). Per image, one analyze() call: detection + head pose +
identity embedding of every face (the "largest face" users pay the same). Medians over
--rounds passes after one warm-up pass.

  python bench/bench_faces.py                       # every backend that can load here
  python bench/bench_faces.py --option insightface:model_dir=/path/to/ComfyUI/models/insightface

Target (issue): under 150 ms per image with dlib on 2 CPU cores. A backend that cannot load
(missing library or model pack) is listed with the reason and skipped.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from bench_metrics import make_video
from benchlib import backend_options, write_results
from mv2id_core import views as V

BACKENDS = ("dlib", "insightface")
TARGET_MS = {"dlib": 150.0}


def images_640(n: int) -> list[np.ndarray]:
    """n - 1 single-face frames (640x480) and the six-face group photo scaled to 640 px wide."""
    import importlib.util

    frames = make_video(640, 480, n - 1, faceless_every=0, seed=1)
    d = Path(list(importlib.util.find_spec("insightface").submodule_search_locations)[0]) / "data" / "images"
    group = Image.open(d / "t1.jpg").convert("RGB")
    group = group.resize((640, round(group.height * 640 / group.width)), Image.BILINEAR)
    return frames + [np.asarray(group)]


def _median_ms(fn, items, rounds: int) -> float:
    per = []
    for r in range(rounds + 1):
        t = time.perf_counter()
        for x in items:
            fn(x)
        if r:
            per.append((time.perf_counter() - t) * 1000.0 / len(items))
    return statistics.median(per)


def bench_backend(name: str, options: dict, imgs, frames30, rounds: int) -> dict:
    from mv2id_core.faces import load_analyzer

    t = time.perf_counter()
    try:
        an = load_analyzer(name, **options)
    except Exception as e:   # missing library or models: report, go on
        return {"backend": name, "available": False, "reason": f"{type(e).__name__}: {e}"}
    load_s = time.perf_counter() - t
    full = _median_ms(lambda im: an.analyze(im, embed=True), imgs, rounds)
    detect = _median_ms(lambda im: an.analyze(im, embed=False), imgs, rounds)
    faces = sum(len(an.analyze(im, embed=False)) for im in imgs)
    views_s = []
    for r in range(rounds + 1):
        t = time.perf_counter()
        res = V.face_views(frames30, an, num_views=3, size=(512, 512), if_no_face="skip")
        if r:
            views_s.append(time.perf_counter() - t)
    out = {"backend": name, "available": True, "analyzer": an.describe(), "load_s": round(load_s, 3),
           "images": len(imgs), "faces": faces, "ms_per_image": round(full, 1),
           "ms_per_image_detect_pose": round(detect, 1), "face_views_30_frames_s": round(statistics.median(views_s), 3),
           "face_views_yaws": [v["yaw"] for v in res.views]}
    if name in TARGET_MS:
        out["target_ms"] = TARGET_MS[name]
        out["vs_target"] = round(full / TARGET_MS[name], 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="backend(s) to time (default: all)")
    ap.add_argument("--option", action="append", default=[], metavar="BACKEND:KEY=VALUE",
                    help="backend option, e.g. insightface:model_dir=/path (values parsed as JSON when possible)")
    ap.add_argument("--images", type=int, default=12, help="640 px test images (the last is the group photo)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    options = backend_options(a.option)
    imgs = images_640(a.images)
    frames30 = make_video(640, 360, 30, faceless_every=10, seed=2)
    results = []
    print(f"{'backend':12s} {'ms/image':>9s} {'detect+pose':>12s} {'vs target':>10s} {'Face Views, 30 frames':>22s}")
    for b in a.backend or BACKENDS:
        res = bench_backend(b, options.get(b, {}), imgs, frames30, a.rounds)
        results.append(res)
        if not res["available"]:
            print(f"{b:12s} unavailable: {res['reason']}")
            continue
        vs = f"{res['vs_target']:.2f}x" if "vs_target" in res else "-"
        print(f"{b:12s} {res['ms_per_image']:9.1f} {res['ms_per_image_detect_pose']:12.1f} {vs:>10s} "
              f"{res['face_views_30_frames_s']:20.2f} s   ({res['analyzer']}; {res['faces']} faces in "
              f"{res['images']} images)")
    meta = {"images": a.images, "rounds": a.rounds}
    write_results(a.json, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
