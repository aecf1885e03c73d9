"""The pack's ComfyUI nodes (V3 schema). One module per concern; each exports NODES.

A module that fails to import (for example because an optional dependency is broken) is
skipped with a logged warning so the rest of the pack still loads.
"""
from __future__ import annotations

import importlib
import logging

from comfy_api.latest import ComfyExtension, io

log = logging.getLogger("Mv2ID")

# feature modules, in menu order
_MODULES = ("references", "rdrope", "guidance", "face_analysis", "views", "region_masks", "metrics")


def _collect() -> list[type[io.ComfyNode]]:
    nodes: list[type[io.ComfyNode]] = []
    for name in _MODULES:
        try:
            mod = importlib.import_module(f".{name}", __name__)
        except Exception as e:  # never take the whole pack down
            log.warning("[Mv2ID] nodes from %s are unavailable: %s: %s", name, type(e).__name__, e)
            continue
        for node in getattr(mod, "NODES", []):
            try:
                node.define_schema().validate()
            except Exception as e:  # one broken schema must not hide the other nodes
                log.warning("[Mv2ID] node %s is unavailable: %s", node.__name__, e)
                continue
            nodes.append(node)
    return nodes


def _report_optional_libraries() -> None:
    """One warning per face backend whose libraries are missing (checked without importing them)."""
    from mv2id_core.faces import missing_libraries

    for backend, (mods, fix) in missing_libraries().items():
        log.warning("[Mv2ID] face backend %r unavailable (%s not installed); Face Analyzer offers it again "
                    "after: %s", backend, ", ".join(mods), fix)


class Mv2IDExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 does not call on_load for custom nodes; this runs once at start-up
        from mv2id_core.comfyui.support import host_problem

        problem = host_problem()
        if problem:   # e.g. a source checkout whose version string is right but whose Wan model is old
            log.error("[Mv2ID] %s", problem)
            return []
        _report_optional_libraries()
        return _collect()

