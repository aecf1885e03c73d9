"""FaceSim-Cur's CurricularFace IR-101: key layout, safe loading, and OpenS2V-Eval's embedding protocol.

The real weights (glint360k_curricular_face_r101_backbone.bin, 261 MB) are not available here, so
the model is a random-weight IR-101 of the same key layout and block structure with narrower
channels (8/16/32/64 instead of 64/128/256/512), saved the way the published file is (torch.save of
the state_dict) and as safetensors.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")   # skimage 0.26 on insightface's estimate()

from mv2id_core.errors import FaceAnalysisError  # noqa: E402
from mv2id_core.faces import align as A  # noqa: E402
from mv2id_core.faces import curricularface as C  # noqa: E402

WIDTHS = (8, 16, 32, 64)


def small_ir101_state_dict(seed: int = 0) -> dict:
    """A random IR-101 state dict (stages 3/13/30/3, first block of each stage stride 2) with narrow widths;
    BatchNorm statistics random too, so every parameter matters."""
    _, IRBackbone = C._modules()
    blocks, prev = [], WIDTHS[0]
    for width, units in zip(WIDTHS, C.IR101_STAGE_UNITS):
        for u in range(units):
            blocks.append((prev, width, 2 if u == 0 else 1))
            prev = width
    g = torch.Generator().manual_seed(seed)
    model = IRBackbone(WIDTHS[0], blocks)
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif v.ndim > 1:
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5
        else:
            sd[k] = torch.randn(v.shape, generator=g) * 0.1 + (1.0 if k.endswith(".weight") else 0.0)
        if k.endswith("res_layer.5.weight"):             # small residual branches keep 49 blocks stable
            sd[k] = sd[k] * 0.2
    return sd


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("cur")
    sd = small_ir101_state_dict()
    torch.save(sd, d / "glint360k_curricular_face_r101_backbone.bin")
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(d / "cur.safetensors"))
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, d / "no_nbt.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, d / "wrapped.pth")
    return d


def test_key_layout_is_tface_ir101():
    sd = small_ir101_state_dict()
    assert len(sd) == 917                                    # 305 weight, 153 bias, 3 x 153 BN statistics
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 153
    shortcuts = sorted(int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.shortcut_layer\.0\.weight", k)))
    assert shortcuts == [3, 16, 46]                          # conv shortcuts only where the width changes
    assert 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body.")) == 49
    assert list(sd)[:2] == ["input_layer.0.weight", "input_layer.1.weight"]
    assert sd["input_layer.2.weight"].shape == (WIDTHS[0],)                       # PReLU
    assert sd["output_layer.3.weight"].shape == (512, WIDTHS[-1] * 7 * 7)          # Linear after Dropout, Flatten
    assert "output_layer.4.running_mean" in sd and "output_layer.4.weight" not in sd   # BN1d without affine
    assert sd["body.0.res_layer.4.weight"].shape == (WIDTHS[0], WIDTHS[0], 3, 3)  # block 0: 8 -> 8, stride 2


def test_loads_bin_safetensors_wrapped_and_without_num_batches_tracked(weights):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    kps = (A.ARCFACE_TEMPLATE * 1.6 + [60, 50]).astype(np.float32)
    ref = C.CurricularFace(weights / "glint360k_curricular_face_r101_backbone.bin").embed(img, kps)
    assert ref.shape == (512,) and ref.dtype == np.float32 and np.linalg.norm(ref) == pytest.approx(1, abs=1e-5)
    for name in ("cur.safetensors", "no_nbt.pth", "wrapped.pth"):
        np.testing.assert_allclose(C.CurricularFace(weights / name).embed(img, kps), ref, atol=1e-6)


def test_refuses_files_that_are_not_ir101(weights, tmp_path):
    with pytest.raises(FaceAnalysisError, match="not found"):
        C.CurricularFace(tmp_path / "missing.bin")
    sd = small_ir101_state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith("body.20.")}, tmp_path / "holes.pth")
    with pytest.raises(FaceAnalysisError, match="not a CurricularFace IR-101 backbone"):
        C.CurricularFace(tmp_path / "holes.pth")
    torch.save({**sd, "extra.weight": torch.zeros(3)}, tmp_path / "extra.pth")
    with pytest.raises(FaceAnalysisError, match="unexpected extra.weight"):
        C.CurricularFace(tmp_path / "extra.pth")
    torch.save({k: v for k, v in sd.items() if k != "body.5.res_layer.0.running_mean"}, tmp_path / "gap.pth")
    with pytest.raises(FaceAnalysisError, match="missing body.5.res_layer.0.running_mean"):
        C.CurricularFace(tmp_path / "gap.pth")

    import argparse
    torch.save({"obj": argparse.Namespace(a=1)}, tmp_path / "pickle.pth")   # weights_only=True refuses objects
    with pytest.raises(FaceAnalysisError, match="cannot read the CurricularFace weights pickle.pth"):
        C.CurricularFace(tmp_path / "pickle.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(FaceAnalysisError, match="cannot read"):
        C.CurricularFace(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("change,message", [
    (lambda sd: {**sd, "input_layer.0.weight": torch.tensor(1.0)},
     "input_layer.0.weight has shape [], where IR-101 has a 4-D convolution weight"),
    (lambda sd: {**sd, "body.7.res_layer.1.weight": torch.zeros(16)},
     "body.7.res_layer.1.weight has shape [16], where IR-101 has a 4-D convolution weight"),
    (lambda sd: {**sd, "output_layer.3.weight": torch.zeros(512, 100)},
     "tensor output_layer.3.weight: [512, 100] where IR-101 has [512, 3136]"),
    (lambda sd: {**sd, "body.3.res_layer.0.weight": torch.zeros(5), "body.4.res_layer.0.bias": torch.zeros(3)},
     "tensor body.3.res_layer.0.weight: [5] where IR-101 has [8] (and 1 more)"),
    (lambda sd: {**sd, "input_layer.1.weight": [1.0, 2.0]}, "input_layer.1.weight is not a tensor"),
])
def test_wrong_tensor_shapes_name_the_file_and_the_tensor(tmp_path, change, message):
    """A file with IR-101's names but other shapes: one clear error naming the file, the tensor and the shape
    IR-101 has (it used to end in IndexError: tuple index out of range, or a size-mismatch traceback)."""
    torch.save(change(small_ir101_state_dict()), tmp_path / "odd.bin")
    with pytest.raises(FaceAnalysisError) as e:
        C.CurricularFace(tmp_path / "odd.bin")
    assert str(e.value).startswith("odd.bin ") and message in str(e.value), str(e.value)
    assert "glint360k_curricular_face_r101_backbone.bin" in str(e.value)


def test_embedding_follows_opens2vs_protocol(weights):
    """OpenS2V's inference(): norm_crop(image_bgr, kps, 224) -> RGB -> cv2.resize to 112 -> /255, -0.5, /0.5
    -> IR_101 -> L2 normalise, written here with OpenCV and insightface's own face_align."""
    cv2 = pytest.importorskip("cv2", reason="the reference path needs OpenCV")
    pytest.importorskip("insightface", reason="the reference path needs insightface's face_align")
    from insightface.utils import face_align
    cur = C.CurricularFace(weights / "glint360k_curricular_face_r101_backbone.bin")
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (400, 360, 3), dtype=np.uint8), (0, 0), 1.5)
    for trial in range(3):
        kps = (A.ARCFACE_TEMPLATE * rng.uniform(1.5, 2.5) + rng.uniform(-20, 150, 2)
               + rng.normal(0, 2, (5, 2))).astype(np.float32)        # some crops run past the image: black
        bgr = np.ascontiguousarray(img[..., ::-1])
        aligned = cv2.cvtColor(face_align.norm_crop(bgr, landmark=kps, image_size=224), cv2.COLOR_BGR2RGB)
        small = cv2.resize(aligned, (112, 112))
        assert np.abs(C.CurricularFace.aligned_input(img, kps).astype(int) - small).max() <= 1
        x = torch.from_numpy(np.transpose(small, (2, 0, 1))).unsqueeze(0).float()
        x.div_(255).sub_(0.5).div_(0.5)
        with torch.no_grad():
            e = cur.model(x)[0].numpy()
        e = e / np.linalg.norm(e)
        assert float(e @ cur.embed(img, kps)) > 0.9999
