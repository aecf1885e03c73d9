"""The training CLIs reject bad input up front with one line naming the problem (no traceback, no
half-done work), share one argument parser module, and survive torn JSONL files."""
from __future__ import annotations

import json

import pytest

import train_helpers as T

from mv2id_core.errors import InputError


def _fails(capsys, main, argv) -> str:
    """Run a CLI's main; it must end with status 2 and one error line (argparse adds its usage line)."""
    try:
        rc = main(argv)
    except SystemExit as e:          # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- shared pieces
def test_torn_last_jsonl_line_is_dropped_and_repaired(tmp_path):
    from mv2id_train.files import append_jsonl, read_jsonl
    p = tmp_path / "state.jsonl"
    p.write_text('{"video": "a", "status": "kept"}\n{"video": "b", "sta')      # crash mid-write
    assert read_jsonl(p) == [{"video": "a", "status": "kept"}]
    append_jsonl(p, [{"video": "c"}])
    assert read_jsonl(p) == [{"video": "a", "status": "kept"}, {"video": "c"}]
    # a complete last row without its newline: kept, and the next row starts a new line
    p.write_text('{"video": "a"}')
    assert read_jsonl(p) == [{"video": "a"}]
    append_jsonl(p, [{"video": "b"}])
    assert read_jsonl(p) == [{"video": "a"}, {"video": "b"}]
    # damage in the middle is not a torn write: say which line
    p.write_text('{"video": "a"}\nnot json\n{"video": "b"}\n')
    with pytest.raises(InputError, match="line 2"):
        read_jsonl(p)


def test_shared_argument_types():
    import argparse
    from mv2id_core.cli import args as A
    assert A.size("64x48") == (64, 48) and A.shard("1/4") == (1, 4) and A.frame_count("81") == 81
    for fn, text in [(A.size, "0x64"), (A.size, "abc"), (A.shard, "4/4"), (A.shard, "x"), (A.positive_int, "0"),
                     (A.positive_float, "0"), (A.positive_float, "nan"), (A.fraction, "1.5"), (A.frame_count, "80"),
                     (A.nonnegative_int, "-1"), (A.positive_int, "2.5")]:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


# ----------------------------------------------------------------------------- mv2id-data
@pytest.fixture
def one_broken_video(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    return folder


@pytest.mark.parametrize("flag,value,message", [
    ("--sample-fps", "0", "argument --sample-fps: must be > 0, got 0"),
    ("--train-fps", "0", "argument --train-fps: must be > 0, got 0"),
    ("--train-fps", "-16", "argument --train-fps: must be > 0, got -16"),
    ("--refs", "0", "argument --refs: must be >= 1, got 0"),
    ("--refs", "two", "argument --refs: must be a whole number, got 'two'"),
    ("--ref-size", "0x512", "argument --ref-size: width and height must be at least 1, got '0x512'"),
    ("--ref-size", "512", "argument --ref-size: must be WIDTHxHEIGHT, e.g. 512x512, got '512'"),
    ("--frames", "80", "argument --frames: length 80 is not of the form 4n+1"),
    ("--shard", "2/2", "argument --shard: must be i/n with 0 <= i < n, got '2/2'"),
    ("--max-crowded", "2", "argument --max-crowded: must be <= 1, got 2"),
])
def test_data_rejects_bad_numbers_before_any_work(capsys, one_broken_video, tmp_path, flag, value, message):
    from mv2id_train import prep
    out = tmp_path / "data"
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(out), flag, value, "--no-progress"])
    assert line.startswith("mv2id-data: error: ") and message in line, line
    assert not out.exists()                       # nothing recorded: a corrected run starts clean


def test_data_out_is_a_file_and_empty_folder(capsys, one_broken_video, tmp_path):
    from mv2id_train import prep
    f = tmp_path / "data.txt"
    f.write_text("x")
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(f)])
    assert f"argument --out: {f} is a file, not a folder" in line
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(f / "sub")])
    assert "is a file, so" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    line = _fails(capsys, prep.main, [str(empty), "--out", str(tmp_path / "d")])
    assert line.startswith(f"mv2id-data: error: no videos found in {empty}"), line
    line = _fails(capsys, prep.main, [str(tmp_path / "missing"), "--out", str(tmp_path / "d")])
    assert "missing not found" in line


def test_data_missing_insightface_pack_is_one_line(capsys, one_broken_video, tmp_path, monkeypatch):
    from mv2id_train import prep
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "no-models"))
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(tmp_path / "d"), "--backend", "insightface",
                                      "--no-progress"])
    assert line.startswith("mv2id-data: error: ") and "insightface" in line.lower(), line


def test_unreadable_videos_are_named_with_the_reason_and_retried(capsys, one_broken_video, tmp_path):
    from mv2id_train import prep
    out = tmp_path / "data"
    argv = [str(one_broken_video), "--out", str(out), "--no-progress"]
    assert prep.main(argv) == 0
    err = capsys.readouterr().err
    assert f"mv2id-data: could not read {one_broken_video / 'broken.mp4'}: MediaError: cannot read video" in err
    assert "1 of 1 videos could not be read" in err
    assert "no --bg-model: reference crops keep their background" in err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["unreadable"]) == [str((one_broken_video / "broken.mp4").resolve())]
    assert summary["background_removal"].startswith("off: reference crops keep their background")
    assert prep.main(argv) == 0                   # tried again (the file may have been replaced)
    assert "could not read" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["videos"] == 1


def test_data_refuses_other_settings_in_the_same_out(capsys, one_broken_video, tmp_path):
    from mv2id_train import prep
    out = tmp_path / "data"
    assert prep.main([str(one_broken_video), "--out", str(out), "--refs", "2", "--no-progress"]) == 0
    capsys.readouterr()
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(out), "--refs", "3", "--no-progress"])
    assert f"{out} holds data prepared with other settings (refs: 2 -> 3)" in line, line
    assert "use a new --out" in line


def test_bg_model_uses_comfyuis_loader_or_names_the_version(capsys, one_broken_video, tmp_path, comfy_modules):
    """--bg-model goes through ComfyUI's own background-removal loader; a file it does not recognise,
    or a ComfyUI without that loader (0.3.75), is a one-line error naming the fix."""
    from mv2id_train import prep
    import importlib.util
    has_loader = importlib.util.find_spec("comfy.bg_removal_model") is not None
    line = _fails(capsys, prep.main, [str(one_broken_video), "--out", str(tmp_path / "d"),
                                      "--bg-model", str(T.tiny_vae()), "--no-progress"])
    if has_loader:
        assert f"{T.tiny_vae()} is not a background-removal model ComfyUI can load" in line, line
    else:
        assert "needs ComfyUI's background-removal loader" in line and "ComfyUI 0.33.0 has them" in line, line
        assert "(version 0.3.75)" in line and "leave --bg-model out" in line, line


# ----------------------------------------------------------------------------- mv2id-cache
@pytest.mark.parametrize("args,message", [
    (["--mask-draws", "0"], "argument --mask-draws: must be >= 1, got 0"),
    (["--mask-ratio", "1.2"], "argument --mask-ratio: must be <= 1, got 1.2"),
    (["--mask-block", "0"], "argument --mask-block: must be >= 1, got 0"),
    (["--width", "0"], "argument --width: must be >= 1, got 0"),
    (["--width", "100"], "--width/--height: width 100 not a multiple of 16 pixels"),
    (["--shard", "0/0"], "argument --shard: must be i/n with 0 <= i < n, got '0/0'"),
    (["--shard-size", "0"], "argument --shard-size: must be >= 1, got 0"),
])
def test_cache_rejects_bad_numbers(capsys, tmp_path, args, message):
    from mv2id_train import cache
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "references": ["r0.png", "r1.png"]}) + "\n")
    never_read = tmp_path / "never_read.safetensors"    # the numbers are refused before any file is opened
    never_read.write_bytes(b"")
    line = _fails(capsys, cache.main, ["--manifest", str(manifest), "--vae", str(never_read), "--context-file",
                                       str(never_read), "--out", str(tmp_path / "c"), *args])
    assert line.startswith("mv2id-cache: error: ") and message in line, line
    assert not (tmp_path / "c").exists()


def test_cache_out_file_missing_inputs_and_changed_settings(capsys, tmp_path, comfy_modules):
    from mv2id_train import cache
    from mv2id_train.cache_format import CacheWriter
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "references": ["r0.png", "r1.png"]}) + "\n")
    base = ["--manifest", str(manifest), "--vae", str(T.tiny_vae()), "--context-file", str(T.tiny_vae())]
    f = tmp_path / "file"
    f.write_text("x")
    assert f"argument --out: {f} is a file, not a folder" in _fails(capsys, cache.main, [*base, "--out", str(f)])
    line = _fails(capsys, cache.main, ["--manifest", str(tmp_path / "none.jsonl"), *base[2:], "--out", str(tmp_path / "c")])
    assert "argument --manifest: " in line and "none.jsonl not found" in line
    line = _fails(capsys, cache.main, [*base, "--out", str(tmp_path / "c"), "--mask-complementary"])
    assert "--mask-complementary: complementary masking cannot keep every region visible" in line
    line = _fails(capsys, cache.main, [*base[:4], "--out", str(tmp_path / "c")])
    assert "give --text-encoder (umT5) or --context-file" in line
    line = _fails(capsys, cache.main, ["--manifest", str(manifest), "--vae", str(T.tiny_unet()), "--context-file",
                                       str(manifest), "--out", str(tmp_path / "c"), "--no-progress"])
    assert f"cannot load the VAE {T.tiny_unet()}" in line and "give the Wan 2.1 VAE" in line, line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    line = _fails(capsys, cache.main, ["--manifest", str(empty), *base[2:], "--out", str(tmp_path / "c")])
    assert "lists no clips: run mv2id-data first" in line
    # a cache folder made with other settings is not silently extended
    from mv2id_core.errors import UsageError
    import torch
    wr = CacheWriter(tmp_path / "old", {"width": 64})
    wr.add("s", torch.zeros(16, 1, 2, 2), [torch.zeros(16, 1, 2, 2)], torch.zeros(1, 4096))
    wr.close()
    with pytest.raises(UsageError, match=r"other settings \(width: 64 -> 832\)"):
        CacheWriter(tmp_path / "old", {"width": 832})
    assert CacheWriter(tmp_path / "old", {"width": 64}).done_ids() == {"s"}      # same settings: resumes


# ----------------------------------------------------------------------------- mv2id-train
@pytest.fixture(scope="module")
def cache(tmp_path_factory, comfy_modules):
    return T.make_cache(tmp_path_factory.mktemp("cli-cache"), n=1, draws=1)


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--grad-accum", "0"], "argument --grad-accum: must be >= 1, got 0"),
    (["--lr", "0"], "argument --lr: must be > 0, got 0"),
    (["--lr", "inf"], "argument --lr: must be a finite number, got 'inf'"),
    (["--ref-dropout", "1.5"], "argument --ref-dropout: must be <= 1, got 1.5"),
    (["--rank", "0"], "argument --rank: must be >= 1, got 0"),
    (["--shift", "-1"], "argument --shift: must be > 0, got -1"),
    (["--warmup", "-5"], "argument --warmup: must be >= 0, got -5"),
    (["--keep-checkpoints", "0"], "argument --keep-checkpoints: must be >= 1, got 0"),
    (["--targets", ","], "argument --targets: name at least one layer-name suffix"),
])
def test_train_rejects_bad_numbers(capsys, cache, tmp_path, args, message):
    from mv2id_train import train
    line = _fails(capsys, train.main, T.train_args(cache, tmp_path / "run", 1) + args)
    assert line.startswith("mv2id-train: error: ") and message in line, line
    assert not (tmp_path / "run").exists()


def test_train_out_file_missing_inputs_and_wrong_model(capsys, cache, tmp_path):
    from mv2id_train import train
    f = tmp_path / "file"
    f.write_text("x")
    args = T.train_args(cache, f, 1)
    assert f"argument --out: {f} is a file, not a folder" in _fails(capsys, train.main, args)
    args = T.train_args(tmp_path / "nocache", tmp_path / "run", 1)
    assert "argument --cache: " in _fails(capsys, train.main, args)
    args = T.train_args(cache, tmp_path / "run", 1)
    args[args.index("--model") + 1] = str(T.tiny_vae())
    line = _fails(capsys, train.main, args)
    assert line.startswith("mv2id-train: error: not a Wan 2.1 T2V diffusion model"), line


def test_train_resume_refuses_other_settings(capsys, cache, tmp_path):
    from mv2id_train import train
    args = T.train_args(cache, tmp_path / "run", 4, rank=4, warmup=0, save_every=2, stop_after=2)
    assert train.main(args) == 0
    capsys.readouterr()
    line = _fails(capsys, train.main, T.train_args(cache, tmp_path / "run", 4, rank=8, warmup=0, save_every=2))
    assert "was trained with other settings (rank: 4 -> 8)" in line and "--resume none" in line, line


def test_train_parser_defaults_are_the_dataclass_defaults(cache, tmp_path):
    from dataclasses import fields, MISSING
    from mv2id_train.train import TrainConfig, config_from_args
    cfg = config_from_args(["--cache", str(cache), "--model", str(T.tiny_unet()), "--out", str(tmp_path)])
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            assert getattr(cfg, f.name) == f.default, f.name
    assert cfg.ref_dropout == 0.1          # the zero-reference condition is trained by default
