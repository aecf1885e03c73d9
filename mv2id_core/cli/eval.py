"""mv2id-eval: identity metrics (MvRC, FaceSim, pose, copy-paste) for generated videos.

    mv2id-eval VIDEO_OR_FOLDER --references REF_FOLDER [-r MORE_REFS] [-o OUT] [--backend dlib]
               [--curricularface glint360k_curricular_face_r101_backbone.bin]

For every video: OUT/<name>.json (the full report) and OUT/<name>.png (the plot); for all of
them: OUT/summary.csv (one row per video). Also runnable as `python -m mv2id_core.cli.eval`.
Exit status: 0 all videos scored, 1 some video failed (the others are still written),
2 bad arguments or references (nothing scored). Every argument is checked before scoring starts;
errors are one line. Progress bars need tqdm (optional).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .. import metrics as M
from . import args as cli_args
from ..errors import FaceAnalysisError, InputError, MediaError, UsageError
from ..plot import MIN_SIZE
from ..video_io import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, frame_rate, list_media, load_reference,
                        read_sampled_frames)

PROG = "mv2id-eval"


def _parse_option(text: str) -> tuple[str, str]:
    """KEY=VALUE -> (key, value text); the value is checked and converted by faces.analyzer_settings, the one
    place the node, the Python API and this command turn options into analyzer settings."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"backend option must be KEY=VALUE, got {text!r}")
    return key.strip(), value


def parse_plot_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (w, h), at least the plot's minimum size (mv2id_core.cli.args.size); UsageError otherwise."""
    try:
        return cli_args.size(text, MIN_SIZE, example="1024x640")
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--plot-size {e}") from None


def _parse_weights(text: str) -> tuple[float, float, float]:
    try:
        w = tuple(float(v) for v in text.split(","))
    except ValueError:
        w = ()
    if len(w) != 3:
        raise argparse.ArgumentTypeError(f"pose weights must be three numbers YAW,PITCH,ROLL, got {text!r}")
    return w  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Identity metrics for generated videos against multi-view face references: "
        "MvRC, FaceSim (OpenS2V protocol), head-pose trajectory, face fraction, identity spread, identity over "
        "time and the copy-paste readings. Writes a JSON report and a plot per video and summary.csv.")
    p.add_argument("videos", type=Path,
                   help="a video file, or a folder of videos (" + ", ".join(VIDEO_EXTENSIONS) + ")")
    p.add_argument("-r", "--references", type=Path, action="append", required=True, metavar="FOLDER_OR_IMAGE",
                   help="a folder of reference images of the identity, or one image file; repeatable")
    p.add_argument("-o", "--out", type=Path, default=Path("mv2id_eval"), help="output folder (default: ./mv2id_eval)")
    p.add_argument("-b", "--backend", default="dlib",
                   help="face analysis backend: dlib (offline, default) or insightface")
    p.add_argument("--option", dest="options", action="append", type=_parse_option, default=[], metavar="KEY=VALUE",
                   help="backend setting, repeatable (e.g. --option det_size=320 --option model_dir=/path); the same "
                        "settings as mv2id_core.faces.load_analyzer(backend, **options) and the Face Analyzer node")
    p.add_argument("-n", "--num-frames", type=int, default=M.FACESIM_FRAMES,
                   help="frames sampled evenly per video (OpenS2V: 32; 0 = every frame)")
    p.add_argument("--no-pad-retry", dest="pad_retry", action="store_false",
                   help="do not retry face detection on a frame padded with grey (OpenS2V retries once); the same "
                        "as --option retry=false")
    p.add_argument("--curricularface", type=Path, default=None, metavar="WEIGHTS",
                   help="CurricularFace IR-101 weights (glint360k_curricular_face_r101_backbone.bin or .safetensors): "
                        "adds FaceSim-Cur, OpenS2V-Eval's leaderboard number")
    p.add_argument("--pose-weights", type=_parse_weights, default=M.DEFAULT_POSE_WEIGHTS, metavar="YAW,PITCH,ROLL",
                   help="weights of yaw, pitch, roll when matching a frame's pose to a reference (default 1,1,1)")
    p.add_argument("--segment-seconds", type=cli_args.nonnegative_float, default=M.SEGMENT_SECONDS, metavar="S",
                   help="identity over time: MvRC and FaceSim per segment of S seconds at the video's frame rate, "
                        "and their drift from the first to the last (0 = none)")
    p.add_argument("--segment-frames", type=cli_args.nonnegative_int, default=0, metavar="N",
                   help="identity over time per N frames too, e.g. a context window's length (0 = none)")
    p.add_argument("--plot-size", default="1024x640", metavar="WxH",
                   help=f"plot size in pixels (at least {MIN_SIZE[0]}x{MIN_SIZE[1]})")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="write no plots")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def find_videos(path: Path) -> list[Path]:
    if path.is_dir():
        vids = list_media(path, VIDEO_EXTENSIONS)
        if not vids:
            raise UsageError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in folder {path}")
        return vids
    if path.is_file():
        return [path]
    raise UsageError(f"video path not found: {path}")


def load_references(paths: list[Path]) -> tuple[list, list[str], list[str]]:
    """(images, file names, notes) of the reference files, read as OpenS2V-Eval reads them."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = list_media(p, IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(f"no reference images ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"reference path not found: {p}")
    images, notes = [], []
    for f in files:
        try:
            image, note = load_reference(f)
        except MediaError as e:
            raise UsageError(str(e)) from None
        images.append(image)
        notes += note
    return images, [f.name for f in files], notes


def prepare_out(path: Path) -> Path:
    """The output folder, created; UsageError when it is a file or cannot be created."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file; give a folder for the reports")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".mv2id-eval-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write the reports into --out {path}: {e.strerror or e}") from None
    return path


def load_curricularface(path: Path | None):
    if path is None:
        return None
    from ..faces.curricularface import CurricularFace
    try:
        return CurricularFace(path)
    except FaceAnalysisError as e:
        raise UsageError(str(e)) from None
    except ImportError as e:
        raise UsageError(f"FaceSim-Cur needs torch ({e}); run mv2id-eval in ComfyUI's Python, or pip install torch")


def analyzer_options(args) -> dict:
    """The --option settings, with --no-pad-retry as retry=false (giving both is a contradiction)."""
    options = dict(args.options)
    if not args.pad_retry:
        if "retry" in options:
            raise UsageError("--no-pad-retry and --option retry=... both set the retry: give one of them")
        options["retry"] = "false"
    return options


def make_analyzer(backend: str, options: dict):
    from ..faces import load_analyzer
    try:
        return load_analyzer(backend, **options)
    except InputError as e:                   # an unknown backend or option, a bad value: the message names it
        raise UsageError(str(e)) from None
    except FaceAnalysisError as e:
        raise UsageError(f"cannot load the {backend!r} face backend: {e}") from None


def _unique_stems(videos: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for v in videos:
        stem = v.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out


def score_file(video: Path, references, names, analyzer, args, cur=None, bar=None) -> dict:
    """Decode the sampled frames of one video and score them; raises MediaError/InputError."""
    frames, idx, total = read_sampled_frames(video, args.num_frames)
    fps = frame_rate(video)

    def progress(done, steps):
        if bar is not None:
            bar.total = steps
            bar.n = done
            bar.refresh()

    report = M.score_video(frames, references, analyzer, frame_indices=idx, total_frames=total,
                           num_frames=args.num_frames, reference_names=names, pose_weights=args.pose_weights,
                           curricularface=cur, fps=fps, segment_seconds=args.segment_seconds,
                           segment_frames=args.segment_frames, progress=progress)
    return {"video": str(video), **report}


class _NoBar:
    """Stands in for a tqdm bar when tqdm is not installed (it comes only with the [train] extra)."""
    total = n = 0

    def __init__(self, iterable=None, **_):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def refresh(self):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text, file=None):
        print(text, file=file or sys.stderr)


def _bars():
    try:
        from tqdm import tqdm
        return tqdm
    except ImportError:
        return _NoBar


def summary_line(video: Path, report: dict) -> str:
    """One line per scored video: the numbers, or why there are none."""
    names = report["metric_names"]
    if report["frames_with_face"] == 0:
        return (f"{video.name}: no face in any of the {report['sampled_frames']} sampled frames, so "
                f"{names['mvrc']} is undefined and {names['facesim']} is 0.0")
    line = f"{video.name}: {names['mvrc']} {report['mvrc']}  {names['facesim']} {report['facesim']}"
    if report["facesim_cur"] is not None:
        line += f"  {names['facesim_cur']} {report['facesim_cur']}"
    return line


def run(args) -> int:
    bars = _bars()
    videos = find_videos(args.videos)
    references, names, ref_notes = load_references(args.references)
    out = prepare_out(args.out)
    analyzer = make_analyzer(args.backend, analyzer_options(args))
    cur = load_curricularface(args.curricularface)
    for note in ref_notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    rows, failed = [], 0
    stems = _unique_stems(videos)
    outer = bars(list(zip(videos, stems)), desc="videos", unit="video", disable=args.quiet or len(videos) < 2,
                 file=sys.stderr)
    for video, stem in outer:
        inner = bars(total=len(references) + args.num_frames, desc=video.name, unit="img", leave=False,
                     disable=args.quiet, file=sys.stderr)
        try:
            report = score_file(video, references, names, analyzer, args, cur, inner)
        except M.NoReferenceFaceError as e:
            raise UsageError(str(e)) from None
        except InputError as e:   # MediaError is one
            failed += 1
            bars.write(f"{PROG}: {video}: {e}", file=sys.stderr)
            rows.append(M.summary_row(None, video.name, error=str(e)))
            continue
        finally:
            inner.close()
        report["reference_notes"] = ref_notes
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        if args.plot:
            from ..plot import plot_report
            plot_report(report, *args.plot_size, title=None).save(out / f"{stem}.png")
        rows.append(M.summary_row(report, video.name))
        if not args.quiet:
            bars.write(summary_line(video, report), file=sys.stderr)
            for note in report["notes"]:
                if not note.startswith("no face in any"):
                    bars.write(f"  note: {note}", file=sys.stderr)
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=M.SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(rows)
    if not args.quiet:
        print(f"{PROG}: scored {len(videos) - failed}/{len(videos)} videos; reports in {out}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.num_frames < 0:
            raise UsageError("--num-frames must be >= 0 (0 = every frame)")
        args.plot_size = parse_plot_size(args.plot_size)
        return run(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
