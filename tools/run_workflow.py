"""Run an example workflow end to end, headless, and print the path of the video it wrote.

This is the README's "main job". It starts the real ComfyUI host, loads a UI-format workflow
from example_workflows/ exactly as saved by the ComfyUI page, converts it to an API prompt with the
server's own node definitions, and queues it. When the real model files are not installed
it runs on the embedded tiny Wan 2.1 models instead (and says so): model names are swapped,
the umT5 text encoder is replaced by the test conditioning node, the resolution, length and
step count are reduced so a CPU finishes in a minute, and optional stages whose model files
are missing (the upscaler, insightface packs) are bypassed or switched to dlib.

    python tools/run_workflow.py [--workflow example_workflows/mv2id_multiview_t2v.json]
                                 [--photos DIR] [--out out/] [--mode auto|real|tiny]
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import comfy_server  # noqa: E402
import workflow_api  # noqa: E402

PHOTO_NAMES = ("mv2id_face_front.png", "mv2id_face_left.png", "mv2id_face_right.png")
MODEL_INPUTS = {"UNETLoader": "unet_name", "VAELoader": "vae_name", "CLIPLoader": "clip_name"}


def log(msg: str):
    print(f"[mv2id-demo] {msg}", file=sys.stderr, flush=True)


def missing_models(prompt: dict, info: dict) -> list[str]:
    out = []
    for node in prompt.values():
        key = MODEL_INPUTS.get(node["class_type"])
        if key:
            options = info[node["class_type"]]["input"]["required"][key][0]
            if node["inputs"].get(key) not in options:
                out.append(f"{node['class_type']}.{key}={node['inputs'].get(key)}")
    return out


def bypass(prompt: dict, nid: str, through: str) -> None:
    """Remove node `nid`; whoever used its output 0 now uses what fed its input `through`."""
    src = prompt[nid]["inputs"][through]
    del prompt[nid]
    for node in prompt.values():
        for k, v in node["inputs"].items():
            if isinstance(v, list) and len(v) == 2 and v[0] == nid:
                node["inputs"][k] = src


def drop_unused(prompt: dict, info: dict) -> None:
    """Remove non-output nodes nobody consumes (e.g. a loader left behind by a bypass)."""
    while True:
        used = {v[0] for n in prompt.values() for v in n["inputs"].values() if isinstance(v, list) and len(v) == 2}
        dead = [k for k, n in prompt.items() if k not in used and not info[n["class_type"]].get("output_node")]
        if not dead:
            return
        for k in dead:
            del prompt[k]


def adapt(prompt: dict, info: dict, mode: str, comfy_models: Path) -> tuple[dict, list[str]]:
    p = copy.deepcopy(prompt)
    notes = []
    missing = missing_models(p, info)
    tiny = mode == "tiny" or (mode == "auto" and missing)
    if mode == "real" and missing:
        raise SystemExit(f"real weights requested but missing: {', '.join(missing)}")
    if tiny:
        notes.append("running on the embedded tiny models" + (f" (missing: {', '.join(missing)})" if missing else ""))
        p = workflow_api.rewrite_for_tiny_models(p)
    for nid, node in list(p.items()):
        if node["class_type"] == "ImageUpscaleWithModel":
            loader = p.get(node["inputs"]["upscale_model"][0])
            name = loader and loader["inputs"].get("model_name")
            if name not in info["UpscaleModelLoader"]["input"]["required"]["model_name"][0]:
                notes.append(f"upscale model {name!r} not installed: upscaling bypassed")
                bypass(p, nid, "image")
        if node["class_type"] == "Mv2IDFaceAnalyzer" and node["inputs"].get("backend") == "insightface":
            pack = node["inputs"].get("insightface_pack", "antelopev2")
            if not any((d / "insightface" / "models" / pack).is_dir() for d in (comfy_models,)):
                notes.append(f"insightface pack {pack!r} not installed: using the offline dlib backend")
                node["inputs"]["backend"] = "dlib"
    drop_unused(p, info)
    return p, notes


def example_photos(dest: Path) -> None:
    """Three example inputs made from the portrait that ships inside the insightface wheel."""
    import importlib.util
    from PIL import Image, ImageOps
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no --photos given and the insightface package (which ships an example portrait) "
                         "is not installed: pass --photos DIR with three face photos.")
    src = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "Tom_Hanks_54745.png"
    img = Image.open(src).convert("RGB")
    w, h = img.size
    views = [img, ImageOps.mirror(img), img.crop((w // 8, 0, w, h)).rotate(8, expand=False, fillcolor=(255, 255, 255))]
    for name, im in zip(PHOTO_NAMES, views):
        im.save(dest / name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflow", default=str(ROOT / "example_workflows" / "mv2id_multiview_t2v.json"))
    ap.add_argument("--photos", help="folder with the face photos (first three images, sorted by name)")
    ap.add_argument("--out", default=str(ROOT / "out"), help="where to copy the outputs")
    ap.add_argument("--mode", choices=["auto", "real", "tiny"], default="auto",
                    help="auto: real weights when all are installed, else the tiny models")
    ap.add_argument("--timeout", type=float, default=3600)
    a = ap.parse_args(argv)

    host = comfy_server.HostConfig.from_env()
    base = ROOT / ".host" / "demo-base"
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    workflow = json.loads(Path(a.workflow).read_text())
    server = comfy_server.ComfyServer(host, base)
    (base / "input").mkdir(parents=True, exist_ok=True)
    if a.photos:
        photos = sorted(p for p in Path(a.photos).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        if len(photos) < 3:
            raise SystemExit(f"--photos {a.photos}: need 3 face photos, found {len(photos)}")
        for name, src in zip(PHOTO_NAMES, photos):
            shutil.copyfile(src, base / "input" / name)
    else:
        example_photos(base / "input")
    log(f"starting ComfyUI ({host.comfyui})")
    t0 = time.time()
    with server:
        info = server.object_info()
        prompt = workflow_api.ui_to_api(workflow, info)
        prompt, notes = adapt(prompt, info, a.mode, host.comfyui / "models")
        for n in notes:
            log(n)
        log(f"queued {Path(a.workflow).name}: {len(prompt)} nodes")
        entry = server.run(prompt, timeout=a.timeout)
        files = server.output_files(entry)
    videos = []
    for f in files:
        dest = out_dir / f.name
        shutil.copyfile(f, dest)
        if f.suffix.lower() in (".mp4", ".webm", ".mov", ".gif", ".webp"):
            videos.append(dest)
    log(f"done in {time.time() - t0:.1f}s; outputs in {out_dir}")
    if not videos:
        raise SystemExit("the workflow finished but wrote no video")
    for v in videos:
        print(v)


if __name__ == "__main__":
    main()
