"""tools/workflow_api against the live server's node definitions (the page itself is compared in
tests/test_workflows_browser.py)."""
from __future__ import annotations

import workflow_api


def test_every_node_round_trips_its_default_widget_values(comfy):
    """Writing a node's default widgets the page's way and reading them back gives the same values,
    for every node this ComfyUI offers (dynamic combos, seeds, uploads, remote combos included)."""
    info = comfy.object_info()
    for name, spec in info.items():
        try:
            stored, values = workflow_api.widget_values_for_ui(spec, {})
        except ValueError:
            # only a combo with nothing to choose (e.g. no model files installed) has no default
            assert any(i.is_widget and i.type_name == "COMBO" and not i.combo_options
                       for i in workflow_api.input_specs(spec)), name
            continue
        assert workflow_api.widget_values_from_ui(spec, stored) == values, name


def test_upload_value_is_stored_after_all_other_widgets(comfy):
    """LoadImageMask stores [image, channel, 'image' (the upload button)], as the page does."""
    spec = comfy.object_info()["LoadImageMask"]
    stored, values = workflow_api.widget_values_for_ui(spec, {"image": "x.png", "channel": "red"})
    assert stored == ["x.png", "red", "image"]
    assert workflow_api.widget_values_from_ui(spec, stored) == {"image": "x.png", "channel": "red"}


def test_seed_control_value_is_stored_but_not_sent(comfy):
    info = comfy.object_info()
    stored, _ = workflow_api.widget_values_for_ui(info["KSampler"], {"seed": 5, "control_after_generate": "randomize"})
    assert stored[:2] == [5, "randomize"]
    wf = {"nodes": [{"id": 1, "type": "KSampler", "inputs": [], "widgets_values": stored}], "links": []}
    sent = workflow_api.ui_to_api(wf, info)["1"]["inputs"]
    assert sent["seed"] == 5 and "randomize" not in sent.values() and sent["steps"] == stored[2]


def test_saved_named_values_must_agree_with_the_layout(comfy):
    info = comfy.object_info()
    stored, _ = workflow_api.widget_values_for_ui(info["KSampler"], {"seed": 5})
    node = {"id": 1, "type": "KSampler", "inputs": [], "widgets_values": stored,
            "widgets_values_named": {"seed": 6}}
    try:
        workflow_api.ui_to_api({"nodes": [node], "links": []}, info)
    except ValueError as e:
        assert "disagree" in str(e)
    else:
        raise AssertionError("a disagreeing widgets_values_named was accepted")
