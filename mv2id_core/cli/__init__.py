"""Command-line tools of the Mv2ID core library (no ComfyUI needed). `eval`: identity metrics."""
