"""Mv2ID RD-RoPE's mode on the real host: `auto` (the default) uses reference-decoupled positions only
for a LoRA that records Mv2ID RD-RoPE settings (what mv2id-train writes), otherwise Phantom's positions,
and says which it chose and why in one log line."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from graphs import Graph
from model_path_graphs import mv2id, ref_files, run_latent

__all__ = ["ref_files"]   # module fixture

RECORDED = {"mv2id.rdrope.mode": "rd", "mv2id.rdrope.offset": "2.0", "mv2id.rdrope.first_index": "0"}


@pytest.fixture(scope="module")
def loras(comfy):
    """A LoRA that records Mv2ID RD-RoPE settings and one that records none (another trainer's)."""
    folder = comfy.base_dir / "models" / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    weights = {"diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.zeros(8, 4)}
    save_file(weights, str(folder / "mv2id_auto_rd.safetensors"), metadata={**RECORDED, "mv2id.train.step": "40"})
    save_file(weights, str(folder / "other_trainer.safetensors"), metadata={"ss_network_dim": "8"})
    return "mv2id_auto_rd.safetensors", "other_trainer.safetensors"


def _run(comfy, names, save, mode, offset=1.0, first_index=1, lora="none", patch=True):
    g = Graph()
    mv2id(g, names, save=save, patch=patch, steps=2)
    if patch:
        node = next(n for n in g.nodes.values() if n["class_type"] == "Mv2IDRDRoPE")
        node["inputs"].update(mode=mode, offset=offset, first_index=first_index, lora_name=lora)
    return run_latent(comfy, g, save)


def _log_line(comfy, mark):
    lines = [line for line in comfy.log_tail(400).splitlines()
             if "[Mv2ID] RD-RoPE:" in line and " positions" in line and mark in line]
    assert lines, comfy.log_tail(60)
    return lines[-1]


def test_auto_is_the_default(comfy):
    spec = comfy.object_info()["Mv2IDRDRoPE"]["input"]["required"]["mode"]
    options = spec[1].get("options") or spec[0]          # V3 "COMBO" with options, or a V1-style list
    assert spec[1]["default"] == "auto" and list(options) == ["auto", "rd", "vanilla"], spec


def test_auto_picks_rd_only_for_a_lora_that_records_it(comfy, ref_files, loras):
    recorded, other = loras
    plain = _run(comfy, ref_files, "auto_plain_model", None, patch=False)
    rd = _run(comfy, ref_files, "auto_explicit_rd", "rd", 2.0, 0)

    no_lora = _run(comfy, ref_files, "auto_no_lora", "auto")
    assert torch.equal(no_lora, plain)                       # Phantom's positions: the model is unchanged
    assert "vanilla positions" in _log_line(comfy, "no Mv2ID LoRA named in lora_name")

    from_lora = _run(comfy, ref_files, "auto_from_lora", "auto", lora=recorded)
    assert torch.equal(from_lora, rd) and not torch.equal(from_lora, plain)
    line = _log_line(comfy, recorded)
    assert "rd positions, offset 2, first_index 0: recorded in the LoRA" in line, line

    other_lora = _run(comfy, ref_files, "auto_other_lora", "auto", lora=other)
    assert torch.equal(other_lora, plain)
    assert "vanilla positions" in _log_line(comfy, f"the LoRA {other} records no Mv2ID RD-RoPE settings")


def test_rd_and_vanilla_stay_selectable(comfy, ref_files, loras):
    _, other = loras
    plain = _run(comfy, ref_files, "sel_plain_model", None, patch=False)
    rd_default = _run(comfy, ref_files, "sel_rd", "rd")
    assert not torch.equal(rd_default, plain)
    assert "mode rd chosen on the node" in _log_line(comfy, "rd positions, offset 1, first_index 1")
    assert torch.equal(_run(comfy, ref_files, "sel_rd_other", "rd", lora=other), rd_default)
    assert torch.equal(_run(comfy, ref_files, "sel_vanilla", "vanilla"), plain)
