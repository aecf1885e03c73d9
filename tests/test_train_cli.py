"""The training CLIs reject bad input up front with one line naming the problem (no traceback, no
half-done work), share one argument parser module, and survive torn JSONL files."""
from __future__ import annotations

import json
from pathlib import Path

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
ROW = {"id": "a", "video": "clip.mp4", "frame_indices": list(range(9)), "references": ["r0.png", "r1.png"]}


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
    manifest.write_text(json.dumps(ROW) + "\n")
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
    manifest.write_text(json.dumps(ROW) + "\n")
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


def _clip_manifest(tmp_path) -> Path:
    """A one-clip manifest (a real 9-frame video and two reference photos) in the layout mv2id-data writes."""
    import numpy as np
    from PIL import Image
    from video_files import write_video
    clip = (T.synthetic_clip(0).numpy() * 255).round().astype(np.uint8)
    write_video(tmp_path / "clip.mp4", list(clip), fps=16)
    for k in range(2):
        Image.fromarray(clip[4 * k]).save(tmp_path / f"ref{k}.png")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "video": str(tmp_path / "clip.mp4"), "frame_indices": list(range(9)),
                                    "references": ["ref0.png", "ref1.png"], "caption": "a clip"}) + "\n")
    return manifest


@pytest.mark.parametrize("shape,shown", [((77, 768), "[77, 768]"), ((1, 77, 768), "[77, 768]"), ((8, 77), "[8, 77]"),
                                         ((0, 4096), "[0, 4096]"), ((4096,), "[4096]")])
def test_cache_refuses_contexts_the_trainer_cannot_use(capsys, tmp_path, comfy_modules, shape, shown):
    """A text context that is not [tokens, 4096] (umT5-XXL, what Wan 2.1's text embedding takes) is refused before
    anything is encoded or written: it used to be cached with exit 0 and crash mv2id-train in a matmul."""
    import torch
    from safetensors.torch import save_file
    from mv2id_train import cache
    manifest = _clip_manifest(tmp_path)
    ctx = tmp_path / "ctx.safetensors"
    save_file({"default": torch.zeros(shape)}, str(ctx))
    line = _fails(capsys, cache.main, ["--manifest", str(manifest), "--vae", str(T.tiny_vae()), "--context-file", str(ctx),
                                       "--out", str(tmp_path / "c"), "--width", "64", "--height", "48", "--no-progress"])
    assert line == (f"mv2id-cache: error: --context-file {ctx}: 'default': text context {shown} is not [tokens, 4096]: "
                    f"Wan 2.1 reads umT5-XXL embeddings 4096 wide (CLIPLoader type 'wan' with umt5_xxl_*.safetensors); "
                    f"write [tokens, 4096] umT5 embeddings (or give --text-encoder umt5_xxl_fp16.safetensors)"), line
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("row,problem", [
    ({**ROW, "references": []}, "sample a lists no reference crops (references: []): every clip needs at least one"),
    ({**ROW, "frame_indices": []}, "sample a lists no frame indices (frame_indices: []): every clip needs at least one"),
    ({k: v for k, v in ROW.items() if k != "references"}, "sample a has no references"),
    ({"video": "clip.mp4"}, "row 1 has no id, frame_indices, references"),
    (["a"], "row 1 is list, not an object"),
])
def test_cache_refuses_manifest_rows_it_cannot_encode(capsys, tmp_path, row, problem):
    """A row without references (or frames, or a field mv2id-data writes) is refused with one line before any
    model loads: it used to end in 'ValueError: need at least one array to stack' for that clip."""
    from mv2id_train import cache
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    never_read = tmp_path / "never_read.safetensors"
    never_read.write_bytes(b"")
    line = _fails(capsys, cache.main, ["--manifest", str(manifest), "--vae", str(never_read), "--context-file",
                                       str(never_read), "--out", str(tmp_path / "c"), "--no-progress"])
    assert line == (f"mv2id-cache: error: {manifest}: {problem}; give each clip id, video, frame_indices, references "
                    f"as mv2id-data writes them"), line
    assert not (tmp_path / "c").exists()


def test_cache_names_references_of_different_sizes(capsys, tmp_path, comfy_modules):
    """Reference crops of one clip are masked as one batch (as Face Views' crops are): crops of different sizes fail
    that clip with one line naming each crop's size, and the run goes on with the others (exit 1)."""
    import numpy as np
    from PIL import Image
    from mv2id_train import cache
    manifest = _clip_manifest(tmp_path)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "small.png")
    good = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**good, "id": "b", "references": ["ref0.png", "small.png"]}) + "\n"
                        + json.dumps(good) + "\n")
    ctx = tmp_path / "ctx.safetensors"
    import torch
    from safetensors.torch import save_file
    save_file({"default": torch.zeros(8, 4096)}, str(ctx))
    rc = cache.main(["--manifest", str(manifest), "--vae", str(T.tiny_vae()), "--context-file", str(ctx),
                     "--out", str(tmp_path / "c"), "--width", "64", "--height", "48", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 1, err
    assert err.strip().splitlines()[-1] == (
        "mv2id-cache: b: reference crops differ in size (ref0.png 64x48, small.png 30x20): give crops of one size, as "
        "mv2id-data writes them (--ref-size) and Face Views makes them"), err
    assert json.loads(out.strip().splitlines()[-1])["samples"] == 1 and '"failed": 1' in out


def test_cache_writer_checks_every_sample_by_the_trainers_rule():
    """The writer refuses what mv2id-train could not train on (the same rule the trainer applies when reading),
    naming the sample and every problem."""
    import torch
    from mv2id_train.cache_format import CacheWriter, SampleError
    good = dict(video=torch.zeros(16, 3, 6, 8), refs=[torch.zeros(16, 3, 6, 8)], context=torch.zeros(8, 4096))
    bad = {
        "text context [8, 768] is not [tokens, 4096]": dict(context=torch.zeros(8, 768)),
        "video latent [4, 3, 6, 8] is not [16, frames, h, w]": dict(video=torch.zeros(4, 3, 6, 8)),
        "video latent [16, 3, 5, 8] is not [16, frames, h, w] with even h and w": dict(video=torch.zeros(16, 3, 5, 8)),
        "reference latents [16, 0, 6, 8] are not [16, references, h, w] with at least one reference":
            dict(refs=[torch.zeros(16, 0, 6, 8)]),
        "reference latents are 12x16 but the video latent is 6x8": dict(refs=[torch.zeros(16, 3, 12, 16)]),
        "NaN or infinite values in the reference latents": dict(refs=[torch.full((16, 3, 6, 8), float("nan"))]),
        "NaN or infinite values in the text context": dict(context=torch.full((8, 4096), float("inf"))),
    }
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        wr = CacheWriter(d)
        for message, change in bad.items():
            kw = {**good, **change}
            with pytest.raises(SampleError, match=r"^sample s: .*" + message.replace("[", r"\[").replace("]", r"\]")):
                wr.add("s", kw["video"], kw["refs"], kw["context"])
        wr.add("s", good["video"], good["refs"], good["context"])
        wr.close()
        assert len(wr.samples) == 1


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
    # RD-RoPE settings: refused at parsing by mv2id_core.rdrope's own rule (the one the node and LoRA metadata use)
    (["--rdrope-offset", "99"], "argument --rdrope-offset: RD-RoPE offset must be a number from 0 to 64, got 99.0"),
    (["--rdrope-offset", "-1"], "argument --rdrope-offset: RD-RoPE offset must be a number from 0 to 64, got -1.0"),
    (["--rdrope-offset", "nan"], "argument --rdrope-offset: must be a finite number, got 'nan'"),
    (["--rdrope-first-index", "17"],
     "argument --rdrope-first-index: RD-RoPE first_index must be a whole number from 0 to 16, got 17"),
    (["--rdrope-first-index", "1.5"], "argument --rdrope-first-index: must be a whole number, got '1.5'"),
    (["--rdrope-mode", "diagonal"], "argument --rdrope-mode: invalid choice: 'diagonal'"),
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
    # a 48-channel Wan 2.2 5B is refused by the nodes' own channel check, naming the file
    from workflow_api import TINY_WAN22
    wan22 = T.tiny_unet().parent / TINY_WAN22
    args[args.index("--model") + 1] = str(wan22)
    line = _fails(capsys, train.main, args)
    assert line == (f"mv2id-train: error: Mv2ID needs a Wan 2.1-class text-to-video model (16 latent channels: "
                    f"Phantom-Wan, Wan 2.1 T2V, Wan 2.2 A14B T2V), but {wan22} takes 48 input channels: the Wan 2.2 "
                    f"5B, which has no Phantom weights and another latent. Train from Phantom-Wan or Wan 2.1 T2V (1.3B "
                    f"or 14B)."), line


def _copy_cache(cache, dst):
    import shutil
    shutil.copytree(cache, dst)
    return dst


def _rewrite_shard(cache_dir, change):
    """Rewrite the one shard of a cache with change(name, tensor) -> tensor, bypassing the writer's check (a cache
    from an older mv2id-cache, or edited by hand)."""
    from safetensors.torch import load_file, save_file
    shard = next(cache_dir.glob("shard-*.safetensors"))
    save_file({k: change(k, v) for k, v in load_file(str(shard)).items()}, str(shard), metadata={"format": "mv2id-cache"})
    return shard


def test_train_refuses_a_cache_it_cannot_use(capsys, cache, tmp_path):
    """mv2id-train checks the cache by the rule mv2id-cache writes with: the index records when it opens the cache,
    every tensor when it reads it, with one line naming the file, the sample and the fix."""
    import torch
    from mv2id_train import train
    # a context of the wrong width, in a cache whose index (as an older mv2id-cache wrote it) records no shapes
    bad = _copy_cache(cache, tmp_path / "narrow")
    index = json.loads((bad / "index.json").read_text())
    for s in index["samples"]:
        s.pop("context_shape"), s.pop("refs_shape")
    (bad / "index.json").write_text(json.dumps(index))
    shard = _rewrite_shard(bad, lambda k, v: torch.zeros(8, 77) if k.endswith("/context") else v)
    line = _fails(capsys, train.main, T.train_args(bad, tmp_path / "run", 1))
    assert line == (f"mv2id-train: error: {shard}: sample s0: text context [8, 77] is not [tokens, 4096]: Wan 2.1 "
                    f"reads umT5-XXL embeddings 4096 wide (CLIPLoader type 'wan' with umt5_xxl_*.safetensors). "
                    f"Rebuild the cache with mv2id-cache"), line
    # NaN in a latent
    bad = _copy_cache(cache, tmp_path / "nan")
    shard = _rewrite_shard(bad, lambda k, v: v * float("nan") if k.endswith("/video") else v)
    line = _fails(capsys, train.main, T.train_args(bad, tmp_path / "run2", 1))
    assert line.endswith("sample s0: NaN or infinite values in the video latent. Rebuild the cache with mv2id-cache")
    # an index that records shapes the trainer cannot use is refused when the cache is opened
    bad = _copy_cache(cache, tmp_path / "index")
    index = json.loads((bad / "index.json").read_text())
    index["samples"][0]["refs_shape"][1] = 0
    (bad / "index.json").write_text(json.dumps(index))
    line = _fails(capsys, train.main, T.train_args(bad, tmp_path / "run3", 1))
    assert line.startswith(f"mv2id-train: error: {bad / 'index.json'}: sample s0: reference latents [16, 0, ") and \
        line.endswith("with at least one reference. Rebuild the cache with mv2id-cache (the Wan 2.1 VAE and umT5-XXL "
                      "embeddings)"), line
    assert not any((tmp_path / r / "log.jsonl").exists() for r in ("run", "run2", "run3"))


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


def test_no_training_function_is_too_long_to_read():
    """The training drivers stay readable: no function of mv2id_train/ over 80 lines."""
    import ast
    from pathlib import Path
    long = []
    for p in sorted((Path(__file__).resolve().parent.parent / "mv2id_train").glob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80:
                long.append(f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert long == [], long
