"""Benchmark of the photo reader (not a test): peak memory and time of reading one huge photo.

A --size x --size photo (default 12000, 144 megapixels) is written once as JPEG and PNG; each case
reads it in a fresh Python process (so the peak resident memory, ru_maxrss, is that case's alone) with
mv2id_core.photos.read_photo, at the default maximum side (photos.MAX_SIDE) and at full resolution
(max_side 0, what reading without a limit costs). Reported: the peak resident memory above what the
process held before the read (imports done) and the seconds of the read, side by
side, with the ratio of full to default. Linux only (/proc/self/clear_refs resets the peak after the
imports).

  python bench/bench_photos.py                 # 12000 x 12000
  python bench/bench_photos.py --size 8000 --json bench/results/photos.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchlib import write_results

CHILD = """
import json, sys, time
from PIL import Image
from mv2id_core import photos

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

open("/proc/self/clear_refs", "w").write("5")      # Linux: reset the peak (VmHWM) to the current RSS
base = status("VmRSS:")
t = time.perf_counter()
p = photos.read_photo(sys.argv[1], int(sys.argv[2]))
dt = time.perf_counter() - t
print(json.dumps({"mib": (status("VmHWM:") - base) / 1024, "s": dt, "size": list(p.size)}))
"""


def make_photo(folder: Path, size: int) -> dict[str, Path]:
    """A textured size x size photo (gradients and noise, so JPEG and PNG do real work) as JPEG and PNG."""
    rng = np.random.default_rng(0)
    row = np.arange(size, dtype=np.uint32)
    img = np.empty((size, size, 3), np.uint8)
    for y0 in range(0, size, 1000):                      # in bands: the array is the only big allocation
        ys = np.arange(y0, min(size, y0 + 1000), dtype=np.uint32)[:, None]
        img[y0:y0 + len(ys), :, 0] = (row[None] // 8 + ys // 16) % 256
        img[y0:y0 + len(ys), :, 1] = (ys // 8) % 256
        img[y0:y0 + len(ys), :, 2] = rng.integers(0, 64, (len(ys), size), dtype=np.uint8)
    out = {"jpeg": folder / "huge.jpg", "png": folder / "huge.png"}
    Image.fromarray(img).save(out["jpeg"], quality=90)
    Image.fromarray(img).save(out["png"], compress_level=1)
    return out


def measure(path: Path, max_side: int) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_side)], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    from mv2id_core import photos

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=12000, help="side of the square photo in pixels")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        files = make_photo(Path(d), a.size)
        print(f"{a.size}x{a.size} photo; default max side {photos.MAX_SIDE}")
        print(f"{'format':6} {'max_side':>8} {'peak MiB':>9} {'seconds':>8}  size read")
        for fmt, path in files.items():
            rows = {m: measure(path, m) for m in (photos.MAX_SIDE, 0)}
            for m, r in rows.items():
                print(f"{fmt:6} {m:>8} {r['mib']:>9.0f} {r['s']:>8.2f}  {r['size'][0]}x{r['size'][1]}")
                results.append({"format": fmt, "max_side": m, **r})
            full, scaled = rows[0], rows[photos.MAX_SIDE]
            print(f"{fmt:6} full / default: {full['mib'] / scaled['mib']:.1f}x memory, "
                  f"{full['s'] / scaled['s']:.1f}x time")
    write_results(a.json, {"size": a.size, "max_side": photos.MAX_SIDE}, results)


if __name__ == "__main__":
    main()
