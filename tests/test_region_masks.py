"""Region masking: exact ratio, determinism by seed, complementary coverage, fill."""
from __future__ import annotations

import pytest
import torch

from mv2id_core.region_masks import (apply_region_masks, inert_inputs, mask_references, region_block_masks,
                                     region_masks, share_note)


def coverage(masks: torch.Tensor) -> float:
    """Fraction of pixels visible in at least one view (1.0 = nothing hidden everywhere)."""
    return float((~masks.to(torch.bool)).any(0).float().mean())


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.6, 0.9, 1.0])
def test_block_ratio_is_exact(ratio):
    m = region_block_masks(3, 13, 9, ratio=ratio, seed=4)
    assert m.shape == (3, 13, 9) and m.dtype == torch.bool
    expect = round(ratio * 13 * 9)
    assert m.flatten(1).sum(1).tolist() == [expect] * 3


@pytest.mark.parametrize("h,w,block", [(512, 512, 32), (480, 832, 32), (333, 250, 48)])
def test_pixel_ratio_within_tolerance(h, w, block):
    m = region_masks(3, h, w, ratio=0.6, block_size=block, seed=1)
    assert m.shape == (3, h, w)
    frac = m.float().mean((1, 2))
    # partial edge blocks are the only deviation from the requested ratio
    rows, cols = -(-h // block), -(-w // block)
    tol = (rows + cols) / (rows * cols) + 1e-6
    assert torch.all((frac - 0.6).abs() <= tol), frac


def test_blocks_are_blocks():
    m = region_masks(1, 64, 96, ratio=0.5, block_size=16, seed=3)[0]
    cells = m.view(4, 16, 6, 16)
    # every 16x16 cell is uniformly hidden or visible
    assert torch.all(cells.all(1).all(2) | (~cells).all(1).all(2))


def test_determinism_by_seed_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = region_masks(3, 100, 80, seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)          # the global RNG stream was not consumed
    assert torch.equal(a, region_masks(3, 100, 80, seed=7))
    assert not torch.equal(a, region_masks(3, 100, 80, seed=8))
    # different views get different masks
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("views,ratio", [(2, 0.5), (3, 0.6), (3, 2 / 3), (4, 0.7), (5, 0.3)])
def test_complementary_keeps_every_region_visible(views, ratio):
    for seed in range(5):
        m = region_block_masks(views, 11, 7, ratio=ratio, seed=seed, complementary=True)
        assert (~m).any(0).all(), "some block is hidden in every view"
        assert m.flatten(1).sum(1).tolist() == [round(ratio * 77)] * views


def test_without_complementary_regions_get_lost():
    # with 3 views at 0.6, independent draws hide ~0.6^3 = 21.6% of blocks everywhere
    lost = [1 - coverage(region_block_masks(3, 16, 16, 0.6, seed=s)) for s in range(10)]
    assert 0.12 < sum(lost) / len(lost) < 0.32
    assert coverage(region_masks(3, 256, 256, 0.6, 32, seed=0, complementary=True)) == 1.0


def test_complementary_impossible_says_why():
    with pytest.raises(ValueError, match="at most 0.667 for 3 views"):
        region_block_masks(3, 10, 10, ratio=0.8, complementary=True)
    with pytest.raises(ValueError, match="at most 0.000 for 1 views"):
        region_block_masks(1, 10, 10, ratio=0.6, complementary=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="between 0 and 1"):
        region_masks(2, 10, 10, ratio=1.5)
    with pytest.raises(ValueError, match="block size"):
        region_masks(2, 10, 10, block_size=0)
    with pytest.raises(ValueError, match="at least one view"):
        region_masks(0, 10, 10)
    with pytest.raises(ValueError, match="do not match"):
        apply_region_masks(torch.zeros(2, 8, 8, 3), torch.zeros(2, 8, 9, dtype=torch.bool))


def test_region_mask_fills_hidden_pixels_only():
    img = torch.rand(3, 64, 64, 3)
    out, masks = mask_references(img, ratio=0.6, block_size=8, seed=0, fill=0.5)
    assert masks.dtype == img.dtype and masks.shape == (3, 64, 64)
    hidden = masks.bool()
    assert torch.all(out[hidden] == 0.5)
    assert torch.equal(out[~hidden], img[~hidden])
    assert 0.55 < masks.mean() < 0.65


def test_training_masks_hide_the_ratio_of_each_references_own_pixels():
    """mv2id-cache masks 60% of every reference crop itself, not 60% of the video-sized canvas it is
    padded into: a 512x512 crop fitted into 832x480 keeps white side bars that are never counted,
    and the crop's hidden share is 0.6 (up to the block grid) for every draw."""
    from mv2id_train.cache import masked_references
    refs = torch.full((3, 512, 512, 3), 0.2)
    for seed in range(8):
        out = masked_references(refs, 832, 480, 0.6, 32, seed)
        assert out.shape == (3, 480, 832, 3)
        content, bars = out[:, :, 176:656], torch.cat([out[:, :, :176], out[:, :, 656:]], 2)
        assert bool((bars == 1.0).all())
        hidden = (content.mean(-1) > 0.6).float().mean((1, 2))
        assert bool(((hidden - 154 / 256).abs() < 0.01).all()), (seed, hidden)


def test_training_masks_are_the_region_mask_node_then_the_fit():
    """Same seed: the cache's references equal Region Mask (fill white) followed by Reference
    Conditioning's pad_white fit, the order the node documents."""
    from mv2id_core.references import fit_references
    from mv2id_train.cache import masked_references
    refs = torch.rand(3, 200, 160, 3)
    node, _ = mask_references(refs, ratio=0.6, block_size=16, seed=5, fill=1.0)
    assert torch.equal(masked_references(refs, 96, 64, 0.6, 16, 5), fit_references(node, 96, 64, "pad_white"))
    assert torch.equal(masked_references(refs, 96, 64, 0.0, 16, 5), fit_references(refs, 96, 64, "pad_white"))


@pytest.mark.parametrize("h,w,ratio,block,inert", [
    (64, 64, 0.0, 16, {"seed", "fill", "complementary", "block_size"}),   # nothing to hide
    (40, 56, 0.4, 64, {"seed", "fill", "complementary"}),                 # one block: 0.4 rounds to none
    (64, 64, 1.0, 16, {"seed", "block_size"}),                            # every pixel, whatever the seed
    (40, 56, 0.6, 64, {"seed"}),                                          # one block: 0.6 rounds to it
    (64, 64, 0.6, 16, set())])
def test_inert_inputs_are_named_and_really_inert(h, w, ratio, block, inert):
    """The rule the Region Mask node logs: every input it names as inert changes nothing, and the others do."""
    out = inert_inputs(h, w, ratio, block)
    assert set(out) == inert and all(why.startswith("no effect: ") for why in out.values()), out
    if ratio and "block_size" not in out and "fill" in out:
        assert "lower block_size or raise ratio" in out["fill"]
    img = torch.rand(2, h, w, 3)
    base = mask_references(img, ratio, block, seed=1, fill=1.0)[0]
    varied = {"seed": dict(seed=2), "fill": dict(fill=0.25),
              "complementary": dict(complementary=True), "block_size": dict(block_size=block // 2)}
    for name, change in varied.items():
        if name == "complementary" and ratio > 0.5:
            continue                                   # two views cannot both hide more than half
        kw = dict(ratio=ratio, block_size=block, seed=1, fill=1.0) | change
        same = torch.equal(mask_references(img, **kw)[0], base)
        assert same == (name in inert), (name, out)


def test_a_share_far_from_the_ratio_is_said_with_the_blocks_it_hides():
    """Whole blocks: 0.6 of 4 blocks hides 2 (50 %); said, with the fix. Fine grids and the inert cases say nothing."""
    note = share_note(56, 40, 0.6, 32)
    assert note == "hides 2 of 4 blocks of 32 px on the 40x56 image (50 %), not ratio 0.6: lower block_size for a share closer to it"
    masks = region_masks(1, 56, 40, 0.6, 32)
    assert int(region_block_masks(1, 2, 2, 0.6).sum()) == 2 and 0.3 < float(masks.float().mean()) < 0.7
    assert share_note(64, 64, 0.6, 8) is None                     # 64 blocks: 38 hidden, 59 %
    assert share_note(40, 56, 0.4, 64) is None and share_note(64, 64, 1.0, 16) is None   # inert_inputs' cases
