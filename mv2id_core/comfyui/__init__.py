"""The one place where mv2id_core touches ComfyUI's objects (ModelPatcher, samplers, the Wan model).

Import the submodules directly; none is imported here, so `support` works on any ComfyUI:
    support      which ComfyUI the pack needs, checked at start-up
    rdrope_patch RD-RoPE as a patch on a ModelPatcher clone
    guider       reference guidance as a ComfyUI guider
    wan          the Wan 2.1 model and VAE as ComfyUI loads them (type checks, geometry)
"""
