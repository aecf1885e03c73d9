"""Which inputs the guidance settings make inert (mv2id_core.guidance.inert_inputs, the one rule the Guider
and Sampler nodes log), checked against what the steps really run (GuidanceConfig.step_mode / passes)."""
from __future__ import annotations

import pytest

from mv2id_core.guidance import REFERENCE, GuidanceConfig, inert_inputs


def _modes(cfg, n):
    return [cfg.step_mode(i, n) for i in range(n)]


@pytest.mark.parametrize("start,end", [(0.0, 0.0), (0.3, 0.3), (1.0, 1.0)])
def test_a_zero_length_window_makes_ref_cfg_inert_for_any_step_count(start, end):
    cfg = GuidanceConfig(window_start=start, window_end=end)
    for n in (1, 4, 50):
        assert REFERENCE not in _modes(cfg, n)                  # the truth: no step runs the reference pass
    for n in (None, 8):
        why = inert_inputs(cfg, n)["ref_cfg"]
        assert why.startswith("no effect: the reference window") and "set ref_end above ref_start" in why
    assert set(inert_inputs(cfg)) == {"ref_cfg"}


def test_a_window_between_steps_makes_ref_cfg_inert_for_that_step_count_only():
    cfg = GuidanceConfig(window_start=0.3, window_end=0.45)
    assert REFERENCE not in _modes(cfg, 4) and REFERENCE in _modes(cfg, 20)
    assert "holds no step of the 4 steps" in inert_inputs(cfg, 4)["ref_cfg"]
    assert "ref_cfg" not in inert_inputs(cfg, 20) and "ref_cfg" not in inert_inputs(cfg)


def test_no_cfg_ignores_text_cfg_outside_the_window_and_everywhere_without_one():
    cfg = GuidanceConfig(window_start=0.0, window_end=0.2, outside="no_cfg")
    assert _modes(cfg, 8).count(REFERENCE) == 2 and [cfg.passes(i, 8) for i in range(2, 8)] == [1] * 6
    assert inert_inputs(cfg, 8)["text_cfg"].startswith("used only on the steps inside the reference window")
    assert "(2 of the 8 steps)" in inert_inputs(cfg, 8)["text_cfg"]
    empty = GuidanceConfig(window_start=0.5, window_end=0.5, outside="no_cfg")
    assert all(empty.passes(i, 8) == 1 for i in range(8))        # only the positive pass: no text guidance
    out = inert_inputs(empty, 8)
    assert out["text_cfg"].startswith("no effect: outside_window no_cfg") and "ref_cfg" in out


def test_a_full_window_makes_outside_window_inert():
    cfg = GuidanceConfig(window_start=0.0, window_end=1.0, outside="no_cfg")
    assert set(_modes(cfg, 6)) == {REFERENCE}
    assert inert_inputs(cfg, 6) == {"outside_window": "no effect: the reference window ref_start 0 .. ref_end 1 "
                                                      "covers every step (all 6)"}
    # a window that holds every step of this run, though it ends before 1
    assert "outside_window" in inert_inputs(GuidanceConfig(window_start=0.0, window_end=0.9), 2)


def test_ref_cfg_one_makes_the_window_inert_under_text_cfg_only():
    cfg = GuidanceConfig(ref_scale=1.0, window_start=0.0, window_end=0.5)
    assert [cfg.passes(i, 4) for i in range(4)] == [2, 2, 2, 2]  # text CFG inside the window as outside it
    out = inert_inputs(cfg, 4)
    assert set(out) == {"ref_start", "ref_end"} and out["ref_start"].startswith("no effect: ref_cfg 1")
    no_cfg = GuidanceConfig(ref_scale=1.0, window_start=0.0, window_end=0.5, outside="no_cfg")
    assert [no_cfg.passes(i, 4) for i in range(4)] == [2, 2, 1, 1]   # there the window still decides
    assert "ref_start" not in inert_inputs(no_cfg, 4)


def test_defaults_make_nothing_inert_and_add_noise_disable_makes_seed_inert():
    assert inert_inputs(GuidanceConfig(), 50) == {} and inert_inputs(GuidanceConfig()) == {}
    assert inert_inputs(GuidanceConfig(), 50, add_noise=False) == {
        "seed": "no effect: add_noise disable draws no noise (the latent's leftover noise is sampled)"}
