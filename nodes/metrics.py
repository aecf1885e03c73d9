"""Mv2ID Identity Score: MvRC, FaceSim, pose and copy-paste diagnostics of a generated video."""
from __future__ import annotations

import json
import logging
import math

import torch

import comfy.utils
from comfy_api.latest import io

from ..mv2id_core import metrics as core_metrics
from ..mv2id_core.plot import plot_report, to_image_tensor_array
from .sockets import FaceAnalyzer
from .utils import check_image_batch

log = logging.getLogger("Mv2ID")
CATEGORY = "Mv2ID/evaluation"


class Mv2IDIdentityScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Mv2IDIdentityScore",
            display_name="Mv2ID Identity Score",
            category=CATEGORY,
            description=(
                "Scores how well a generated video keeps the identity of the reference faces. MvRC: mean "
                "cosine similarity of face identity embeddings over sampled frames and all references (the "
                "paper's MvRC-Arc with the insightface backend). FaceSim: the OpenS2V-Eval protocol (32 evenly "
                "sampled frames, largest face, grey-padding retry, max(0, cos), frames without a face skipped). "
                "The JSON report adds the per-frame head pose (yaw/pitch/roll), the fraction of frames with a "
                "face, the identity spread over time and a copy-paste index (1.0 = frames paste the reference "
                "whose pose matches, 0 = no preference for the matching view). The plot shows the similarity to "
                "each reference and the head pose per frame."),
            inputs=[
                io.Image.Input("frames", tooltip=(
                    "The generated video as an IMAGE batch (one image per frame), e.g. from VAE Decode or "
                    "Get Video Components.")),
                io.Image.Input("references", tooltip=(
                    "Reference face images of the identity as an IMAGE batch (the same images you conditioned "
                    "on, or more views of the person). References without a detectable face are skipped and "
                    "listed in the report.")),
                FaceAnalyzer.Input("analyzer", tooltip=(
                    "Face detector + recognition model: connect 'Mv2ID Face Analyzer'. dlib works offline; "
                    "insightface gives the paper's MvRC-Arc.")),
                io.Int.Input("num_frames", default=core_metrics.FACESIM_FRAMES, min=0, max=100000, tooltip=(
                    "Frames sampled evenly over the video (OpenS2V uses 32). 0 scores every frame.")),
                io.Boolean.Input("pad_retry", default=True, tooltip=(
                    "When no face is found, retry on the frame padded with a grey (128) border, as OpenS2V "
                    "does; helps with faces cut by the frame edge.")),
                io.Int.Input("plot_width", default=1024, min=320, max=4096, step=16,
                             tooltip="Width of the plot image in pixels."),
                io.Int.Input("plot_height", default=640, min=240, max=4096, step=16,
                             tooltip="Height of the plot image in pixels."),
            ],
            outputs=[
                io.Float.Output("mvrc", display_name="MvRC", tooltip=(
                    "Mean cosine similarity over sampled frames with a face and all references (NaN when no "
                    "sampled frame shows a face).")),
                io.Float.Output("facesim", display_name="FaceSim", tooltip=(
                    "OpenS2V FaceSim: mean over frames with a face of max(0, cos), averaged over references "
                    "(0 when no frame shows a face).")),
                io.String.Output("report", display_name="report", tooltip="The full report as JSON: per-frame pose and similarities, "
                                 "face fraction, identity spread, copy-paste index, settings."),
                io.Image.Output("plot", display_name="plot", tooltip="Similarity per frame for each reference and the head-pose "
                                "trajectory; connect to Preview Image or Save Image."),
            ],
        )

    @classmethod
    def execute(cls, frames, references, analyzer, num_frames, pad_retry, plot_width, plot_height) -> io.NodeOutput:
        check_image_batch(frames, "frames")
        check_image_batch(references, "references")
        pbar = comfy.utils.ProgressBar(references.shape[0] + min(frames.shape[0], num_frames or frames.shape[0]))
        report = core_metrics.score_video(
            frames.detach().cpu(), references.detach().cpu(), analyzer, num_frames=int(num_frames),
            pad_retry=bool(pad_retry), progress=lambda done, total: pbar.update_absolute(done, total))
        if report["frames_with_face"] == 0:
            log.warning("[Mv2ID] Identity Score: no face in any of the %d sampled frames; MvRC is NaN.",
                        report["sampled_frames"])
        plot = torch.from_numpy(to_image_tensor_array(plot_report(report, int(plot_width), int(plot_height))))
        mvrc = report["mvrc"] if report["mvrc"] is not None else math.nan
        return io.NodeOutput(float(mvrc), float(report["facesim"]), json.dumps(report, indent=1), plot)


NODES = [Mv2IDIdentityScore]
