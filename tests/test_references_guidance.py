"""Reference fitting and the guidance window (pure functions)."""
import pytest
import torch

from mv2id_core.guidance import GuidanceConfig, in_window, step_index, window_steps
from mv2id_core.errors import InputError
from mv2id_core.latents import check_length
from mv2id_core.references import encode_references, fit_references, reference_layout, to_rgb_on_white


def test_pad_white_keeps_aspect_and_pads_white():
    img = torch.zeros(1, 100, 50, 3)                  # tall black image
    out = fit_references(img, 80, 40, "pad_white")
    assert out.shape == (1, 40, 80, 3)
    assert out[0, :, :30].min() == 1.0 and out[0, :, 50:].min() == 1.0   # white side bars
    assert out[0, :, 31:49].max() == 0.0                                  # the image, centred


def test_center_crop_matches_comfyui_arithmetic():
    img = torch.rand(2, 60, 100, 3)
    out = fit_references(img, 32, 32, "center_crop")
    x = round((100 - 100 * (1 / (100 / 60))) / 2)
    ref = torch.nn.functional.interpolate(img.movedim(-1, 1)[..., x:100 - x], size=(32, 32), mode="bilinear")
    assert torch.equal(out, ref.movedim(1, -1).clamp(0, 1))


def test_fit_none_requires_matching_size():
    with pytest.raises(InputError, match="64x32 but the video is 32x32"):
        fit_references(torch.rand(1, 32, 64, 3), 32, 32, "none")


def test_no_references_error():
    with pytest.raises(InputError, match="no reference images"):
        fit_references(torch.zeros(0, 8, 8, 3), 16, 16)


def test_alpha_composited_on_white():
    rgba = torch.zeros(1, 2, 2, 4)
    assert torch.equal(to_rgb_on_white(rgba), torch.ones(1, 2, 2, 3))


def test_length_must_be_4n_plus_1():
    check_length(81)
    check_length(1)
    with pytest.raises(InputError, match="use 77 or 81"):
        check_length(80)


def test_encode_references_joins_on_time_in_order():
    imgs = torch.stack([torch.full((4, 4, 3), float(i)) for i in range(3)])
    lat = encode_references(imgs, lambda x: x.mean().reshape(1, 1, 1, 1, 1).expand(1, 16, 1, 2, 2))
    assert lat.shape == (1, 16, 3, 2, 2)
    assert lat[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 2.0]


def test_layout_record():
    lay = reference_layout(3, 832, 480, 81, 1, "pad_white")
    assert lay["video_latent_frames"] == 21 and lay["latent_hw"] == [60, 104] and lay["token_grid_hw"] == [30, 52]


def test_step_index_and_window():
    sigmas = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    assert [step_index(s, sigmas) for s in (1.0, 0.8, 0.7, 0.2, 0.05)] == [0, 1, 1, 4, 4]
    assert window_steps(10, 0.0, 0.2) == [0, 1]
    assert window_steps(10, 0.0, 1.0) == list(range(10))
    assert window_steps(4, 0.5, 1.0) == [2, 3]
    assert not in_window(0, 10, 0.1, 0.5)


def test_guidance_config_validation():
    with pytest.raises(ValueError):
        GuidanceConfig(window_start=0.5, window_end=0.2)
