"""Open a local, self-contained HTML file in headless Chromium and report what happened.

Used by tests of HTML output: was anything fetched from outside the file, did the page log errors,
what does it say and draw. Drives the system Chromium (Debian's /usr/bin/chromium, or
$PROVENANCE_CHROMIUM) through Python Playwright; Playwright's own browser downloads are never used.

Every request other than file: and data: is aborted (and recorded), and host names resolve to
nothing, so a page never waits on the network and never reaches it, with or without one.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Debian's /usr/bin/chromium is a shell launcher that sources /etc/chromium.d (extension and GPU
# flags, and a /dev/shm check that errors out in containers); the binary it wraps runs without them.
_DEBIAN_BINARY = "/usr/lib/chromium/chromium"

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # root in a container: the setuid/namespace sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",  # small /dev/shm in containers crashes renderers
    "--host-resolver-rules=MAP * ~NOTFOUND",  # belt and braces: no DNS even if a request slips past the route
)

_LOCAL_SCHEMES = ("file:", "data:")


@dataclass
class PageReport:
    console_errors: list[str]  # console.error messages, uncaught exceptions, failed loads
    requests: list[str]  # URLs the page asked for, except the top-level document and data: URLs
    screenshot: bytes  # full-page PNG
    title: str
    text: str  # document.body.innerText
    boxes: dict[str, tuple[float, float, float, float] | None] = field(default_factory=dict)


def chromium_path() -> str | None:
    """$PROVENANCE_CHROMIUM when set (None if it is not an executable file), else the system Chromium."""
    override = os.environ.get("PROVENANCE_CHROMIUM")
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    if os.path.isfile(DEBIAN_CHROMIUM) and os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _executable(path: str) -> str:
    """The binary to launch for `path`: Debian's launcher script is bypassed for the binary it execs."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return path
    if head.startswith(b"#!") and b"Chromium launcher" in head and os.access(_DEBIAN_BINARY, os.X_OK):
        return _DEBIAN_BINARY
    return path


def require_chromium() -> str:
    """The Chromium path, for a test. Skips without a browser (or without Playwright), but fails
    instead when PROVENANCE_REQUIRE_CHROMIUM=1 (CI), so a missing browser is never a silent skip there."""
    import pytest

    required = os.environ.get("PROVENANCE_REQUIRE_CHROMIUM") == "1"
    path = chromium_path()
    problem = None
    if path is None:
        where = os.environ.get("PROVENANCE_CHROMIUM") or DEBIAN_CHROMIUM
        problem = f"no Chromium at {where} (apt-get install chromium, or set PROVENANCE_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Python playwright is not installed (pip install -e '.[test]')"
    if problem:
        if required:
            pytest.fail(f"PROVENANCE_REQUIRE_CHROMIUM=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    return path


def _kill_browser(profile: str, killed: threading.Event | None) -> None:
    """SIGKILL the Chromium started on `profile` (a fresh temporary directory, so only ours matches);
    its renderers and helpers exit with it."""
    flag = f"--user-data-dir={profile}".encode()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():  # Linux; elsewhere no watchdog
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if flag not in f.read().split(b"\0"):
                    continue
            if killed is not None:
                killed.set()
            os.kill(int(pid), signal.SIGKILL)
        except OSError:  # gone already, or not ours to read
            pass


_BOXES_JS = """selectors => selectors.map(sel => {
    let el;
    try { el = document.querySelector(sel); } catch (e) { return "invalid"; }
    if (!el) return null;
    if (!el.checkVisibility({visibilityProperty: true})) return null;
    const r = el.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0)) return null;
    return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height];
})"""

# Settle after load: web fonts, then two frames so layout and paint are done before the screenshot.
_SETTLE_JS = """async () => {
    if (document.fonts) await document.fonts.ready;
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
}"""


def open_page(path: Path, selectors: Sequence[str] = (), *, width: int = 1280, height: int = 900,
              timeout_s: float = 30) -> PageReport:
    """Load `path` in a fresh headless Chromium (new temporary profile), wait for load and network
    idle, and report console errors, requests, a full-page screenshot, title, text and the boxes of
    `selectors` (page coordinates, CSS px = screenshot px). Raises TimeoutError when the page does not
    settle within `timeout_s` (for the whole call, browser start included), FileNotFoundError for a
    missing file, RuntimeError without a browser. Not callable from inside a running asyncio loop."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    browser = chromium_path()
    if browser is None:
        raise RuntimeError("no Chromium found (install chromium or set PROVENANCE_CHROMIUM)")
    url = path.as_uri()
    selectors = list(selectors)
    deadline = time.monotonic() + timeout_s
    not_settled = f"{path.name}: not loaded and settled within {timeout_s:g} s"

    def remaining_ms() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(not_settled)
        return left * 1000

    errors: list[str] = []
    requests: list[str] = []

    def on_request(req) -> None:
        if req.url.startswith("data:"):
            return
        if req.url == url and req.is_navigation_request() and req.frame.parent_frame is None:
            return  # the top-level document itself
        requests.append(req.url)

    def on_cdp_request(event: dict) -> None:
        # Playwright does not report blob: fetches; Chromium's Network domain does (main page only).
        if event["request"]["url"].startswith("blob:"):
            requests.append(event["request"]["url"])

    def on_console(msg) -> None:
        if msg.type != "error":
            return
        text = msg.text
        where = (msg.location or {}).get("url")
        if text.startswith("Failed to load resource") and where:
            text = f"{text} ({where})"
        errors.append(text)

    def on_pageerror(err) -> None:
        errors.append(f"uncaught {err.name or 'exception'}: {err.message}")

    def on_requestfailed(req) -> None:
        errors.append(f"failed to load {req.url}: {req.failure}")

    def on_websocket_route(ws) -> None:
        requests.append(ws.url)
        errors.append(f"failed to load {ws.url}: WebSocket blocked")
        ws.close()

    def on_websocket(ws) -> None:  # sockets the route does not see (workers)
        requests.append(ws.url)

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="provenance-chromium-",
                                                              ignore_cleanup_errors=True) as profile:
        # Playwright's timeouts do not cover evaluate() or title(), which wait forever on a renderer
        # stuck in page script; past the deadline the watchdog kills the browser, which ends them.
        killed = threading.Event()
        watchdog = threading.Timer(deadline - time.monotonic() + 0.25, _kill_browser, (profile, killed))
        watchdog.daemon = True
        watchdog.start()
        context = None
        try:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=_executable(browser), headless=True, args=list(CHROMIUM_ARGS),
                viewport={"width": width, "height": height}, device_scale_factor=1, locale="en-US",
                timezone_id="UTC", color_scheme="light", reduced_motion="reduce", service_workers="block",
                timeout=remaining_ms())
            context.route(lambda u: not u.startswith(_LOCAL_SCHEMES), lambda route: route.abort())
            context.route_web_socket(lambda u: True, on_websocket_route)
            context.on("request", on_request)
            context.on("requestfailed", on_requestfailed)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", on_console)
            page.on("pageerror", on_pageerror)
            page.on("websocket", on_websocket)
            cdp = context.new_cdp_session(page)
            cdp.on("Network.requestWillBeSent", on_cdp_request)
            cdp.send("Network.enable")
            page.goto(url, wait_until="load", timeout=remaining_ms())
            page.wait_for_load_state("networkidle", timeout=remaining_ms())
            page.evaluate(_SETTLE_JS)
            title = page.title()
            text = page.evaluate("() => document.body ? document.body.innerText : ''")
            found = page.evaluate(_BOXES_JS, selectors)
            screenshot = page.screenshot(full_page=True, type="png", animations="disabled", caret="hide",
                                         timeout=remaining_ms())
        except PlaywrightError as e:
            if killed.is_set() or isinstance(e, PlaywrightTimeout):
                raise TimeoutError(not_settled) from e
            raise
        finally:
            if context is not None:
                try:
                    context.close()  # still under the watchdog
                except PlaywrightError:
                    pass  # already gone (killed, or crashed: the error above says which)
            watchdog.cancel()
            _kill_browser(profile, None)  # nothing is left running on the profile being deleted

    invalid = [sel for sel, box in zip(selectors, found) if box == "invalid"]
    if invalid:
        raise ValueError(f"invalid CSS selector(s): {invalid!r}")
    boxes = {sel: (tuple(float(v) for v in box) if box else None) for sel, box in zip(selectors, found)}
    return PageReport(console_errors=errors, requests=requests, screenshot=screenshot, title=title,
                      text=text, boxes=boxes)


# --- Screenshot pixels -------------------------------------------------------------------------

def decode_png(png: bytes) -> np.ndarray:
    """An (height, width, channels) uint8 array: Pillow when installed, else `_decode_png_zlib`."""
    try:
        from PIL import Image
    except ImportError:
        return _decode_png_zlib(png)
    import io

    with Image.open(io.BytesIO(png)) as im:
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA")
        arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel (palette not supported)


def _decode_png_zlib(png: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced greyscale/RGB(A) PNG (what Chromium writes) with zlib alone."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = _CHANNELS[colour]
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = raw[:height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint64).astype(np.uint8).reshape(stride)
        elif kind == 2:  # Up
            cur = line + prev
        elif kind in (3, 4):  # Average, Paeth: sequential along the row
            p, f, c = prev.tolist(), line.tolist(), [0] * stride
            for i in range(stride):
                a = c[i - bpp] if i >= bpp else 0
                b = p[i]
                if kind == 3:
                    c[i] = (f[i] + ((a + b) >> 1)) & 0xFF
                else:
                    cc = p[i - bpp] if i >= bpp else 0
                    est = a + b - cc
                    pa, pb, pc = abs(est - a), abs(est - b), abs(est - cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                    c[i] = (f[i] + pred) & 0xFF
            cur = np.array(c, dtype=np.uint8)
        else:
            raise ValueError(f"bad PNG filter type {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


def nonblank_fraction(png: bytes, region: tuple[float, float, float, float] | None = None, *,
                      tolerance: int = 16) -> float:
    """Share of pixels in `region` (x, y, w, h in image pixels; whole image when None) whose colour
    differs from the image's most common colour (taken as the page background) by more than
    `tolerance` in some channel. 0.0 for a blank area or an empty region."""
    img = decode_png(png).astype(np.int16)
    h, w, ch = img.shape
    packed = np.zeros((h, w), dtype=np.int64)  # one integer per colour, for a fast 1-D count
    for c in range(ch):
        packed = (packed << 8) | img[:, :, c]
    colours, counts = np.unique(packed, return_counts=True)
    top = int(colours[counts.argmax()])
    background = np.array([(top >> (8 * (ch - 1 - c))) & 0xFF for c in range(ch)], dtype=np.int16)
    if region is not None:
        x, y, rw, rh = region
        x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        x1, y1 = min(w, int(np.ceil(x + rw))), min(h, int(np.ceil(y + rh)))
        if x1 <= x0 or y1 <= y0:
            return 0.0
        img = img[y0:y1, x0:x1]
    differs = (np.abs(img - background) > tolerance).any(axis=2)
    return float(differs.mean())
