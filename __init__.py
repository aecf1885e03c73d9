"""ComfyUI-Mv2ID: identity-consistent video under large face angles (Mv2ID) for Wan 2.1.

ComfyUI loads this folder as a custom node pack and calls `comfy_entrypoint` (V3 node API).
The method itself lives in `mv2id_core/` (plain PyTorch); `nodes/` only adapts it to ComfyUI.
Importing this file imports nothing from ComfyUI; the nodes are imported when ComfyUI asks.
"""


async def comfy_entrypoint():
    from .nodes import Mv2IDExtension

    return Mv2IDExtension()
