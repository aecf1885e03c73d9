"""Mv2ID Face Views (choose and crop the multi-view references) and Mv2ID Load Face Photos (a folder of
photos of any sizes as one batch, each photo whole and unscaled until Face Views crops it)."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from mv2id_core import views as core_views
from mv2id_core.errors import InputError, MediaError
from mv2id_core.faces.base import as_image_list
from mv2id_core.video_io import IMAGE_EXTENSIONS, list_media
from .sockets import FaceAnalyzer
from .utils import check_image_batch

CATEGORY = "Mv2ID/faces"
NO_FOLDER = "(no folder in input/)"
BACKGROUND_NOTE = "background kept (no mask): the method expects references on white; connect a subject mask"


def _mask_list(mask) -> list[np.ndarray]:
    """MASK [B, H, W] (or [H, W]) -> list of float32 [H, W] (checked and resized by views.subject_masks_for)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise InputError(f"mask must be a MASK [B, H, W], got {type(mask).__name__}"
                         f"{list(mask.shape) if hasattr(mask, 'shape') else ''}.")
    m = mask.detach().float().cpu()
    return list((m[None] if m.ndim == 2 else m).numpy())


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
                "widest over yaw and pitch, and crops each as an upright head-and-shoulders view, ordered from "
                "the person's left profile to the right. The method expects references on a white background: "
                "connect a subject mask (e.g. core Remove Background's MASK) so the background turns white; "
                "without one the crops keep the photos' background (views_json and the preview say so). "
                "Feed 'references' to Mv2ID Reference Conditioning."),
            inputs=[
                io.Image.Input("images", tooltip=(
                    "Photos of ONE person from different angles, or the frames of a video (e.g. from Load "
                    "Video / Get Video Components). Photos of different sizes: load them with Mv2ID Load Face "
                    "Photos, which keeps each photo whole (image batch nodes crop them to the first one's "
                    "shape).")),
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
                io.Combo.Input("if_no_face", options=list(core_views.IF_NO_FACE), default="error", tooltip=(
                    "error: stop and name the images without a face (right for hand-picked photos). skip: "
                    "ignore them (right for video frames).")),
                io.Float.Input("pitch_weight", default=0.5, min=0.0, max=2.0, step=0.05, tooltip=(
                    "How much up/down head angle counts against left/right angle when spreading the views "
                    "(0 = yaw only).")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Subject masks (one per image, or one for all), e.g. core Remove Background's MASK: the "
                    "background becomes white as the method expects. Mv2ID Load Face Photos' mask marks each "
                    "photo's area, so its white padding counts as outside the photo.")),
                io.Combo.Input("mask_meaning", options=list(core_views.MASK_MEANINGS), default="subject", tooltip=(
                    "subject: mask is 1 on the person (Remove Background, Load Face Photos). background: mask is "
                    "1 on the background.")),
            ],
            outputs=[
                io.Image.Output("references", display_name="references",
                                tooltip="The chosen views, cropped, ordered by yaw (IMAGE batch)."),
                io.Mask.Output("masks", display_name="masks", tooltip=(
                    "Per view: the person mask in the crop when a mask was given, otherwise 1 inside the source "
                    "image and 0 where the crop ran past its border.")),
                io.String.Output("views_json", display_name="views_json", tooltip=(
                    "JSON: per view the source image index, yaw/pitch/roll, detection score, face size, "
                    "sharpness, quality and identity similarity to the other views; images without a face; "
                    "whether the background was whitened or kept.")),
                io.Image.Output("preview", display_name="preview", tooltip=(
                    "The chosen views side by side with their angles written under them (and a note when the "
                    "background was kept).")),
            ],
        )

    @classmethod
    def execute(cls, images, analyzer, num_views, width, height, margin, upright, if_no_face, pitch_weight,
                mask=None, mask_meaning="subject") -> io.NodeOutput:
        check_image_batch(images, "images")     # if_no_face and mask_meaning: checked first thing in face_views
        imgs = as_image_list(images.detach().cpu(), "images")
        masks = None if mask is None else _mask_list(mask)
        pbar = comfy.utils.ProgressBar(len(imgs))

        def progress(done: int, total: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, total)

        result = core_views.face_views(imgs, analyzer, num_views=int(num_views), size=(int(width), int(height)),
                                       margin=float(margin), subject_masks=masks, if_no_face=if_no_face,
                                       pitch_weight=float(pitch_weight), upright=bool(upright), progress=progress,
                                       mask_meaning=mask_meaning)
        refs = torch.from_numpy(result.images.astype(np.float32) / 255.0)
        note = BACKGROUND_NOTE if masks is None else ""
        preview = core_views.preview_strip(result.images, result.views, note=note)
        report = result.report()
        report["analyzer"] = analyzer.describe()
        return io.NodeOutput(refs, torch.from_numpy(result.masks), json.dumps(report, indent=1),
                             torch.from_numpy(preview.astype(np.float32) / 255.0)[None])


# ------------------------------------------------------------------------------------ Load Face Photos
DEFAULT_FOLDER = "mv2id_faces"     # the example workflows' folder: input/mv2id_faces/
MAX_FOLDER_DEPTH = 3               # input/ can hold large trees (video frames); look this deep, no deeper


def photo_folders() -> list[str]:
    """Folders under ComfyUI's input directory that hold photos (relative, '/'-separated), the example
    workflows' folder first, the others sorted; hidden ones skipped."""
    root = folder_paths.get_input_directory()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_FOLDER_DEPTH else []
        if depth and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames):
            found.append(rel.replace(os.sep, "/"))
    return sorted(found, key=lambda f: (f != DEFAULT_FOLDER, f))


def load_photo(path, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [h, w, 3], area float32 [h, w]) of one photo: EXIF orientation applied, transparency
    composited on white (the area is the alpha then), scaled down uniformly so its longer side is at most
    max_size (0 = never)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"cannot read the photo {os.path.basename(path)}: {e}") from None
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    im = im.convert("RGBA") if has_alpha else im.convert("RGB")
    if max_size and max(im.size) > max_size:
        s = max_size / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    a = np.asarray(im, np.float32)
    if not has_alpha:
        return a.astype(np.uint8), np.ones(a.shape[:2], np.float32)
    alpha = a[..., 3:] / 255.0
    rgb = a[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), alpha[..., 0]


def photo_batch(photos: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Photos of any sizes -> (IMAGE [N, H, W, 3] float32, MASK [N, H, W] float32) on a canvas of the largest
    width x height: each photo unscaled and uncropped in the centre, white around it, mask = its area."""
    H = max(p.shape[0] for p, _ in photos)
    W = max(p.shape[1] for p, _ in photos)
    images = np.ones((len(photos), H, W, 3), np.float32)
    masks = np.zeros((len(photos), H, W), np.float32)
    for i, (p, m) in enumerate(photos):
        h, w = p.shape[:2]
        y, x = (H - h) // 2, (W - w) // 2
        images[i, y:y + h, x:x + w] = p.astype(np.float32) / 255.0
        masks[i, y:y + h, x:x + w] = m
    return images, masks


class Mv2IDLoadFacePhotos(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        folders = photo_folders() or [NO_FOLDER]
        return io.Schema(
            node_id="Mv2IDLoadFacePhotos",
            display_name="Mv2ID Load Face Photos",
            category=CATEGORY,
            description=(
                "Loads every photo in a folder under ComfyUI's input directory as one batch for Mv2ID Face "
                "Views, keeping each photo whole at its own resolution: each sits unscaled and uncropped in the "
                "centre of a white canvas as large as the largest photo, and the mask marks its area. (Image "
                "batch nodes instead resize and centre-crop every photo to the first one's shape, which can cut "
                "the face out of a portrait next to a landscape photo.) Connect the mask to Face Views' mask, "
                "or run the batch through Remove Background and connect that mask."),
            inputs=[
                io.Combo.Input("folder", options=folders, default=folders[0], tooltip=(
                    "A folder inside ComfyUI's input directory holding the photos of one person (.png, .jpg, "
                    ".jpeg, .webp, .bmp, .tif). Put them in e.g. input/my_person/ and refresh.")),
                io.Int.Input("max_size", default=0, min=0, max=16384, step=8, tooltip=(
                    "Scale photos whose longer side is larger down to this many pixels, keeping their aspect "
                    "ratio (0 = keep every photo at full resolution). Limits memory for large camera photos.")),
            ],
            outputs=[
                io.Image.Output("images", display_name="images", tooltip=(
                    "The photos, one per batch entry, each whole and unscaled in the centre of a white canvas of "
                    "the largest width x height.")),
                io.Mask.Output("mask", display_name="mask", tooltip=(
                    "Per photo: 1 on the photo (its alpha where it has transparency), 0 on the white padding.")),
                io.String.Output("file_names", display_name="file_names",
                                 tooltip="The photos' file names, one per line, in batch order."),
            ],
        )

    @classmethod
    def execute(cls, folder, max_size) -> io.NodeOutput:
        root = os.path.realpath(folder_paths.get_input_directory())
        path = os.path.realpath(os.path.join(root, folder))
        if os.path.commonpath([root, path]) != root or not os.path.isdir(path):
            known = photo_folders()
            raise InputError(f"folder {folder!r} is not a folder in ComfyUI's input directory ({root}); "
                             + (f"choose one of: {', '.join(known[:20])}" + (" ..." if len(known) > 20 else "")
                                if known else "create one there (e.g. input/my_person/), put the photos in it "
                                              "and refresh."))
        files = list_media(path, IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"no photos in input/{folder} (looked for {', '.join(IMAGE_EXTENSIONS)}); put the "
                             f"photos of the person there and refresh.")
        photos = [load_photo(f, int(max_size)) for f in files]
        images, masks = photo_batch(photos)
        return io.NodeOutput(torch.from_numpy(images), torch.from_numpy(masks), "\n".join(f.name for f in files))


NODES = [Mv2IDLoadFacePhotos, Mv2IDFaceViews]
