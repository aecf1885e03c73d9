"""What a registry / ComfyUI-Manager install gets: .comfyignore leaves out the development files and
keeps everything ComfyUI loads (git's own gitignore matcher, on the tracked files, as comfy-cli does)."""
from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args) -> list[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def test_comfyignore_ships_the_pack_and_nothing_for_development():
    tracked = set(_git("ls-files"))
    left_out = set(_git("ls-files", "-ci", "--exclude-from=.comfyignore"))
    shipped = tracked - left_out
    for dev in ("tests/", "bench/", "tools/", "hosts/", ".ci/", ".github/"):
        assert not [f for f in shipped if f.startswith(dev)], dev
    needed = {"__init__.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE"}
    assert needed <= shipped
    for pkg in ("nodes/", "mv2id_core/", "example_workflows/"):
        assert {f for f in tracked if f.startswith(pkg)} <= shipped, pkg


def test_no_includes_that_would_bypass_comfyignore():
    """comfy-cli walks [tool.comfy] includes on disk (untracked files too) and ignores .comfyignore there."""
    assert "includes" not in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
