"""ComfyUI-Mv2ID: identity-consistent video under large face angles (Mv2ID) for Wan 2.1.

ComfyUI loads this folder as a custom node pack and calls `comfy_entrypoint` (V3 node API).
The method itself lives in `mv2id_core/` (plain PyTorch); `nodes/` only adapts it to ComfyUI.
Importing this file imports nothing from ComfyUI; the nodes are imported when ComfyUI asks.
On a ComfyUI older than the pack needs, it logs one line saying so and registers no nodes.
"""
import logging

if __package__:   # ComfyUI imports this folder as a package; pytest may import the bare file (no package)
    from .mv2id_core.comfyui.support import running_version, version_problem

    _problem = version_problem(running_version())
    if _problem:
        logging.getLogger("Mv2ID").error("[Mv2ID] %s", _problem)
        # an empty V1 pack: ComfyUI before 0.3.48 would list a pack without NODE_CLASS_MAPPINGS as IMPORT FAILED
        NODE_CLASS_MAPPINGS = {}
    else:
        async def comfy_entrypoint():
            from .nodes import Mv2IDExtension

            return Mv2IDExtension()
