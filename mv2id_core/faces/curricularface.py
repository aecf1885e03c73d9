"""CurricularFace IR-101: the identity model of OpenS2V-Eval's FaceSim-Cur (its leaderboard number).

The user supplies the weights (OpenS2V-Eval ships them as
``glint360k_curricular_face_r101_backbone.bin``; a safetensors copy works too). The network is the
TFace "IR" backbone OpenS2V-Eval builds with ``get_model("IR_101")([112, 112])``, rebuilt here from the
file's own tensor shapes, with the same parameter names:

- ``input_layer``: 3x3 conv (no bias), BatchNorm, PReLU;
- ``body``: 49 residual blocks in stages of 3 / 13 / 30 / 3, the first block of each stage with
  stride 2; a block is ``res_layer`` = BN, 3x3 conv, BN, PReLU, 3x3 conv (the stride), BN, plus
  ``shortcut_layer`` = a 1x1 max-pool with the stride when the width does not change, else a 1x1
  conv with the stride and a BN;
- ``output_layer``: BN, dropout (off in eval), flatten, linear (width x 7 x 7 -> 512), BN without
  affine parameters. The output is the embedding (not normalised).

Weights load from safetensors, or from a torch file with ``torch.load(weights_only=True)``; a
missing ``num_batches_tracked`` is tolerated (eval mode does not use it).

OpenS2V's protocol for one face (``embed``): insightface's ``norm_crop`` of the image to 224x224 on
the five detector keypoints (black outside the image), ``cv2.resize`` to 112x112 (exactly the 2x2
mean, rounded half up), RGB scaled to [-1, 1] ((x / 255 - 0.5) / 0.5), the network, L2 normalised.
No flip augmentation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FaceAnalysisError
from .align import halve, norm_crop

IR101_STAGE_UNITS = (3, 13, 30, 3)
EMBEDDING_DIM = 512
WEIGHT_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")


def _modules():
    """The network classes, defined on first use so the module imports without torch."""
    import torch
    from torch import nn

    class IRBlock(nn.Module):
        def __init__(self, in_ch: int, depth: int, stride: int):
            super().__init__()
            if in_ch == depth:
                self.shortcut_layer = nn.MaxPool2d(1, stride)
            else:
                self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, depth, 1, stride, bias=False),
                                                    nn.BatchNorm2d(depth))
            self.res_layer = nn.Sequential(
                nn.BatchNorm2d(in_ch), nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False), nn.BatchNorm2d(depth),
                nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth))

        def forward(self, x):
            return self.res_layer(x) + self.shortcut_layer(x)

    class IRBackbone(nn.Module):
        """x [B, 3, 112, 112] in [-1, 1] -> [B, 512]."""

        def __init__(self, stem: int, blocks: list[tuple[int, int, int]]):
            super().__init__()
            self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                                             nn.PReLU(stem))
            width = blocks[-1][1]
            self.output_layer = nn.Sequential(nn.BatchNorm2d(width), nn.Dropout(0.4), nn.Flatten(),
                                              nn.Linear(width * 7 * 7, EMBEDDING_DIM),
                                              nn.BatchNorm1d(EMBEDDING_DIM, affine=False))
            self.body = nn.Sequential(*(IRBlock(i, d, s) for i, d, s in blocks))

        def forward(self, x):
            return self.output_layer(self.body(self.input_layer(x)))

    return torch, IRBackbone


def ir_blocks(widths: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(in, depth) per body block -> (in, depth, stride): stride 2 for the first block of each stage (block
    0 and wherever the width changes), as IR-101 is built. Raises when the blocks are not IR-101's."""
    if len(widths) != sum(IR101_STAGE_UNITS):
        raise ValueError(f"{len(widths)} residual blocks; CurricularFace IR-101 has {sum(IR101_STAGE_UNITS)}")
    firsts = {0}
    for i in range(1, len(widths)):
        if widths[i][1] != widths[i - 1][1]:
            firsts.add(i)
    starts = np.cumsum((0,) + IR101_STAGE_UNITS[:-1]).tolist()
    if sorted(firsts) != starts:
        raise ValueError(f"the widths change at blocks {sorted(firsts)[1:]}; IR-101's stages start at {starts[1:]}")
    return [(i, d, 2 if k in firsts else 1) for k, (i, d) in enumerate(widths)]


def read_weights(path) -> dict:
    """The tensors of a safetensors file, or of a torch file loaded with weights_only=True, on the CPU.
    A 'state_dict' wrapper and 'module.' prefixes (saved from DataParallel) are removed."""
    p = Path(path)
    if not p.is_file():
        raise FaceAnalysisError(f"CurricularFace weights not found: {p}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(p), device="cpu")
        else:
            import torch
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FaceAnalysisError(f"cannot read the CurricularFace weights {p.name} ({type(e).__name__}: {e}); use the "
                                f"IR-101 backbone file (glint360k_curricular_face_r101_backbone.bin) or a safetensors "
                                f"copy of it.") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise FaceAnalysisError(f"{p.name} holds a {type(sd).__name__}, not a dictionary of weights.")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def read_layout(sd: dict) -> tuple[int, list[tuple[int, int, int]]]:
    """(stem width, body blocks (in, depth, stride)) of an IR-101 state dict, read from its tensors' shapes.
    Raises KeyError for a missing tensor, ValueError saying which tensor is not what IR-101 has."""
    def shape(key: str, ndim: int) -> tuple[int, ...]:
        if key not in sd:
            raise KeyError(key)
        if not hasattr(sd[key], "shape"):
            raise ValueError(f"{key} is a {type(sd[key]).__name__}, not a tensor")
        got = tuple(int(v) for v in sd[key].shape)
        if len(got) != ndim:
            raise ValueError(f"{key} has shape {list(got)}, where IR-101 has a {ndim}-D convolution weight")
        return got
    stem = shape("input_layer.0.weight", 4)[0]
    blocks = [int(k.split(".")[1]) for k in sd if k.startswith("body.") and k.split(".")[1].isdigit()]
    if not blocks:
        raise KeyError("body.0.res_layer.1.weight")
    widths = [shape(f"body.{i}.res_layer.1.weight", 4)[1::-1] for i in range(1 + max(blocks))]   # (in, depth)
    return stem, ir_blocks(widths)


def shape_mismatches(sd: dict, expected: dict) -> list[str]:
    """'name: [file shape] where IR-101 has [shape]' for every tensor whose shape differs from the model's."""
    out = []
    for k, v in expected.items():
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(v.shape):
            out.append(f"{k}: {list(sd[k].shape)} where IR-101 has {list(v.shape)}")
    return out


class CurricularFace:
    """The FaceSim-Cur embedder: CurricularFace(path) then embed(rgb_image, kps) -> [512] unit vector."""

    def __init__(self, path, device: str = "cpu"):
        torch, IRBackbone = _modules()
        self.path = Path(path)
        sd = read_weights(self.path)
        fix = "use the IR-101 backbone file (glint360k_curricular_face_r101_backbone.bin) or a safetensors copy of it"
        not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
        if not_tensors:
            verb = "is not a tensor" if len(not_tensors) == 1 else "are not tensors"
            raise FaceAnalysisError(f"{self.path.name} is not a CurricularFace IR-101 backbone: "
                                    f"{', '.join(not_tensors[:3])} {verb}; {fix}.")
        try:
            stem, blocks = read_layout(sd)
        except (KeyError, ValueError) as e:
            raise FaceAnalysisError(f"{self.path.name} is not a CurricularFace IR-101 backbone ({e}); {fix}.") from None
        model = IRBackbone(stem, blocks)
        wrong = shape_mismatches(sd, model.state_dict())
        if wrong:
            raise FaceAnalysisError(f"{self.path.name} does not match the CurricularFace IR-101 layout: tensor "
                                    f"{wrong[0]}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
                                    + f"; {fix}.")
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise FaceAnalysisError(
                f"{self.path.name} does not match the CurricularFace IR-101 layout: "
                + (f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "") if missing else "")
                + ("; " if missing and unexpected else "")
                + (f"unexpected {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else "")
                   if unexpected else ""))
        self._torch = torch
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)

    def describe(self) -> str:
        return f"CurricularFace IR-101 ({self.path.name})"

    @staticmethod
    def aligned_input(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """OpenS2V's model input for one face: [112, 112, 3] uint8 RGB (norm_crop 224, then halved)."""
        return halve(norm_crop(image, kps, 224))

    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Unit embedding [512] float32 of the face with keypoints kps [5, 2] in the RGB uint8 image."""
        torch = self._torch
        from einops import rearrange
        x = rearrange(torch.from_numpy(self.aligned_input(image, kps).astype(np.float32)), "h w c -> 1 c h w")
        x = (x / 255.0 - 0.5) / 0.5
        with torch.no_grad():
            e = self.model(x.to(self.device))[0].double().cpu().numpy()
        return (e / max(float(np.linalg.norm(e)), 1e-300)).astype(np.float32)
