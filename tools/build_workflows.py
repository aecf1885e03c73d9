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
import comfy_server  # noqa: E402
import workflow_api  # noqa: E402
from mv2id_core.photos import MAX_SIDE  # noqa: E402

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
PHANTOM_14B = "Phantom-Wan-14B_fp16.safetensors"
WAN22_HIGH_NOISE = "wan2.2_t2v_high_noise_14B_fp16.safetensors"
DISTILL_LORA = "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors"
MV2ID_LORA = "mv2id_lora.safetensors"
FACE_FOLDER = "mv2id_faces"          # the photos: ComfyUI/input/mv2id_faces/
# the standard Wan 2.1 negative prompt, as Phantom's generate.py uses it
NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
            "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
            "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
POSITIVE = ("A woman with short dark hair slowly turns her head from left to right, then looks over her shoulder, "
            "soft daylight, natural skin texture, realistic, high detail")

MODEL_NOTE = """## Model files (where each one goes)
- **Video model: Phantom-Wan** (trained with reference frames; plain Wan 2.1 T2V ignores them)
  `ComfyUI/models/diffusion_models/Phantom-Wan-14B_fp16.safetensors`; fp8 files
  (`Phantom-Wan-14B_fp8_e4m3fn`, `Wan2_1-T2V-14B-Phantom_fp8_e4m3fn_scaled_KJ`) and the 1.3B
  `Phantom-Wan-1_3B_fp16` load here too; GGUF files through *Unet Loader (GGUF)*.
- **Text encoder** `ComfyUI/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`
- **VAE** `ComfyUI/models/vae/wan_2.1_vae.safetensors`
- **Background removal** `ComfyUI/models/background_removal/birefnet.safetensors`
- **Frame interpolation** `ComfyUI/models/frame_interpolation/film_net_fp16.safetensors`
- **Face models** (insightface backend) `ComfyUI/models/insightface/models/antelopev2/*.onnx`;
  or pick the `dlib` backend, which needs no model files.
- **Upscaler** (optional) `ComfyUI/models/upscale_models/RealESRGAN_x2.safetensors`
Settings are Phantom's own: 832x480, 81 frames at 16 fps, UniPC, 50 steps, shift 5."""

FACES_NOTE = f"""## 1. Face photos -> multi-view references
Put 3 or more photos of the same person from different angles (front, left, right) into
`ComfyUI/input/mv2id_faces/` (or pick another folder). **Load Face Photos** keeps every photo whole
(only photos over {MAX_SIDE} px are scaled down, and views_json says so).
**Remove Background** makes the white background the method expects. **Face Views** finds the
face in each, measures the head pose, keeps the views that cover the widest range of yaw, and
crops them head-and-shoulders. Check the preview: the angle of each view is written on it.
*Older ComfyUI without Remove Background:* delete its two nodes (the crops then keep their
background; remove it with another tool first) or update ComfyUI."""

SAMPLE_NOTE = """## 2. Mv2ID sampling
**Reference Conditioning** joins the references after the video latent (at most 4, like Phantom).
**RD-RoPE** `auto` keeps Phantom's positions for Phantom-Wan and uses the paper's RD-RoPE only
for an Mv2ID LoRA that was trained with it.
**Mv2ID Sampler** runs three-pass reference guidance in the first 20% of the steps
(ref_start/ref_end) and text guidance after that (a third fewer model passes)."""

OUTPUT_NOTE = """## 3. Decode, interpolate, upscale, save
**Frame interpolation** doubles the frame rate (16 -> 32 fps). The upscale model enlarges every frame;
Image Scale brings it to the target size. No upscale model? Delete the two upscale nodes and connect
the interpolated frames to Image Scale. *Older ComfyUI without frame interpolation:* delete its two
nodes and set Create Video to 16 fps (or use the RIFE/VHS workflow)."""


def _models(s: Spec, unet: str = PHANTOM_14B, lora: str | None = None, lora_title: str = "LoRA"):
    """Models group: diffusion model (+ LoRA) -> shift 5, text encoder, VAE. Returns the model node id."""
    s.group("Models", [-20, -60, 400, 660])
    s.node(1, "UNETLoader", (0, 0), {"unet_name": unet, "weight_dtype": "default"}, size=(360, 90))
    model = 1
    if lora:
        s.node(6, "LoraLoaderModelOnly", (0, 110), {"lora_name": lora, "strength_model": 1.0}, title=lora_title,
               size=(360, 80))
        s.link(1, 0, 6, "model")
        model = 6
    s.node(2, "ModelSamplingSD3", (0, 220), {"shift": 5.0}, size=(360, 60))
    s.link(model, 0, 2, "model")
    s.node(3, "CLIPLoader", (0, 310), {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                                       "device": "default"}, size=(360, 110))
    s.node(4, "VAELoader", (0, 450), {"vae_name": "wan_2.1_vae.safetensors"}, size=(360, 60))
    s.note(5, (0, 620), MODEL_NOTE, size=(380, 440))
    return 2


def _faces(s: Spec):
    """Face photos -> background removal -> Face Views. Returns the Face Views node id."""
    s.group("1. Face photos -> multi-view references", [430, -60, 760, 1040], color="#8A8")
    s.node(10, "Mv2IDLoadFacePhotos", (450, 0), {"folder": FACE_FOLDER, "max_size": MAX_SIDE}, size=(300, 130))
    s.node(11, "LoadBackgroundRemovalModel", (450, 170), {"bg_removal_name": "birefnet.safetensors"},
           size=(300, 60))
    s.node(12, "RemoveBackground", (450, 270), size=(300, 50))
    s.link(11, 0, 12, "bg_removal_model"); s.link(10, 0, 12, "image")
    s.node(15, "Mv2IDFaceAnalyzer", (450, 370), {"backend": "insightface"}, size=(300, 170))
    s.node(16, "Mv2IDFaceViews", (780, 0), {"num_views": 3, "mask_meaning": "subject"}, size=(340, 300))
    s.link(10, 0, 16, "images"); s.link(15, 0, 16, "analyzer"); s.link(12, 0, 16, "mask")
    s.link(10, 3, 16, "photos_json")
    s.node(17, "PreviewImage", (780, 360), title="Chosen views", size=(340, 260))
    s.link(16, 3, 17, "images")
    s.note(18, (450, 580), FACES_NOTE, size=(300, 360))
    return 16


def _conditioning(s: Spec, views: int, model: int, x=1240, length=81):
    """Text and Reference Conditioning. Returns the conditioning node id."""
    s.node(20, "CLIPTextEncode", (x, 0), {"text": POSITIVE}, title="Positive prompt", size=(380, 160))
    s.node(21, "CLIPTextEncode", (x, 190), {"text": NEGATIVE}, title="Negative prompt", size=(380, 130))
    s.link(3, 0, 20, "clip"); s.link(3, 0, 21, "clip")
    s.node(22, "Mv2IDReferenceConditioning", (x, 360), {"width": 832, "height": 480, "length": length,
                                                        "batch_size": 1, "fit": "pad_white"}, size=(380, 250))
    s.link(20, 0, 22, "positive"); s.link(21, 0, 22, "negative"); s.link(4, 0, 22, "vae")
    s.link(views, 0, 22, "reference_images")
    return 22


def _rdrope(s: Spec, model: int, cond: int, lora_name: str = "none", pos=(1240, 650)):
    s.node(23, "Mv2IDRDRoPE", pos, {"mode": "auto", "offset": 1.0, "first_index": 1, "lora_name": lora_name},
           size=(380, 180))
    s.link(model, 0, 23, "model"); s.link(cond, 4, 23, "layout")
    return 23


def _sampler(s: Spec, model: int, cond: int, latent: tuple[int, int], widgets: dict, pos=(1650, 0),
             title: str | None = None):
    base = {"seed": 42, "steps": 50, "text_cfg": 7.5, "ref_cfg": 5.0, "ref_start": 0.0, "ref_end": 0.2,
            "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0, "control_after_generate": "fixed"}
    s.node(24, "Mv2IDSampler", pos, {**base, **widgets}, title=title, size=(360, 560))
    s.link(model, 0, 24, "model"); s.link(cond, 0, 24, "positive"); s.link(cond, 1, 24, "negative_text")
    s.link(cond, 2, 24, "negative_img_text"); s.link(latent[0], latent[1], 24, "latent")
    return 24


def _output(s: Spec, sampled: int, interpolate: str = "core", x=2070):
    """Decode -> (frame interpolation) -> upscale -> resize -> video."""
    s.group("3. Decode, interpolate, upscale, save", [x - 20, -60, 760, 1040], color="#A88")
    s.node(30, "VAEDecode", (x, 0), size=(220, 50))
    s.link(sampled, 0, 30, "samples"); s.link(4, 0, 30, "vae")
    frames = 30
    if interpolate == "core":
        s.node(37, "FrameInterpolationModelLoader", (x, 90), {"model_name": "film_net_fp16.safetensors"},
               size=(300, 60))
        s.node(38, "FrameInterpolate", (x, 190), {"multiplier": 2}, size=(300, 80))
        s.link(37, 0, 38, "interp_model"); s.link(30, 0, 38, "images")
        frames = 38
    s.node(31, "UpscaleModelLoader", (x, 310), {"model_name": "RealESRGAN_x2.safetensors"}, size=(300, 60))
    s.node(32, "ImageUpscaleWithModel", (x, 410), size=(260, 50))
    s.link(31, 0, 32, "upscale_model"); s.link(frames, 0, 32, "image")
    s.node(33, "ImageScale", (x, 500), {"upscale_method": "lanczos", "width": 1280, "height": 736,
                                        "crop": "disabled"}, title="Resize to target size", size=(300, 130))
    s.link(32, 0, 33, "image")
    if interpolate == "rife_vhs":
        s.node(34, "RIFE VFI", (x + 330, 0), {"ckpt_name": "rife47.pth", "clear_cache_after_n_frames": 10,
                                              "multiplier": 2, "fast_mode": True, "ensemble": True,
                                              "scale_factor": 1.0}, size=(300, 200))
        s.link(33, 0, 34, "frames")
        s.node(35, "VHS_VideoCombine", (x + 330, 240), {"frame_rate": 32.0, "loop_count": 0,
                                                        "filename_prefix": "mv2id/mv2id_rife",
                                                        "format": "video/h264-mp4", "pingpong": False,
                                                        "save_output": True, "pix_fmt": "yuv420p", "crf": 19,
                                                        "save_metadata": True, "trim_to_audio": False},
               size=(320, 400))
        s.link(34, 0, 35, "images")
    else:
        fps = 32.0 if interpolate == "core" else 16.0
        s.node(34, "CreateVideo", (x + 330, 0), {"fps": fps}, size=(260, 80))
        s.link(33, 0, 34, "images")
        s.node(35, "SaveVideo", (x + 330, 120), {"filename_prefix": "mv2id/mv2id", "format": "mp4",
                                                  "format.codec": "h264"}, size=(360, 400))
        s.link(34, 0, 35, "video")
    s.note(36, (x, 680), OUTPUT_NOTE, size=(300, 300))


def _main(name: str, lora: str | None = None, lora_title: str = "LoRA", rdrope_lora: str = "none",
          sampler: dict | None = None, interpolate: str = "core", note: str = SAMPLE_NOTE) -> Spec:
    s = Spec(name)
    model = _models(s, lora=lora, lora_title=lora_title)
    views = _faces(s)
    s.group("2. Mv2ID sampling", [1220, -60, 820, 1040], color="#88A")
    cond = _conditioning(s, views, model)
    patched = _rdrope(s, model, cond, rdrope_lora)
    sampled = _sampler(s, patched, cond, (cond, 3), sampler or {})
    s.note(25, (1650, 620), note, size=(360, 320))
    _output(s, sampled, interpolate)
    return s


def spec_multiview() -> Spec:
    """(a) the main workflow: Phantom-Wan 14B, background removal, Face Views, core frame interpolation."""
    return _main("mv2id_multiview_t2v")


def spec_multiview_rife() -> Spec:
    """The same with ComfyUI-Frame-Interpolation's RIFE and VideoHelperSuite's Video Combine."""
    return _main("mv2id_multiview_t2v_rife_vhs", interpolate="rife_vhs")


LORA_NOTE = """## 2. Mv2ID sampling with your trained LoRA
**LoraLoaderModelOnly** loads the LoRA `mv2id-train` wrote (`runs/<name>/mv2id_lora.safetensors`, copied
to `ComfyUI/models/loras/`). Pick **the same file** as `lora_name` in **Mv2ID RD-RoPE**: `auto` then
uses the RD-RoPE settings recorded in it (the log says `rd positions ... recorded in the LoRA`), so the
positions match training. Train it on Phantom-Wan, as docs/training.md recommends."""


def spec_trained_lora() -> Spec:
    """(b) an Mv2ID LoRA trained with mv2id-train: LoraLoaderModelOnly + the same file in lora_name (-> rd)."""
    return _main("mv2id_trained_lora", lora=MV2ID_LORA, lora_title="Mv2ID LoRA (mv2id-train)",
                 rdrope_lora=MV2ID_LORA, note=LORA_NOTE)


DISTILLED_NOTE = """## 2. Fast: a distillation LoRA, 8 steps
A step-distillation LoRA (lightx2v cfg-step-distill, CausVid) samples in 4-8 steps at cfg 1, where
every three-pass guider drops to one pass and reference guidance is off. Here reference guidance
runs on the first step only (ref_end 0.125 of 8 steps) and one pass after it (`outside_window`
= `no_cfg`): 10 model passes per video, 1/9 of Phantom's 90 at 30 steps. Euler, simple schedule."""


def spec_distilled() -> Spec:
    """A distillation LoRA with 8 steps: three passes on step 0, one pass after it."""
    return _main("mv2id_distilled_8steps", lora=DISTILL_LORA, lora_title="Step-distillation LoRA",
                 sampler={"steps": 8, "ref_end": 0.125, "outside_window": "no_cfg", "sampler_name": "euler"},
                 note=DISTILLED_NOTE)


TWO_STAGE_NOTE = """## 2. Wan 2.2 two-stage
There is no Phantom for Wan 2.2. **Stage 1**: Wan 2.2 A14B high-noise lays out the motion for the
first 10 of 20 steps from the text alone (KSamplerAdvanced, cfg 3.5, leftover noise kept).
**Stage 2**: Phantom-Wan 14B finishes steps 10-20 with the references and reference guidance
(Mv2ID Sampler: add_noise disable, start_at_step 10). Both stages use the same steps, sampler,
scheduler and shift, so the hand-over lands on the same sigma."""


LONG_NOTE = """## 2. A 10 s video in context windows
**Reference Conditioning** makes a 161-frame latent (10 s at 16 fps). **Wan Context Windows** (core)
runs every sampling step on overlapping 81-frame windows (the length Wan 2.1 and Phantom-Wan sample
well) and blends them; the pack gives **every window all the references**, at the positions RD-RoPE
defines for that window, so the face is held from the first second to the last. The reference window
(ref_start/ref_end) counts sampling steps; each step costs one model pass per window and condition.
Overlap 32 frames (a multiple of 4: every ComfyUI rounds it alike); core's own schedule, blending and
FreeNoise. Memory stays that of one 81-frame window; time grows with the number of windows.
*Older ComfyUI (e.g. 0.3.75):* the node has no FreeNoise; it runs without it."""


def spec_long_video() -> Spec:
    """The main workflow for a 10 s video: 161 frames sampled in core Wan Context Windows of 81 frames."""
    s = Spec("mv2id_long_video")
    model = _models(s)
    views = _faces(s)
    s.group("2. Mv2ID sampling, 10 s in context windows", [1220, -60, 820, 1300], color="#88A")
    cond = _conditioning(s, views, model, length=161)
    patched = _rdrope(s, model, cond)
    s.node(27, "WanContextWindowsManual", (1240, 860), {"context_length": 81, "context_overlap": 32,
                                                       "context_schedule": "standard_uniform", "freenoise": True},
           title="Wan Context Windows (81-frame windows)", size=(380, 360))
    s.link(patched, 0, 27, "model")
    sampled = _sampler(s, 27, cond, (cond, 3), {})
    s.note(25, (1650, 620), LONG_NOTE, size=(360, 600))
    _output(s, sampled)
    return s


def spec_wan22_two_stage() -> Spec:
    """(c) Wan 2.2 A14B high-noise without references, then Phantom-Wan with references."""
    s = Spec("mv2id_wan22_two_stage")
    model = _models(s)
    s.node(7, "UNETLoader", (0, 1080), {"unet_name": WAN22_HIGH_NOISE, "weight_dtype": "default"},
           title="Wan 2.2 A14B high-noise", size=(360, 90))
    s.node(8, "ModelSamplingSD3", (0, 1190), {"shift": 5.0}, size=(360, 60))
    s.link(7, 0, 8, "model")
    views = _faces(s)
    s.group("2. Two stages", [1220, -60, 1240, 1100], color="#88A")
    cond = _conditioning(s, views, model)
    patched = _rdrope(s, model, cond)
    s.node(26, "KSamplerAdvanced", (1650, 0), {"add_noise": "enable", "noise_seed": 42, "steps": 20, "cfg": 3.5,
                                               "sampler_name": "euler", "scheduler": "simple", "start_at_step": 0,
                                               "end_at_step": 10, "return_with_leftover_noise": "enable",
                                               "control_after_generate": "fixed"},
           title="Stage 1: Wan 2.2 high-noise (no references)", size=(360, 340))
    s.link(8, 0, 26, "model"); s.link(20, 0, 26, "positive"); s.link(21, 0, 26, "negative")
    s.link(cond, 3, 26, "latent_image")
    sampled = _sampler(s, patched, cond, (26, 0), {"steps": 20, "sampler_name": "euler", "add_noise": "disable",
                                                     "start_at_step": 10, "end_at_step": 10000,
                                                     "return_with_leftover_noise": "disable"}, pos=(2040, 0),
                       title="Stage 2: Phantom-Wan with references")
    s.note(25, (1650, 380), TWO_STAGE_NOTE, size=(360, 300))
    _output(s, sampled, "core", x=2490)
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
    s.node(7, "Mv2IDIdentityScore", (720, 0), size=(360, 330))
    s.link(2, 0, 7, "frames"); s.link(5, 0, 7, "references"); s.link(6, 0, 7, "analyzer")
    s.link(2, 2, 7, "fps")                              # identity over time per second needs the frame rate
    s.node(8, "PreviewImage", (1120, 0), title="Similarity and pose per frame", size=(480, 340))
    s.link(7, 3, 8, "images")
    s.node(9, "PreviewAny", (1120, 380), title="Full report (JSON)", size=(480, 300))
    s.link(7, 2, 9, "source")
    s.node(11, "PreviewAny", (720, 560), title="MvRC", size=(170, 100))
    s.link(7, 0, 11, "source")
    s.node(12, "PreviewAny", (910, 560), title="FaceSim", size=(170, 100))
    s.link(7, 1, 12, "source")
    s.note(10, (720, 370), "## Score a video\n**MvRC**: mean identity similarity to all references "
                           "(MvRC-Arc with insightface). **FaceSim**: OpenS2V protocol. The report adds head "
                           "pose per frame, identity per second with its drift (the fps comes from Get Video "
                           "Components) and the copy-paste readings: near-copies of a reference image, and "
                           "whether the copying follows the head pose.", size=(360, 180))
    return s


ALL = [spec_multiview, spec_multiview_rife, spec_trained_lora, spec_distilled, spec_long_video, spec_wan22_two_stage,
       spec_face_views, spec_identity_score]


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
