"""The Mv2ID model path on the real ComfyUI host with the tiny Wan 2.1 models: end to end, equal to core
Phantom, RD-RoPE leaves the original model alone. Split by concept: test_guidance_host.py (window, outside
it, multi-stage samplers, two stages), test_rdrope_host.py (mode auto), test_speed_nodes_host.py (EasyCache,
LazyCache, TorchCompileModel, ScaleROPE), test_model_path_errors_host.py (bad input)."""
from __future__ import annotations

import pytest
import torch

from graphs import Graph, tiny_loaders
from model_path_graphs import H, LENGTH, W, calls, evaluations, latent as _latent, mv2id as _mv2id, ref_files, \
    refs as _refs

__all__ = ["ref_files"]   # module fixture


def test_full_graph_end_to_end(comfy, ref_files):
    g = Graph()
    lat, vae = _mv2id(g, ref_files, ref_end=0.2, save="e2e")
    frames = g.add("VAEDecode", samples=lat, vae=vae)
    g.add("SaveVideo", _id="save", video=g.add("CreateVideo", images=frames, fps=16.0),
          filename_prefix="mv2id/e2e", format="mp4", codec="h264")
    entry = comfy.run(g.prompt())
    lat = _latent(comfy, entry, "e2e")
    assert lat.shape == (1, 16, 3, H // 8, W // 8)          # reference frames were dropped
    assert torch.isfinite(lat).all()
    import av
    video = [p for p in comfy.output_files(entry, "save") if p.suffix == ".mp4"][0]
    with av.open(str(video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == LENGTH


def test_matches_core_phantom_path(comfy, ref_files):
    """Vanilla positions + full window + centre-crop == ComfyUI core's Phantom graph, bit for bit."""
    steps, seed = 3, 5
    g = Graph()
    model, vae, pos, neg = tiny_loaders(g)
    refs = _refs(g, ref_files)
    ph = g.add("WanPhantomSubjectToVideo", positive=pos, negative=neg, vae=vae, width=W, height=H, length=LENGTH,
               batch_size=1, images=refs)
    guider = g.add("DualCFGGuider", model=model, cond1=ph[0], cond2=ph[1], negative=ph[2], cfg_conds=7.5,
                   cfg_cond2_negative=5.0, style="regular")
    sigmas = g.add("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)
    core = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=seed), guider=guider,
                 sampler=g.add("KSamplerSelect", sampler_name="euler"), sigmas=sigmas, latent_image=ph[3])
    g.add("Mv2IDTestSaveLatent", samples=core[0], filename="core_phantom")

    cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae, reference_images=refs,
                 width=W, height=H, length=LENGTH, batch_size=1, fit="center_crop")
    vanilla = g.add("Mv2IDRDRoPE", model=model, mode="vanilla", offset=1.0, first_index=1)
    ours = g.add("Mv2IDSampler", model=vanilla, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                 latent=cond[3], seed=seed, steps=steps, text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=1.0,
                 sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("Mv2IDTestSaveLatent", samples=ours, filename="mv2id_vanilla")
    guided = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=seed),
                   guider=g.add("Mv2IDGuider", model=vanilla, positive=cond[0], negative_text=cond[1],
                                negative_img_text=cond[2], text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=1.0),
                   sampler=g.add("KSamplerSelect", sampler_name="euler"), sigmas=sigmas, latent_image=cond[3])
    g.add("Mv2IDTestSaveLatent", samples=guided[0], filename="mv2id_guider")
    entry = comfy.run(g.prompt())
    core_lat = _latent(comfy, entry, "core_phantom")
    assert torch.equal(core_lat, _latent(comfy, entry, "mv2id_vanilla"))
    assert torch.equal(core_lat, _latent(comfy, entry, "mv2id_guider"))


def test_rdrope_changes_output_and_original_model_stays_bit_identical(comfy, ref_files):
    def run(patch, mode, name):
        comfy.free()
        g = Graph()
        _mv2id(g, ref_files, patch=patch, mode=mode, save=name)
        return _latent(comfy, comfy.run(g.prompt()), name)

    before = run(False, "rd", "orig_before")
    vanilla = run(True, "vanilla", "vanilla")
    rd = run(True, "rd", "rd")
    after = run(False, "rd", "orig_after")
    assert torch.equal(before, vanilla)          # vanilla positions are ComfyUI's own
    assert not torch.allclose(before, rd)        # RD-RoPE moves the references
    assert torch.equal(before, after)            # the original MODEL was never changed


@pytest.mark.parametrize("ref_end,expected", [(1.0, [3, 3, 3, 3, 3]), (0.2, [3, 2, 2, 2, 2]), (0.0, [2, 2, 2, 2, 2])])
def test_guidance_window_skips_the_third_pass(comfy, ref_files, ref_end, expected):
    g = Graph()
    _mv2id(g, ref_files, steps=5, ref_end=ref_end, counter=f"win{ref_end}", save=f"win{ref_end}")
    got = calls(comfy.run(g.prompt()))
    assert [passes for _, passes in evaluations(got)] == expected, got
    assert all(c["frames"] == 3 for c in got)


def test_batch_size_two(comfy, ref_files):
    g = Graph()
    _mv2id(g, ref_files, batch=2, ref_end=0.5, save="batch2")
    lat = _latent(comfy, comfy.run(g.prompt()), "batch2")
    assert lat.shape == (2, 16, 3, H // 8, W // 8)
    assert not torch.equal(lat[0], lat[1])       # different noise per batch item


def test_rdrope_patch_runs_with_a_core_node_that_calls_rope_encode_with_more_arguments(comfy, ref_files):
    """BerniniConditioning (newer ComfyUI) adds in-context streams whose rope_encode calls carry
    `source_id`: the RD-RoPE patch must pass those through to ComfyUI's own rope_encode."""
    if "BerniniConditioning" not in comfy.object_info():
        pytest.skip(f"ComfyUI {comfy.host.version} has no BerniniConditioning (newer core node)")

    def run(mode, bernini, name):
        g = Graph()
        model, vae, pos, neg = tiny_loaders(g)
        refs = _refs(g, ref_files)
        if bernini:
            b = g.add("BerniniConditioning", positive=pos, negative=neg, vae=vae, width=W, height=H, length=LENGTH,
                      batch_size=1, ref_max_size=64, **{"reference_images.reference_image_0": refs})
            pos, neg = b[0], b[1]
        cond = g.add("Mv2IDReferenceConditioning", positive=pos, negative=neg, vae=vae, reference_images=refs,
                     width=W, height=H, length=LENGTH, batch_size=1, fit="pad_white")
        patched = g.add("Mv2IDRDRoPE", model=model, mode=mode, offset=1.0, first_index=1, layout=cond[4])
        lat = g.add("Mv2IDSampler", model=patched, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                    latent=cond[3], seed=3, steps=2, text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=1.0,
                    sampler_name="euler", scheduler="simple", denoise=1.0)
        g.add("Mv2IDTestSaveLatent", samples=lat, filename=name)
        return _latent(comfy, comfy.run(g.prompt()), name)

    rd_bernini, vanilla_bernini, rd_plain = run("rd", True, "bern_rd"), run("vanilla", True, "bern_v"), \
        run("rd", False, "bern_none")
    assert torch.isfinite(rd_bernini).all()
    assert not torch.allclose(rd_bernini, vanilla_bernini)   # the patch still moves the references
    assert not torch.allclose(rd_bernini, rd_plain)          # and the in-context streams still count
