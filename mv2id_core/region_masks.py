"""Region masking (the paper's training-time masking of the references).

Random blocky masks hide about `ratio` (default 0.6) of every reference image in pixel space,
before the VAE, so no single view can be copied and the model has to aggregate complementary
cues across views. The grid of blocks is aligned to the image's top-left corner; blocks at the
right and bottom edges may be partial. Exactly round(ratio * number_of_blocks) blocks are hidden
per view, so the hidden pixel fraction matches `ratio` up to the partial edge blocks.

With ``complementary=True`` every block is left visible in at least one view, so together the
views still show the whole face. That needs ratio <= (V - 1) / V for V views.

Masks are boolean with True = hidden. Images follow ComfyUI's IMAGE layout [V, H, W, C], float 0..1.
The same functions serve the Region Mask node and the training data cache.
"""
from __future__ import annotations

import math

import torch

from .errors import InputError


def _grid(height: int, width: int, block_size: int) -> tuple[int, int]:
    return math.ceil(height / block_size), math.ceil(width / block_size)


def hidden_blocks_per_view(num_blocks: int, ratio: float) -> int:
    return int(round(float(ratio) * num_blocks))


def check_complementary(num_views: int, ratio: float, num_blocks: int | None = None) -> None:
    """InputError unless complementary masking can keep every block visible in some view: with n
    blocks, each view shows n - round(ratio * n) of them and together the views must show all n
    (for large n: ratio <= (V - 1) / V). Without num_blocks only that limit is checked."""
    limit = (num_views - 1) / num_views
    if num_blocks is None:
        ok = float(ratio) <= limit + 1e-12
        detail = ""
    else:
        visible = num_blocks - hidden_blocks_per_view(num_blocks, ratio)
        ok = num_views * visible >= num_blocks
        detail = f" leave {visible} of {num_blocks} blocks visible per view"
    if not ok:
        raise InputError(
            f"complementary masking cannot keep every region visible in some view: {num_views} view(s) with "
            f"ratio {ratio}{detail}. Use a ratio of at most {limit:.3f} for {num_views} views, add views, or "
            f"turn complementary off.")


def region_block_masks(num_views: int, rows: int, cols: int, ratio: float = 0.6, seed: int = 0,
                       complementary: bool = False) -> torch.Tensor:
    """Block-level masks [V, rows, cols] bool (True = hidden), round(ratio * rows * cols) hidden per view.

    Deterministic for a given seed (a private torch.Generator; the global RNG is not touched).
    """
    if num_views < 1:
        raise InputError(f"region masking needs at least one view, got {num_views}")
    if not 0.0 <= float(ratio) <= 1.0:
        raise InputError(f"masking ratio must be between 0 and 1, got {ratio}")
    n = rows * cols
    if n < 1:
        raise InputError(f"the block grid is empty ({rows}x{cols})")
    k = hidden_blocks_per_view(n, ratio)
    g = torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    masks = torch.zeros(num_views, n, dtype=torch.bool)
    if not complementary or k == 0:
        for v in range(num_views):
            masks[v, torch.randperm(n, generator=g)[:k]] = True
        return masks.view(num_views, rows, cols)

    check_complementary(num_views, ratio, n)
    # every block gets one view that must show it, spread evenly over the views in a random order;
    # each view then hides k of the blocks it is not responsible for.
    owner = torch.empty(n, dtype=torch.long)
    order = torch.randperm(n, generator=g)
    owner[order] = torch.arange(n) % num_views
    for v in range(num_views):
        free = torch.nonzero(owner != v).flatten()
        pick = free[torch.randperm(free.numel(), generator=g)[:k]]
        masks[v, pick] = True
    return masks.view(num_views, rows, cols)


def region_masks(num_views: int, height: int, width: int, ratio: float = 0.6, block_size: int = 32,
                 seed: int = 0, complementary: bool = False) -> torch.Tensor:
    """Pixel masks [V, H, W] bool (True = hidden) made of block_size x block_size blocks."""
    if block_size < 1:
        raise InputError(f"block size must be at least 1 pixel, got {block_size}")
    if height < 1 or width < 1:
        raise InputError(f"image size must be positive, got {width}x{height}")
    rows, cols = _grid(height, width, block_size)
    blocks = region_block_masks(num_views, rows, cols, ratio, seed, complementary)
    px = blocks.repeat_interleave(block_size, 1).repeat_interleave(block_size, 2)
    return px[:, :height, :width].contiguous()


def _hidden_blocks(height: int, width: int, ratio: float, block_size: int) -> tuple[int, int, str]:
    """(blocks hidden per view, blocks, the grid as a message names it) of masks of an image [H, W]."""
    rows, cols = _grid(height, width, block_size)
    n = rows * cols
    grid = f"{n} block{'s' if n != 1 else ''} of {block_size} px on the {width}x{height} image"
    return hidden_blocks_per_view(n, ratio), n, grid


def inert_inputs(height: int, width: int, ratio: float, block_size: int) -> dict[str, str]:
    """The Region Mask inputs these settings make inert -> {input name: "no effect: why"}: the one rule the
    node logs. Masks of an image [H, W] hide round(ratio * blocks) of its blocks, so a ratio that rounds to
    no block hides nothing (a tiny image or huge blocks), and one that rounds to every block hides all."""
    k, n, grid = _hidden_blocks(height, width, ratio, block_size)
    if k == 0:
        why = (f"no effect: ratio {ratio:g} of {grid} hides no block, the images pass unchanged"
               + ("" if float(ratio) == 0 else ": lower block_size or raise ratio to hide something"))
        names = ("seed", "fill", "complementary") + (("block_size",) if float(ratio) == 0 else ())
        return {name: why for name in names}
    if k == n:
        why = f"no effect: ratio {ratio:g} of {grid} hides every block"
        return {name: why for name in ("seed",) + (("block_size",) if float(ratio) == 1 else ())}
    return {}


def share_note(height: int, width: int, ratio: float, block_size: int, tolerance: float = 0.05) -> str | None:
    """What the masks of an image [H, W] really hide when whole blocks cannot come within `tolerance` of
    `ratio` (few, large blocks), else None; the none / every block cases are inert_inputs'."""
    k, n, grid = _hidden_blocks(height, width, ratio, block_size)
    if k in (0, n) or abs(k / n - float(ratio)) <= tolerance:
        return None
    return f"hides {k} of {grid} ({100 * k / n:.0f} %), not ratio {ratio:g}: lower block_size for a share closer to it"


def apply_region_masks(images: torch.Tensor, masks: torch.Tensor, fill: float = 1.0) -> torch.Tensor:
    """images [V, H, W, C] float with hidden pixels set to `fill`; masks [V, H, W] (or [1, H, W]) bool."""
    if images.ndim != 4:
        raise InputError(f"expected an image batch [V, H, W, C], got shape {list(images.shape)}")
    m = masks.to(device=images.device, dtype=torch.bool)
    if m.ndim != 3 or m.shape[-2:] != images.shape[1:3] or m.shape[0] not in (1, images.shape[0]):
        raise InputError(f"masks {list(masks.shape)} do not match images {list(images.shape)}: need "
                         f"[V, H, W] with the images' height and width")
    return torch.where(m.unsqueeze(-1), torch.as_tensor(fill, dtype=images.dtype, device=images.device), images)


def mask_references(images: torch.Tensor, ratio: float = 0.6, block_size: int = 32, seed: int = 0,
                fill: float = 1.0, complementary: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a reference batch [V, H, W, C]: (masked images [V, H, W, C], masks [V, H, W] float, 1 = hidden)."""
    v, h, w = images.shape[:3]
    masks = region_masks(v, h, w, ratio, block_size, seed, complementary)
    return apply_region_masks(images, masks, fill), masks.to(images.dtype)
