"""Training core: the training forward is the inference forward (positions and outputs), flow
matching, LoRA keys that ComfyUI maps, RD-RoPE metadata."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from mv2id_core.rdrope import RDRoPEConfig, config_from_metadata, config_to_metadata, position_ids

import train_helpers as T


@pytest.fixture(scope="module")
def comfy_pkg(comfy_modules):
    return comfy_modules


def _capture_ids(dm):
    """Record the position ids every rope_embedder call receives."""
    seen = []
    h = dm.rope_embedder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    return seen, h


def _inputs(seed=0, frames=3, refs=3, h=6, w=8, ctx=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 16, frames, h, w, generator=g), torch.tensor([0.7]),
            torch.randn(1, ctx, 4096, generator=g), torch.randn(1, 16, refs, h, w, generator=g))


@pytest.mark.parametrize("config", [RDRoPEConfig("rd", 1.0, 1), RDRoPEConfig("rd", 2.5, 0), RDRoPEConfig("vanilla")])
def test_training_positions_and_output_equal_inference(comfy_pkg, config):
    """The trainer's forward and the patched ComfyUI model (Mv2ID RD-RoPE node path) see the same
    position ids and predict the same velocity for the same inputs."""
    import comfy.model_management
    import comfy.sd
    from mv2id_core.comfyui.rdrope_patch import patch_rdrope
    from mv2id_train import wan

    x, sigma, ctx, refs = _inputs()
    # training side: bare WanModel, RD-RoPE installed, references in model space
    dm, _ = wan.load_wan(str(T.tiny_unet()))
    wan.install_rdrope(dm, config)
    wan.enable_gradient_checkpointing(dm)
    seen_train, h1 = _capture_ids(dm)
    with torch.no_grad():
        v_train = wan.model_forward(dm, x, sigma, ctx, refs, wan.transformer_options())
    h1.remove()

    # inference side: UNETLoader's loader, the RD-RoPE node's patch, ComfyUI's apply_model
    mp = comfy.sd.load_diffusion_model(str(T.tiny_unet()))
    patched = patch_rdrope(mp, config, expected_refs=refs.shape[2])
    comfy.model_management.load_models_gpu([patched])
    base = patched.model
    seen_inf, h2 = _capture_ids(base.diffusion_model)
    try:
        with torch.no_grad():
            topts = copy.copy(patched.model_options["transformer_options"])
            topts["wrappers"] = copy.copy(patched.wrappers)          # as sampler_helpers.prepare_model_patcher does
            denoised = base.apply_model(x, sigma, c_crossattn=ctx, time_dim_concat=refs, transformer_options=topts)
    finally:
        h2.remove()
        comfy.model_management.unload_all_models()
    v_inf = (x - denoised) / sigma.view(-1, 1, 1, 1, 1)

    expected = position_ids(3, 3, 3, 4, config).unsqueeze(0)
    assert len(seen_train) == 1 and len(seen_inf) == 1
    assert torch.equal(seen_train[0], seen_inf[0])
    assert torch.equal(seen_train[0], expected)
    assert v_train.shape == x.shape                      # reference frames dropped from the output
    torch.testing.assert_close(v_train, v_inf, rtol=1e-4, atol=1e-4)


def test_flow_matching_parameterisation():
    from mv2id_train import flow
    u = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(flow.shift_sigma(u, 5.0), torch.tensor([0.0, 5 * 0.5 / (1 + 4 * 0.5), 1.0], dtype=torch.float64))
    x0, noise = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    sigma = torch.tensor([0.25, 0.9])
    xt, target = flow.noised(x0, noise, sigma)
    assert torch.allclose(xt[0], 0.75 * x0[0] + 0.25 * noise[0]) and torch.equal(target, noise - x0)
    # same (seed, step, index) -> same draw; different index -> different draw
    a, b, c = flow.draw(0, 3, 7, (4,), 5.0), flow.draw(0, 3, 7, (4,), 5.0), flow.draw(0, 3, 8, (4,), 5.0)
    assert torch.equal(a[1], b[1]) and float(a[0]) == float(b[0]) and not torch.equal(a[1], c[1])
    sig = torch.stack([flow.draw(1, s, 0, (1,), 5.0)[0] for s in range(400)])
    assert 0.0 < float(sig.min()) and float(sig.max()) <= 1.0 and float(sig.mean()) > 0.7   # shift 5 favours noise
    assert math.isclose(flow.lr_at(0, 1e-3, 10), 1e-4) and math.isclose(flow.lr_at(50, 1e-3, 10), 1e-3)


def test_lora_keys_are_the_ones_comfyui_maps(comfy_pkg, tmp_path):
    import comfy.lora
    import comfy.sd
    from mv2id_train import lora, wan
    dm, _ = wan.load_wan(str(T.tiny_unet()))
    names = lora.add_lora(dm, rank=4)
    assert len(names) == 2 * 10
    trainable = {n: p for n, p in dm.named_parameters() if p.requires_grad}
    sd = lora.comfy_lora_state_dict(trainable, {n: 4.0 for n in names})
    mp = comfy.sd.load_diffusion_model(str(T.tiny_unet()))
    key_map = comfy.lora.model_lora_keys_unet(mp.model, {})
    patches = comfy.lora.load_lora(sd, key_map, log_missing=True)
    assert sorted(patches) == sorted(f"diffusion_model.{n}.weight" for n in names)
    assert "diffusion_model.blocks.0.self_attn.q.lora_up.weight" in sd


def test_rdrope_metadata_roundtrip():
    cfg = RDRoPEConfig("rd", 2.5, 0)
    md = config_to_metadata(cfg)
    assert md == {"mv2id.rdrope.mode": "rd", "mv2id.rdrope.offset": "2.5", "mv2id.rdrope.first_index": "0"}
    assert config_from_metadata(md) == cfg
    assert config_from_metadata({"other": "x"}) is None
    with pytest.raises(ValueError):
        config_from_metadata({"mv2id.rdrope.mode": "sideways"})


@pytest.mark.parametrize("checkpointing", [True, False])
def test_backward_runs_on_this_hosts_model_code(comfy_pkg, checkpointing):
    """A training step's backward goes through ComfyUI's own WanModel on the host under test.
    ComfyUI 0.33 applies RoPE with a fused comfy_kitchen kernel that has no backward; training
    must take ComfyUI's differentiable path (also when checkpointing recomputes blocks inside
    backward) and leave ComfyUI's switch as it found it, so inference keeps the fused kernel."""
    import comfy.model_management as mm
    from mv2id_train import lora, wan
    dm, _ = wan.load_wan(str(T.tiny_unet()))
    wan.install_rdrope(dm, RDRoPEConfig())
    names = lora.add_lora(dm, rank=4)
    if checkpointing:
        wan.enable_gradient_checkpointing(dm)
    dm.train()
    x, sigma, ctx, refs = _inputs()
    before = getattr(mm, "in_training", None)
    options, calls = wan.transformer_options(), []
    attention = options["optimized_attention_override"]
    options["optimized_attention_override"] = lambda *a, **k: calls.append(1) or attention(*a, **k)
    pred = wan.model_forward(dm, x, sigma, ctx, refs, options)
    assert getattr(mm, "in_training", None) == before          # restored after the forward
    pred.float().pow(2).mean().backward()
    assert getattr(mm, "in_training", None) == before          # and after the recomputing backward
    # every self- and cross-attention of both blocks, forward and (checkpointing) recomputation, ran
    # training_attention: one fixed set of SDPA kernels, so a recomputation matches its forward
    assert len(calls) == 2 * 2 * (2 if checkpointing else 1)
    grads = [dm.get_submodule(n).lora_up.weight.grad for n in names]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_bf16_lora_training_keeps_large_position_ids_exact(comfy_pkg, tmp_path):
    """bf16 LoRA training (the frozen model in bf16) builds its position ids through RD-RoPE in
    float32: with 66 tokens per row and three references the width ids reach 263, and odd ids
    above 256 (e.g. 261), which bf16 cannot hold, arrive unrounded."""
    from mv2id_train.cache_format import CacheWriter
    from mv2id_train.train import Trainer, config_from_args
    g = torch.Generator().manual_seed(0)
    wr = CacheWriter(tmp_path / "cache", {"synthetic": True})
    wr.add("wide", torch.randn(16, 1, 2, 132, generator=g), [torch.randn(16, 3, 2, 132, generator=g)],
           torch.randn(4, 4096, generator=g))
    wr.close()
    cfg = config_from_args(T.train_args(tmp_path / "cache", tmp_path / "run", 1, precision="bf16", warmup=0,
                                        save_every=0, rank=4))
    tr = Trainer(cfg)
    assert next(p for n, p in tr.model.named_parameters() if n.endswith("self_attn.q.weight")).dtype == torch.bfloat16
    seen, h = _capture_ids(tr.model)
    try:
        loss, _ = tr.train_step(0)
    finally:
        h.remove()
    assert math.isfinite(loss) and len(seen) >= 1
    ids = seen[0][0]
    assert ids.dtype == torch.float32
    assert torch.equal(ids, position_ids(1, 3, 1, 66, cfg.rdrope).to(ids.device))
    assert float(ids[:, 2].max()) == 263.0 and bool((ids[:, 2] == 261).any())
