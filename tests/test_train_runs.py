"""Training runs on the tiny Wan model (CPU): overfitting one sample, exact resume, and a
two-process torchrun (FSDP2 on gloo) equal to one process with the same global batch."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import train_helpers as T


@pytest.fixture(scope="module")
def cache(tmp_path_factory, comfy_modules):
    return T.make_cache(tmp_path_factory.mktemp("cache"), n=2, draws=2)


@pytest.fixture(scope="module")
def one_sample_cache(tmp_path_factory, comfy_modules):
    return T.make_cache(tmp_path_factory.mktemp("cache1"), n=1, draws=3)


def _trainer(cache, out, steps, **kw):
    from mv2id_train.train import Trainer, config_from_args
    cfg = config_from_args(T.train_args(cache, out, steps, **kw))
    cfg.log_every = 0
    return Trainer(cfg)


def test_overfits_one_sample(one_sample_cache, tmp_path):
    tr = _trainer(one_sample_cache, tmp_path, 150, rank=16, lr=3e-3, warmup=10, save_every=0)
    before = T.eval_loss(tr)
    records = tr.run()
    after = T.eval_loss(tr)
    losses = [r["loss"] for r in records]
    print(f"eval loss {before:.4f} -> {after:.4f} ({before / after:.2f}x); train loss {losses[0]:.4f} -> "
          f"{sum(losses[-20:]) / 20:.4f}")
    assert before / after > 1.8
    assert sum(losses[-20:]) / 20 < 0.6 * losses[0]
    lora = load_file(str(tmp_path / "mv2id_lora.safetensors"))
    assert any(float(v.abs().max()) > 0 for k, v in lora.items() if k.endswith("lora_up.weight"))


def test_resume_gives_the_same_curve(cache, tmp_path):
    kw = dict(rank=8, lr=2e-3, warmup=3, save_every=5, batch_size=2)
    full = _trainer(cache, tmp_path / "a", 12, **kw).run()
    first = _trainer(cache, tmp_path / "b", 12, stop_after=8, **kw).run()      # "interrupted" after step 7
    assert [r["step"] for r in first] == list(range(8))
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-0000005", "step-0000008"]
    second = _trainer(cache, tmp_path / "b", 12, **kw).run()                   # resume auto: from step 8
    assert [r["step"] for r in second] == list(range(8, 12))
    log = T.read_log(tmp_path / "b")
    assert [r["step"] for r in log] == list(range(12))
    torch.testing.assert_close(torch.tensor([r["loss"] for r in log]), torch.tensor([r["loss"] for r in full]),
                               rtol=1e-6, atol=1e-7)
    a = load_file(str(tmp_path / "a" / "mv2id_lora.safetensors"))
    b = load_file(str(tmp_path / "b" / "mv2id_lora.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)


def test_torchrun_two_processes_equal_one_process(cache, tmp_path):
    """torchrun, 2 processes x batch 1 on gloo with FSDP2 == 1 process x batch 2 (same global batch)."""
    kw = dict(rank=8, lr=2e-3, warmup=2, save_every=4)
    T.run_cli("mv2id_train.train", T.train_args(cache, tmp_path / "one", 6, batch_size=2, **kw))
    # the two-process run is also interrupted after 5 steps and resumed from its FSDP checkpoint
    T.run_cli("mv2id_train.train", T.train_args(cache, tmp_path / "two", 6, batch_size=1, stop_after=5, **kw), nproc=2)
    assert len(T.read_log(tmp_path / "two")) == 5
    T.run_cli("mv2id_train.train", T.train_args(cache, tmp_path / "two", 6, batch_size=1, **kw), nproc=2)
    one, two = T.read_log(tmp_path / "one"), T.read_log(tmp_path / "two")
    assert len(one) == len(two) == 6
    torch.testing.assert_close(torch.tensor([r["loss"] for r in two]), torch.tensor([r["loss"] for r in one]),
                               rtol=1e-5, atol=1e-6)
    a = load_file(str(tmp_path / "one" / "mv2id_lora.safetensors"))
    b = load_file(str(tmp_path / "two" / "mv2id_lora.safetensors"))
    assert a.keys() == b.keys() and len(a) == 60
    # gradients are summed in a different order (gloo reduce-scatter vs one batch); Adam divides by
    # sqrt(v), which amplifies that rounding for elements whose gradient is near zero: compare each
    # tensor as a whole tightly and single elements within a small fraction of one lr step
    for k in a:
        rel = float((b[k] - a[k]).norm() / a[k].norm().clamp_min(1e-12))
        assert rel < 1e-4, (k, rel)
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=0.05 * kw["lr"])


def test_full_finetune_and_bf16_lora(cache, tmp_path):
    """--full writes a diffusion model in ComfyUI's key layout (what UNETLoader loads); a bf16 LoRA
    run (the frozen model in bf16 as ComfyUI runs it, fp32 LoRA weights) trains too."""
    from safetensors import safe_open
    tr = _trainer(cache, tmp_path / "full", 2, full=True, warmup=0, save_every=0, name="full_ft")
    tr.run()
    full = load_file(str(tmp_path / "full" / "full_ft.safetensors"))
    base = load_file(str(T.tiny_unet()))
    assert full.keys() == base.keys()
    assert all(full[k].dtype == torch.float32 for k in full)      # --save-dtype fp32 in the tests
    assert any(not torch.equal(full[k], base[k]) for k in base)
    with safe_open(str(tmp_path / "full" / "full_ft.safetensors"), "pt") as f:
        assert f.metadata()["mv2id.train.kind"] == "full" and f.metadata()["mv2id.rdrope.mode"] == "rd"
    recs = _trainer(cache, tmp_path / "bf16", 2, precision="bf16", warmup=0, save_every=0).run()
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in recs)


def test_lora_records_its_base_model(cache, tmp_path):
    """A LoRA trained on Phantom-Wan says so: the base's file name sits in the metadata beside the
    RD-RoPE settings (the RD-RoPE node reads those; people read the base)."""
    from safetensors import safe_open
    from mv2id_train.train import config_from_args, Trainer
    base = tmp_path / "Phantom-Wan-1_3B_fp16.safetensors"
    base.write_bytes(T.tiny_unet().read_bytes())
    args = T.train_args(cache, tmp_path / "run", 1, warmup=0, save_every=0, rank=4)
    args[args.index("--model") + 1] = str(base)
    cfg = config_from_args(args)
    cfg.log_every = 0
    Trainer(cfg).run()
    with safe_open(str(tmp_path / "run" / "mv2id_lora.safetensors"), "pt") as f:
        md = f.metadata()
    assert md["mv2id.train.base_model"] == "Phantom-Wan-1_3B_fp16.safetensors"
    assert md["mv2id.rdrope.mode"] == "rd" and md["mv2id.train.kind"] == "lora"
