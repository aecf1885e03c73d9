"""RD-RoPE position ids (pure functions in mv2id_core.rdrope): the layout is pinned here."""
import pytest
import torch

from mv2id_core.latents import token_grid
from mv2id_core.rdrope import RDRoPEConfig, comfy_grid_ids, position_ids, reference_ids


def _grid(ids, t, h, w):
    return ids.reshape(t, h, w, 3)


def test_video_rows_are_comfyui_grid_and_never_move():
    for cfg in (RDRoPEConfig("rd", 1.0, 1), RDRoPEConfig("rd", 4.0, 0), RDRoPEConfig("vanilla")):
        ids = position_ids(5, 3, 4, 6, cfg)
        full = comfy_grid_ids(8, 4, 6)
        n_video = 5 * 4 * 6
        assert torch.equal(ids[:n_video], full[:n_video])


def test_vanilla_is_consecutive_temporal_positions():
    ids = _grid(position_ids(3, 2, 2, 3, RDRoPEConfig("vanilla")), 5, 2, 3)
    assert ids[3, :, :, 0].unique().tolist() == [3.0]
    assert ids[4, :, :, 0].unique().tolist() == [4.0]
    assert torch.equal(ids[3, :, :, 1:], ids[0, :, :, 1:])     # same spatial grid as the video


def test_rd_layout_pinned_default():
    # 3 video frames, 3 references, 2x3 token grid, offset 1, first index 1
    ids = _grid(position_ids(3, 3, 2, 3, RDRoPEConfig("rd", 1.0, 1)), 6, 2, 3)
    for i in range(3):
        ref = ids[3 + i]
        k = 1 + i
        assert ref[..., 0].unique().tolist() == [3.0]            # last video frame (2) + offset 1
        assert ref[:, 0, 1].tolist() == [2.0 * k, 2.0 * k + 1]    # h shifted by k*H (H=2)
        assert ref[0, :, 2].tolist() == [3.0 * k, 3.0 * k + 1, 3.0 * k + 2]  # w shifted by k*W (W=3)


def test_rd_first_index_zero_and_offset():
    ids = _grid(position_ids(2, 2, 2, 2, RDRoPEConfig("rd", 2.5, 0)), 4, 2, 2)
    assert torch.equal(ids[2, ..., 1:], ids[0, ..., 1:])         # first reference on the video grid
    assert ids[2, ..., 0].unique().tolist() == [3.5] == ids[3, ..., 0].unique().tolist()
    assert ids[3, 0, 0, 1:].tolist() == [2.0, 2.0]


def test_references_never_share_a_position():
    ids = position_ids(4, 5, 3, 5, RDRoPEConfig("rd", 1.0, 1))
    assert len({tuple(r) for r in ids.tolist()}) == ids.shape[0]


def test_rope_options_scale_and_shift_apply_to_references():
    ro = {"scale_t": 0.5, "scale_y": 2.0, "scale_x": 1.0, "shift_t": 1.0, "shift_y": 0.0, "shift_x": 3.0}
    cfg = RDRoPEConfig("rd", 1.0, 1)
    plain = reference_ids(2, 3, 2, 2, cfg)
    scaled = reference_ids(2, 3, 2, 2, cfg, ro)
    assert torch.allclose(scaled[:, 0], plain[:, 0] * 0.5 + 1.0)
    assert torch.allclose(scaled[:, 1], plain[:, 1] * 2.0)
    assert torch.allclose(scaled[:, 2], plain[:, 2] + 3.0)
    ids = position_ids(3, 2, 2, 2, cfg, ro)
    assert torch.equal(ids[: 3 * 4], comfy_grid_ids(5, 2, 2, ro)[: 3 * 4])


def test_no_references_is_plain_grid():
    assert torch.equal(position_ids(3, 0, 2, 2, RDRoPEConfig()), comfy_grid_ids(3, 2, 2))


def test_token_grid_rounds_like_comfyui():
    assert token_grid(21, 60, 104) == (21, 30, 52)
    assert token_grid(3, 5, 7) == (3, 3, 4)


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        RDRoPEConfig("diagonal")
    with pytest.raises(ValueError, match="first_index"):
        RDRoPEConfig("rd", 1.0, -1)


def test_settings_bounds_are_the_widgets_bounds():
    from mv2id_core.rdrope import FIRST_INDEX_RANGE, OFFSET_RANGE
    assert OFFSET_RANGE == (0.0, 64.0) and FIRST_INDEX_RANGE == (0, 16)
    RDRoPEConfig("rd", 64.0, 16)
    RDRoPEConfig("rd", 0.0, 0)
    for offset in (float("nan"), float("inf"), -50.0, 1e12, 64.5):
        with pytest.raises(ValueError, match="offset must be a number from 0 to 64"):
            RDRoPEConfig("rd", offset, 1)
    for first in (17, 100_000_000, 1.5):
        with pytest.raises(ValueError, match="first_index must be a whole number"):
            RDRoPEConfig("rd", 1.0, first)


@pytest.mark.parametrize("key,value", [("offset", "nan"), ("offset", "inf"), ("offset", "-50"), ("offset", "1e12"),
                                       ("first_index", "1e8"), ("first_index", "2.5"), ("first_index", "x")])
def test_metadata_outside_the_bounds_is_refused(key, value):
    from mv2id_core.rdrope import config_from_metadata
    md = {"mv2id.rdrope.mode": "rd", "mv2id.rdrope.offset": "1.0", "mv2id.rdrope.first_index": "1",
          f"mv2id.rdrope.{key}": value}
    with pytest.raises(ValueError, match="bad RD-RoPE metadata"):
        config_from_metadata(md)
    md.update({"mv2id.rdrope.offset": "1.0", "mv2id.rdrope.first_index": "3.0"})
    assert config_from_metadata(md).first_index == 3


@pytest.mark.parametrize("record,expected", [
    ({"mode": "rd"}, "incomplete RD-RoPE metadata (mode='rd'): mode rd needs offset and first_index; "
                     "missing: offset, first_index"),
    ({"mode": "rd", "offset": "2.0"}, "mode rd needs offset and first_index; missing: first_index"),
    ({"mode": "rd", "first_index": "0"}, "mode rd needs offset and first_index; missing: offset"),
    ({"offset": "2.0"}, "incomplete RD-RoPE metadata (offset='2.0'): without a mode the positions it was trained "
                        "with are unknown; missing: mode, first_index"),
    ({"offset": "2.0", "first_index": "0"}, "without a mode the positions it was trained with are unknown; "
                                            "missing: mode"),
    ({"mode": "rd", "offset": "2", "first_index": "1", "ofset": "3"}, "unknown field(s) ofset"),
    ({"mode": "sideways", "offset": "2"}, "RD-RoPE mode must be one of rd, vanilla, got 'sideways'")])
def test_an_incomplete_or_unknown_metadata_record_is_refused_never_filled_with_defaults(record, expected):
    from mv2id_core.rdrope import config_from_metadata
    with pytest.raises(ValueError) as ei:
        config_from_metadata({f"mv2id.rdrope.{k}": v for k, v in record.items()})
    assert expected in str(ei.value)


def test_a_vanilla_record_needs_no_offset_and_a_complete_record_reads_back():
    from mv2id_core.rdrope import RDRoPEConfig, config_from_metadata, config_to_metadata
    assert config_from_metadata({"mv2id.rdrope.mode": "vanilla", "other": "x"}) == RDRoPEConfig("vanilla")
    assert RDRoPEConfig("vanilla").unused == ("offset", "first_index") and RDRoPEConfig("rd").unused == ()
    cfg = RDRoPEConfig("rd", 3.5, 0)
    assert config_from_metadata({**config_to_metadata(cfg), "ss_other_tool": "1"}) == cfg
    assert config_from_metadata({"ss_network_dim": "32"}) is None
