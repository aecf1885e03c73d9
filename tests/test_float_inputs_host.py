"""No NaN or infinity gets through a pack node: every FLOAT input of every Mv2ID node that /object_info lists
gets NaN, +inf and -inf, typed into the widget and through a link (core's range check catches neither NaN
nor linked values), and each prompt fails with an error naming the input. Afterwards the server is healthy
and the valid graph gives its earlier result bit for bit."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from faces_helpers import analyzer_node
from graphs import Graph
from model_path_graphs import conditioning, error_of, mv2id, ref_files
from photos import fit, load_photos

__all__ = ["ref_files"]   # module fixture
VALUES = (math.nan, math.inf, -math.inf)
FACE = "mv2id_float_face.png"


def _sampler_graph(names):
    g = Graph()
    mv2id(g, names, steps=2, ref_end=0.5, save="float_out")
    return g


def _guider_graph(names):
    g = Graph()
    model, _, cond = conditioning(g, names)
    guider = g.add("Mv2IDGuider", model=model, positive=cond[0], negative_text=cond[1], negative_img_text=cond[2],
                   text_cfg=7.5, ref_cfg=5.0, ref_start=0.0, ref_end=0.5)
    lat = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=3), guider=guider,
                sampler=g.add("KSamplerSelect", sampler_name="euler"),
                sigmas=g.add("BasicScheduler", model=model, scheduler="simple", steps=2, denoise=1.0),
                latent_image=cond[3])
    g.add("Mv2IDTestSaveLatent", samples=lat[0], filename="float_out")
    return g


def _region_mask_graph(names):
    g = Graph()
    rm = g.add("Mv2IDRegionMask", images=g.add("LoadImage", image=names[1])[0], ratio=0.6, block_size=16, seed=5,
               fill=0.5, complementary=False)
    g.add("Mv2IDTestSaveTensors", image=rm[0], mask=rm[1], filename="float_out")
    return g


def _face_views_graph(names):
    g = Graph()
    fv = g.add("Mv2IDFaceViews", images=g.add("LoadImage", image=FACE)[0], analyzer=analyzer_node(g), num_views=1,
               width=96, height=96, margin=1.0, upright=True, if_no_face="error", pitch_weight=0.5,
               mask_meaning="subject")
    g.add("Mv2IDTestSaveTensors", image=fv[0], mask=fv[1], filename="float_out")
    return g


def _identity_score_graph(names):
    g = Graph()
    face = g.add("LoadImage", image=FACE)[0]
    score = g.add("Mv2IDIdentityScore", frames=g.add("ImageBatch", image1=face, image2=face), references=face,
                  analyzer=analyzer_node(g), num_frames=0, plot_width=320, plot_height=240, fps=8.0,
                  segment_seconds=0.25, segment_frames=1)
    g.add("Mv2IDTestSaveTensors", image=score[3], filename="float_out")      # the plot shows the scores
    return g


# a valid graph for every node with a FLOAT input: a node that gains one must be listed here
GRAPHS = {"Mv2IDSampler": _sampler_graph, "Mv2IDRDRoPE": _sampler_graph, "Mv2IDGuider": _guider_graph,
          "Mv2IDRegionMask": _region_mask_graph, "Mv2IDFaceViews": _face_views_graph,
          "Mv2IDIdentityScore": _identity_score_graph}


def float_inputs(object_info: dict) -> dict[str, list[str]]:
    """{node id: its FLOAT inputs, required and optional} for every Mv2ID node (test nodes excluded)."""
    out = {}
    for node, info in object_info.items():
        if not node.startswith("Mv2ID") or node.startswith("Mv2IDTest"):
            continue
        names = [n for part in ("required", "optional") for n, spec in info["input"].get(part, {}).items()
                 if spec[0] == "FLOAT"]
        if names:
            out[node] = names
    return out


def _output(comfy, entry):
    path = next(p for p in comfy.output_files(entry) if p.name == "float_out.safetensors")
    return load_file(str(path))


@pytest.fixture(scope="module")
def face(comfy):
    tom, _ = load_photos()
    portrait = np.full((300, 240, 3), 150, np.uint8)
    portrait[40:200, 40:200] = fit(tom, 160)
    Image.fromarray(portrait).save(comfy.input_dir / FACE)


def test_every_float_input_names_itself_for_nan_and_infinity(healthy, ref_files, face):
    floats = float_inputs(healthy.object_info())
    assert {"Mv2IDSampler", "Mv2IDGuider", "Mv2IDRDRoPE", "Mv2IDRegionMask", "Mv2IDFaceViews",
            "Mv2IDIdentityScore"} <= set(floats)
    missing = set(floats) - set(GRAPHS)
    assert not missing, f"nodes with FLOAT inputs but no valid graph in GRAPHS: {sorted(missing)}"
    failures = []
    for node, names in floats.items():
        healthy.free()
        baseline = _output(healthy, healthy.run(GRAPHS[node](ref_files).prompt(), timeout=300))
        display = healthy.object_info()[node]["display_name"]
        for name in names:
            for value in VALUES:
                for via in ("widget", "link"):
                    g = GRAPHS[node](ref_files)
                    target = next(n for n in g.nodes.values() if n["class_type"] == node)
                    target["inputs"][name] = (g.add("Mv2IDTestFloat", value=repr(value)).link() if via == "link"
                                              else value)
                    msg = error_of(healthy, g.prompt())
                    ours = f"{display}: {name} is {value!r}, not a finite number: set {name} to a number from"
                    # core itself refuses an infinite widget value outside min/max, naming the input
                    core = f'"details": "{name}"' in msg and "than m" in msg
                    if not (ours in msg or (via == "widget" and math.isinf(value) and core)):
                        failures.append(f"{node}.{name} = {value} ({via}): {msg[:300]}")
        assert healthy.alive(), healthy.log_tail()
        healthy.free()
        after = _output(healthy, healthy.run(GRAPHS[node](ref_files).prompt(), timeout=300))
        for key in baseline:
            if not torch.equal(after[key], baseline[key]):
                failures.append(f"{node}: the valid graph's {key} changed after the bad prompts")
    assert not failures, "\n".join(failures)


def test_nan_guidance_scales_and_denoise_no_longer_reach_the_sampler(healthy, ref_files):
    """The issue's cases: NaN text_cfg / ref_cfg gave an all-NaN latent, NaN denoise 'cannot convert float NaN
    to integer'."""
    for name in ("text_cfg", "ref_cfg", "denoise"):
        g = _sampler_graph(ref_files)
        next(n for n in g.nodes.values() if n["class_type"] == "Mv2IDSampler")["inputs"][name] = math.nan
        msg = error_of(healthy, g.prompt())
        assert f"Mv2ID Sampler: {name} is nan, not a finite number: set {name} to a number from" in msg, msg
        assert "cannot convert" not in msg
