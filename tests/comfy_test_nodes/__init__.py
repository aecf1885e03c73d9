"""Test-only ComfyUI nodes, loaded only by the test and demo servers (never shipped to users).

Mv2IDTestConditioning stands in for umT5-XXL, which cannot be shrunk: it emits CONDITIONING
of the shape Wan 2.1 expects ([1, tokens, 4096]), deterministic in its seed.
Mv2IDTestCallCounter wraps a MODEL clone so every diffusion-model call is counted; the
count (and the batch size of every call) is returned as a JSON string for the tests.
"""
from __future__ import annotations

import json

import torch
from comfy_api.latest import ComfyExtension, io


class Mv2IDTestConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestConditioning",
            category="mv2id/testing",
            description="TEST ONLY: random umT5-shaped text conditioning.",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the random embedding."),
                io.Int.Input("tokens", default=16, min=1, max=512, tooltip="Number of text tokens."),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, seed, tokens) -> io.NodeOutput:
        g = torch.Generator().manual_seed(seed)
        return io.NodeOutput([[torch.randn(1, tokens, 4096, generator=g), {}]])


class _CallLog:
    """Records each diffusion-model call; deep-copied with model_options, so shares its list."""

    def __init__(self):
        self.calls = []

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, timestep, context, *args, **kwargs):
        topts = args[2] if len(args) > 2 else kwargs.get("transformer_options", {})
        sigmas = topts.get("sigmas")
        self.calls.append({"batch": int(x.shape[0]), "frames": int(x.shape[2]),
                           "cond_or_uncond": list(topts.get("cond_or_uncond", [])),
                           "sigma": float(sigmas.flatten()[0]) if sigmas is not None else None})
        return executor(x, timestep, context, *args, **kwargs)


_LOGS: dict[str, _CallLog] = {}


class Mv2IDTestCallCounter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestCallCounter",
            category="mv2id/testing",
            description="TEST ONLY: count diffusion-model calls of a MODEL clone.",
            inputs=[io.Model.Input("model", tooltip="Model to instrument (a clone is returned)."),
                    io.String.Input("key", default="default", tooltip="Name of this counter.")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, key) -> io.NodeOutput:
        import comfy.patcher_extension as pe
        m = model.clone()
        log = _LOGS[key] = _CallLog()
        m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "mv2id_test_counter", log)
        return io.NodeOutput(m)

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")  # always re-run so every prompt gets a fresh counter


class Mv2IDTestCallReport(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestCallReport",
            category="mv2id/testing",
            description="TEST ONLY: report a call counter after a latent is produced.",
            inputs=[io.Latent.Input("samples", tooltip="Wait for this result."),
                    io.String.Input("key", default="default", tooltip="Counter name.")],
            outputs=[io.String.Output()],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, samples, key) -> io.NodeOutput:
        calls = _LOGS[key].calls if key in _LOGS else []
        text = json.dumps({"calls": calls})
        return io.NodeOutput(text, ui={"text": [text]})

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")


class Mv2IDTestLatentStats(io.ComfyNode):
    """Saves a LATENT's values to the output folder (safetensors) so tests can compare runs bit-exactly."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestSaveLatent",
            category="mv2id/testing",
            description="TEST ONLY: save latent samples as safetensors.",
            inputs=[io.Latent.Input("samples", tooltip="Latent to save."),
                    io.String.Input("filename", default="latent", tooltip="File name stem.")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, samples, filename) -> io.NodeOutput:
        import os
        import folder_paths
        from safetensors.torch import save_file
        path = os.path.join(folder_paths.get_output_directory(), f"{filename}.safetensors")
        save_file({"samples": samples["samples"].contiguous().float().cpu()}, path)
        return io.NodeOutput(ui={"files": [{"filename": f"{filename}.safetensors", "subfolder": "", "type": "output"}]})

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")


class _EllipseForeground:
    """Stands in for a BiRefNet background-removal model (core RemoveBackground calls encode_image):
    the foreground is the centred ellipse covering 60 % of the width and 90 % of the height."""

    def encode_image(self, image):
        b, h, w = image.shape[:3]
        yy = (torch.arange(h, dtype=torch.float32) + 0.5) / h - 0.5
        xx = (torch.arange(w, dtype=torch.float32) + 0.5) / w - 0.5
        inside = (xx[None, :] / 0.30) ** 2 + (yy[:, None] / 0.45) ** 2 <= 1.0
        return inside.float().expand(b, h, w).clone()


class Mv2IDTestBackgroundModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestBackgroundModel",
            category="mv2id/testing",
            description="TEST ONLY: a background-removal model for core RemoveBackground (BiRefNet cannot be made "
                        "small); the foreground is a centred ellipse.",
            inputs=[],
            outputs=[io.Custom("BACKGROUND_REMOVAL").Output()],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(_EllipseForeground())


class Mv2IDTestImage(io.ComfyNode):
    """An IMAGE batch of random pixels (no core node makes an empty one or one with a NaN pixel), for
    bad-input tests: batch 0 is an empty batch; bad_pixel puts a NaN or inf into the last image."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestImage",
            category="mv2id/testing",
            description="TEST ONLY: random IMAGE batch (batch 0: empty), optionally with a NaN / inf pixel.",
            inputs=[io.Int.Input("width", default=64, min=1, max=4096, tooltip="Width."),
                    io.Int.Input("height", default=64, min=1, max=4096, tooltip="Height."),
                    io.Int.Input("batch", default=1, min=0, max=64, tooltip="Images (0: an empty batch)."),
                    io.String.Input("bad_pixel", default="none", tooltip="none, nan or inf (in the last image).")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, width, height, batch, bad_pixel) -> io.NodeOutput:
        img = torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(0))
        if bad_pixel != "none" and batch > 0:
            img[-1, height // 2, width // 2, 0] = float(bad_pixel)
        return io.NodeOutput(img)


class Mv2IDTestModuleNames(io.ComfyNode):
    """Reports every imported module's name and file, for tests/test_import_names.py."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestModuleNames",
            category="mv2id/testing",
            description="TEST ONLY: JSON {module name: file} of every module imported in this process.",
            inputs=[io.AnyType.Input("after", optional=True, tooltip="Anything that must run first.")],
            outputs=[io.String.Output()],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, after=None) -> io.NodeOutput:
        import sys
        text = json.dumps({name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())})
        return io.NodeOutput(text, ui={"text": [text]})

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")


class Mv2IDTestFloat(io.ComfyNode):
    """A FLOAT from text, any value Python's float() reads (nan, inf, -inf): core's number nodes check their
    range, so only a node like this sends infinity through a link."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestFloat",
            category="mv2id/testing",
            description="TEST ONLY: float(value) as a FLOAT output (nan, inf, -inf allowed).",
            inputs=[io.String.Input("value", default="nan", tooltip="Text for Python's float().")],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, value) -> io.NodeOutput:
        return io.NodeOutput(float(value))


class Mv2IDTestSaveTensors(io.ComfyNode):
    """Saves an IMAGE (and a MASK) as safetensors, exactly as the graph holds them (SaveImage rounds to
    8 bits), so tests can compare node outputs value for value."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestSaveTensors",
            category="mv2id/testing",
            description="TEST ONLY: save IMAGE and optional MASK as safetensors.",
            inputs=[io.Image.Input("image", tooltip="IMAGE to save."),
                    io.Mask.Input("mask", optional=True, tooltip="MASK to save."),
                    io.String.Input("filename", default="tensors", tooltip="File name stem.")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image, filename, mask=None) -> io.NodeOutput:
        import os
        import folder_paths
        from safetensors.torch import save_file
        tensors = {"image": image.contiguous().float().cpu()}
        if mask is not None:
            tensors["mask"] = mask.contiguous().float().cpu()
        save_file(tensors, os.path.join(folder_paths.get_output_directory(), f"{filename}.safetensors"))
        return io.NodeOutput(ui={"files": [{"filename": f"{filename}.safetensors", "subfolder": "", "type": "output"}]})

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")


class _TestExtension(ComfyExtension):
    async def get_node_list(self):
        return [Mv2IDTestConditioning, Mv2IDTestCallCounter, Mv2IDTestCallReport, Mv2IDTestLatentStats,
                Mv2IDTestBackgroundModel, Mv2IDTestImage, Mv2IDTestModuleNames, Mv2IDTestFloat,
                Mv2IDTestSaveTensors]


async def comfy_entrypoint():
    return _TestExtension()
