"""ComfyUI-Mv2ID: identity-consistent video under large face angles (Mv2ID) for Wan 2.1.

ComfyUI loads this folder as a custom node pack and calls `comfy_entrypoint` (V3 node API).
The method itself lives in `mv2id_core/` (plain PyTorch); `nodes/` only adapts it to ComfyUI.
Importing this file imports nothing from ComfyUI; the nodes are imported when ComfyUI asks.
On a ComfyUI older than the pack needs, it logs one line saying so and registers no nodes.

The library has one import name, `mv2id_core`, in ComfyUI as in the CLIs and the tests: ComfyUI
imports this folder under a name made from its path, so the library is bound here to its own
name, from this folder (`bind_library`), and the nodes import it by that name.
"""
import importlib.util
import logging
import sys
from pathlib import Path

LIBRARY = "mv2id_core"


def bind_library() -> str | None:
    """Make `import mv2id_core` load this pack's own library; returns why it cannot, or None.

    A copy already imported from another folder (e.g. an older `pip install` of the pack) is not
    replaced under a running program: the pack then refuses to load instead of mixing two copies.
    """
    here = Path(__file__).resolve().parent / LIBRARY
    loaded = sys.modules.get(LIBRARY)
    if loaded is not None:
        there = Path(getattr(loaded, "__file__", "") or ".").resolve().parent
        if there == here:
            return None
        return (f"another copy of {LIBRARY} is already loaded from {there}, not this pack's {here}: "
                f"uninstall it (pip uninstall mv2id) and restart ComfyUI")
    spec = importlib.util.spec_from_file_location(LIBRARY, here / "__init__.py", submodule_search_locations=[str(here)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[LIBRARY] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[LIBRARY]
        raise
    return None


if __package__:   # ComfyUI imports this folder as a package; pytest may import the bare file (no package)
    _problem = bind_library()
    if not _problem:
        from mv2id_core.comfyui.support import running_version, version_problem

        _problem = version_problem(running_version())
    if _problem:
        logging.getLogger("Mv2ID").error("[Mv2ID] %s", _problem)
        # an empty V1 pack: ComfyUI before 0.3.48 would list a pack without NODE_CLASS_MAPPINGS as IMPORT FAILED
        NODE_CLASS_MAPPINGS = {}
    else:
        async def comfy_entrypoint():
            from .nodes import Mv2IDExtension

            return Mv2IDExtension()
