"""The Wan 2.1 model exactly as ComfyUI runs it, set up for training.

- load_wan: a bare comfy.ldm.wan.model.WanModel from a ComfyUI-format safetensors file (the
  file UNETLoader loads), config detected by ComfyUI's own comfy.model_detection.
- RD-RoPE: the very rope_encode replacement that the inference patch installs
  (mv2id_core.comfyui.rdrope_patch), put on this WanModel instance, plus the same DIFFUSION_MODEL
  wrapper that tells it how many reference frames a forward carries.
- forward: WanModel.forward(x, t, context, time_dim_concat=refs, transformer_options=...) -
  the call ComfyUI's model_base makes at inference, with references already in the model's
  latent space (process_latent_in), as model_base.WAN21.extra_conds does.
- gradient checkpointing inside every block's forward (works under FSDP2 sharding).
- differentiable_ops: ComfyUI's own training switch around every training forward and
  recomputation (newer ComfyUI applies RoPE through a fused kernel without a backward).
"""
from __future__ import annotations

import contextlib

import torch

from mv2id_core.errors import ModelTypeError, UsageError

from .comfy_env import import_comfy


def _rdrope_patch():
    import_comfy()
    from mv2id_core.comfyui import rdrope_patch
    return rdrope_patch


def latent_format():
    import_comfy()
    from mv2id_core.comfyui.wan import latent_format
    return latent_format()


def load_state_dict(path: str) -> dict:
    comfy = import_comfy()
    try:
        sd = comfy.utils.load_torch_file(str(path), safe_load=True)
    except Exception as e:
        raise UsageError(f"cannot read the model file {path} ({type(e).__name__}: {e})") from None
    for prefix in ("model.diffusion_model.", "diffusion_model."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    return sd


def build_wan(config: dict, device=None, dtype=None):
    comfy = import_comfy()
    cfg = {k: v for k, v in config.items() if k != "image_model"}
    return comfy.ldm.wan.model.WanModel(**cfg, device=device, dtype=dtype, operations=comfy.ops.disable_weight_init)


def detect_config(sd: dict, path) -> dict:
    """ComfyUI's own detection of the model in `sd`; refuses anything that is not a Wan 2.1-class model."""
    comfy = import_comfy()
    import comfy.model_detection
    cfg = comfy.model_detection.detect_unet_config(sd, "")
    if cfg is None or cfg.get("image_model") != "wan2.1":
        raise ModelTypeError(f"not a Wan 2.1 T2V diffusion model: {path} (detected {cfg}); Mv2ID trains Phantom-Wan "
                             f"or Wan 2.1 T2V, 1.3B or 14B")
    return cfg


def load_wan(path: str, dtype=torch.float32, device="cpu"):
    """WanModel with the weights of `path` (ComfyUI diffusion_models format), in train mode off."""
    import_comfy()
    from mv2id_core.comfyui.wan import require_text_to_video
    sd = load_state_dict(path)
    cfg = detect_config(sd, path)
    with torch.device("meta"):
        model = build_wan(cfg)
    require_text_to_video(model, path, "Train from Phantom-Wan or Wan 2.1 T2V (1.3B or 14B).")
    for k, v in sd.items():
        if v.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ModelTypeError(f"{path}: tensor {k} is {v.dtype}; train from an fp16/bf16/fp32 model file, not fp8 "
                                 f"or GGUF")
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    model.patch_embedding.float()        # ComfyUI keeps the patch embedding in fp32
    model.to(device)
    model.eval()
    return model, cfg


def install_rdrope(model, config) -> None:
    """Put the inference patch's rope_encode replacement on this WanModel instance."""
    _rdrope_patch().install_on_model(model, config)


def training_attention(func, q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False,
                       skip_output_reshape=False, **kwargs):
    """ComfyUI's attention (attention_pytorch's layout) with one fixed set of SDPA kernels.

    Installed as transformer_options["optimized_attention_override"], the per-call seam ComfyUI's
    attention functions offer (0.3.75 and 0.33). Why: on CUDA ComfyUI lets PyTorch pick among
    flash, cuDNN and memory-efficient kernels by priority, and on an H200 the forward pass ran
    cuDNN while the checkpoint recomputation inside backward ran flash; their saved tensors
    differ, so backward failed ("Recomputed values ... have different metadata", or a cuDNN
    "Stats" error). Here the choice is flash, then memory-efficient, then math, decided by the
    inputs alone, so the forward and its recomputation always match. `func` (ComfyUI's
    function) is not called; `kwargs` (transformer_options etc.) are not needed by SDPA.

    q, k, v: [B, L, heads * d] (or [B, heads, L, d] with skip_reshape). Returns [B, L, heads * d]
    (or [B, heads, L, d] with skip_output_reshape).
    """
    if skip_reshape:
        b, _, _, dim_head = q.shape
    else:
        b, _, dim_head = q.shape
        dim_head //= heads
        q, k, v = (t.reshape(b, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    if mask is not None:
        mask = mask.unsqueeze(0) if mask.ndim == 2 else mask
        mask = mask.unsqueeze(1) if mask.ndim == 3 else mask
    extra = {key: kwargs[key] for key in ("scale",) if key in kwargs}
    if q.is_cuda:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        kernels = sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    else:
        kernels = contextlib.nullcontext()
    with kernels:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                                               is_causal=False, **extra)
    if not skip_output_reshape:
        out = out.transpose(1, 2).reshape(b, -1, heads * dim_head)
    return out


def transformer_options() -> dict:
    """transformer_options for a training forward: the RD-RoPE reference-count wrapper, the same
    object type the inference patch registers (ComfyUI passes it the same way while sampling),
    and training_attention as ComfyUI's attention override."""
    options = _rdrope_patch().wrapper_options()
    options["optimized_attention_override"] = training_attention
    return options


@contextlib.contextmanager
def differentiable_ops():
    """Run ComfyUI's model code on its differentiable paths for the duration of the block.

    ComfyUI 0.33 applies RoPE through comfy_kitchen's fused `apply_rope1` kernel, which has no
    autograd formula; comfy/ldm/flux/math.py takes the plain-PyTorch path instead while
    `comfy.model_management.in_training` is set, the switch ComfyUI's own Train LoRA node sets
    around its training loop. Older ComfyUI (0.3.75) has no such switch and always runs plain
    PyTorch. The previous value is restored on exit, so inference in the same process keeps
    the fused kernel.
    """
    import_comfy()
    import comfy.model_management as mm
    if not hasattr(mm, "in_training"):
        yield
        return
    previous = mm.in_training
    mm.in_training = True
    try:
        yield
    finally:
        mm.in_training = previous


def enable_gradient_checkpointing(model) -> None:
    """Recompute every block in the backward pass instead of keeping its activations.

    The checkpoint sits inside each block's own forward, so a sharding wrapper around the block
    (FSDP2) still gathers the block's weights before the recomputation.
    """
    from torch.utils.checkpoint import checkpoint
    for block in model.blocks:
        if getattr(block, "_mv2id_checkpointed", False):
            continue
        inner = block.forward

        def recompute(*args, _inner=inner, **kwargs):
            with differentiable_ops():    # the backward pass runs this again, outside model_forward
                return _inner(*args, **kwargs)

        def forward(*args, _inner=inner, _recompute=recompute, **kwargs):
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_recompute, *args, use_reentrant=False, **kwargs)
        block.forward = forward
        block._mv2id_checkpointed = True


def model_forward(model, x_t, sigma, context, ref_latents, options: dict):
    """Velocity prediction for noised video latents (model space) with clean reference latents.

    x_t [B, 16, F, h, w]; sigma [B] in 0..1 (timestep = sigma * 1000, as ComfyUI's flow model
    sampling gives it); context [B, L, 4096]; ref_latents [B, 16, K, h, w] (model space) or None.
    Returns [B, 16, F, h, w]: reference frames are dropped by WanModel._forward.
    """
    with differentiable_ops():
        return model(x_t, sigma * 1000.0, context, time_dim_concat=ref_latents, transformer_options=options)
