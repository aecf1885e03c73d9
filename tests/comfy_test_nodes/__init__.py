"""Test-only ComfyUI nodes, loaded only by the test and demo servers (never shipped to users).

Mv2IDTestConditioning stands in for umT5-XXL, which cannot be shrunk: it emits CONDITIONING
of the shape Wan 2.1 expects ([1, tokens, 4096]), deterministic in its seed.
Mv2IDTestCallCounter wraps a MODEL clone so every diffusion-model call is counted; the
count (and the batch size of every call) is returned as a JSON string for the tests.
Mv2IDTestWindowProbe records more per call: the context window, the references it carried and the
position ids the model embedded.
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
        log = _LOGS.get(key)
        calls = [] if log is None else log.report() if hasattr(log, "report") else log.calls
        text = json.dumps({"calls": calls})
        return io.NodeOutput(text, ui={"text": [text]})

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")


def _fingerprint(t) -> str:
    import hashlib
    return hashlib.sha1(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class _RopeProbe(torch.nn.Module):
    """Stands in for WanModel.rope_embedder: tells the window probe which ids gave which frequencies."""

    def __init__(self, original, probe):
        super().__init__()
        self.original = original
        object.__setattr__(self, "probe", probe)   # not a submodule

    def forward(self, ids):
        out = self.original(ids)
        self.probe.embedded[_fingerprint(out)] = ids.reshape(-1, 3).float().cpu()
        return out


class _RopeEncodeProbe:
    """Wraps the model's rope_encode (RD-RoPE's replacement when applied after it): records which
    frequencies each call used. RD-RoPE caches them per shape, so the embedder does not see every call;
    the fingerprint maps a call back to the ids the frequencies were made from."""

    def __init__(self, original, probe):
        self.original, self.probe = original, probe

    def __call__(self, *args, **kwargs):
        out = self.original(*args, **kwargs)
        if self.probe.calls:
            self.probe.calls[-1].setdefault("freqs", _fingerprint(out))
        return out


class _WindowProbe:
    """Per diffusion-model call: the frames it ran on, the context window core chose (index list and
    causal anchor frame), the reference latents it carried (a fingerprint per batch entry), the video
    tokens' temporal ids and the reference tokens' ids; with EasyCache after the probe, which cache state
    the call used, whether EasyCache reused a cached change instead of running the model, and then how far
    the change it added is from the one this window's last computed call made."""

    def __init__(self):
        self.calls = []
        self.embedded = {}
        self.caches = []           # EasyCache states in order of first use
        self.last_change = {}      # window -> output - input of its last computed call

    def __deepcopy__(self, memo):
        return self

    def _cache(self, transformer_options):
        cache = transformer_options.get("easycache")
        if cache is None:
            return None
        if not any(c is cache for c in self.caches):
            self.caches.append(cache)
        return next(i for i, c in enumerate(self.caches) if c is cache)

    def __call__(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={},
                 **kwargs):
        window = transformer_options.get("context_window")
        sigmas = transformer_options.get("sigmas")
        anchor = getattr(window, "causal_anchor_index", None) if window is not None else None
        anchor = anchor if anchor is not None and anchor >= 0 else None
        cache = self._cache(transformer_options)
        call = {
            "batch": int(x.shape[0]), "frames": int(x.shape[2]),
            "tokens_per_frame": (int(x.shape[3]) // 2) * (int(x.shape[4]) // 2),
            "cond_or_uncond": list(transformer_options.get("cond_or_uncond", [])),
            "sigma": float(sigmas.flatten()[0]) if sigmas is not None else None,
            "window": list(window.index_list) if window is not None else None,
            "anchor": anchor,
            "ref_frames": 0 if time_dim_concat is None else int(time_dim_concat.shape[2]),
            "refs": [] if time_dim_concat is None else [_fingerprint(r) for r in time_dim_concat],
            "cache": cache,
        }
        self.calls.append(call)
        x_in = x.clone()
        out = executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
        key = (tuple(call["window"] or ()), anchor, call["batch"])
        change = out[:, :x_in.shape[1]].float() - x_in.float()
        # EasyCache answers a reused step with its input (a view of it) plus the cached change, in place
        call["reused"] = out.data_ptr() == x.data_ptr() and out.shape[2:] == x.shape[2:]
        if call["reused"]:
            last = self.last_change.get(key)
            call["reuse_error"] = None if last is None else float((change - last).abs().max())
        else:
            self.last_change[key] = change
        return out

    def report(self) -> list[dict]:
        out = []
        for c in self.calls:
            c = dict(c)
            ids = self.embedded.get(c.pop("freqs", None))
            if ids is not None:
                n_video = c["frames"] * c["tokens_per_frame"]
                c["video_t"] = sorted({float(v) for v in ids[:n_video, 0].tolist()})
                c["ref_ids"] = ids[n_video:].tolist()
            out.append(c)
        return out


class Mv2IDTestWindowProbe(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDTestWindowProbe",
            category="mv2id/testing",
            description="TEST ONLY: record per diffusion-model call the context window, the references and the "
                        "position ids (report with Mv2ID Test Call Report, same key). Apply it after Mv2ID RD-RoPE.",
            inputs=[io.Model.Input("model", tooltip="Model to instrument (a clone is returned)."),
                    io.String.Input("key", default="default", tooltip="Name of this probe.")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, key) -> io.NodeOutput:
        import comfy.patcher_extension as pe
        m = model.clone()
        probe = _LOGS[key] = _WindowProbe()
        m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "mv2id_test_window_probe", probe)
        m.add_object_patch("diffusion_model.rope_embedder",
                           _RopeProbe(m.get_model_object("diffusion_model.rope_embedder"), probe))
        m.add_object_patch("diffusion_model.rope_encode",
                           _RopeEncodeProbe(m.get_model_object("diffusion_model.rope_encode"), probe))
        return io.NodeOutput(m)

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
        return [Mv2IDTestConditioning, Mv2IDTestCallCounter, Mv2IDTestWindowProbe, Mv2IDTestCallReport,
                Mv2IDTestLatentStats, Mv2IDTestBackgroundModel, Mv2IDTestImage, Mv2IDTestModuleNames,
                Mv2IDTestFloat, Mv2IDTestSaveTensors]


async def comfy_entrypoint():
    return _TestExtension()
