"""The README's node reference is generated from the live server and must never drift from it.

After changing a node's schema run `python tools/node_reference.py` (starts the pinned host and
rewrites the section of README.md between the node-reference markers).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import node_reference as nr

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_readme_node_reference_matches_live_server(comfy):
    info = comfy.object_info()
    ours = [k for k, _ in nr.pack_nodes(info)]
    assert ours, "no Mv2ID nodes on the server: the pack did not load"
    assert not [k for k in ours if k.startswith("Mv2IDTest")], "test-only nodes must not be documented"
    documented = nr.extract_section(README.read_text())
    expected = nr.render(info)
    assert documented == expected, (
        "README.md's node reference differs from the live server's /object_info; regenerate it with "
        "`python tools/node_reference.py`:\n" + nr.diff(documented, expected))


def test_every_pack_node_input_and_output_is_documented(comfy):
    """Belt and braces: each node id, input name and tooltip appears in the README."""
    text = README.read_text()
    for node_id, info in nr.pack_nodes(comfy.object_info()):
        assert f"`{node_id}`" in text, node_id
        for section in ("required", "optional"):
            for name, spec in (info["input"].get(section) or {}).items():
                assert f"| `{name}`" in text, f"{node_id}.{name}"
        for tip in info.get("output_tooltips") or []:
            if tip:
                assert nr.cell(tip) in text, f"{node_id} output tooltip {tip!r}"


# ----------------------------------------------------------------------------- the renderer alone
FAKE = {
    "KSampler": {"input": {"required": {}}, "output": ["LATENT"], "category": "sampling"},
    "Mv2IDTestThing": {"input": {"required": {}}, "output": [], "category": "mv2id/testing"},
    "Mv2IDDemo": {
        "display_name": "Mv2ID Demo",
        "category": "Mv2ID/demo",
        "description": "Shifts by k*(H, W) | see <pack>.",
        "input": {
            "required": {
                "image": ["IMAGE", {"tooltip": "An image."}],
                "steps": ["INT", {"default": 30, "min": 1, "max": 10000, "tooltip": "Steps."}],
                "seed": ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "control_after_generate": True}],
                "cfg": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05}],
                "mode": ["COMBO", {"default": "a", "options": ["a", "b"], "tooltip": "a|b"}],
                "old": [["x", "y"], {}],
                "flag": ["BOOLEAN", {"default": False}],
                "lora_name": ["COMBO", {"default": "none", "options": ["none", "my_local_file.safetensors"]}],
            },
            "optional": {"mask": ["MASK", {"tooltip": "Optional mask."}]},
        },
        "input_order": {"required": ["image", "steps", "seed", "cfg", "mode", "old", "flag", "lora_name"],
                        "optional": ["mask"]},
        "output": ["IMAGE", "STRING"],
        "output_name": ["references", "STRING"],
        "output_is_list": [False, True],
        "output_tooltips": ["The views.", None],
    },
}


def test_render_selects_pack_nodes_and_formats_tables():
    md = nr.render(FAKE)
    assert "KSampler" not in md and "Mv2IDTestThing" not in md
    assert "### Mv2ID Demo" in md and "[Mv2ID Demo](#mv2id-demo)" in md
    assert "`Mv2IDDemo` · category `Mv2ID/demo`" in md
    assert "k\\*(H, W) | see &lt;pack&gt;." in md                 # no emphasis, no stray HTML
    assert "| `steps` | INT | `30` (1 – 10000) | Steps. |" in md
    assert "| `seed` | INT | `0` (0 – 2^64-1) + control after generate | — |" in md
    assert "| `cfg` | FLOAT | `1.0` (0.0 – 4.0, step 0.05) | — |" in md
    assert "| `mode` | COMBO | `a`; one of `a`, `b` | a\\|b |" in md
    assert "| `old` | COMBO | `x`; one of `x`, `y` | — |" in md      # V1-style combo
    assert "| `flag` | BOOLEAN | `false` | — |" in md
    assert "my_local_file" not in md                                 # machine-dependent choices
    assert "| `mask` (optional) | MASK | — | Optional mask. |" in md
    assert "| `references` | IMAGE | The views. |" in md
    assert "| `STRING` | STRING (list) | — |" in md
    assert nr.render(FAKE) == md


def test_section_replace_and_extract_round_trip():
    text = f"# T\n\nintro\n\n{nr.NODE_REF_START}\nold\n{nr.NODE_REF_END}\n\n## Next\n"
    body = nr.render(FAKE)
    new = nr.replace_section(text, body)
    assert nr.extract_section(new) == body
    assert new.startswith("# T\n\nintro\n\n") and new.endswith(f"{nr.NODE_REF_END}\n\n## Next\n")
    assert nr.replace_section(new, body) == new
    with pytest.raises(ValueError):
        nr.extract_section("# no markers\n")


def test_readme_keeps_the_two_setup_commands():
    text = README.read_text()
    m = re.search(r"## Set-up commands\n(.*?)\n## ", text, re.S)
    assert m, "README lost its Set-up commands section"
    blocks = re.findall(r"```\n(.*?)```", m.group(1), re.S)
    assert blocks == ["bash tools/dev.sh demo\nbash tools/dev.sh test\n"]
    assert text.count("<!-- node-reference:start -->") == 1 and text.count("<!-- node-reference:end -->") == 1
