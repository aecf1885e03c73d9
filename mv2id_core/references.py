"""Reference packing: fit multi-view reference images to the video size and join their latents.

Each reference is VAE-encoded on its own as a one-frame latent; the frames are joined after
the video's latent frames along time (video tokens first, clean reference tokens after).
This module holds the pure parts; the VAE call itself is passed in as a function.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import InputError, check_choice
FIT_MODES = ("pad_white", "center_crop", "stretch", "none")


def to_rgb_on_white(images: torch.Tensor) -> torch.Tensor:
    """[N,H,W,C] in 0..1 with C in {1,3,4} -> [N,H,W,3]; alpha is composited onto white."""
    if images.shape[-1] == 4:
        rgb, a = images[..., :3], images[..., 3:4]
        return rgb * a + (1.0 - a)
    if images.shape[-1] == 1:
        return images.expand(*images.shape[:-1], 3)
    return images[..., :3]


def fit_references(images: torch.Tensor, width: int, height: int, mode: str = "pad_white",
                   fill: float = 1.0) -> torch.Tensor:
    """Fit reference images to the video size.

    images: [N, H, W, C] float 0..1 (ComfyUI IMAGE). Returns [N, height, width, 3].
    pad_white: resize to fit inside keeping the aspect ratio, pad with `fill` (white), centred
        (what the official Phantom code does; keeps the whole head).
    center_crop: crop the centre to the target aspect, then resize (ComfyUI core's Phantom node).
    stretch: resize ignoring the aspect ratio. none: sizes must already match.
    """
    check_choice(mode, FIT_MODES, "fit")
    if images is None or images.ndim != 4 or images.shape[0] == 0:
        raise InputError("no reference images: give 1 or more images as a batch [N, H, W, C] (e.g. the "
                         "head-and-shoulder crops Face Views makes).")
    x = to_rgb_on_white(images.float()).movedim(-1, 1)  # [N,3,H,W]
    n, _, h, w = x.shape
    if mode == "none":
        if (h, w) != (height, width):
            raise InputError(f"reference images are {w}x{h} but the video is {width}x{height}: "
                                 f"resize them first or choose fit 'pad_white' or 'center_crop'.")
        out = x
    elif mode == "stretch":
        out = F.interpolate(x, size=(height, width), mode="bilinear")
    elif mode == "center_crop":
        # same arithmetic as comfy.utils.common_upscale(..., "bilinear", "center")
        old_aspect, new_aspect = w / h, width / height
        cx = cy = 0
        if old_aspect > new_aspect:
            cx = round((w - w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            cy = round((h - h * (old_aspect / new_aspect)) / 2)
        s = x.narrow(-2, cy, h - cy * 2).narrow(-1, cx, w - cx * 2)
        out = F.interpolate(s, size=(height, width), mode="bilinear")
    else:
        scale = min(width / w, height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        r = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=scale < 1.0)
        out = torch.full((n, 3, height, width), float(fill), dtype=r.dtype, device=r.device)
        top, left = (height - nh) // 2, (width - nw) // 2
        out[:, :, top:top + nh, left:left + nw] = r
    return out.clamp(0.0, 1.0).movedim(1, -1).contiguous()


def encode_references(images: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """VAE-encode every reference on its own as a one-frame latent and join them on time.

    images: [N, H, W, 3]; encode: IMAGE [1,H,W,3] -> latent [1, C, 1, h, w].
    Returns [1, C, N, h, w] (reference i is latent frame i).
    """
    frames = [encode(images[i:i + 1]) for i in range(images.shape[0])]
    for i, f in enumerate(frames):
        if f.ndim != 5 or f.shape[2] != 1:
            raise InputError(f"the VAE encoded reference {i} to shape {tuple(f.shape)}, not one "
                                 f"latent frame [1, C, 1, h, w]: is this a Wan 2.1 VAE?")
    return torch.cat(frames, dim=2)
