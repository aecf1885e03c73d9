"""Write the example workflows in example_workflows/ (ComfyUI's UI format, loadable by a person).

Each workflow is described below as nodes (type, position, widget values by name, title) and
links by input name; this tool turns that into exactly what the ComfyUI page saves: nodes with
typed input/output slots, widgets_values in the node's widget order (with the frontend's
extra "control after generate" and upload values), links, groups and notes. Widget order and
slot types come from a running server's /object_info, so a renamed input fails here loudly.
Nodes from third-party packs (Frame Interpolation, VideoHelperSuite) are described from their
documented interfaces in THIRD_PARTY.

    python tools/build_workflows.py            # starts the pinned host, rewrites example_workflows/*.json
    python tools/build_workflows.py --check    # only verifies the committed files are current
    python tools/build_workflows.py --thumbnails   # also screenshots each loaded workflow in headless
                                                   # Chromium: example_workflows/<name>.jpg, docs/quickstart.jpg
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import comfy_server  # noqa: E402
import workflow_api  # noqa: E402

WORKFLOWS = ROOT / "example_workflows"

# documented interfaces of third-party nodes used by the interpolation workflow
THIRD_PARTY = {
    "RIFE VFI": {  # ComfyUI-Frame-Interpolation (Fannovel16)
        "input": {"required": {
            "ckpt_name": [["rife47.pth", "rife49.pth"], {}],
            "frames": ["IMAGE", {}],
            "clear_cache_after_n_frames": ["INT", {"default": 10}],
            "multiplier": ["INT", {"default": 2}],
            "fast_mode": ["BOOLEAN", {"default": True}],
            "ensemble": ["BOOLEAN", {"default": True}],
            "scale_factor": [[0.25, 0.5, 1.0, 2.0, 4.0], {"default": 1.0}],
        }, "optional": {"optional_interpolation_states": ["INTERPOLATION_STATES", {}]}},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "pack": "comfyui-frame-interpolation",
    },
    "VHS_VideoCombine": {  # ComfyUI-VideoHelperSuite (Kosinkadink)
        "input": {"required": {
            "images": ["IMAGE", {}],
            "frame_rate": ["FLOAT", {"default": 8}],
            "loop_count": ["INT", {"default": 0}],
            "filename_prefix": ["STRING", {"default": "AnimateDiff"}],
            "format": [["image/gif", "image/webp", "video/h264-mp4", "video/h265-mp4", "video/webm"], {}],
            "pingpong": ["BOOLEAN", {"default": False}],
            "save_output": ["BOOLEAN", {"default": True}],
        }, "optional": {"audio": ["AUDIO", {}], "meta_batch": ["VHS_BatchManager", {}], "vae": ["VAE", {}]}},
        "output": ["VHS_FILENAMES"], "output_name": ["Filenames"], "pack": "comfyui-videohelpersuite",
        # format-dependent widgets the node adds after "format" (h264-mp4), stored as a dict by VHS
        "widgets_as_dict": True,
    },
}

FRONTEND_ONLY = {"Note", "MarkdownNote"}


# ----------------------------------------------------------------------------- spec -> UI JSON
class Spec:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[dict] = []
        self.links: list[tuple] = []     # (src_id, src_slot, dst_id, input_name)
        self.groups: list[dict] = []

    def node(self, nid: int, ntype: str, pos, widgets: dict | None = None, title: str | None = None,
             size=(320, 160), color: str | None = None):
        self.nodes.append({"id": nid, "type": ntype, "pos": list(pos), "widgets": widgets or {},
                           "title": title, "size": list(size), "color": color})
        return nid

    def note(self, nid: int, pos, text: str, size=(360, 200)):
        self.nodes.append({"id": nid, "type": "MarkdownNote", "pos": list(pos), "widgets": {"text": text},
                           "title": "Note", "size": list(size), "color": "#432"})

    def link(self, src: int, slot: int, dst: int, inp: str):
        self.links.append((src, slot, dst, inp))

    def group(self, title: str, bounding, color="#3f789e"):
        self.groups.append({"title": title, "bounding": list(bounding), "color": color, "font_size": 24,
                            "flags": {}})


def _specs(info: dict, ntype: str):
    if ntype in info:
        return info[ntype]
    if ntype in THIRD_PARTY:
        return THIRD_PARTY[ntype]
    raise KeyError(f"unknown node type {ntype!r}: not on the server and not in THIRD_PARTY")


def to_ui(spec: Spec, info: dict) -> dict:
    by_id = {n["id"]: n for n in spec.nodes}
    links, out_links = [], {}
    in_link = {}
    for i, (src, slot, dst, inp) in enumerate(spec.links, start=1):
        s = _specs(info, by_id[src]["type"])
        d = _specs(info, by_id[dst]["type"])
        outs = s.get("output", [])
        if slot >= len(outs):
            raise ValueError(f"{spec.name}: node {src} ({by_id[src]['type']}) has no output {slot}")
        d_inputs = {i.name: i for i in workflow_api.input_specs(d)}
        if inp not in d_inputs:
            raise ValueError(f"{spec.name}: node {dst} ({by_id[dst]['type']}) has no input {inp!r}")
        want, have = d_inputs[inp].type_name, outs[slot]
        if want != have and "*" not in (want, have) and not (isinstance(have, list) and want == "COMBO"):
            raise ValueError(f"{spec.name}: link {src}:{slot} ({have}) -> {dst}.{inp} ({want}) has mismatched types")
        links.append([i, src, slot, dst, None, have])   # input slot index filled below
        out_links.setdefault((src, slot), []).append(i)
        in_link[(dst, inp)] = i

    nodes = []
    for order, n in enumerate(spec.nodes):
        ntype = n["type"]
        node = {"id": n["id"], "type": ntype, "pos": n["pos"], "size": n["size"], "flags": {}, "order": order,
                "mode": 0, "properties": {"Node name for S&R": ntype}}
        if n["title"]:
            node["title"] = n["title"]
        if n["color"]:
            node["color"], node["bgcolor"] = n["color"], "#653" if ntype in FRONTEND_ONLY else "#353"
        if ntype in FRONTEND_ONLY:
            node["inputs"], node["outputs"] = [], []
            node["widgets_values"] = [n["widgets"]["text"]]
            nodes.append(node)
            continue
        s = _specs(info, ntype)
        if ntype in THIRD_PARTY:
            node["properties"]["cnr_id"] = s["pack"]
        chosen = dict(n["widgets"])
        try:
            wvals, wdict = workflow_api.widget_values_for_ui(s, chosen)
        except ValueError as e:
            raise ValueError(f"{spec.name}: node {n['id']} ({ntype}): {e}") from None
        inputs = []
        for i in workflow_api.input_specs(s):
            linked = in_link.get((n["id"], i.name))
            if i.is_widget:
                if linked:
                    inputs.append({"name": i.name, "type": i.type_name, "widget": {"name": i.name}, "link": linked})
                continue
            if not linked and not i.optional:
                raise ValueError(f"{spec.name}: node {n['id']} ({ntype}) input {i.name!r} is not connected")
            entry = {"name": i.name, "type": i.type_name, "link": linked}
            if i.optional:
                entry["shape"] = 7
            inputs.append(entry)
        unknown = set(chosen) - set(wdict) - {"control_after_generate"}
        if unknown and not s.get("widgets_as_dict"):
            raise ValueError(f"{spec.name}: node {n['id']} ({ntype}) has no widgets {sorted(unknown)}")
        for idx, inp in enumerate(inputs):
            if inp["link"] is not None:
                links[inp["link"] - 1][4] = idx
        node["inputs"] = inputs
        outs = s.get("output", [])
        names = s.get("output_name", outs)
        node["outputs"] = [{"name": names[i], "type": t, "slot_index": i, "links": out_links.get((n["id"], i), [])}
                           for i, t in enumerate(outs)]
        if s.get("widgets_as_dict"):
            node["widgets_values"] = {**wdict, **{k: v for k, v in chosen.items() if k not in wdict}}
        else:
            node["widgets_values"] = wvals
        nodes.append(node)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mv2id/workflows/{spec.name}")), "revision": 0,
        "last_node_id": max(n["id"] for n in nodes),
        "last_link_id": len(links), "nodes": nodes, "links": links, "groups": spec.groups,
        "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [40, 40]}, "frontendVersion": "1.32.9"},
        "version": 0.4,
    }


# ----------------------------------------------------------------------------- the workflows
MODEL_NOTE = """## Model files (where each one goes)
- **Diffusion model** `ComfyUI/models/diffusion_models/wan2.1_t2v_14B_fp16.safetensors`
  (or the 1.3B `wan2.1_t2v_1.3B_fp16.safetensors`; fp8 variants work too)
- **Text encoder** `ComfyUI/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`
- **VAE** `ComfyUI/models/vae/wan_2.1_vae.safetensors`
- **Face models** (insightface backend) `ComfyUI/models/insightface/models/antelopev2/*.onnx`;
  or pick the `dlib` backend, which needs no model files.
- **Upscaler** (optional) `ComfyUI/models/upscale_models/RealESRGAN_x2.safetensors`"""

FACES_NOTE = """## 1. Face photos -> multi-view references
Load 3 or more photos of the same person from different angles (front, left, right).
**Mv2ID Face Views** finds the face in each, measures the head pose, keeps the views that
cover the widest range of yaw, and crops them head-and-shoulders on white.
Check the preview: the angle of each chosen view is written on it."""

SAMPLE_NOTE = """## 2. Mv2ID sampling
**Reference Conditioning** joins the references after the video latent.
**RD-RoPE** gives all references one temporal position and separate spatial offsets, so the
model combines the views instead of pasting the one whose pose matches.
**Mv2ID Sampler** runs three-pass reference guidance in the first 20% of the steps
(ref_start/ref_end) and plain text guidance after that (faster)."""

OUTPUT_NOTE = """## 3. Decode, upscale, save
The upscale model enlarges every frame; Image Scale brings it back to the target size.
No upscale model? Delete the two upscale nodes and connect VAE Decode to Image Scale."""

POSITIVE = ("A woman with short dark hair slowly turns her head from left to right, then looks over her shoulder, "
            "soft daylight, natural skin texture, realistic, high detail")
NEGATIVE = ("blurry, low quality, distorted face, deformed, extra limbs, watermark, text, static, "
            "oversaturated, jpeg artifacts")


def _multiview_core(s: Spec, interpolate: bool = False):
    s.group("Models", [-20, -60, 400, 540])
    s.node(1, "UNETLoader", (0, 0), {"unet_name": "wan2.1_t2v_14B_fp16.safetensors", "weight_dtype": "default"},
           size=(360, 90))
    s.node(2, "ModelSamplingSD3", (0, 130), {"shift": 8.0}, size=(360, 60))
    s.node(3, "CLIPLoader", (0, 230), {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                                       "device": "default"}, size=(360, 110))
    s.node(4, "VAELoader", (0, 380), {"vae_name": "wan_2.1_vae.safetensors"}, size=(360, 60))
    s.note(5, (0, 510), MODEL_NOTE, size=(380, 320))
    s.link(1, 0, 2, "model")

    s.group("1. Face photos -> multi-view references", [430, -60, 760, 1040], color="#8A8")
    for i, (nid, name) in enumerate([(10, "mv2id_face_front.png"), (11, "mv2id_face_left.png"),
                                     (12, "mv2id_face_right.png")]):
        s.node(nid, "LoadImage", (450 + 240 * i, 0), {"image": name}, title=f"Face photo {i + 1}", size=(230, 320))
    s.node(13, "ImageBatch", (450, 360), size=(200, 50))
    s.node(14, "ImageBatch", (450, 440), size=(200, 50))
    s.link(10, 0, 13, "image1"); s.link(11, 0, 13, "image2")
    s.link(13, 0, 14, "image1"); s.link(12, 0, 14, "image2")
    s.node(15, "Mv2IDFaceAnalyzer", (450, 530), {"backend": "insightface"}, size=(300, 130))
    s.node(16, "Mv2IDFaceViews", (780, 360), {"num_views": 3}, size=(340, 260))
    s.link(14, 0, 16, "images"); s.link(15, 0, 16, "analyzer")
    s.node(17, "PreviewImage", (780, 730), title="Chosen views", size=(340, 220))
    s.link(16, 3, 17, "images")
    s.note(18, (450, 760), FACES_NOTE, size=(300, 190))

    s.group("2. Mv2ID sampling", [1220, -60, 820, 1040], color="#88A")
    s.node(20, "CLIPTextEncode", (1240, 0), {"text": POSITIVE}, title="Positive prompt", size=(380, 160))
    s.node(21, "CLIPTextEncode", (1240, 190), {"text": NEGATIVE}, title="Negative prompt", size=(380, 130))
    s.link(3, 0, 20, "clip"); s.link(3, 0, 21, "clip")
    s.node(22, "Mv2IDReferenceConditioning", (1240, 360), {"width": 832, "height": 480, "length": 81,
                                                           "batch_size": 1, "fit": "pad_white"}, size=(380, 250))
    s.link(20, 0, 22, "positive"); s.link(21, 0, 22, "negative"); s.link(4, 0, 22, "vae")
    s.link(16, 0, 22, "reference_images")
    s.node(23, "Mv2IDRDRoPE", (1240, 650), {"mode": "rd", "offset": 1.0, "first_index": 1}, size=(380, 150))
    s.link(2, 0, 23, "model"); s.link(22, 4, 23, "layout")
    s.node(24, "Mv2IDSampler", (1650, 0), {"seed": 42, "steps": 30, "text_cfg": 7.5, "ref_cfg": 5.0,
                                           "ref_start": 0.0, "ref_end": 0.2, "sampler_name": "uni_pc",
                                           "scheduler": "simple", "denoise": 1.0,
                                           "control_after_generate": "fixed"}, size=(360, 420))
    s.link(23, 0, 24, "model"); s.link(22, 0, 24, "positive"); s.link(22, 1, 24, "negative_text")
    s.link(22, 2, 24, "negative_img_text"); s.link(22, 3, 24, "latent")
    s.note(25, (1650, 470), SAMPLE_NOTE, size=(360, 220))

    s.group("3. Decode, upscale, save", [2070, -60, 760, 1040], color="#A88")
    s.node(30, "VAEDecode", (2090, 0), size=(220, 50))
    s.link(24, 0, 30, "samples"); s.link(4, 0, 30, "vae")
    s.node(31, "UpscaleModelLoader", (2090, 100), {"model_name": "RealESRGAN_x2.safetensors"}, size=(300, 60))
    s.node(32, "ImageUpscaleWithModel", (2090, 200), size=(260, 50))
    s.link(31, 0, 32, "upscale_model"); s.link(30, 0, 32, "image")
    s.node(33, "ImageScale", (2090, 290), {"upscale_method": "lanczos", "width": 1280, "height": 736,
                                           "crop": "disabled"}, title="Resize to target size", size=(300, 130))
    s.link(32, 0, 33, "image")
    if interpolate:
        s.node(34, "RIFE VFI", (2420, 0), {"ckpt_name": "rife47.pth", "clear_cache_after_n_frames": 10,
                                           "multiplier": 2, "fast_mode": True, "ensemble": True,
                                           "scale_factor": 1.0}, size=(300, 200))
        s.link(33, 0, 34, "frames")
        s.node(35, "VHS_VideoCombine", (2420, 240), {"frame_rate": 32.0, "loop_count": 0,
                                                     "filename_prefix": "mv2id/mv2id_rife", "format": "video/h264-mp4",
                                                     "pingpong": False, "save_output": True, "pix_fmt": "yuv420p",
                                                     "crf": 19, "save_metadata": True, "trim_to_audio": False},
               size=(320, 400))
        s.link(34, 0, 35, "images")
    else:
        s.node(34, "CreateVideo", (2420, 0), {"fps": 16.0}, size=(260, 80))
        s.link(33, 0, 34, "images")
        s.node(35, "SaveVideo", (2420, 120), {"filename_prefix": "mv2id/mv2id", "format": "mp4", "format.codec": "h264"},
               size=(360, 400))
        s.link(34, 0, 35, "video")
    s.note(36, (2090, 480), OUTPUT_NOTE, size=(300, 160))


def spec_multiview() -> Spec:
    s = Spec("mv2id_multiview_t2v")
    _multiview_core(s)
    return s


def spec_multiview_rife() -> Spec:
    s = Spec("mv2id_multiview_t2v_rife_vhs")
    _multiview_core(s, interpolate=True)
    return s


def spec_face_views() -> Spec:
    s = Spec("mv2id_face_views")
    s.node(1, "LoadVideo", (0, 0), {"file": "mv2id_face_clip.mp4"}, title="Clip of the person", size=(300, 360))
    s.node(2, "GetVideoComponents", (340, 0), size=(240, 90))
    s.link(1, 0, 2, "video")
    s.node(3, "Mv2IDFaceAnalyzer", (340, 140), {"backend": "dlib"}, size=(300, 130))
    s.node(4, "Mv2IDFaceViews", (680, 0), {"num_views": 3, "if_no_face": "skip"}, size=(340, 260))
    s.link(2, 0, 4, "images"); s.link(3, 0, 4, "analyzer")
    s.node(5, "PreviewImage", (1060, 0), title="Chosen views (with angles)", size=(360, 300))
    s.link(4, 3, 5, "images")
    s.node(6, "SaveImage", (1060, 340), {"filename_prefix": "mv2id/views"}, title="References", size=(360, 300))
    s.link(4, 0, 6, "images")
    s.node(7, "PreviewAny", (680, 380), title="Per-view record (JSON)", size=(340, 200))
    s.link(4, 2, 7, "source")
    s.note(8, (0, 400), "## Pick references from a clip\nEvery frame is analysed; the views with the widest "
                        "spread of head yaw and good quality are cropped head-and-shoulders on white. "
                        "Save them and use them as reference images in the main workflow.", size=(300, 160))
    return s


def spec_identity_score() -> Spec:
    s = Spec("mv2id_identity_score")
    s.node(1, "LoadVideo", (0, 0), {"file": "mv2id_generated.mp4"}, title="Generated video", size=(300, 360))
    s.node(2, "GetVideoComponents", (340, 0), size=(240, 90))
    s.link(1, 0, 2, "video")
    s.node(3, "LoadImage", (0, 400), {"image": "mv2id_face_front.png"}, title="Reference 1", size=(230, 320))
    s.node(4, "LoadImage", (240, 400), {"image": "mv2id_face_left.png"}, title="Reference 2", size=(230, 320))
    s.node(5, "ImageBatch", (480, 400), size=(200, 50))
    s.link(3, 0, 5, "image1"); s.link(4, 0, 5, "image2")
    s.node(6, "Mv2IDFaceAnalyzer", (340, 140), {"backend": "dlib"}, size=(300, 130))
    s.node(7, "Mv2IDIdentityScore", (720, 0), size=(360, 300))
    s.link(2, 0, 7, "frames"); s.link(5, 0, 7, "references"); s.link(6, 0, 7, "analyzer")
    s.node(8, "PreviewImage", (1120, 0), title="Similarity and pose per frame", size=(480, 340))
    s.link(7, 3, 8, "images")
    s.node(9, "PreviewAny", (1120, 380), title="Full report (JSON)", size=(480, 300))
    s.link(7, 2, 9, "source")
    s.node(11, "PreviewAny", (720, 560), title="MvRC", size=(170, 100))
    s.link(7, 0, 11, "source")
    s.node(12, "PreviewAny", (910, 560), title="FaceSim", size=(170, 100))
    s.link(7, 1, 12, "source")
    s.note(10, (720, 340), "## Score a video\n**MvRC**: mean identity similarity to all references "
                           "(MvRC-Arc with insightface). **FaceSim**: OpenS2V protocol. The report adds "
                           "head pose per frame and a copy-paste index.", size=(360, 180))
    return s


ALL = [spec_multiview, spec_multiview_rife, spec_face_views, spec_identity_score]


def build_all(info: dict) -> dict[str, dict]:
    return {f().name: to_ui(f(), info) for f in ALL}


def _write(out: dict) -> None:
    WORKFLOWS.mkdir(exist_ok=True)
    for name, wf in out.items():
        path = WORKFLOWS / f"{name}.json"
        path.write_text(json.dumps(wf, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


def thumbnails(srv, names) -> None:
    """example_workflows/<name>.jpg (the template browser's thumbnail) and docs/quickstart.jpg, from the real page."""
    import comfy_browser
    import run_workflow

    run_workflow.example_photos(srv.input_dir)     # so the Load Image nodes show the example faces
    srv.post("/settings/Comfy.Minimap.Visible", False)
    with comfy_browser.open_page(srv, width=2560, height=1200) as page:
        for name in names:
            path = WORKFLOWS / f"{name}.json"
            count = len(json.loads(path.read_text())["nodes"])
            comfy_browser.load_workflow(page, path, count, settle=2.0)
            comfy_browser.dismiss_dialogs(page)
            comfy_browser.fit_graph(page)
            comfy_browser.screenshot_jpeg(page, WORKFLOWS / f"{name}.jpg", width=1024)
            print(f"wrote example_workflows/{name}.jpg")
            if name == "mv2id_multiview_t2v":
                comfy_browser.screenshot_jpeg(page, ROOT / "docs" / "quickstart.jpg", width=1920, quality=88)
                print("wrote docs/quickstart.jpg")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if example_workflows/ differs from what would be written")
    ap.add_argument("--thumbnails", action="store_true",
                    help="also write example_workflows/<name>.jpg and docs/quickstart.jpg from headless Chromium")
    a = ap.parse_args(argv)
    host = comfy_server.HostConfig.from_env()
    base = comfy_server.temp_base("mv2id-build-")
    try:
        with comfy_server.ComfyServer(host, base) as srv:
            info = srv.object_info()
            out = build_all(info)
            if a.thumbnails and not a.check:
                _write(out)
                thumbnails(srv, list(out))
                return
    finally:
        comfy_server.remove_tree(base)
    if not a.check:
        _write(out)
        return
    stale = [name for name, wf in out.items() if not (WORKFLOWS / f"{name}.json").is_file()
             or (WORKFLOWS / f"{name}.json").read_text() != json.dumps(wf, indent=2) + "\n"]
    if stale:
        sys.exit(f"stale workflows (run python tools/build_workflows.py): {', '.join(stale)}")


if __name__ == "__main__":
    main()
