"""Bad input to the model path on the real host: each prompt fails with an error that names the
problem and the fix, and afterwards the server is alive and a valid prompt gives the same result,
bit for bit, as before any bad prompt."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import workflow_api
from graphs import Graph
from model_path_graphs import conditioning, error_of, mv2id, ref_files, run_latent, sampler

__all__ = ["ref_files"]   # module fixture


def _valid(names):
    g = Graph()
    mv2id(g, names, steps=2, ref_end=0.5, save="valid_after_bad")
    return g


@pytest.fixture(scope="module")
def baseline(comfy, ref_files):
    comfy.free()
    return run_latent(comfy, _valid(ref_files), "valid_after_bad")


@pytest.fixture
def bad(healthy, ref_files, baseline):
    """error_of(prompt) for bad prompts; after the test the server recomputes the valid prompt (node
    cache cleared) and must give the baseline bit for bit."""
    yield lambda prompt: error_of(healthy, prompt)
    assert healthy.alive(), healthy.log_tail()
    healthy.free()
    assert torch.equal(run_latent(healthy, _valid(ref_files), "valid_after_bad"), baseline)


def _node(g, class_type):
    return next(n for n in g.nodes.values() if n["class_type"] == class_type)


def test_bad_length(bad, ref_files):
    g = Graph()
    mv2id(g, ref_files, length=10, save="bad_len")
    assert "length 10 is not of the form 4n+1" in bad(g.prompt())


@pytest.mark.parametrize("width,height,fix", [(50, 48, "width 48 or 64"), (64, 40, "height 32 or 48"),
                                              (72, 56, "width 64 or 80, height 48 or 64")])
def test_size_not_a_multiple_of_16(bad, ref_files, width, height, fix):
    g = Graph()
    mv2id(g, ref_files, save="bad_wh")
    _node(g, "Mv2IDReferenceConditioning")["inputs"].update(width=width, height=height)
    msg = bad(g.prompt())
    assert "not a multiple of 16 pixels" in msg and fix in msg, msg


def test_mismatched_reference_size(bad, ref_files):
    g = Graph()
    mv2id(g, ref_files, fit="none", save="bad_size")
    assert "reference images are 40x56 but the video is 64x48" in bad(g.prompt())


def test_missing_reference_images(bad, ref_files):
    g = Graph()
    mv2id(g, ref_files, save="no_refs")
    del _node(g, "Mv2IDReferenceConditioning")["inputs"]["reference_images"]
    assert "reference_images" in bad(g.prompt())


@pytest.mark.parametrize("pixel", ["nan", "inf"])
def test_non_finite_reference_pixels(bad, ref_files, pixel):
    g = Graph()
    model, _, cond = conditioning(g, ref_files, images=g.add("Mv2IDTestImage", width=64, height=48, batch=3,
                                                            bad_pixel=pixel))
    g.add("Mv2IDTestSaveLatent", samples=sampler(g, model, cond), filename="bad_pixels")
    msg = bad(g.prompt())
    assert "reference_images: image(s) [2] (0-based) contain NaN or infinite pixels" in msg, msg


@pytest.mark.parametrize("where", ["rdrope", "sampler", "guider"])
def test_wan22_5b_is_refused_where_a_model_enters(bad, ref_files, where):
    g = Graph()
    wrong = g.add("UNETLoader", unet_name=workflow_api.TINY_WAN22, weight_dtype="default")
    if where == "guider":
        _, _, cond = conditioning(g, ref_files)
        guider = g.add("Mv2IDGuider", model=wrong, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                       text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=1.0)
        out = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=1), guider=guider,
                    sampler=g.add("KSamplerSelect", sampler_name="euler"),
                    sigmas=g.add("BasicScheduler", model=wrong, scheduler="simple", steps=2, denoise=1.0),
                    latent_image=cond[3])
        g.add("Mv2IDTestSaveLatent", samples=out[0], filename="wrong_guider")
    else:
        mv2id(g, ref_files, model=wrong, patch=where == "rdrope", save="wrong_model")
    msg = bad(g.prompt())
    node = {"rdrope": "Mv2IDRDRoPE", "sampler": "Mv2IDSampler", "guider": "Mv2IDGuider"}[where]
    assert node in msg and "Mv2ID needs a Wan 2.1-class model" in msg and "WAN22" in msg and "5B" in msg, msg


@pytest.mark.parametrize("via", ["sampler", "guider"])
def test_latent_of_another_size_than_the_references(bad, ref_files, via):
    g = Graph()
    model, _, cond = conditioning(g, ref_files)
    other = g.add("EmptyHunyuanLatentVideo", width=80, height=48, length=9, batch_size=1)
    if via == "sampler":
        out = sampler(g, model, cond, latent=other)
    else:
        guider = g.add("Mv2IDGuider", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                       text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=1.0)
        out = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=1), guider=guider,
                    sampler=g.add("KSamplerSelect", sampler_name="euler"),
                    sigmas=g.add("BasicScheduler", model=model, scheduler="simple", steps=2, denoise=1.0),
                    latent_image=other)[0]
    g.add("Mv2IDTestSaveLatent", samples=out, filename="other_latent")
    msg = bad(g.prompt())
    assert "the latent to sample is 80x48 px" in msg and "made for 64x48 px" in msg, msg


@pytest.mark.parametrize("node,name,value", [
    ("Mv2IDSampler", "sampler_name", "euler_but_not"), ("Mv2IDSampler", "scheduler", "linear_quadratic_x"),
    ("Mv2IDSampler", "outside_window", "none"), ("Mv2IDSampler", "add_noise", "yes"),
    ("Mv2IDSampler", "return_with_leftover_noise", "maybe"), ("Mv2IDReferenceConditioning", "fit", "crop"),
    ("Mv2IDRDRoPE", "mode", "diagonal"), ("Mv2IDRDRoPE", "lora_name", "not_there.safetensors")])
def test_combo_values_that_do_not_exist(bad, ref_files, node, name, value):
    """ComfyUI does not check V3 combo values sent through the API (0.3.75), and core sampler code takes
    an unknown scheduler as the default: the node checks and lists the values it takes."""
    g = Graph()
    mv2id(g, ref_files, save="bad_combo")
    _node(g, node)["inputs"][name] = value
    msg = bad(g.prompt())
    assert repr(value) in msg or f"'{value}'" in msg, msg
    assert "must be one of" in msg or "not in list" in msg, msg


@pytest.mark.parametrize("inputs,expected", [
    ({"start_at_step": 3, "end_at_step": 3}, "start_at_step 3 is at or after the last step to run (3"),
    ({"start_at_step": 5}, "start_at_step 5 is at or after the last step to run (3"),
    ({"ref_start": 0.6, "ref_end": 0.2}, "reference window end (0.2) is before its start (0.6)")])
def test_nothing_to_sample_or_an_inverted_window(bad, ref_files, inputs, expected):
    g = Graph()
    mv2id(g, ref_files, save="bad_steps")
    _node(g, "Mv2IDSampler")["inputs"].update(inputs)
    msg = bad(g.prompt())
    assert expected in msg, msg


def _lora(comfy, name, metadata=None, data=None):
    loras = comfy.base_dir / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    path = loras / name
    if data is not None:
        path.write_bytes(data)
    else:
        save_file({"diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.zeros(4, 1)}, str(path), metadata=metadata)
    return name


@pytest.mark.parametrize("key,value,expected", [
    ("offset", "nan", "offset must be a number from 0 to 64, got nan"),
    ("offset", "inf", "offset must be a number from 0 to 64, got inf"),
    ("offset", "-50", "offset must be a number from 0 to 64, got -50.0"),
    ("offset", "1e12", "offset must be a number from 0 to 64, got 1000000000000.0"),
    ("first_index", "1e8", "first_index must be a whole number from 0 to 16, got 100000000"),
    ("first_index", "1.5", "first_index must be a whole number, got 1.5"),
    ("mode", "sideways", "RD-RoPE mode must be one of rd, vanilla, got 'sideways'")])
def test_lora_metadata_outside_the_widget_bounds(bad, comfy, ref_files, key, value, expected):
    md = {"mv2id.rdrope.mode": "rd", "mv2id.rdrope.offset": "1.0", "mv2id.rdrope.first_index": "1",
          f"mv2id.rdrope.{key}": value}
    name = _lora(comfy, f"bad_md_{key}_{value}.safetensors", md)
    g = Graph()
    mv2id(g, ref_files, save="bad_md")
    _node(g, "Mv2IDRDRoPE")["inputs"]["lora_name"] = name
    msg = bad(g.prompt())
    assert name in msg and expected in msg and "offset 0 to 64, first_index 0 to 16" in msg, msg


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage"])
def test_broken_lora_file(bad, comfy, ref_files, kind):
    from safetensors.torch import save
    good = save({"diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.zeros(64, 8)},
                metadata={"mv2id.rdrope.mode": "rd"})
    data = {"empty": b"", "truncated": good[: len(good) // 2], "garbage": b"\xff" * 64}[kind]
    name = _lora(comfy, f"broken_{kind}.safetensors", data=data)
    g = Graph()
    mv2id(g, ref_files, save="broken_lora")
    _node(g, "Mv2IDRDRoPE")["inputs"]["lora_name"] = name
    msg = bad(g.prompt())
    assert f"cannot read the LoRA '{name}'" in msg and "download or copy it again, or set lora_name to none" in msg, msg


@pytest.fixture(scope="module")
def i2v_model(comfy, comfy_modules):
    """A tiny Wan image-to-video model (36 input channels, as Wan 2.1 I2V and Wan 2.2 A14B I2V) in the server's
    diffusion_models folder."""
    import make_tiny_models
    c = comfy_modules
    with torch.device("meta"):
        module = c.ldm.wan.model.WanModel(model_type="t2v", in_dim=36, dim=128, ffn_dim=256, num_heads=1, num_layers=1,
                                          operations=c.ops.disable_weight_init)
    folder = comfy.base_dir / "models" / "diffusion_models"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(make_tiny_models._state_dict(module, 5, torch.float32), str(folder / "mv2id_tiny_i2v.safetensors"))
    return "mv2id_tiny_i2v.safetensors"


def test_image_to_video_model_is_refused(bad, ref_files, i2v_model):
    g = Graph()
    wrong = g.add("UNETLoader", unet_name=i2v_model, weight_dtype="default")
    mv2id(g, ref_files, model=wrong, patch=False, save="wrong_i2v")
    msg = bad(g.prompt())
    assert "Mv2IDSampler" in msg and "this MODEL takes 36 input channels: an image-to-video model" in msg, msg
