"""Which ComfyUI the pack needs, and the check that runs when ComfyUI loads it.

The pack needs ComfyUI 0.3.68 or newer: V3 nodes arrived in 0.3.48, `WanModel.rope_encode` in
0.3.53, and ComfyUI passes `transformer_options` into `rope_encode` (which the RD-RoPE patch needs)
from 0.3.68 on. pyproject.toml declares the same minimum (`requires-comfyui`); a test keeps the
two equal. Nothing here imports ComfyUI at module level, so it runs on any version.
"""
from __future__ import annotations

import inspect
import re

MIN_COMFYUI = (0, 3, 68)
MIN_COMFYUI_TEXT = ".".join(map(str, MIN_COMFYUI))
UPDATE_HINT = ("update ComfyUI (ComfyUI-Manager: 'Update ComfyUI', or `git pull` in the ComfyUI folder) and "
               "restart it")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """'0.3.75' -> (0, 3, 75); None when the text has no x.y.z at its start."""
    m = re.match(r"\s*v?(\d+)\.(\d+)\.(\d+)", str(text or ""))
    return tuple(int(g) for g in m.groups()) if m else None


def running_version() -> str | None:
    """The running ComfyUI's version (its comfyui_version module), or None if it has none."""
    try:
        import comfyui_version
    except ImportError:
        return None
    return str(getattr(comfyui_version, "__version__", "")) or None


def version_problem(version: str | None) -> str | None:
    """Why this ComfyUI version cannot run the pack, or None when it can (or cannot be told)."""
    v = parse_version(version)
    if v is not None and v < MIN_COMFYUI:
        return (f"ComfyUI-Mv2ID needs ComfyUI {MIN_COMFYUI_TEXT} or newer, but this is ComfyUI {version}: "
                f"{UPDATE_HINT}. The pack's nodes are not loaded until then.")
    return None


def feature_problem(rope_encode) -> str | None:
    """Why this ComfyUI's Wan model lacks what the RD-RoPE patch needs (version strings of forks and
    source checkouts can be stale, so the feature itself is checked too)."""
    if rope_encode is None:
        missing = "WanModel.rope_encode"
    else:
        params = inspect.signature(rope_encode).parameters
        if "transformer_options" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return None
        missing = "transformer_options in WanModel.rope_encode"
    return (f"ComfyUI-Mv2ID needs ComfyUI {MIN_COMFYUI_TEXT} or newer, but this ComfyUI lacks {missing}: "
            f"{UPDATE_HINT}. The pack's nodes are not loaded until then.")


def host_problem() -> str | None:
    """Both checks against the running ComfyUI (imports its Wan model; call it from the entry point)."""
    problem = version_problem(running_version())
    if problem:
        return problem
    try:
        from comfy.ldm.wan.model import WanModel
    except ImportError:
        return feature_problem(None)
    return feature_problem(getattr(WanModel, "rope_encode", None))
