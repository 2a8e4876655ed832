#!/usr/bin/env python
"""Publish the asv dashboard, serve it on localhost and screenshot it in headless chromium.

Not run by CI: it checks by eye that the published dashboard renders its graphs. Needs asv (the
``bench`` extra), saved results in ``asv_benchmarks/.asv/results`` (see the README's "Performance
dashboard") and a chromium (Debian: ``apt-get install chromium``).

usage: python scripts/dashboard_screenshot.py [--out-dir bench_out] [--no-publish]
                                              [--page training.TrainSpeedup.track_speedup ...]

Writes ``<out-dir>/dashboard-index.png`` (the grid of all benchmarks) and one
``<out-dir>/dashboard-<page>.png`` per graph page.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
ASV_DIR = os.path.join(ROOT, "asv_benchmarks")
HTML_DIR = os.path.join(ASV_DIR, ".asv", "html")
DEFAULT_PAGES = ("training.TrainSpeedup.track_speedup", "training.Train.time_train", "kernels.Kernels.time_forward")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


def publish():
    """``asv publish`` with the asv of this Python (falls back to an ``asv`` on PATH)."""
    cmd = [sys.executable, "-m", "asv", "publish"]
    if subprocess.run([sys.executable, "-c", "import asv"], capture_output=True).returncode != 0:
        asv = shutil.which("asv")
        if asv is None:
            sys.exit("asv is not installed (pip install 'fastmlp[bench]')")
        cmd = [asv, "publish"]
    subprocess.run(cmd, cwd=ASV_DIR, check=True)


def serve(directory):
    """Serve ``directory`` on a free localhost port in a daemon thread; returns (server, base url)."""
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 -- the base class's name
        pass


def find_chromium(explicit=None):
    for name in (explicit, "chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"):
        if name and (path := shutil.which(name)):
            return path
    sys.exit("no chromium found: apt-get install chromium (or pass --chromium PATH)")


def screenshot(chromium, url, out, size=(1400, 1000), budget_ms=15000):
    """Load ``url`` in a fresh headless profile and save a PNG of the window to ``out``."""
    with tempfile.TemporaryDirectory(prefix="fastmlp-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}", url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not os.path.exists(out):
        sys.exit(f"chromium wrote no screenshot for {url}:\n{r.stderr[-2000:]}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench_out"))
    ap.add_argument("--no-publish", action="store_true", help="use the html already in asv_benchmarks/.asv/html")
    ap.add_argument("--page", action="append", help=f"benchmark graph to capture (default: {DEFAULT_PAGES})")
    ap.add_argument("--chromium", default=None)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args(argv)
    chromium = find_chromium(a.chromium)
    if not a.no_publish:
        publish()
    if not os.path.exists(os.path.join(HTML_DIR, "index.html")):
        sys.exit(f"nothing published in {HTML_DIR}: run asv (see the README) and asv publish first")
    os.makedirs(a.out_dir, exist_ok=True)
    server, base = serve(HTML_DIR)
    try:
        shots = [("index", base + "index.html")]
        shots += [(page, f"{base}index.html#{page}") for page in (a.page or DEFAULT_PAGES)]
        for name, url in shots:
            out = os.path.join(a.out_dir, f"dashboard-{name}.png")
            screenshot(chromium, url, out, size=(a.width, a.height))
            print(f"{url} -> {out}")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
