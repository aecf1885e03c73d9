"""LoRA on WanModel's linear layers, saved in the key format ComfyUI's LoraLoaderModelOnly loads.

Each targeted nn.Linear gets two child modules, lora_down [r, in] and lora_up [out, r], and a
forward hook adding  up(down(x)) * alpha / r  to its output. Because they are children of the
layer itself, their names are "<layer>.lora_down.weight" / "<layer>.lora_up.weight"; prefixed
with "diffusion_model." they are exactly the keys comfy/lora.py maps for a Wan model
(model_lora_keys_unet: "diffusion_model.<layer>" -> "diffusion_model.<layer>.weight"), with
"<layer>.alpha" beside them.
"""
from __future__ import annotations

import json
import math

import torch

DEFAULT_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                   "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
KEY_PREFIX = "diffusion_model."


def _hook(module, inputs, output):
    x = inputs[0]
    d = module.lora_down(x.to(module.lora_down.weight.dtype))
    return output + (module.lora_up(d) * module.lora_scale).to(output.dtype)


def target_names(model, targets=DEFAULT_TARGETS) -> list[str]:
    """Names of the blocks' linear layers whose name ends with one of `targets`."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.startswith("blocks.") and any(
                name == t or name.endswith("." + t) for t in targets):
            out.append(name)
    if not out:
        raise ValueError(f"no linear layer matches the LoRA targets {list(targets)}")
    return out


def add_lora(model, rank: int = 32, alpha: float | None = None, targets=DEFAULT_TARGETS, seed: int = 0) -> list[str]:
    """Add LoRA to the targeted layers (in place); freezes everything else. Returns the layer names.

    lora_down: Kaiming-uniform (deterministic in `seed` and the layer name, so every process of a
    distributed run starts identical); lora_up: zeros, so the model is unchanged at step 0.
    """
    alpha = float(rank if alpha is None else alpha)
    names = target_names(model, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        lin = model.get_submodule(name)
        dev = lin.weight.device
        down = torch.nn.Linear(lin.in_features, rank, bias=False, device=dev, dtype=torch.float32)
        up = torch.nn.Linear(rank, lin.out_features, bias=False, device=dev, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed * 7919 + sum(map(ord, name)) * 31 + len(name))
        bound = 1.0 / math.sqrt(lin.in_features)          # kaiming_uniform_(a=sqrt(5))
        with torch.no_grad():
            down.weight.copy_((torch.rand(down.weight.shape, generator=g) * 2 - 1) * bound)
            up.weight.zero_()
        lin.lora_down, lin.lora_up = down, up
        lin.lora_scale = alpha / rank
        lin.lora_alpha = alpha
        lin.register_forward_hook(_hook)
    return names


def lora_layers(model) -> list[str]:
    return [n for n, m in model.named_modules() if hasattr(m, "lora_down") and hasattr(m, "lora_up")]


def comfy_lora_state_dict(trainable: dict, layers: dict, dtype=torch.bfloat16) -> dict:
    """{layer.lora_down.weight: T, ...} (full tensors) + {layer: alpha} -> ComfyUI LoRA keys."""
    out = {}
    for layer, alpha in layers.items():
        out[f"{KEY_PREFIX}{layer}.lora_down.weight"] = trainable[f"{layer}.lora_down.weight"].detach().to("cpu", dtype).contiguous()
        out[f"{KEY_PREFIX}{layer}.lora_up.weight"] = trainable[f"{layer}.lora_up.weight"].detach().to("cpu", dtype).contiguous()
        out[f"{KEY_PREFIX}{layer}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return out


def save_safetensors(tensors: dict, path, metadata: dict) -> None:
    """Write a safetensors file in one step (a temporary file moved into place)."""
    from safetensors.torch import save_file
    from .files import replacing
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()})

