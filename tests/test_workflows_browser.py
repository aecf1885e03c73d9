"""The user's journey, for real: open ComfyUI in headless Chromium, load each example workflow
from example_workflows/, check nothing is missing, switch to the tiny models, press Queue, and wait
for the output. Screenshots of every loaded graph are kept in out/test-artifacts/."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import build_workflows
import comfy_browser
import comfy_server
import workflow_api
import run_workflow
from mv2id_core.video_io import read_frames
from video_files import write_video

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = build_workflows.WORKFLOWS
ARTIFACTS = ROOT / "out" / "test-artifacts"
VIDEO = ["mv2id_multiview_t2v", "mv2id_trained_lora", "mv2id_distilled_8steps", "mv2id_long_video",
         "mv2id_wan22_two_stage"]
CORE_ONLY = VIDEO + ["mv2id_face_views", "mv2id_identity_score"]
# core nodes of newer ComfyUI the video workflows use; on an older one the page lists exactly these as
# missing, and the workflows' notes say to leave those stages out (what the demo does)
NEWER_CORE = run_workflow.NEWER_CORE
THIRD_PARTY = ["mv2id_multiview_t2v_rife_vhs"]
TINY = workflow_api.TINY_RUN


def _load(name):
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


# ----------------------------------------------------------------------------- static checks
def test_committed_workflows_are_current(comfy):
    """workflows/*.json are exactly what tools/build_workflows.py writes for today's nodes on the newest
    host (older hosts load the same files: the browser tests below)."""
    if comfy.host.name != "newest":
        pytest.skip(f"the example workflows are built against the newest host, not {comfy.host.name}")
    built = build_workflows.build_all(comfy.object_info())
    for name, wf in built.items():
        assert _load(name) == json.loads(json.dumps(wf)), \
            f"workflows/{name}.json is stale: run python tools/build_workflows.py"


@pytest.mark.parametrize("name", CORE_ONLY + THIRD_PARTY)
def test_workflow_nodes_and_links_are_consistent(comfy, name):
    wf = _load(name)
    info = comfy.object_info()
    nodes = {n["id"]: n for n in wf["nodes"]}
    for n in wf["nodes"]:
        if n["type"] in ("Note", "MarkdownNote"):
            continue
        known = (n["type"] in info or (name in THIRD_PARTY and n["type"] in build_workflows.THIRD_PARTY)
                 or (n["type"] in NEWER_CORE and not NEWER_CORE & set(info)))   # an older ComfyUI
        assert known, f"{name}: unknown node type {n['type']!r}"
    for link_id, src, src_slot, dst, dst_slot, typ in wf["links"]:
        s, d = nodes[src], nodes[dst]
        assert s["outputs"][src_slot]["type"] == typ and link_id in s["outputs"][src_slot]["links"]
        assert d["inputs"][dst_slot]["link"] == link_id
        assert d["inputs"][dst_slot]["type"] in (typ, "*")
    if name in THIRD_PARTY:
        by_type = {n["type"]: n for n in wf["nodes"]}
        assert {"RIFE VFI", "VHS_VideoCombine"} <= set(by_type)
        # the third-party nodes carry their registry ids, so ComfyUI-Manager can offer to install them
        assert by_type["RIFE VFI"]["properties"]["cnr_id"] == "comfyui-frame-interpolation"
        assert by_type["VHS_VideoCombine"]["properties"]["cnr_id"] == "comfyui-videohelpersuite"
        # and are wired as documented: upscaled frames -> RIFE -> Video Combine
        links = {(lk[1], lk[3]) for lk in wf["links"]}
        rife, vhs = by_type["RIFE VFI"]["id"], by_type["VHS_VideoCombine"]["id"]
        assert (rife, vhs) in links and any(dst == rife and nodes[src]["type"] == "ImageScale" for src, dst in links)


def test_workflows_have_thumbnails():
    """The template browser shows workflows/<name>.jpg next to workflows/<name>.json."""
    for path in WORKFLOWS.glob("*.json"):
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{thumb.name} missing: run python tools/build_workflows.py --thumbnails"
        im = Image.open(thumb)
        assert im.format == "JPEG" and im.width >= 512 and np.asarray(im.convert("L")).std() > 5


# ----------------------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def page(comfy):
    if not comfy_browser.chromium_available():
        pytest.skip("Debian chromium is not installed (tools/setup_host.sh installs it when run as root)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with comfy_browser.open_page(comfy) as pg:
        yield pg


@pytest.fixture(scope="module")
def inputs(comfy):
    """The files the workflows reference: the demo's example photos and two short clips of them."""
    run_workflow.example_photos(comfy.input_dir)
    photos = [np.asarray(Image.open(comfy.input_dir / n).convert("RGB").resize((160, 160)))
              for n in run_workflow.PHOTO_NAMES]
    write_video(comfy.input_dir / "mv2id_face_clip.mp4", photos * 3, fps=8)
    write_video(comfy.input_dir / "mv2id_generated.mp4", [photos[0], photos[1]] * 4, fps=8)
    return photos


# what a person does by hand on a machine without the real weights: pick the tiny model files and
# sizes (the widget values workflow_api.rewrite_for_tiny_models gives, computed in Python: its rules
# live there once), pick the dlib backend, remove the upscaler, and (test-only) feed the text
# conditioning from the test node because umT5-XXL cannot be shrunk
TO_TINY = """(tiny) => {
  const g = app.graph;
  const link = (id) => g.links[id] ?? g.links.get?.(id);
  const set = (n, name, v) => { const w = (n.widgets || []).find(w => w.name === name); if (w) w.value = v; };
  for (const n of [...g.nodes]) {
    for (const [name, v] of Object.entries(tiny.widgets[n.id] || {})) set(n, name, v);
    if (n.type === 'Mv2IDFaceAnalyzer') set(n, 'backend', 'dlib');
  }
  const replace = (old, type) => {
    const repl = LiteGraph.createNode(type);
    repl.pos = [old.pos[0], old.pos[1]];
    g.add(repl);
    for (const linkId of [...(old.outputs[0].links || [])]) {
      const l = link(linkId);
      repl.connect(0, g.getNodeById(l.target_id), l.target_slot);
    }
    g.remove(old);
    return repl;
  };
  for (const [type, standIn] of Object.entries(tiny.stand_ins))
    for (const n of g.nodes.filter(n => n.type === type)) replace(n, standIn);
  for (const enc of g.nodes.filter(n => n.type === 'CLIPTextEncode')) set(replace(enc, 'Mv2IDTestConditioning'), 'seed', enc.id);
  for (const n of g.nodes.filter(n => n.type === 'CLIPLoader')) g.remove(n);
  for (const up of g.nodes.filter(n => n.type === 'ImageUpscaleWithModel')) {
    const inLink = link(up.inputs.find(i => i.name === 'image').link);
    const src = g.getNodeById(inLink.origin_id);
    for (const linkId of [...(up.outputs[0].links || [])]) {
      const l = link(linkId);
      src.connect(inLink.origin_slot, g.getNodeById(l.target_id), l.target_slot);
    }
    g.remove(up);
  }
  for (const n of g.nodes.filter(n => n.type === 'UpscaleModelLoader')) g.remove(n);
  g.setDirtyCanvas(true, true);
  return g.nodes.length;
}"""


def _tiny_args(wf: dict, info: dict) -> dict:
    """TO_TINY's argument: per node id the widget values the tiny run changes, and the stand-ins."""
    api = workflow_api.ui_to_api(wf, info)
    tiny = workflow_api.rewrite_for_tiny_models(api)
    widgets = {}
    for nid, node in api.items():
        t = tiny.get(nid)
        if t is not None and t["class_type"] == node["class_type"]:
            widgets[nid] = {k: v for k, v in t["inputs"].items()
                            if not isinstance(v, list) and node["inputs"].get(k) != v}
    return {"widgets": widgets, "stand_ins": workflow_api.TINY_STAND_INS}


def _node_id(wf: dict, ntype: str, title: str | None = None) -> str:
    (nid,) = [n["id"] for n in wf["nodes"] if n["type"] == ntype and (title is None or n.get("title") == title)]
    return str(nid)


def _tiny_length(wf: dict, info: dict) -> int:
    """The video length the tiny run samples (TINY_RUN's, or as many context windows long as the workflow)."""
    tiny = workflow_api.rewrite_for_tiny_models(workflow_api.ui_to_api(wf, info, optional_types=NEWER_CORE))
    (length,) = {n["inputs"]["length"] for n in tiny.values() if n["class_type"] == "Mv2IDReferenceConditioning"}
    return length


def _check_video(comfy, wf, entry):
    """The video workflows: frame interpolation (x2) where the host has it, the size the resize stage sets
    (twice the sampled size, TINY_INPUTS["ImageScale"]), not flat; the chosen views' preview; in context
    windows (the long video) when the workflow has them, every window with all references."""
    (video,) = comfy.output_files(entry, _node_id(wf, "SaveVideo"))
    frames, total = read_frames(video)
    frames = np.stack(frames)
    info = comfy.object_info()
    sampled = _tiny_length(wf, info)
    length = 2 * sampled - 1 if "FrameInterpolate" in info else sampled
    assert total == length and frames.shape == (length, 2 * TINY["height"], 2 * TINY["width"], 3)
    assert np.isfinite(frames.astype(np.float32)).all() and frames.std() > 0
    (preview,) = comfy.output_files(entry, _node_id(wf, "PreviewImage"))
    assert Image.open(preview).size[0] == 3 * TINY["ref"]
    if any(n["type"] in workflow_api.CONTEXT_WINDOW_INPUTS for n in wf["nodes"]):
        assert sampled > TINY["window"]
        assert (f"[Mv2ID] context windows: {(sampled - 1) // 4 + 1} latent frames ({sampled} video frames) in "
                f"windows of {(TINY['window'] - 1) // 4 + 1} latent frames") in comfy.log_tail(400)


def _check_face_views(comfy, wf, entry):
    refs = comfy.output_files(entry, _node_id(wf, "SaveImage"))
    assert len(refs) == 3 and all(Image.open(p).size == (TINY["ref"], TINY["ref"]) for p in refs)
    rep = json.loads(comfy.ui_outputs(entry, _node_id(wf, "PreviewAny"))["text"][0])
    assert len(rep["views"]) == 3 and rep["faces_found"] == 9
    yaws = [v["yaw"] for v in rep["views"]]
    assert yaws == sorted(yaws) and yaws[0] < 0 < yaws[-1]


def _check_identity_score(comfy, wf, entry):
    (plot,) = comfy.output_files(entry, _node_id(wf, "PreviewImage"))
    assert np.asarray(Image.open(plot).convert("L")).std() > 10
    rep = json.loads(comfy.ui_outputs(entry, _node_id(wf, "PreviewAny", "Full report (JSON)"))["text"][0])
    assert rep["frames_with_face"] > 0 and rep["mvrc"] is not None and rep["mvrc"] > 0.5
    mvrc = float(comfy.ui_outputs(entry, _node_id(wf, "PreviewAny", "MvRC"))["text"][0])
    assert mvrc == pytest.approx(rep["mvrc"], abs=1e-5)


CHECKS = {**{name: _check_video for name in VIDEO}, "mv2id_face_views": _check_face_views,
          "mv2id_identity_score": _check_identity_score}


@pytest.mark.parametrize("name", CORE_ONLY)
def test_workflow_loads_queues_and_finishes_in_the_browser(comfy, page, inputs, name):
    wf = _load(name)
    state = comfy_browser.load_workflow(page, WORKFLOWS / f"{name}.json", len(wf["nodes"]))
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert state["links"] == len(wf["links"])
    info = comfy.object_info()
    if state["missing"]:
        # an older ComfyUI: only the newer core stages are missing, and the workflow runs without them as
        # its notes say (the demo's way: those stages left out)
        assert set(state["missing"]) <= NEWER_CORE and not NEWER_CORE & set(info), state["missing"]
        comfy_browser.dismiss_dialogs(page)
        prompt = workflow_api.ui_to_api(wf, info, optional_types=NEWER_CORE)
        prompt, notes = run_workflow.adapt(prompt, info, "tiny", comfy.host.comfyui / "models")
        assert any("RemoveBackground left out" in n for n in notes), notes
        CHECKS[name](comfy, wf, comfy.run(prompt, timeout=300))
        return
    assert not page.locator("text=Some Nodes Are Missing").is_visible()

    page.evaluate(TO_TINY, _tiny_args(wf, info))
    answer = comfy_browser.queue_from_page(page)
    assert answer["_status"] == 200 and not answer.get("node_errors"), f"validation failed: {answer}"
    entry = comfy.wait(answer["prompt_id"], timeout=300)
    page.screenshot(path=str(ARTIFACTS / f"{name}_queued.png"))
    assert entry["status"]["status_str"] == "success", comfy_server.execution_error(entry)
    CHECKS[name](comfy, wf, entry)
    assert page.errors == [], page.errors


@pytest.mark.parametrize("name", CORE_ONLY)
def test_converter_gives_what_the_page_sends(comfy, page, name):
    """tools/workflow_api.ui_to_api (used by the demo) turns each saved workflow into exactly the API
    prompt the page itself builds for /prompt (graphToPrompt), on this host's frontend."""
    wf = _load(name)
    info = comfy.object_info()
    if {n["type"] for n in wf["nodes"]} & NEWER_CORE - set(info):
        pytest.skip(f"ComfyUI {comfy.host.version} lacks newer core nodes of {name}; the page cannot build its prompt")
    comfy_browser.load_workflow(page, WORKFLOWS / f"{name}.json", len(wf["nodes"]))
    from_page = page.evaluate("async () => (await app.graphToPrompt()).output")
    ours = workflow_api.ui_to_api(wf, info)
    assert {k: v["class_type"] for k, v in ours.items()} == {k: v["class_type"] for k, v in from_page.items()}
    for nid, node in from_page.items():
        # the page also sends its own preview widgets (e.g. LoadVideo's 'video-preview'), which no node
        # declares and the server ignores
        declared = {i.name for i in workflow_api.input_specs(info[node["class_type"]])}
        sent = {k: v for k, v in node["inputs"].items() if k in declared or "." in k}
        assert ours[nid]["inputs"] == sent, f"node {nid} ({node['class_type']})"


def test_third_party_workflow_reports_exactly_its_missing_nodes(comfy, page):
    """Without the two third-party packs the page names exactly their nodes as missing, nothing of ours."""
    (name,) = THIRD_PARTY
    wf = _load(name)
    state = comfy_browser.load_workflow(page, WORKFLOWS / f"{name}.json", len(wf["nodes"]))
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    comfy_browser.dismiss_dialogs(page)
    newer_core_missing = {n["type"] for n in wf["nodes"]} & NEWER_CORE - set(comfy.object_info())
    assert set(state["missing"]) == {"RIFE VFI", "VHS_VideoCombine"} | newer_core_missing
