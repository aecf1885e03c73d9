"""Find and import ComfyUI's model code (WanModel, the VAE, the text-encoder loader): the one place
that puts a ComfyUI folder on sys.path (training, the tests and tools/make_tiny_models.py use it).

Looked up in this order: a folder the caller gives, $MV2ID_COMFYUI (the test host; tests/conftest.py
sets it), $COMFYUI_PATH, and a ComfyUI folder that contains this pack
(<ComfyUI>/custom_nodes/ComfyUI-Mv2ID). On a machine without CUDA, ComfyUI is put in CPU mode before
its model management is imported.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from mv2id_core.errors import ComfyUINotFound

ROOT = Path(__file__).resolve().parent.parent
_COMFY = None


def locate_comfyui() -> Path:
    for var in ("MV2ID_COMFYUI", "COMFYUI_PATH"):
        if os.environ.get(var):
            p = Path(os.environ[var]).expanduser()
            if (p / "comfy").is_dir():
                return p
            raise ComfyUINotFound(f"${var}={p} is not a ComfyUI folder (no comfy/ inside)")
    if ROOT.parent.name == "custom_nodes" and (ROOT.parent.parent / "comfy").is_dir():
        return ROOT.parent.parent
    raise ComfyUINotFound("ComfyUI not found: set COMFYUI_PATH=/path/to/ComfyUI (training uses its Wan model code)")


def import_comfy(comfyui: str | os.PathLike | None = None, cpu: bool | None = None):
    """Put ComfyUI (the folder `comfyui`, else locate_comfyui()) on sys.path and import what training needs;
    returns the `comfy` package. One ComfyUI per process: a second call returns the first one's package."""
    global _COMFY
    if _COMFY is not None:
        return _COMFY
    if comfyui is not None and not (Path(comfyui) / "comfy").is_dir():
        raise ComfyUINotFound(f"{comfyui} is not a ComfyUI folder (no comfy/ inside)")
    path = str(Path(comfyui).resolve()) if comfyui is not None else str(locate_comfyui())
    if path not in sys.path:
        sys.path.insert(0, path)
    import torch
    from comfy.cli_args import args
    if cpu is None:
        cpu = not torch.cuda.is_available()
    if cpu:
        args.cpu = True
    import comfy.ops  # noqa: F401
    import comfy.utils  # noqa: F401
    import comfy.ldm.wan.model  # noqa: F401
    import comfy.latent_formats  # noqa: F401
    import comfy.patcher_extension  # noqa: F401
    import comfy
    _COMFY = comfy
    return comfy
