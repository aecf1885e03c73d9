"""Builders for API-format prompts used by the host tests (plain dicts, no ComfyUI import)."""
from __future__ import annotations

from workflow_api import TINY_UNET, TINY_VAE


class Graph:
    """Tiny helper to write API prompts: g.add("KSampler", seed=1, model=ref) -> node ref."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, _id: str | None = None, **inputs) -> "Ref":
        nid = _id or str(len(self.nodes) + 1)
        self.nodes[nid] = {"class_type": class_type, "inputs": {k: (v.link() if isinstance(v, Ref) else v)
                                                                 for k, v in inputs.items()}}
        return Ref(nid)

    def prompt(self) -> dict:
        return self.nodes


class Ref:
    def __init__(self, nid: str, slot: int = 0):
        self.nid, self.slot = nid, slot

    def __getitem__(self, slot: int) -> "Ref":
        return Ref(self.nid, slot)

    def link(self):
        return [self.nid, self.slot]


def tiny_loaders(g: Graph, shift: float = 8.0):
    unet = g.add("UNETLoader", unet_name=TINY_UNET, weight_dtype="default")
    model = g.add("ModelSamplingSD3", model=unet, shift=shift)
    vae = g.add("VAELoader", vae_name=TINY_VAE)
    pos = g.add("Mv2IDTestConditioning", seed=1, tokens=16)
    neg = g.add("Mv2IDTestConditioning", seed=2, tokens=16)
    return model, vae, pos, neg
