"""Mv2ID Face Views: choose and crop the multi-view references from photos or video frames."""
from __future__ import annotations

import json

import numpy as np
import torch

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..mv2id_core import views as core_views
from ..mv2id_core.errors import InputError
from .sockets import FaceAnalyzer
from .utils import check_image_batch

CATEGORY = "Mv2ID/faces"


def image_batch_to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """ComfyUI IMAGE [B, H, W, C] float 0..1 -> list of RGB uint8 [H, W, 3]."""
    check_image_batch(images, "images")
    a = (images[..., :3].detach().float().cpu().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return [np.ascontiguousarray(x) for x in a]


def subject_masks(mask: torch.Tensor | None, meaning: str, n: int, size: tuple[int, int]) -> list[np.ndarray] | None:
    """MASK [B, H, W] (or [H, W]) -> list of float [H, W] with 1 = the person, resized to the images."""
    if mask is None:
        return None
    m = mask.detach().float().cpu()
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if m.ndim != 3:
        raise InputError(f"mask must be a MASK [B, H, W], got shape {list(mask.shape)}")
    if m.shape[0] not in (1, n):
        raise InputError(f"{m.shape[0]} masks for {n} images: connect one mask per image, or a single mask")
    h, w = size
    if m.shape[1:] != (h, w):
        m = torch.nn.functional.interpolate(m.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    if meaning == "background":
        m = 1.0 - m
    return [x.clamp(0, 1).numpy() for x in m]


class Mv2IDFaceViews(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDFaceViews",
            display_name="Mv2ID Face Views",
            category=CATEGORY,
            description=(
                "Turns photos of a person (or the frames of a clip) into clean multi-view references: finds the "
                "largest face in every image with its head pose and quality, selects the views that spread "
                "widest over yaw and pitch, and crops each as an upright head-and-shoulders view (white "
                "background where a mask is given), ordered from the person's left profile to the right. "
                "Feed 'references' to Mv2ID Reference Conditioning."),
            inputs=[
                io.Image.Input("images", tooltip=(
                    "Photos of ONE person from different angles, or the frames of a video (e.g. from Load "
                    "Video / Get Video Components). Photos of different sizes: batch them with an image batch "
                    "node first.")),
                FaceAnalyzer.Input("analyzer", tooltip="Connect 'Mv2ID Face Analyzer'."),
                io.Int.Input("num_views", default=3, min=1, max=16, tooltip=(
                    "How many reference views to pick (the paper uses 3: e.g. left, frontal, right).")),
                io.Int.Input("width", default=512, min=64, max=4096, step=16,
                             tooltip="Width of each reference crop in pixels."),
                io.Int.Input("height", default=512, min=64, max=4096, step=16,
                             tooltip="Height of each reference crop in pixels."),
                io.Float.Input("margin", default=1.0, min=0.0, max=4.0, step=0.05, tooltip=(
                    "Context around the face, in face sizes above and below it (1.0 = head and shoulders, "
                    "0 = the face box only). The width follows the crop's aspect ratio.")),
                io.Boolean.Input("upright", default=True, tooltip=(
                    "Rotate each crop so the eyes are level (removes head roll).")),
                io.Combo.Input("if_no_face", options=["error", "skip"], default="error", tooltip=(
                    "error: stop and name the images without a face (right for hand-picked photos). skip: "
                    "ignore them (right for video frames).")),
                io.Float.Input("pitch_weight", default=0.5, min=0.0, max=2.0, step=0.05, tooltip=(
                    "How much up/down head angle counts against left/right angle when spreading the views "
                    "(0 = yaw only).")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Optional person/background masks (one per image, or one for all), e.g. from a background "
                    "removal node; the background becomes white as the method expects.")),
                io.Combo.Input("mask_meaning", options=["subject", "background"], default="subject", tooltip=(
                    "subject: mask is 1 on the person (most background-removal nodes). background: mask is 1 on "
                    "the background.")),
            ],
            outputs=[
                io.Image.Output("references", display_name="references", tooltip="The chosen views, cropped, ordered by yaw (IMAGE batch)."),
                io.Mask.Output("masks", display_name="masks", tooltip=(
                    "Per view: the person mask in the crop when a mask was given, otherwise 1 inside the source "
                    "image and 0 where the crop ran past its border.")),
                io.String.Output("views_json", display_name="views_json", tooltip=(
                    "JSON: per view the source image index, yaw/pitch/roll, detection score, face size, "
                    "sharpness, quality and identity similarity to the other views; images without a face.")),
                io.Image.Output("preview", display_name="preview", tooltip="The chosen views side by side with their angles written under them."),
            ],
        )

    @classmethod
    def execute(cls, images, analyzer, num_views, width, height, margin, upright, if_no_face, pitch_weight,
                mask=None, mask_meaning="subject") -> io.NodeOutput:
        imgs = image_batch_to_uint8(images)
        masks = subject_masks(mask, mask_meaning, len(imgs), imgs[0].shape[:2])
        pbar = comfy.utils.ProgressBar(len(imgs))

        def progress(done: int, total: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, total)

        result = core_views.face_views(imgs, analyzer, num_views=int(num_views), size=(int(width), int(height)),
                                       margin=float(margin), subject_masks=masks, if_no_face=if_no_face,
                                       pitch_weight=float(pitch_weight), upright=bool(upright), progress=progress)
        refs = torch.from_numpy(result.images.astype(np.float32) / 255.0)
        preview = torch.from_numpy(core_views.preview_strip(result.images, result.views).astype(np.float32) / 255.0)
        report = result.report()
        report["analyzer"] = analyzer.describe()
        return io.NodeOutput(refs, torch.from_numpy(result.masks), json.dumps(report, indent=1), preview[None])


NODES = [Mv2IDFaceViews]
