"""Write small but real Wan 2.1 weights (safetensors, ComfyUI key layout) for tests and the demo.

The modules are built from ComfyUI's own classes (comfy.ldm.wan.model.WanModel and
comfy.ldm.wan.vae.WanVAE) so the key set is exactly what ComfyUI's loaders expect, then
every tensor is filled deterministically from its name, so the files are byte-identical on
every machine. Presets:

  tiny  : D=128, 1 head, 2 blocks, FFN 256 (~1.1M parameters) + an 8-wide Wan 2.1 VAE, a
          Wan 2.2-shaped (48-channel) twin that tests use as the wrong model type, a rank-4 LoRA that
          records RD-RoPE settings (loras/), and a tiny RIFE model (frame_interpolation/)
  1.3b  : the Wan 2.1 T2V 1.3B shapes (D=1536, 12 heads, 30 blocks, FFN 8960), random weights,
          for benchmarks on a GPU machine only (about 2.8 GB in bf16)
  14b   : the Wan 2.1 T2V 14B shapes (D=5120, 40 heads, 40 blocks, FFN 13824; also Phantom-Wan 14B and
          Wan 2.2 A14B), random weights, for benchmarks on a GPU machine only: 28.6 GB in bf16, so
          benchmarks build it in memory (state_dict(..., device="cuda"): seconds on a GPU) instead of a file

Usage: python tools/make_tiny_models.py --comfyui <ComfyUI dir> --out <models dir> [--preset tiny]
Writes <out>/<model folder>/<name>; skips files that are already current.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import zlib

GENERATOR_VERSION = "1"

PRESETS = {
    "tiny": dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2, vae_dim=8,
                 unet_name="mv2id_tiny_wan21_t2v.safetensors", vae_name="mv2id_tiny_wan21_vae.safetensors",
                 # a Wan 2.2 TI2V-5B-shaped model (48-channel latent): the "wrong model" in tests
                 wan22_name="mv2id_tiny_wan22_ti2v.safetensors",
                 # a LoRA for the tiny model that records RD-RoPE settings, as mv2id-train writes them
                 lora_name="mv2id_tiny_lora_rd.safetensors", lora_rank=4,
                 # a RIFE frame interpolation model with 8-wide blocks (ComfyUI's FrameInterpolationModelLoader
                 # reads the widths from the file; only ComfyUI versions that have that loader get it)
                 rife_name="mv2id_tiny_rife.safetensors"),
    "1.3b": dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, vae_dim=96,
                 unet_name="mv2id_random_wan21_t2v_1.3b.safetensors", vae_name="mv2id_random_wan21_vae.safetensors"),
    "14b": dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, vae_dim=96,
                unet_name="mv2id_random_wan21_t2v_14b.safetensors", vae_name="mv2id_random_wan21_vae.safetensors"),
}


def _import_comfy(comfyui_dir: str):
    """ComfyUI's `comfy` package from `comfyui_dir`, imported the way training imports it (mv2id_train.comfy_env,
    the one place that puts ComfyUI on sys.path)."""
    from mv2id_train.comfy_env import import_comfy
    comfy = import_comfy(comfyui_dir)
    import comfy.ldm.wan.vae  # noqa: F401
    return comfy


def _fill(name: str, shape, dtype, seed: int, device="cpu"):
    """A deterministic value for one tensor, chosen from its role (its name). On the CPU the values are the
    same on every machine; on a GPU they come from its own generator (fast, for the large presets)."""
    import torch
    g = torch.Generator(device=device).manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "gamma" or ("norm" in name and leaf == "weight"):
        return torch.ones(shape, dtype=dtype, device=device)           # norm scales: identity
    if leaf == "bias" or leaf == "beta":
        return (torch.randn(shape, generator=g, device=device) * 0.01).to(dtype)
    if "modulation" in name:
        return (torch.randn(shape, generator=g, device=device) * 0.02).to(dtype)
    fan_in = int(math.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    return (torch.randn(shape, generator=g, device=device) / math.sqrt(max(fan_in, 1))).to(dtype)


def _state_dict(module, seed: int, dtype, device="cpu", out_device=None):
    """{name: filled tensor} for every tensor of `module` (built on the meta device), made on `device` and
    moved to `out_device` (default: left where made) one by one, so a GPU holds one tensor at a time."""
    out = {}
    for k, v in sorted(module.state_dict().items()):
        t = _fill(k, tuple(v.shape), dtype, seed, device).contiguous()
        out[k] = t if out_device is None else t.to(out_device)
    return out


def wan21_state_dict(comfyui_dir: str, preset: str, seed: int = 0, dtype_name: str = "bfloat16", device="cpu",
                     out_device="cpu") -> dict:
    """The random Wan 2.1 T2V diffusion model of `preset` as a state dict, without writing a file (ComfyUI's
    comfy.sd.load_diffusion_model_state_dict loads it). device="cuda" builds 14B in seconds."""
    comfy = _import_comfy(comfyui_dir)
    import torch
    p = PRESETS[preset]
    with torch.device("meta"):
        model = comfy.ldm.wan.model.WanModel(
            model_type="t2v", dim=p["dim"], ffn_dim=p["ffn_dim"], num_heads=p["num_heads"],
            num_layers=p["num_layers"], operations=comfy.ops.disable_weight_init)
    return _state_dict(model, seed, getattr(torch, dtype_name), device, out_device)


def _digest(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def _is_current(path: str, meta: dict) -> bool:
    """True when `path` was written by this generator with these exact settings."""
    if not os.path.isfile(path):
        return False
    from safetensors import safe_open
    try:
        with safe_open(path, "pt") as f:
            return (f.metadata() or {}).get("mv2id_generator") == _digest(meta)
    except Exception:
        return False


def _save(sd, path: str, meta: dict, extra_metadata: dict | None = None) -> None:
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    save_file(sd, tmp, metadata={**{k: str(v) for k, v in meta.items()}, "mv2id_generator": _digest(meta),
                                 **(extra_metadata or {})})
    os.replace(tmp, path)


def _rdrope_metadata() -> dict:
    """The RD-RoPE settings a LoRA trained by mv2id-train records (mv2id_core.rdrope's own writer)."""
    from mv2id_core.rdrope import RDRoPEConfig, config_to_metadata
    return config_to_metadata(RDRoPEConfig("rd", 1.0, 1))


def _tiny_lora(p: dict, seed: int) -> dict:
    """ComfyUI-format LoRA keys (diffusion_model.<layer>.lora_down/lora_up/alpha) on every attention
    projection of the tiny model."""
    import torch
    sd, r, d = {}, p["lora_rank"], p["dim"]
    for b in range(p["num_layers"]):
        for proj in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o"):
            key = f"diffusion_model.blocks.{b}.{proj}"
            sd[f"{key}.lora_down.weight"] = _fill(f"{key}.lora_down.weight", (r, d), torch.float32, seed)
            sd[f"{key}.lora_up.weight"] = _fill(f"{key}.lora_up.weight", (d, r), torch.float32, seed)
            sd[f"{key}.alpha"] = torch.tensor(float(r))
    return sd


def build(comfyui_dir: str, out_dir: str, preset: str = "tiny", seed: int = 0, dtype_name: str = "float32"):
    comfy = _import_comfy(comfyui_dir)
    import torch
    p = PRESETS[preset]
    dtype = getattr(torch, dtype_name)
    written = []

    meta = dict(version=GENERATOR_VERSION, preset=preset, seed=seed, dtype=dtype_name, kind="wan21_t2v")
    path = os.path.join(out_dir, "diffusion_models", p["unet_name"])
    if not _is_current(path, meta):
        _save(wan21_state_dict(comfyui_dir, preset, seed, dtype_name), path, meta)
        written.append(path)

    if "wan22_name" in p:
        meta = dict(version=GENERATOR_VERSION, preset=preset, seed=seed + 2, dtype=dtype_name, kind="wan22_ti2v")
        path = os.path.join(out_dir, "diffusion_models", p["wan22_name"])
        if not _is_current(path, meta):
            with torch.device("meta"):
                model = comfy.ldm.wan.model.WanModel(
                    model_type="t2v", in_dim=48, out_dim=48, dim=p["dim"], ffn_dim=p["ffn_dim"],
                    num_heads=p["num_heads"], num_layers=1, operations=comfy.ops.disable_weight_init)
            _save(_state_dict(model, seed + 2, dtype), path, meta)
            written.append(path)

    if "lora_name" in p:
        meta = dict(version=GENERATOR_VERSION, preset=preset, seed=seed + 3, rank=p["lora_rank"], kind="lora_rd")
        path = os.path.join(out_dir, "loras", p["lora_name"])
        if not _is_current(path, meta):
            _save(_tiny_lora(p, seed + 3), path, meta, extra_metadata=_rdrope_metadata())
            written.append(path)

    if "rife_name" in p:
        try:
            from comfy_extras.frame_interpolation_models.ifnet import IFNet
        except ImportError:
            IFNet = None          # this ComfyUI has no core frame interpolation
        meta = dict(version=GENERATOR_VERSION, preset=preset, seed=seed + 4, kind="rife")
        path = os.path.join(out_dir, "frame_interpolation", p["rife_name"])
        if IFNet is not None and not _is_current(path, meta):
            with torch.device("meta"):
                rife = IFNet(head_ch=4, channels=(8, 8, 8, 8, 8), operations=comfy.ops.disable_weight_init)
            _save(_state_dict(rife, seed + 4, torch.float32), path, meta)
            written.append(path)

    meta = dict(version=GENERATOR_VERSION, preset=preset, seed=seed + 1, dtype="float32", kind="wan21_vae")
    path = os.path.join(out_dir, "vae", p["vae_name"])
    if not _is_current(path, meta):
        with torch.device("meta"):
            vae = comfy.ldm.wan.vae.WanVAE(dim=p["vae_dim"], z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                           attn_scales=[], temperal_downsample=[False, True, True])
        _save(_state_dict(vae, seed + 1, torch.float32), path, meta)
        written.append(path)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", required=True, help="ComfyUI folder (for its model classes)")
    ap.add_argument("--out", required=True, help="models folder to write diffusion_models/ and vae/ into")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", help="diffusion model dtype (float32, bfloat16, float16)")
    a = ap.parse_args(argv)
    written = build(a.comfyui, a.out, a.preset, a.seed, a.dtype)
    p = PRESETS[a.preset]
    print(json.dumps({"written": written,
                      "unet_name": p["unet_name"], "vae_name": p["vae_name"], "out": os.path.abspath(a.out)}))


if __name__ == "__main__":
    main()
