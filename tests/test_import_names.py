"""One import name: the library is `mv2id_core` (and the trainer `mv2id_train`) in ComfyUI, in the CLIs
and in the tests, and no file of the pack is imported twice under two names (two copies of a module
would make `isinstance` and `except Mv2IDError` miss across them)."""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import mv2id_core
import mv2id_train
from graphs import Graph

ROOT = Path(__file__).resolve().parent.parent
PACK_PARTS = ("mv2id_core", "mv2id_train", "nodes")


def twice_imported(modules: dict[str, str | None]) -> dict[str, list[str]]:
    """{module name: file} -> {pack file: [its names]} for the pack's files imported under two or more names."""
    names: dict[str, list[str]] = {}
    root = ROOT.resolve()
    for name, file in modules.items():
        if not file:
            continue
        path = Path(file).resolve()
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if rel.parts[0] in PACK_PARTS or rel == Path("__init__.py"):
            names.setdefault(str(rel), []).append(name)
    return {f: sorted(n) for f, n in names.items() if len(n) > 1}


def _importable(pkg) -> list[str]:
    """Every module of a package that imports without ComfyUI (ComfyUI-facing ones only on a host)."""
    out = []
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        needs_comfyui = ".comfyui." in info.name and not info.name.endswith(".support")
        if needs_comfyui and "comfy" not in sys.modules:
            continue
        out.append(info.name)
    return out


def test_twice_imported_finds_a_second_copy(tmp_path):
    """The check itself: the same file under a second name is reported, other files are not."""
    f = str(ROOT / "mv2id_core" / "errors.py")
    assert twice_imported({"mv2id_core.errors": f, "x.mv2id_core.errors": f, "os": os.__file__}) == \
        {"mv2id_core/errors.py": ["mv2id_core.errors", "x.mv2id_core.errors"]}


def test_library_and_trainer_have_one_name_in_this_process():
    assert Path(mv2id_core.__file__).resolve().parent == (ROOT / "mv2id_core").resolve()
    for name in _importable(mv2id_core) + _importable(mv2id_train):
        importlib.import_module(name)
    assert twice_imported({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}) == {}


def test_console_scripts_run_from_the_install(tmp_path):
    """pip's console scripts (pyproject [project.scripts]) import the installed package, from any folder."""
    bindir = Path(sys.executable).parent
    for script in ("mv2id-eval", "mv2id-data", "mv2id-cache", "mv2id-train"):
        exe = bindir / script
        assert exe.is_file(), f"{exe} missing: run pip install -e {ROOT}"
        res = subprocess.run([str(exe), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": ""})
        assert res.returncode == 0 and "usage:" in res.stdout, (script, res.stderr[-2000:])


def test_pack_in_comfyui_uses_the_one_name(comfy):
    """In the server, after the pack's nodes ran: the library is `mv2id_core`, from this checkout, once."""
    g = Graph()
    masked = g.add("Mv2IDRegionMask", images=g.add("Mv2IDTestImage", width=32, height=32, batch=1, bad_pixel="none"),
                   ratio=0.5, block_size=8, seed=0, fill=1.0, complementary=False)
    report = g.add("Mv2IDTestModuleNames", after=masked[0])
    entry = comfy.run(g.prompt(), timeout=120)
    modules = json.loads(entry["outputs"][report.nid]["text"][0])
    assert Path(modules["mv2id_core"]).resolve() == (ROOT / "mv2id_core" / "__init__.py").resolve()
    assert "mv2id_core.region_masks" in modules
    assert twice_imported(modules) == {}
    assert not [n for n in modules if n.endswith(".mv2id_core") or ".mv2id_core." in n]
