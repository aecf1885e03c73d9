"""Background removal for training references, through ComfyUI's own background-removal loader.

At inference the references are head-and-shoulders crops on white (the paper's test protocol,
and what users feed Mv2ID Reference Conditioning); the paper's data pipeline segments the person
too. `mv2id-data --bg-model FILE` loads FILE (e.g. birefnet.safetensors, the BiRefNet that core
ComfyUI's "Load Background Removal Model" node loads from models/background_removal/) with the
very function that node calls, comfy.bg_removal_model.load, and puts every crop on white with
the mask its "Remove Background" node would output.

Anything with the same interface as ComfyUI's model can stand in (mv2id-data's `main(...,
background_remover=...)`): encode_image(image [B, H, W, 3] float 0..1) -> mask [B, H, W] in 0..1,
1 = foreground.
"""
from __future__ import annotations

import numpy as np
import torch

from mv2id_core.errors import InputError, UsageError

from .comfy_env import import_comfy, locate_comfyui

# the ComfyUI this was written and tested against; the loader is not in 0.3.75
LOADER_VERSION = "0.33.0"


def load_background_remover(path):
    """ComfyUI's background-removal model from a file, loaded exactly as LoadBackgroundRemovalModel
    loads it (comfy.bg_removal_model.load). UsageError when this ComfyUI has no such loader or the
    file is not a model it recognises."""
    import_comfy()
    from mv2id_core.comfyui.support import UPDATE_HINT, running_version
    try:
        import comfy.bg_removal_model as bg_removal_model
    except ImportError:
        raise UsageError(
            f"--bg-model needs ComfyUI's background-removal loader (core nodes 'Load Background Removal "
            f"Model' / 'Remove Background', ComfyUI {LOADER_VERSION} has them), but the ComfyUI at "
            f"{locate_comfyui()} (version {running_version() or 'unknown'}) does not: {UPDATE_HINT}, or "
            f"leave --bg-model out (reference crops then keep their background)") from None
    model = bg_removal_model.load(str(path))
    if model is None:
        raise UsageError(f"{path} is not a background-removal model ComfyUI can load (it recognises BiRefNet, "
                         f"e.g. birefnet.safetensors for models/background_removal/)")
    return model


def on_white(remover, crop: np.ndarray) -> np.ndarray:
    """crop [H, W, 3] uint8 -> the same with its background white: crop * m + 255 * (1 - m),
    m = the remover's foreground mask (soft edges stay soft)."""
    image = torch.from_numpy(np.array(crop, dtype=np.uint8)).float().div(255.0)[None]
    with torch.inference_mode():         # as ComfyUI runs its nodes
        mask = remover.encode_image(image)
    mask = torch.as_tensor(mask).float().cpu()
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if tuple(mask.shape) != tuple(image.shape[:3]):
        raise InputError(f"the background remover returned a mask of shape {list(mask.shape)} for an image of "
                         f"{list(image.shape)}; expected [1, H, W]")
    if not torch.isfinite(mask).all():
        raise InputError("the background remover returned a mask with NaN or infinite values")
    m = mask.clamp(0, 1)[..., None]
    out = image * m + (1.0 - m)
    return (out[0] * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
