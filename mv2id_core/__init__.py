"""Mv2ID as a plain PyTorch library (no ComfyUI imports outside `host_adapter`).

Modules are named after the paper: views (face views and view selection), region_mask,
rdrope (reference-decoupled RoPE position ids), references (reference packing),
guidance, metrics.
"""
__version__ = "0.1.0"
