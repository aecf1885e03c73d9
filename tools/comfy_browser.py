"""Drive the real ComfyUI web page in headless Chromium (Debian's chromium, through Playwright).

Used by the browser tests and by `tools/build_workflows.py --thumbnails`. The page is the one
the running server serves (the comfyui-frontend-package it was installed with); nothing is
downloaded. A workflow is loaded the way a person drops a file on the page: through the
page's own file input.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]

# node types on the canvas that the frontend does not know (what its "missing nodes" dialog lists)
GRAPH_STATE = """() => {
  const types = LiteGraph.registered_node_types;
  const missing = app.graph.nodes.filter(n => !(n.type in types)).map(n => n.type);
  return {count: app.graph.nodes.length, missing, links: Object.keys(app.graph.links || {}).length};
}"""


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def open_page(server, width: int = 1920, height: int = 1080):
    """A Playwright page with the server's ComfyUI loaded; page.errors collects page errors."""
    from playwright.sync_api import sync_playwright

    server.post("/settings/Comfy.TutorialCompleted", True)      # no first-run template dialog
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            yield page
        finally:
            browser.close()


def load_workflow(page, path: Path, node_count: int, settle: float = 1.0) -> dict:
    """Load a UI-format workflow file through the page's file input; returns GRAPH_STATE."""
    page.set_input_files("#comfy-file-input", str(path))
    page.wait_for_function(f"app.graph.nodes.length === {int(node_count)}", timeout=30_000)
    time.sleep(settle)   # let the canvas draw
    return page.evaluate(GRAPH_STATE)


def dismiss_dialogs(page) -> None:
    """Close any dialog (e.g. the missing-nodes dialog) so the canvas is visible."""
    for _ in range(3):
        if page.locator(".p-dialog").count() == 0:
            return
        page.keyboard.press("Escape")
        time.sleep(0.3)


def close_banners(page) -> None:
    """Close the frontend's announcement banner (if any) so it does not cover the canvas."""
    page.evaluate("""() => {
      const t = [...document.querySelectorAll('span,div,p')].find(
        e => e.childElementCount === 0 && /^Introducing /.test(e.textContent.trim()));
      let p = t;
      while (p && p.querySelectorAll('button').length < 2) p = p.parentElement;
      if (p) { const bs = p.querySelectorAll('button'); bs[bs.length - 1].click(); }
    }""")


def fit_graph(page, margin: int = 70) -> float:
    """Zoom and pan so every node and group is visible; returns the canvas scale."""
    close_banners(page)
    scale = page.evaluate("""(margin) => {
      let x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
      const grow = (x, y, w, h) => { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h); };
      for (const g of app.graph.groups || app.graph._groups || []) { const b = g._bounding || g.bounding; grow(b[0], b[1], b[2], b[3]); }
      for (const n of app.graph.nodes) grow(n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30);
      const c = app.canvas.canvas, r = window.devicePixelRatio || 1;
      const W = c.width / r, H = c.height / r;
      const s = Math.min(1.0, (W - 2 * margin) / (x1 - x0), (H - 2 * margin - 60) / (y1 - y0));
      app.canvas.ds.scale = s;
      app.canvas.ds.offset = [(W - (x1 - x0) * s) / 2 / s - x0, (H + 60 - (y1 - y0) * s) / 2 / s - y0];
      app.graph.setDirtyCanvas(true, true);
      return s;
    }""", margin)
    time.sleep(1.0)
    return scale


def queue_from_page(page, timeout: float = 30.0) -> dict:
    """Press the Queue button like a person; returns the server's JSON answer to that POST /prompt."""
    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST",
                              timeout=timeout * 1000) as resp:
        page.click('[data-testid="queue-button"]')
    r = resp.value
    body = r.json()
    body["_status"] = r.status
    return body


def screenshot_jpeg(page, path: Path, width: int = 768, quality: int = 85) -> None:
    """The visible page as a JPEG `width` pixels wide (template-browser thumbnails are .jpg)."""
    import io

    from PIL import Image

    png = page.screenshot()
    im = Image.open(io.BytesIO(png)).convert("RGB")
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=quality, optimize=True)
