"""Package metadata written once: requirements.txt (what ComfyUI-Manager installs) lists exactly the
pyproject dependencies except torch (never installed into a user's ComfyUI), and the version lives only in
pyproject.toml (the CHANGELOG's newest entry names it; no second copy in the code)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement(line: str) -> tuple[str, str]:
    """'Pillow >= 10.0 ; marker' -> ('pillow', '>=10.0;marker'): the name canonical, spaces dropped."""
    text = line.split("#")[0].replace(" ", "")
    name = re.match(r"[A-Za-z0-9._-]+", text).group(0)
    return re.sub(r"[-_.]+", "-", name).lower(), text[len(name):]


def _requirements_txt() -> dict[str, str]:
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.split("#")[0].strip()]
    return dict(_requirement(ln) for ln in lines)


def test_requirements_txt_is_the_pyproject_dependencies_without_torch():
    declared = dict(_requirement(d) for d in PROJECT["dependencies"])
    assert "torch" in declared, "the library needs torch: declare it in pyproject.toml"
    assert "torch" not in _requirements_txt(), "requirements.txt must never install torch into ComfyUI"
    assert _requirements_txt() == {k: v for k, v in declared.items() if k != "torch"}


def test_the_version_is_written_once():
    version = PROJECT["version"]
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert newest == version, f"CHANGELOG's newest entry is {newest}, pyproject.toml says {version}"
    copies = [str(p.relative_to(ROOT)) for d in ("mv2id_core", "mv2id_train", "nodes") for p in (ROOT / d).rglob("*.py")
              if re.search(r"^__version__\s*=", p.read_text(), re.M)] + \
             [f for f in ("__init__.py",) if re.search(r"^__version__\s*=", (ROOT / f).read_text(), re.M)]
    assert copies == [], f"a second copy of the version in {copies}: read it from the package metadata instead"
