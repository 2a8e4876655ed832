#!/usr/bin/env python
"""Publish the asv dashboard, serve it on localhost and screenshot it in headless chromium.

Not run by CI: it checks by eye that the published dashboard renders its graphs. Needs asv (the
``bench`` extra), saved results in ``asv_benchmarks/.asv/results`` (see the README's "Performance
dashboard") and a chromium (Debian: ``apt-get install chromium``).

usage: python scripts/dashboard_screenshot.py [--out-dir bench_out] [--no-publish]
                                              [--page training.TrainSpeedup.track_speedup ...]

Writes ``<out-dir>/dashboard-index.png`` (the grid of all benchmarks) and one
``<out-dir>/dashboard-<page>.png`` per graph page.

asv 0.6's pages load jQuery, flot, bootstrap and friends from public CDNs and show only an error page
when those cannot be reached. So that the screenshot also works offline (and shows exactly what a
visitor sees), the script serves a copy of the published html whose CDN tags point at local copies of
the same libraries, fetched once with ``npm pack`` from the npm registry into ``<out-dir>/.asv-vendor``.
``--online`` serves the published html unchanged instead.
"""

from __future__ import annotations

import argparse
import functools
import glob
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
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


# asv 0.6's CDN assets -> (npm package, file in the package). Flot's npm package ships the unminified
# sources of the same release; stupidtable 1.0.1 was published on npm as stupid-table-plugin.
VENDOR = {
    "jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "jquery.flot.time.min.js": ("flot@0.8.3", "jquery.flot.time.js"),
    "jquery.flot.selection.min.js": ("flot@0.8.3", "jquery.flot.selection.js"),
    "jquery.flot.categories.min.js": ("flot@0.8.3", "jquery.flot.categories.js"),
    "jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "stupidtable.min.js": ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "md5.min.js": ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "bootstrap.min.js": ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "bootstrap.min.css": ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}
_CDN_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https://[^"]+)"[^>]*>')


def _npm_file(spec, member, cache):
    """Path of ``member`` of npm package ``spec``, fetched with ``npm pack`` into ``cache`` once."""
    name, version = spec.rsplit("@", 1)
    root = os.path.join(cache, f"{name}-{version}")
    if not os.path.isdir(root):
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("the dashboard's libraries come from CDNs; without them use --online, or install npm")
        os.makedirs(cache, exist_ok=True)
        before = set(glob.glob(os.path.join(cache, "*.tgz")))
        subprocess.run([npm, "pack", "--silent", spec, "--pack-destination", cache], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        (tgz,) = set(glob.glob(os.path.join(cache, "*.tgz"))) - before
        with tarfile.open(tgz) as tar:
            tar.extractall(root, filter="data")
        os.remove(tgz)
    return os.path.join(root, "package", member)


def vendored_copy(html_dir, dest, cache):
    """Copy ``html_dir`` to ``dest`` with every CDN script/stylesheet of its pages served from ``vendor/``."""
    shutil.copytree(html_dir, dest)
    vendor = os.path.join(dest, "vendor")
    os.makedirs(vendor)

    def local(match):
        tag, url = match.group(1), match.group(2)
        base = url.rsplit("/", 1)[1]
        if base not in VENDOR:
            print(f"warning: no local copy of {url}; the page may not render", file=sys.stderr)
            return match.group(0)
        spec, member = VENDOR[base]
        src = _npm_file(spec, member, cache)
        shutil.copy(src, os.path.join(vendor, base))
        if base == "bootstrap.min.css":  # its icon font, referenced as ../fonts/
            fonts = os.path.join(os.path.dirname(os.path.dirname(src)), "fonts")
            if os.path.isdir(fonts) and not os.path.isdir(os.path.join(dest, "fonts")):
                shutil.copytree(fonts, os.path.join(dest, "fonts"))
        if tag == "link":
            return f'<link rel="stylesheet" href="vendor/{base}">'
        return f'<script src="vendor/{base}" onerror="js_load_failure()">'

    for page in glob.glob(os.path.join(dest, "*.html")):
        with open(page, encoding="utf-8") as fh:
            text = fh.read()
        with open(page, "w", encoding="utf-8") as fh:
            fh.write(_CDN_TAG.sub(local, text))
    return dest


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
    ap.add_argument("--online", action="store_true", help="serve the published html as is (CDN libraries)")
    a = ap.parse_args(argv)
    chromium = find_chromium(a.chromium)
    if not a.no_publish:
        publish()
    if not os.path.exists(os.path.join(HTML_DIR, "index.html")):
        sys.exit(f"nothing published in {HTML_DIR}: run asv (see the README) and asv publish first")
    os.makedirs(a.out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="fastmlp-dashboard-")
    site = HTML_DIR if a.online else vendored_copy(HTML_DIR, os.path.join(tmp, "html"),
                                                   os.path.join(a.out_dir, ".asv-vendor"))
    server, base = serve(site)
    try:
        shots = [("index", base + "index.html")]
        shots += [(page, f"{base}index.html#{page}") for page in (a.page or DEFAULT_PAGES)]
        for name, url in shots:
            out = os.path.join(a.out_dir, f"dashboard-{name}.png")
            screenshot(chromium, url, out, size=(a.width, a.height))
            print(f"{url} -> {out}")
    finally:
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
