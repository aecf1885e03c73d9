"""mv2id-eval on real faces (offline dlib backend): videos written with PyAV at run time."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mv2id_core.cli import eval as cli
from mv2id_core.errors import MediaError
from mv2id_core.video_io import count_frames, frame_rate, read_sampled_frames
from video_files import write_video
from photos import T1_FACES, fit, load_photos, rot, t1_face

ROOT = Path(__file__).resolve().parent.parent
SIZE = 128


def _fit(a):
    return fit(a, SIZE)


@pytest.fixture(scope="module")
def analyzer():
    from mv2id_core.faces import load_analyzer
    return load_analyzer("dlib")


@pytest.fixture(scope="module")
def data(tmp_path_factory, analyzer):
    tom, t1 = load_photos()
    root = tmp_path_factory.mktemp("eval")
    refs = root / "refs"
    refs.mkdir()
    Image.fromarray(_fit(tom)).save(refs / "front.png")
    Image.fromarray(_fit(tom[:, ::-1])).save(refs / "mirror.png")
    videos = root / "videos"
    same = [_fit(tom), _fit(rot(tom, 8)), _fit(tom[4:-2, 3:-5]), _fit(rot(tom, -8)), _fit(tom[:, ::-1]),
            np.full((SIZE, SIZE, 3), 60, np.uint8), _fit((tom * 0.8).astype(np.uint8)), _fit(tom)]
    others = [_fit(t1_face(t1, i)) for i in range(len(T1_FACES))]
    write_video(videos / "same_person.mp4", same)
    write_video(videos / "other_people.mp4", others + others[:2])
    (videos / "notes.txt").write_text("not a video")
    return root


def test_video_io_round_trip_and_sampling(data):
    v = data / "videos" / "same_person.mp4"
    assert count_frames(v) == 8
    frames, idx, total = read_sampled_frames(v, 32)
    assert total == 8 and len(frames) == 32 and list(idx) == list(np.linspace(0, 7, 32, dtype=int))
    assert frames[0].shape == (SIZE, SIZE, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[31].astype(int) - frames[0].astype(int)).mean() < 6     # first and last are both `tom`
    with pytest.raises(MediaError, match="notes.txt"):
        read_sampled_frames(data / "videos" / "notes.txt")


def test_cli_folder_of_two_videos_as_module(data, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": ""}
    res = subprocess.run([sys.executable, "-m", "mv2id_core.cli.eval", str(data / "videos"),
                          "--references", str(data / "refs"), "--out", str(out), "--num-frames", "8"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "scored 2/2 videos" in res.stderr
    assert "videos: 100%" in res.stderr and "2/2" in res.stderr                  # the progress bar
    reports = {n: json.loads((out / f"{n}.json").read_text()) for n in ("same_person", "other_people")}
    same, other = reports["same_person"], reports["other_people"]
    assert same["video"].endswith("same_person.mp4")
    assert same["frames_with_face"] == 7 and same["frames_without_face"] == 1      # the flat grey frame
    assert same["references_used"] == ["front.png", "mirror.png"]
    assert same["mvrc"] > other["mvrc"] + 0.08
    for n in reports:
        im = Image.open(out / f"{n}.png")
        assert im.size == (1024, 640) and np.asarray(im).std() > 10
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["video"] for r in rows] == ["other_people.mp4", "same_person.mp4"]
    by = {r["video"]: r for r in rows}
    assert float(by["same_person.mp4"]["mvrc"]) == pytest.approx(same["mvrc"])
    assert by["same_person.mp4"]["frames_with_face"] == "7" and by["other_people.mp4"]["error"] == ""


def test_cli_unreadable_video_is_named_and_others_still_scored(data, tmp_path, capsys):
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "broken.mp4").write_bytes(os.urandom(2048))
    (vids / "good.mp4").symlink_to(data / "videos" / "same_person.mp4")
    out = tmp_path / "out"
    rc = cli.main([str(vids), "-r", str(data / "refs"), "-o", str(out), "-n", "4", "-q"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.mp4" in err and "cannot read video" in err
    assert (out / "good.json").is_file() and not (out / "broken.json").exists()
    rows = {r["video"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert "cannot read video" in rows["broken.mp4"]["error"] and rows["good.mp4"]["mvrc"] != ""


def test_cli_single_missing_or_unreadable_file(data, tmp_path, capsys):
    assert cli.main([str(tmp_path / "nope.mp4"), "-r", str(data / "refs"), "-o", str(tmp_path)]) == 2
    assert "video path not found" in capsys.readouterr().err
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert cli.main([str(bad), "-r", str(data / "refs"), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert f"{bad}" in capsys.readouterr().err


def test_cli_no_face_in_any_reference(data, tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.new("RGB", (96, 96), (128, 128, 128)).save(refs / "wall.png")
    Image.new("RGB", (96, 96), (20, 90, 200)).save(refs / "sky.jpg")
    rc = cli.main([str(data / "videos" / "same_person.mp4"), "-r", str(refs), "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "no face found in any of the 2 reference images" in err
    assert "sky.jpg" in err and "wall.png" in err


def test_cli_mismatched_inputs(data, tmp_path, capsys):
    # a video where a reference image belongs
    rc = cli.main([str(data / "videos"), "-r", str(data / "videos" / "same_person.mp4"), "-o", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot read the photo same_person.mp4" in err
    # a folder of videos given as the reference folder
    rc = cli.main([str(data / "videos"), "-r", str(data / "videos"), "-o", str(tmp_path), "-q"])
    assert rc == 2 and "no reference images" in capsys.readouterr().err
    # reference images where the videos belong
    rc = cli.main([str(data / "refs"), "-r", str(data / "refs"), "-o", str(tmp_path), "-q"])
    assert rc == 2 and "no videos" in capsys.readouterr().err
    # an unknown backend
    rc = cli.main([str(data / "videos"), "-r", str(data / "refs"), "-b", "nosuchbackend", "-o", str(tmp_path)])
    assert rc == 2 and "nosuchbackend" in capsys.readouterr().err


# ----------------------------------------------------------------------------- arguments checked up front
def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_out_that_is_a_file_or_cannot_be_created(data, tmp_path, capsys):
    video = str(data / "videos" / "same_person.mp4")
    afile = tmp_path / "report.txt"
    afile.write_text("x")
    assert cli.main([video, "-r", str(data / "refs"), "-o", str(afile), "-q"]) == 2
    assert _one_line(capsys.readouterr().err) == f"mv2id-eval: error: --out {afile} is a file; give a folder for " \
                                                 f"the reports"
    assert cli.main([video, "-r", str(data / "refs"), "-o", str(afile / "sub"), "-q"]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"mv2id-eval: error: cannot write the reports into --out "
                                                         f"{afile / 'sub'}")


@pytest.mark.parametrize("size,msg", [("0x0", "--plot-size 0x0 is too small: at least 320x240 is needed"),
                                      ("big", "--plot-size must be WIDTHxHEIGHT, e.g. 1024x640, got 'big'")])
def test_cli_bad_plot_size_stops_before_scoring(data, tmp_path, capsys, size, msg):
    out = tmp_path / "o"
    assert cli.main([str(data / "videos"), "-r", str(data / "refs"), "-o", str(out), "--plot-size", size]) == 2
    assert _one_line(capsys.readouterr().err) == f"mv2id-eval: error: {msg}"
    assert not out.exists()                                            # nothing was scored or written


def test_cli_video_without_faces_says_why_and_runs_without_tqdm(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)                       # tqdm comes only with [train]
    walls = tmp_path / "walls.mp4"
    write_video(walls, [np.full((SIZE, SIZE, 3), v, np.uint8) for v in (60, 90, 120, 150)])
    rc = cli.main([str(walls), "-r", str(data / "refs"), "-o", str(tmp_path / "o"), "-n", "4"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "walls.mp4: no face in any of the 4 sampled frames, so MvRC-dlib is undefined and FaceSim-dlib is 0.0" in err
    assert "None" not in err
    rep = json.loads((tmp_path / "o" / "walls.json").read_text())
    assert rep["mvrc"] is None and rep["notes"][-1].startswith("no face in any of the 4 sampled frames")


def test_cli_reference_notes_and_facesim_cur(data, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from test_faces_curricularface import small_ir101_state_dict
    refs = tmp_path / "refs"
    refs.mkdir()
    front = np.asarray(Image.open(data / "refs" / "front.png").convert("RGB"))
    rgba = np.concatenate([front, np.full(front.shape[:2] + (1,), 255, np.uint8)], -1)
    rgba[:10, :10, 3] = 0                                                 # a few transparent pixels
    Image.fromarray(rgba).save(refs / "front.png")
    torch.save(small_ir101_state_dict(), tmp_path / "cur.bin")
    rc = cli.main([str(data / "videos" / "same_person.mp4"), "-r", str(refs), "-o", str(tmp_path / "o"), "-n", "8",
                   "--curricularface", str(tmp_path / "cur.bin"), "-q"])
    assert rc == 0
    rep = json.loads((tmp_path / "o" / "same_person.json").read_text())
    assert rep["reference_notes"] == ["front.png: transparent pixels are scored with the colour stored under them, "
                                      "not composited (as in OpenS2V-Eval)."]
    assert 0 <= rep["facesim_cur"] <= 1 and rep["settings"]["curricularface"] == "CurricularFace IR-101 (cur.bin)"
    assert "follows OpenS2V-Eval's FaceSim-Cur protocol but is not its number" in rep["protocol"]["facesim_cur"]
    rows = list(csv.DictReader(open(tmp_path / "o" / "summary.csv")))
    assert float(rows[0]["facesim_cur"]) == pytest.approx(rep["facesim_cur"])
    (tmp_path / "bad.bin").write_bytes(b"nope")
    assert cli.main([str(data / "videos" / "same_person.mp4"), "-r", str(refs), "-o", str(tmp_path / "o2"),
                     "--curricularface", str(tmp_path / "bad.bin"), "-q"]) == 2
    assert "cannot read the CurricularFace weights bad.bin" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one place for analyzer options
def test_analyzer_settings_convert_text_and_typed_values_alike():
    """faces.analyzer_settings: the node's typed values and the command line's text become the same settings."""
    from mv2id_core.errors import InputError
    from mv2id_core.faces import analyzer_settings
    text = analyzer_settings("dlib", det_size="320", retry="false", threshold="0.25", detector="cnn", upsample="1")
    typed = analyzer_settings("dlib", det_size=320, retry=False, threshold=0.25, detector="cnn", upsample=1)
    assert text == typed == {"det_size": 320, "retry": False, "threshold": 0.25, "detector": "cnn", "upsample": 1}
    assert type(text["det_size"]) is int and type(text["threshold"]) is float
    assert analyzer_settings("insightface", model_dir="none", det_thresh="0.4", pack="buffalo_l", retry="ON") == \
        {"model_dir": None, "det_thresh": 0.4, "pack": "buffalo_l", "retry": True}
    assert analyzer_settings("dlib", det_size=512.0) == {"det_size": 512}
    for bad, msg in ((dict(det_size="abc"), "option det_size of the dlib face backend must be a whole number"),
                     (dict(det_size=True), "must be a whole number (default 640), got True"),
                     (dict(det_size=320.5), "got 320.5"), (dict(retry="maybe"), "must be true or false"),
                     (dict(threshold="inf"), "must be a finite number"), (dict(model_dir=3), "unknown option"),
                     (dict(det_thresh="x"), "unknown option 'det_thresh' for the dlib face backend")):
        with pytest.raises(InputError, match=re.escape(msg)):
            analyzer_settings("dlib", **bad)
    with pytest.raises(InputError, match="option model_dir of the insightface face backend must be a folder path"):
        analyzer_settings("insightface", model_dir=3)
    with pytest.raises(InputError, match="unknown face backend 'mediapipe'"):
        analyzer_settings("mediapipe")


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """Frames whose face is cut by the left edge (found only by the grey-padding retry) and whole faces, so the
    retry setting changes the numbers; 12 frames at 8 fps."""
    tom, _ = load_photos()
    whole = _fit(tom)
    cut = np.full((SIZE, SIZE, 3), 118, np.uint8)
    cut[:, :88] = whole[:, 40:]
    path = tmp_path_factory.mktemp("cut") / "cut.mp4"
    write_video(path, [whole, cut, _fit(rot(tom, 6)), cut, whole, cut] * 2, fps=8)
    return path


def _python_api(video, refs, **options):
    from mv2id_core import metrics as M
    from mv2id_core.faces import load_analyzer
    frames, idx, total = read_sampled_frames(video, 0)
    return M.score_video(frames, refs, load_analyzer("dlib", **options), frame_indices=idx, total_frames=total,
                         num_frames=0, reference_names=["front.png", "mirror.png"], fps=frame_rate(video))


def _same_numbers(a: dict, b: dict):
    for key in ("mvrc", "facesim", "frames_with_face", "over_time"):
        assert a[key] == b[key], key
    assert a["copy_paste"] == b["copy_paste"]
    assert [p.get("similarity") for p in a["per_frame"]] == [p.get("similarity") for p in b["per_frame"]]


def test_the_same_option_gives_the_same_numbers_in_python_and_in_the_cli(data, cut_video, tmp_path):
    """`--option retry=false` is load_analyzer("dlib", retry=False) (it used to keep the retry on, 2.6e-3 off);
    --no-pad-retry is the same setting; det_size as text is the same number."""
    from PIL import Image as PILImage
    refs = [np.asarray(PILImage.open(data / "refs" / n).convert("RGB")) for n in ("front.png", "mirror.png")]
    on, off = _python_api(cut_video, refs), _python_api(cut_video, refs, retry=False, det_size=512)
    assert on["frames_with_face"] > off["frames_with_face"] and on["settings"]["retry"] and not off["settings"]["retry"]
    runs = {"on": [], "off": ["--option", "retry=false", "--option", "det_size=512"],
            "no-pad": ["--no-pad-retry", "--option", "det_size=512"]}
    for name, extra in runs.items():
        out = tmp_path / name
        assert cli.main([str(cut_video), "-r", str(data / "refs"), "-o", str(out), "-n", "0", "-q", "--no-plot"]
                        + extra) == 0
        rep = json.loads((out / "cut.json").read_text())
        _same_numbers(rep, on if name == "on" else off)


@pytest.mark.parametrize("option,msg", [
    ("det_size=abc", "option det_size of the dlib face backend must be a whole number (default 640), got 'abc'."),
    ("retry=maybe", "option retry of the dlib face backend must be true or false (default True), got 'maybe'."),
    ("threshold=nan", "option threshold of the dlib face backend must be a finite number (default 0.0), got 'nan'."),
    ("colour=red", "unknown option 'colour' for the dlib face backend; its options are: detector, det_size, retry, "
                   "num_jitters, threshold, upsample."),
    ("det_size=32", "det_size must be at least 64 pixels, got 32"),
])
def test_a_bad_option_is_named_before_scoring(data, tmp_path, capsys, option, msg):
    out = tmp_path / "o"
    assert cli.main([str(data / "videos"), "-r", str(data / "refs"), "-o", str(out), "--option", option]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("mv2id-eval: error: ") and msg in line, line
    assert not list(out.glob("*.json"))


def test_no_pad_retry_and_a_retry_option_together_are_refused(data, tmp_path, capsys):
    assert cli.main([str(data / "videos"), "-r", str(data / "refs"), "-o", str(tmp_path), "--no-pad-retry",
                     "--option", "retry=true"]) == 2
    assert "--no-pad-retry and --option retry=... both set the retry" in capsys.readouterr().err


# ----------------------------------------------------------------------------- identity over time
def test_identity_over_time_from_the_files_frame_rate(tmp_path, capsys):
    """A 6 s video at 8 fps: the reference's person for 3 s, then other people. Per second (the file's fps)
    and per 16 frames, the segments show where the face is lost, in the JSON, the CSV and the plot."""
    tom, t1 = load_photos()
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.fromarray(_fit(tom)).save(refs / "front.png")
    same = [_fit(tom), _fit(rot(tom, 5)), _fit(rot(tom, -5)), _fit(tom[3:-3, 2:-4])]
    others = [_fit(t1_face(t1, i)) for i in range(len(T1_FACES))]
    write_video(tmp_path / "drift.mp4", (same * 6) + (others * 4), fps=8)
    assert frame_rate(tmp_path / "drift.mp4") == 8.0
    out = tmp_path / "o"
    assert cli.main([str(tmp_path / "drift.mp4"), "-r", str(refs), "-o", str(out), "-n", "0", "--segment-frames",
                     "16", "-q"]) == 0
    rep = json.loads((out / "drift.json").read_text())
    sec, win = rep["over_time"]
    assert sec["unit"] == "seconds" and len(sec["segments"]) == 6 and sec["segments"][3]["start_s"] == 3.0
    first, last = sec["segments"][0]["facesim"], sec["segments"][-1]["facesim"]
    assert first > last + 0.05 and sec["drift"]["facesim"] == pytest.approx(last - first, abs=1e-6)
    assert sec["lowest_facesim_segment"] >= 3
    assert [s["first_frame"] for s in win["segments"]] == [0, 16, 32]
    row = list(csv.DictReader(open(out / "summary.csv")))[0]
    assert float(row["facesim_drift"]) == pytest.approx(sec["drift"]["facesim"]) and row["drift_per"] == "1 seconds"
    from mv2id_core.plot import SEGMENT_COLOUR
    plot = np.asarray(Image.open(out / "drift.png").convert("RGB"))
    assert (plot.reshape(-1, 3) == SEGMENT_COLOUR).all(axis=1).sum() > 100            # the per-second steps
    assert cli.main([str(tmp_path / "drift.mp4"), "-r", str(refs), "-o", str(tmp_path / "o2"), "-q",
                     "--segment-seconds", "0"]) == 0
    assert json.loads((tmp_path / "o2" / "drift.json").read_text())["over_time"] == []
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(tmp_path / "drift.mp4"), "-r", str(refs), "-o", str(tmp_path / "o3"), "--segment-frames", "-4"])
    assert exit_.value.code == 2
    assert "argument --segment-frames: must be >= 0, got -4" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CurricularFace files
def test_curricularface_file_with_wrong_shapes_is_named(data, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from test_faces_curricularface import small_ir101_state_dict
    sd = small_ir101_state_dict()
    torch.save({**sd, "input_layer.0.weight": torch.tensor(1.0)}, tmp_path / "scalar.bin")
    torch.save({**sd, "output_layer.3.weight": torch.zeros(512, 100)}, tmp_path / "narrow.bin")
    for name, msg in (("scalar.bin", "scalar.bin is not a CurricularFace IR-101 backbone (input_layer.0.weight has "
                                     "shape [], where IR-101 has a 4-D convolution weight)"),
                      ("narrow.bin", "narrow.bin does not match the CurricularFace IR-101 layout: tensor "
                                     "output_layer.3.weight: [512, 100] where IR-101 has [512, 3136]")):
        assert cli.main([str(data / "videos" / "same_person.mp4"), "-r", str(data / "refs"), "-o",
                         str(tmp_path / "o"), "--curricularface", str(tmp_path / name), "-q"]) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith("mv2id-eval: error: ") and msg in line, line
