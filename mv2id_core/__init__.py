"""Mv2ID as a plain PyTorch library; only the `comfyui` subpackage touches ComfyUI's objects.

Modules are named after the paper: references (multi-view reference packing), rdrope
(reference-decoupled RoPE position ids), guidance (three-pass reference guidance and its step
window), views (face views and view selection), region_masks (training-time region masking),
metrics (MvRC, FaceSim, copy-paste); faces/ holds the face-analysis backends, latents the Wan 2.1
latent geometry, errors the pack's exception classes.
"""
