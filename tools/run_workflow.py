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
import comfy_server  # noqa: E402
import workflow_api  # noqa: E402

PHOTO_NAMES = ("mv2id_face_front.png", "mv2id_face_left.png", "mv2id_face_right.png")
FACE_FOLDER = "mv2id_faces"
# core nodes of newer ComfyUI the video workflows use (optional stages and their model loaders): kept as
# placeholders when this ComfyUI lacks them, then left out
NEWER_CORE = frozenset({"LoadBackgroundRemovalModel", "RemoveBackground", "FrameInterpolationModelLoader",
                        "FrameInterpolate"})
MODEL_INPUTS = {"UNETLoader": "unet_name", "VAELoader": "vae_name", "CLIPLoader": "clip_name",
                "LoraLoaderModelOnly": "lora_name"}


def log(msg: str):
    print(f"[mv2id-demo] {msg}", file=sys.stderr, flush=True)


def offered(info: dict, node_type: str, name: str) -> list:
    """The values this ComfyUI offers for a combo input (e.g. the model files it found)."""
    spec = next((i for i in workflow_api.input_specs(info[node_type]) if i.name == name), None)
    return spec.combo_options if spec else []


def missing_models(prompt: dict, info: dict) -> list[str]:
    out = []
    for node in prompt.values():
        key = MODEL_INPUTS.get(node["class_type"])
        if key:
            if node["inputs"].get(key) not in offered(info, node["class_type"], key):
                out.append(f"{node['class_type']}.{key}={node['inputs'].get(key)}")
    return out


def bypass(prompt: dict, nid: str, through: str | None) -> None:
    """Remove node `nid`; whoever used its output 0 now uses what fed its input `through` (with no
    `through`, that input is removed from its users: only for optional inputs such as a mask)."""
    src = prompt[nid]["inputs"][through] if through else None
    del prompt[nid]
    for node in prompt.values():
        for k, v in list(node["inputs"].items()):
            if isinstance(v, list) and len(v) == 2 and v[0] == nid:
                if src is None:
                    del node["inputs"][k]
                else:
                    node["inputs"][k] = src


def drop_unused(prompt: dict, info: dict) -> None:
    """Remove non-output nodes nobody consumes (e.g. a loader left behind by a bypass)."""
    while True:
        used = {v[0] for n in prompt.values() for v in n["inputs"].values() if isinstance(v, list) and len(v) == 2}
        dead = [k for k, n in prompt.items() if k not in used and not info.get(n["class_type"], {}).get("output_node")]
        if not dead:
            return
        for k in dead:
            del prompt[k]


# stages a workflow works without: node type -> (input that passes through, the model loader and its file
# input, what the video loses); the demo leaves a stage out when this ComfyUI lacks the node or its model
OPTIONAL_STAGES = {
    "RemoveBackground": (None, ("bg_removal_model", "bg_removal_name"), "the reference crops keep their background"),
    "FrameInterpolate": ("images", ("interp_model", "model_name"), "no frame interpolation (half the frame rate, same duration)"),
    "ImageUpscaleWithModel": ("image", ("upscale_model", "model_name"), "no upscaling model (resized only)"),
}


def _model_file(prompt: dict, node: dict, info: dict, loader_input: str, file_input: str) -> str | None:
    """The model file a stage's loader names when this ComfyUI does not offer it (else None)."""
    ref = node["inputs"].get(loader_input)
    loader = prompt.get(ref[0]) if isinstance(ref, list) else None
    if loader is None or loader["class_type"] not in info:
        return None
    name = loader["inputs"].get(file_input)
    return None if not isinstance(name, str) or name in offered(info, loader["class_type"], file_input) else name


def leave_out_optional_stages(p: dict, info: dict, notes: list[str]) -> None:
    for nid, node in list(p.items()):
        stage = OPTIONAL_STAGES.get(node["class_type"])
        if stage is None:
            continue
        through, (loader_input, file_input), loss = stage
        why = None
        if node["class_type"] not in info:
            why = "this ComfyUI has no " + node["class_type"]
        elif (missing := _model_file(p, node, info, loader_input, file_input)):
            why = f"{missing!r} is not installed"
        if why is None:
            continue
        notes.append(f"{node['class_type']} left out ({why}): {loss}")
        # the frame multiplier (FrameInterpolate's only widget; saved values only when this ComfyUI lacks the node)
        multiplier = node["inputs"].get("multiplier", (node["_meta"].get("widgets_values") or [None])[0])
        bypass(p, nid, through)
        if node["class_type"] == "FrameInterpolate" and isinstance(multiplier, int):
            for other in p.values():          # keep the video's duration
                if other["class_type"] == "CreateVideo" and isinstance(other["inputs"].get("fps"), (int, float)):
                    other["inputs"]["fps"] = other["inputs"]["fps"] / multiplier


# settings of core nodes that an older ComfyUI's version of the node lacks: (node type, input) -> what the
# video is then made without (the saved value is dropped by ui_to_api, which reads the host's own widgets)
NEWER_SETTINGS = {("WanContextWindowsManual", "freenoise"): "FreeNoise noise shuffling between the context windows"}


def note_missing_settings(prompt: dict, info: dict, notes: list[str]) -> None:
    for node in prompt.values():
        for (node_type, name), what in NEWER_SETTINGS.items():
            if node["class_type"] == node_type and node_type in info and \
                    name not in {i.name for i in workflow_api.input_specs(info[node_type])}:
                notes.append(f"this ComfyUI's {node_type} has no '{name}' setting: sampled without {what}")


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
        if any(n["class_type"] in workflow_api.TINY_STAND_INS.values() for n in p.values()):
            notes.append("background removal by the test-only stand-in (BiRefNet has no tiny version): "
                         "a centred ellipse is kept as the person")
    leave_out_optional_stages(p, info, notes)
    note_missing_settings(p, info, notes)
    for node in p.values():
        if node["class_type"] == "Mv2IDFaceAnalyzer" and node["inputs"].get("backend") == "insightface":
            pack = node["inputs"].get("insightface_pack", "antelopev2")
            if not (comfy_models / "insightface" / "models" / pack).is_dir():
                notes.append(f"insightface pack {pack!r} not installed: using the offline dlib backend")
                node["inputs"]["backend"] = "dlib"
    drop_unused(p, info)
    return p, notes


def example_photos(dest: Path) -> None:
    """Three example photos made from the portrait that ships inside the insightface wheel, written to
    `dest` (for Load Image nodes) and to dest/mv2id_faces/ (the main workflow's Load Face Photos folder)."""
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
    (dest / FACE_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, im in zip(PHOTO_NAMES, views):
        im.save(dest / name)
        im.save(dest / FACE_FOLDER / name)


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
        (base / "input" / FACE_FOLDER).mkdir(parents=True, exist_ok=True)
        for name, src in zip(PHOTO_NAMES, photos):
            shutil.copyfile(src, base / "input" / name)
            shutil.copyfile(src, base / "input" / FACE_FOLDER / name)
    else:
        example_photos(base / "input")
    log(f"starting ComfyUI ({host.comfyui})")
    t0 = time.time()
    with server:
        info = server.object_info()
        prompt = workflow_api.ui_to_api(workflow, info, optional_types=NEWER_CORE)
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
