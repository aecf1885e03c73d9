"""The declared minimum ComfyUI and the start-up check that enforces it."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from mv2id_core.comfyui import support
import comfy_server
from graphs import Graph

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_declares_the_minimum_the_code_enforces():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    assert re.fullmatch(r">=\s*(\d+\.\d+\.\d+)", declared)
    assert support.parse_version(declared.lstrip(">= ")) == support.MIN_COMFYUI


@pytest.mark.parametrize("version,ok", [("0.3.68", True), ("0.3.75", True), ("0.33.0", True), ("1.0.0", True),
                                        ("0.3.67", False), ("0.3.47", False), ("0.2.7", False),
                                        (None, True), ("", True), ("unknown", True)])
def test_version_check(version, ok):
    problem = support.version_problem(version)
    assert (problem is None) == ok
    if not ok:
        assert f"needs ComfyUI 0.3.68 or newer, but this is ComfyUI {version}" in problem
        assert "Update ComfyUI" in problem


def test_feature_check_on_rope_encode_signatures():
    def new(self, t, h, w, t_start=0, device=None, dtype=None, transformer_options={}, source_id=0): ...
    def forwarding(self, t, h, w, **kwargs): ...
    def old(self, t, h, w, t_start=0, steps_t=None, steps_h=None, steps_w=None, device=None, dtype=None): ...
    assert support.feature_problem(new) is None and support.feature_problem(forwarding) is None
    assert "lacks transformer_options in WanModel.rope_encode" in support.feature_problem(old)
    assert "lacks WanModel.rope_encode" in support.feature_problem(None)


def test_running_host_passes_both_checks(host_config):
    assert support.version_problem(host_config.version) is None


def test_older_comfyui_gets_one_clear_line_and_no_nodes(host_config, tmp_path):
    """A ComfyUI that reports 0.3.60 (simulated: its comfyui_version module is replaced before
    start-up) loads the pack as an empty pack with one error line, not IMPORT FAILED."""
    fake = Path(__file__).resolve().parent / "old_comfyui"
    server = comfy_server.ComfyServer(host_config, tmp_path / "base", extra_env={
        "PYTHONPATH": str(fake), "MV2ID_FAKE_COMFYUI_VERSION": "0.3.60"})
    with server:
        info = server.object_info()
        log = server.log_path.read_text(errors="replace")
        g = Graph()
        g.add("PreviewAny", source="still alive")
        server.run(g.prompt(), timeout=60)
    assert not [k for k in info if k.startswith("Mv2ID") and not k.startswith("Mv2IDTest")]
    lines = [ln for ln in log.splitlines() if "[Mv2ID]" in ln]
    assert len(lines) == 1, lines
    assert "needs ComfyUI 0.3.68 or newer, but this is ComfyUI 0.3.60" in lines[0]
    assert "IMPORT FAILED" not in log
