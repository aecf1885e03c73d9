"""Generate the README's node reference from what a running ComfyUI reports in /object_info.

`render(object_info)` is a pure function: the markdown for every node of this pack (node ids
starting with "Mv2ID", except the test-only "Mv2IDTest*" nodes of tests/comfy_test_nodes):
display name, node id, category, description, a table of inputs (name, type, default/range,
tooltip) and a table of outputs (name, type, tooltip), in the order the server lists them.
The README holds it between the markers NODE_REF_START and NODE_REF_END.

Choices that depend on the machine (installed LoRA files and insightface packs, the sampler and
scheduler lists of the ComfyUI version) are described in words instead of listed (DYNAMIC_COMBOS),
so the text is the same on every machine.

    python tools/node_reference.py            # start the pinned host, rewrite README.md's section
    python tools/node_reference.py --check    # exit 1 when README.md's section is stale
    python tools/node_reference.py --object-info saved.json --stdout   # render a saved /object_info

Run it after every change to a node's schema; tests/test_docs.py fails while the README differs
from the live server.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
import workflow_api  # noqa: E402
README = ROOT / "README.md"
NODE_REF_START = "<!-- node-reference:start -->"
NODE_REF_END = "<!-- node-reference:end -->"
PACK_PREFIX = "Mv2ID"
TEST_PREFIX = "Mv2IDTest"
UINT64_MAX = 0xFFFFFFFFFFFFFFFF

# input name -> how its machine-dependent choices are described (default still shown)
DYNAMIC_COMBOS = {
    "lora_name": "or any LoRA file in `models/loras/`",
    "insightface_pack": "also `buffalo_l` or any other pack folder in `models/insightface/models/`",
    "sampler_name": "any of ComfyUI's samplers",
    "scheduler": "any of ComfyUI's schedulers",
    "curricularface_model": "or any model file in `models/curricularface/`",
    "folder": "any folder in ComfyUI's `input/` that holds photos",
}
# input name -> its default when that depends on the machine's files (the server shows the machine's own)
MACHINE_DEFAULTS = {
    "folder": "`mv2id_faces` when it holds photos, else the first such folder",
}


# ----------------------------------------------------------------------------- selection
def pack_nodes(object_info: dict) -> list[tuple[str, dict]]:
    """(node id, info) of this pack's user-facing nodes, in the server's order."""
    return [(k, v) for k, v in object_info.items() if k.startswith(PACK_PREFIX) and not k.startswith(TEST_PREFIX)]


# ----------------------------------------------------------------------------- text helpers
_CODE_SPAN = re.compile(r"(`[^`]*`)")


def cell(text) -> str:
    """Text made safe for one markdown table cell (GitHub): one line, no stray HTML or emphasis."""
    text = " ".join(str(text if text is not None else "").split())
    out = []
    for part in _CODE_SPAN.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(part.replace("|", "\\|"))
            continue
        part = part.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("~", "\\~")
        part = part.replace("<", "&lt;").replace(">", "&gt;")
        part = re.sub(r"(^|[\s(])_", r"\1\\_", part)          # a word-initial _ could start emphasis
        out.append(part)
    return "".join(out) or "—"


def paragraph(text) -> str:
    return cell(text).replace("\\|", "|")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def num(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "2^64-1" if v == UINT64_MAX else str(v)
    if isinstance(v, float):
        return f"{v:g}" if v != int(v) or abs(v) >= 1e6 else f"{v:.1f}"
    return str(v)


def code(v) -> str:
    if isinstance(v, str):
        return "`" + v.replace("`", "'") + "`" if v else '`""`'
    return f"`{num(v)}`"


# ----------------------------------------------------------------------------- one input / output
def default_range(spec: workflow_api.InputSpec) -> str:
    """The 'default / range' cell of one input."""
    name, typ, opts, t = spec.name, spec.type, spec.options, spec.type_name
    if not spec.is_widget:
        return "—"          # a connection, no widget
    parts = []
    if t == "COMBO":
        options = typ if isinstance(typ, list) else opts.get("options", [])
        default = opts.get("default", options[0] if options else None)
        if name in MACHINE_DEFAULTS:
            parts.append(MACHINE_DEFAULTS[name])
        elif default is not None:
            parts.append(code(default))
        if name in DYNAMIC_COMBOS:
            parts.append(DYNAMIC_COMBOS[name])
        elif options:
            parts.append("one of " + ", ".join(code(o) for o in options))
        return "; ".join(parts)
    if "default" in opts:
        parts.append(code(opts["default"]))
    if t in ("INT", "FLOAT") and ("min" in opts or "max" in opts):
        rng = f"{num(opts.get('min', '…'))} – {num(opts.get('max', '…'))}"
        step = opts.get("step")
        if step is not None and not (t == "INT" and step == 1):
            rng += f", step {num(step)}"
        parts.append(f"({rng})")
    if t == "STRING" and opts.get("multiline"):
        parts.append("(multiline)")
    if opts.get("control_after_generate"):
        parts.append("+ control after generate")
    return " ".join(parts) if parts else "—"


def render_node(node_id: str, info: dict) -> str:
    title = info.get("display_name") or node_id
    flags = [f for f in ("output_node", "deprecated", "experimental") if info.get(f)]
    lines = [f"### {title}", "",
             f"`{node_id}` · category `{info.get('category', '')}`"
             + (" · " + ", ".join(f.replace("_", " ") for f in flags) if flags else ""), ""]
    if info.get("description"):
        lines += [paragraph(info["description"]), ""]
    inputs = workflow_api.input_specs(info)
    if inputs:
        lines += ["| input | type | default / range | tooltip |", "| --- | --- | --- | --- |"]
        for i in inputs:
            label = f"`{i.name}`" + (" (optional)" if i.optional else "")
            lines.append(f"| {label} | {i.type_name} | {cell(default_range(i))} "
                         f"| {cell(i.options.get('tooltip'))} |")
        lines.append("")
    outputs = info.get("output") or []
    if outputs:
        names = info.get("output_name") or outputs
        tips = info.get("output_tooltips") or []
        lists = info.get("output_is_list") or []
        lines += ["| output | type | tooltip |", "| --- | --- | --- |"]
        for i, typ in enumerate(outputs):
            t = workflow_api.type_name(typ) + (" (list)" if i < len(lists) and lists[i] else "")
            tip = tips[i] if i < len(tips) else None
            lines.append(f"| `{names[i] if i < len(names) else typ}` | {t} | {cell(tip)} |")
        lines.append("")
    return "\n".join(lines)


def render(object_info: dict) -> str:
    """The whole node reference (markdown, without the markers); same input, same text."""
    nodes = pack_nodes(object_info)
    lines = ["_Generated from the live server's `/object_info` by `python tools/node_reference.py`; "
             "do not edit by hand._", "",
             "| node | id | category |", "| --- | --- | --- |"]
    for node_id, info in nodes:
        title = info.get("display_name") or node_id
        lines.append(f"| [{title}](#{slug(title)}) | `{node_id}` | `{info.get('category', '')}` |")
    lines.append("")
    for node_id, info in nodes:
        lines.append(render_node(node_id, info))
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- README section
def extract_section(readme: str) -> str:
    """The text between the markers (raises ValueError when they are missing or out of order)."""
    a, b = readme.find(NODE_REF_START), readme.find(NODE_REF_END)
    if a < 0 or b < 0 or b < a:
        raise ValueError(f"README has no {NODE_REF_START} ... {NODE_REF_END} section")
    return readme[a + len(NODE_REF_START):b].strip("\n") + "\n"


def replace_section(readme: str, body: str) -> str:
    a, b = readme.find(NODE_REF_START), readme.find(NODE_REF_END)
    if a < 0 or b < 0 or b < a:
        raise ValueError(f"README has no {NODE_REF_START} ... {NODE_REF_END} section")
    return readme[:a + len(NODE_REF_START)] + "\n" + body.strip("\n") + "\n" + readme[b:]


def diff(current: str, expected: str) -> str:
    return "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                        "README.md (node reference)", "live /object_info", n=1))


# ----------------------------------------------------------------------------- CLI
def live_object_info() -> dict:
    """Start the host ComfyUI with only this pack (as tools/run_workflow.py does) and read /object_info."""
    import comfy_server

    host = comfy_server.HostConfig.from_env()
    base = comfy_server.temp_base("mv2id-noderef-")
    try:
        with comfy_server.ComfyServer(host, base, custom_nodes={comfy_server.PACK_NAME: comfy_server.ROOT}) as srv:
            return srv.object_info()
    finally:
        comfy_server.remove_tree(base)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 (with a diff) when README.md is stale")
    ap.add_argument("--readme", default=str(README))
    ap.add_argument("--object-info", help="a saved /object_info JSON instead of starting the server")
    ap.add_argument("--stdout", action="store_true", help="print the section instead of writing README.md")
    a = ap.parse_args(argv)

    info = json.loads(Path(a.object_info).read_text()) if a.object_info else live_object_info()
    if not pack_nodes(info):
        print("no Mv2ID nodes in /object_info: did the pack fail to load?", file=sys.stderr)
        return 2
    body = render(info)
    if a.stdout:
        sys.stdout.write(body)
        return 0
    path = Path(a.readme)
    text = path.read_text()
    if a.check:
        current = extract_section(text)
        if current != body:
            sys.stderr.write(diff(current, body))
            print("README.md node reference is stale: run python tools/node_reference.py", file=sys.stderr)
            return 1
        print("README.md node reference is current")
        return 0
    new = replace_section(text, body)
    if new != text:
        path.write_text(new)
        print(f"updated the node reference in {path}")
    else:
        print(f"{path} node reference already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
