"""ComfyUI workflows as data: the UI format the page saves, the API format /prompt takes, and the
node input specs /object_info gives. Nothing here imports ComfyUI or talks to a server.

The page stores a node's widget values as a flat list, by position (`widgets_values`); the API
prompt names every input. Both directions follow the frontend's own layout rules (checked against
the page's `graphToPrompt` by tests/test_workflows_browser.py on every host):
- inputs in `input_order` (required, then optional), then any others;
- a widget is a combo (list type or "COMBO"), INT/FLOAT/STRING/BOOLEAN, a socketless editor type, or a
  dynamic combo (COMFY_DYNAMICCOMBO_V3), unless `forceInput`/`defaultInput` makes it a socket;
- a dynamic combo's value is followed, depth first, by the widgets of its selected option (required,
  then optional), named `parent.child`; the API takes them flat under those dotted names;
- "control after generate" adds one stored value after an INT (any INT named seed/noise_seed unless
  switched off) or FLOAT, two after a COMBO; a remote combo's refresh controls add two; these are
  stored but never sent;
- a node with an upload button (image/video/audio) stores its value once, after all other widgets.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from make_tiny_models import PRESETS

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SOCKETLESS_TYPES = {"COLOR", "COLORS", "CURVE", "BOUNDING_BOX", "BOUNDING_BOXES", "RANGE"}
DISPLAY_ONLY_TYPES = {"IMAGECOMPARE"}     # a viewer the page neither stores nor needs a value for
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
SEED_NAMES = {"seed", "noise_seed"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload", "audio_upload")
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
_MISSING = object()


# ----------------------------------------------------------------------------- input specs
def type_name(typ) -> str:
    """The type of an /object_info input or output: a combo's option list (old style) is COMBO."""
    return "COMBO" if isinstance(typ, list) else str(typ)


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: object          # a type name, or the list of a combo's options (old style)
    options: dict
    optional: bool

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def is_widget(self) -> bool:
        if self.options.get("forceInput") or self.options.get("defaultInput") or self.type_name in DISPLAY_ONLY_TYPES:
            return False
        return (isinstance(self.type, list) or self.type in WIDGET_TYPES or self.type in SOCKETLESS_TYPES
                or self.type == DYNAMIC_COMBO or bool(self.options.get("widgetType"))
                or bool(self.options.get("socketless")))

    @property
    def combo_options(self) -> list:
        return self.type if isinstance(self.type, list) else list(self.options.get("options", []))

    @property
    def default(self):
        if "default" in self.options:
            return self.options["default"]
        if self.type == DYNAMIC_COMBO:
            return self.options["options"][0]["key"]
        if self.type_name == "COMBO":
            opts = self.combo_options
            return opts[0] if opts else _MISSING
        # what the page shows for a widget without a default
        return {"STRING": "", "BOOLEAN": False, "INT": self.options.get("min", 0),
                "FLOAT": self.options.get("min", 0.0)}.get(self.type_name, _MISSING)

    @property
    def has_control(self) -> bool:
        """Does the page add a 'control after generate' widget (stored right after this one)?"""
        control = self.options.get("control_after_generate")
        if self.type_name == "INT":
            return bool(control or (control is None and self.name in SEED_NAMES))
        return self.type_name in ("FLOAT", "COMBO") and bool(control)

    @property
    def stored_extras(self) -> list:
        """Values the page stores after this widget's own value but never sends; a control widget's mode
        comes first."""
        if self.has_control:
            control = self.options.get("control_after_generate")
            mode = control if isinstance(control, str) else "fixed"
            return [mode, ""] if self.type_name == "COMBO" else [mode]
        if (self.options.get("remote") or {}).get("refresh_button"):
            return [False, "refresh"]
        return []

    @property
    def has_upload(self) -> bool:
        return any(self.options.get(f) for f in UPLOAD_FLAGS)

    def selected_inputs(self, key) -> list["InputSpec"]:
        """A dynamic combo's inputs for option `key`, named `<this>.<input>`."""
        for option in self.options.get("options", []):
            if option["key"] == key:
                return [InputSpec(f"{self.name}.{s.name}", s.type, s.options, s.optional)
                        for s in _section_specs(option.get("inputs", {}), {})]
        return []


def _split(spec) -> tuple[object, dict]:
    return spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})


def _section_specs(inputs: dict, order: dict) -> list[InputSpec]:
    out = []
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = [n for n in order.get(section, []) if n in specs] + [n for n in specs if n not in order.get(section, [])]
        out += [InputSpec(n, *_split(specs[n]), section == "optional") for n in names]
    return out


def input_specs(info: dict) -> list[InputSpec]:
    """Every input of a node class (an /object_info entry) in the order the page lays them out."""
    return _section_specs(info.get("input", {}) or {}, info.get("input_order") or {})


# ----------------------------------------------------------------------------- widget layout
def _walk(specs, take, store_extra) -> dict:
    """Lay out widgets as the page does; take(spec) gives each widget's value, store_extra(spec, i, v)
    is called for each stored-only value. Returns {widget name: value} (dotted names included)."""
    values = {}
    for spec in specs:
        if not spec.is_widget:
            continue
        value = take(spec)
        values[spec.name] = value
        for i, extra in enumerate(spec.stored_extras):
            store_extra(spec, i, extra)
        if spec.type == DYNAMIC_COMBO:
            values.update(_walk(spec.selected_inputs(value), take, store_extra))
    return values


def widget_values_from_ui(info: dict, stored: list) -> dict:
    """{widget name: value} from a saved node's positional `widgets_values`."""
    pos = 0
    specs = input_specs(info)

    def take(spec):
        nonlocal pos
        value = stored[pos] if pos < len(stored) else _MISSING
        pos += 1
        return value

    def skip(*_):
        nonlocal pos
        pos += 1

    values = _walk(specs, take, skip)
    if any(s.has_upload for s in specs):
        pos += 1
    return {k: v for k, v in values.items() if v is not _MISSING}


def widget_values_for_ui(info: dict, chosen: dict) -> tuple[list, dict]:
    """The positional `widgets_values` the page stores for widget values `chosen` (defaults elsewhere;
    a 'control_after_generate' entry in `chosen` sets the stored control mode), and {name: value}."""
    out = []
    specs = input_specs(info)

    def take(spec):
        value = chosen.get(spec.name, spec.default)
        if value is _MISSING:
            raise ValueError(f"widget {spec.name!r} has no default: give it a value")
        out.append(value)
        return value

    def extra(spec, i, default):
        out.append(chosen.get("control_after_generate", default) if i == 0 and spec.has_control else default)

    values = _walk(specs, take, extra)
    if any(s.has_upload for s in specs):
        out.append("image")
    return out, values


# ----------------------------------------------------------------------------- UI workflow -> API prompt
def ui_to_api(workflow: dict, object_info: dict, optional_types: set[str] = frozenset()) -> dict:
    """Convert a UI-format workflow (what the ComfyUI page saves) into an API prompt, as the page's
    own graphToPrompt does. Notes and other frontend-only nodes are dropped; muted nodes (mode 2)
    are dropped; bypassed nodes (mode 4) are refused (their pass-through wiring is a frontend
    concept). A node saved with `widgets_values_named` (frontend 1.49+) must agree with its
    positional values, else the layout rules above no longer match the frontend: an error.
    A node of a type in `optional_types` that this server does not know is kept with its links only
    (its saved widget values in _meta), so the caller can leave that stage out.
    """
    links = {lk[0]: lk for lk in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        ctype = node["type"]
        if ctype not in object_info and ctype in optional_types:
            prompt[str(node["id"])] = {"class_type": ctype, "_meta": {"title": node.get("title", ctype),
                                                                      "widgets_values": node.get("widgets_values")},
                                       "inputs": {i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]]
                                                  for i in node.get("inputs", []) or [] if i.get("link") is not None}}
            continue
        if ctype not in object_info:
            if ctype in FRONTEND_ONLY:
                continue
            raise KeyError(f"node {node['id']} has type {ctype!r}, which this server does not know "
                           f"(a missing custom node pack?)")
        if node.get("mode", 0) == 2:
            continue
        if node.get("mode", 0) == 4:
            raise ValueError(f"node {node['id']} ({ctype}) is bypassed; unbypass it or remove it")
        stored = node.get("widgets_values")
        if isinstance(stored, dict):          # some third-party nodes save a name -> value dict
            widgets = dict(stored)
        else:
            widgets = widget_values_from_ui(object_info[ctype], list(stored or []))
            named = node.get("widgets_values_named") or {}
            wrong = {k: (widgets.get(k), v) for k, v in named.items() if k in widgets and widgets[k] != v}
            if wrong:
                raise ValueError(f"node {node['id']} ({ctype}): positional widget values disagree with the "
                                 f"named ones {wrong}: the widget layout rules need updating for this frontend")
        inputs = {k: ({"__value__": v} if isinstance(v, list) else v) for k, v in widgets.items()}
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is not None:
                link = links[inp["link"]]
                inputs[inp["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": ctype, "inputs": inputs, "_meta": {"title": node.get("title", ctype)}}
    return prompt


# ----------------------------------------------------------------------------- tiny-model rewriting
TINY_UNET = PRESETS["tiny"]["unet_name"]
TINY_VAE = PRESETS["tiny"]["vae_name"]
TINY_WAN22 = PRESETS["tiny"]["wan22_name"]
TINY_LORA = PRESETS["tiny"]["lora_name"]
TINY_RIFE = PRESETS["tiny"]["rife_name"]
# how an example workflow runs on the tiny models (the demo and the browser tests): small enough for a
# CPU to finish in seconds, references and video at their real aspect
TINY_RUN = {"width": 256, "height": 160, "length": 17, "steps": 8, "ref": 128, "window": 9, "overlap": 4}
TEXT_ENCODE_TYPES = {"CLIPTextEncode"}
TEXT_LOADER_TYPES = {"CLIPLoader", "DualCLIPLoader"}
# node type -> {input: value} set on the tiny models (sizes from TINY_RUN; the upscaler's resize doubles)
TINY_INPUTS = {
    "UNETLoader": {"unet_name": TINY_UNET, "weight_dtype": "default"},
    "VAELoader": {"vae_name": TINY_VAE},
    "LoraLoaderModelOnly": {"lora_name": TINY_LORA},
    "FrameInterpolationModelLoader": {"model_name": TINY_RIFE},
    "Mv2IDReferenceConditioning": {k: TINY_RUN[k] for k in ("width", "height", "length")},
    "Mv2IDFaceViews": {"width": TINY_RUN["ref"], "height": TINY_RUN["ref"]},
    "ImageScale": {"width": 2 * TINY_RUN["width"], "height": 2 * TINY_RUN["height"]},
}
# a named LoRA in RD-RoPE's lora_name becomes the tiny LoRA (it records RD-RoPE settings, as mv2id-train's do)
TINY_NAMED_LORA = {"Mv2IDRDRoPE": "lora_name"}
# sampler node -> its steps input; start/end steps scale with it so a two-stage split stays a split
TINY_MAX_STEPS = {"Mv2IDSampler": "steps", "KSamplerAdvanced": "steps", "KSampler": "steps"}
STEP_RANGE_INPUTS = ("start_at_step", "end_at_step")
# context-window nodes: their length and overlap inputs (in video frames) become TINY_RUN's window and overlap,
# and the video keeps its length in windows (161 frames in 81-frame windows -> 17 in 9), so windows still run
CONTEXT_WINDOW_INPUTS = {"WanContextWindowsManual": ("context_length", "context_overlap")}
# model loaders no small model can stand in for -> the test-only node that does their job
TINY_STAND_INS = {"LoadBackgroundRemovalModel": "Mv2IDTestBackgroundModel"}


def tiny_steps(inputs: dict, steps_key: str) -> None:
    """Reduce a sampler's steps to TINY_RUN's and scale its start/end steps with them (in place)."""
    steps = inputs.get(steps_key)
    if not isinstance(steps, int) or steps <= TINY_RUN["steps"]:
        return
    n = TINY_RUN["steps"]
    inputs[steps_key] = n
    for k in STEP_RANGE_INPUTS:
        v = inputs.get(k)
        if isinstance(v, int) and v < steps:
            inputs[k] = round(v * n / steps)


def rewrite_for_tiny_models(prompt: dict, text_len: int = 16, seed: int = 0) -> dict:
    """Swap real model files for the tiny test models and shrink the run (TINY_RUN), nothing else.

    umT5-XXL cannot be shrunk, so every text-encode node becomes the test-only
    Mv2IDTestConditioning node (random embeddings of the right shape, seeded by the prompt
    text so positive and negative differ) and the text-encoder loader is removed; a background-
    removal model (BiRefNet has a fixed, large size) becomes the test-only stand-in.
    """
    p = copy.deepcopy(prompt)
    for nid in [k for k, v in p.items() if v["class_type"] in TEXT_LOADER_TYPES]:
        del p[nid]
    for node in p.values():
        ct = node["class_type"]
        if ct in TEXT_ENCODE_TYPES:
            text = node["inputs"].get("text", "")
            node["class_type"] = "Mv2IDTestConditioning"
            node["inputs"] = {"seed": seed + (sum(map(ord, str(text))) % 100_000), "tokens": text_len}
        elif ct in TINY_STAND_INS:
            node["class_type"], node["inputs"] = TINY_STAND_INS[ct], {}
        for k, v in TINY_INPUTS.get(ct, {}).items():
            if k in node["inputs"] and not isinstance(node["inputs"][k], list):   # a linked input stays linked
                node["inputs"][k] = v
        key = TINY_NAMED_LORA.get(ct)
        if key and node["inputs"].get(key) not in (None, "none"):
            node["inputs"][key] = TINY_LORA
        if ct in TINY_MAX_STEPS:
            tiny_steps(node["inputs"], TINY_MAX_STEPS[ct])
    tiny_windows(prompt, p)
    return p


def tiny_windows(prompt: dict, tiny: dict) -> None:
    """In `tiny` (the rewrite of `prompt`), shrink context windows to TINY_RUN's and the video with them, so
    the video is as many windows long as in `prompt` (4n+1 frames, at least one window)."""
    real = [(n["inputs"].get(keys[0]), n["inputs"].get(keys[1]))
            for n in prompt.values() for ct, keys in CONTEXT_WINDOW_INPUTS.items() if n["class_type"] == ct]
    if not real or not isinstance(real[0][0], int) or real[0][0] <= 1:
        return
    window = real[0][0]
    for nid, node in tiny.items():
        keys = CONTEXT_WINDOW_INPUTS.get(node["class_type"])
        if keys:
            node["inputs"].update({keys[0]: TINY_RUN["window"], keys[1]: TINY_RUN["overlap"]})
        length = prompt.get(nid, {}).get("inputs", {}).get("length")
        if node["class_type"] == "Mv2IDReferenceConditioning" and isinstance(length, int):
            quarters = round((length - 1) / (window - 1) * (TINY_RUN["window"] - 1) / 4)
            node["inputs"]["length"] = 4 * max(quarters, (TINY_RUN["window"] - 1) // 4) + 1
