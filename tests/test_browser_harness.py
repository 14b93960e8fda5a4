"""The headless-Chromium harness (tests/browser.py) on small hand-written pages."""

from __future__ import annotations

import http.server
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import tests.browser
from tests.browser import (
    _decode_png_zlib,
    decode_png,
    nonblank_fraction,
    open_page,
    require_chromium,
)


def write(tmp_path: Path, body: str, head: str = "", name: str = "page.html") -> Path:
    path = tmp_path / name
    path.write_text(f"<!doctype html><html><head><meta charset=utf-8>{head}</head><body>{body}</body></html>",
                    encoding="utf-8")
    return path


def png_bytes(pixels: np.ndarray, filters: list[int] | None = None) -> bytes:
    """A minimal 8-bit PNG of `pixels` (h, w, 3|4) with the given per-row filter types (cycled)."""
    h, w, ch = pixels.shape
    filters = filters or [0]
    bpp, rows, prev = ch, [], np.zeros(w * ch, dtype=np.int32)
    for y in range(h):
        kind = filters[y % len(filters)]
        cur = pixels[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(cur)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) // 2
        else:
            est = left + prev - upleft
            pa, pb, pc = np.abs(est - left), np.abs(est - prev), np.abs(est - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour = {3: 2, 4: 6}[ch]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


SVG_PAGE = """<h1>Marker-7f3a report</h1>
<svg id="chart" width="240" height="160" viewBox="0 0 240 160" xmlns="http://www.w3.org/2000/svg">
  <rect x="0" y="0" width="240" height="160" fill="#1f4e79"/>
  <circle cx="120" cy="80" r="50" fill="#f5a623"/>
</svg>"""


@pytest.mark.slow
def test_clean_svg_page(tmp_path: Path) -> None:
    require_chromium()
    report = open_page(write(tmp_path, SVG_PAGE, "<title>Clean</title>"), ["#chart", "h1"], width=800, height=600)
    assert report.console_errors == []
    assert report.requests == []
    assert report.title == "Clean"
    assert "Marker-7f3a report" in report.text
    box = report.boxes["#chart"]
    assert box is not None
    assert box[2:] == (240.0, 160.0)
    assert report.boxes["h1"] is not None and report.boxes["h1"][1] < box[1]  # heading above the chart
    assert report.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    assert decode_png(report.screenshot).shape[:2] == (600, 800)
    assert nonblank_fraction(report.screenshot, box) > 0.95  # the SVG fills its box
    assert nonblank_fraction(report.screenshot) < 0.2  # the rest of the page is background


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 that records the paths asked of it (no DNS involved, so only the
    harness's request blocking keeps a page from reaching it)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(png_bytes(np.zeros((2, 2, 3), np.uint8)))

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_external_resources_are_recorded_and_blocked(tmp_path: Path, local_server,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    require_chromium()
    base, hits = local_server
    # Without the host-resolver flag (which would also stop 127.0.0.1), so the request routing alone
    # must keep the page off the server.
    args = tuple(a for a in tests.browser.CHROMIUM_ARGS if not a.startswith("--host-resolver-rules"))
    assert len(args) == len(tests.browser.CHROMIUM_ARGS) - 1
    monkeypatch.setattr(tests.browser, "CHROMIUM_ARGS", args)
    page = write(tmp_path, f'<img src="http://example.invalid/x.png"><img src="{base}/local.png"><p>text</p>'
                           '<script>fetch("https://api.example.invalid/data.json").catch(() => {});'
                           'new WebSocket("wss://ws.example.invalid/live")</script>',
                 '<link rel=stylesheet href="https://cdn.example.invalid/a.css">')
    start = time.monotonic()
    report = open_page(page)
    assert time.monotonic() - start < 15  # blocked at once, never waits on DNS or a connection
    for url in ("http://example.invalid/x.png", "https://cdn.example.invalid/a.css",
                "https://api.example.invalid/data.json", "wss://ws.example.invalid/live", f"{base}/local.png"):
        assert url in report.requests
        assert any(url in e for e in report.console_errors), report.console_errors  # a failed load
    assert hits == []  # recorded, but never sent
    assert page.as_uri() not in report.requests  # the document itself is not a subresource


@pytest.mark.slow
def test_local_subresources_recorded_data_urls_not(tmp_path: Path) -> None:
    require_chromium()
    (tmp_path / "dot.png").write_bytes(png_bytes(np.zeros((4, 4, 3), np.uint8)))
    dot = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    blob = 'fetch(URL.createObjectURL(new Blob(["x"]))).then(r => r.text())'
    report = open_page(write(tmp_path, f'<img src="dot.png"><img src="{dot}"><script>{blob}</script>'))
    assert sorted(report.requests)[1:] == [(tmp_path / "dot.png").as_uri()]
    assert sorted(report.requests)[0].startswith("blob:null/")
    assert report.console_errors == []


@pytest.mark.slow
def test_console_error_is_reported(tmp_path: Path) -> None:
    require_chromium()
    report = open_page(write(tmp_path, '<p>ok</p><script>console.log("fine"); console.error("boom")</script>'))
    assert report.console_errors == ["boom"]


@pytest.mark.slow
def test_uncaught_exception_is_reported(tmp_path: Path) -> None:
    require_chromium()
    report = open_page(write(tmp_path, '<p>ok</p><script>throw new Error("x-marks-the-spot")</script>'))
    assert len(report.console_errors) == 1
    assert "x-marks-the-spot" in report.console_errors[0]


@pytest.mark.slow
def test_hidden_elements_have_no_box(tmp_path: Path) -> None:
    require_chromium()
    body = """<div id="shown" style="width:50px;height:40px;background:#000"></div>
<div id="gone" style="display:none;width:50px;height:40px;background:#000"></div>
<div style="display:none"><div id="inside-gone" style="width:50px;height:40px;background:#000"></div></div>
<div id="invisible" style="visibility:hidden;width:50px;height:40px;background:#000"></div>
<div id="empty"></div>"""
    report = open_page(write(tmp_path, body), ["#shown", "#gone", "#inside-gone", "#invisible", "#empty", "#absent"])
    assert report.boxes["#shown"] is not None and report.boxes["#shown"][2:] == (50.0, 40.0)
    for sel in ("#gone", "#inside-gone", "#invisible", "#empty", "#absent"):
        assert report.boxes[sel] is None, sel


@pytest.mark.slow
def test_white_page_is_blank(tmp_path: Path) -> None:
    require_chromium()
    white = open_page(write(tmp_path, '<div id="gone" style="display:none;width:99px;height:99px;background:#000">'
                                      "</div>", "<style>html,body{background:#fff;margin:0}</style>"))
    assert white.text == ""
    assert (decode_png(white.screenshot)[..., :3] == 255).all()
    assert nonblank_fraction(white.screenshot) < 0.001


@pytest.mark.slow
def test_hanging_page_times_out(tmp_path: Path) -> None:
    require_chromium()
    # The script spins after load, so the renderer never answers again: Playwright's own timeouts do
    # not cover the evaluations that follow, only the harness's watchdog ends the call.
    page = write(tmp_path, "<p>spin</p><script>addEventListener('load', () => setTimeout(() => { while (true) {} }, 0))"
                           "</script>")
    outcome: list[BaseException | None] = []

    def call() -> None:  # in a thread, so that a harness that hangs fails the test instead of hanging it
        try:
            open_page(page, timeout_s=3)
            outcome.append(None)
        except BaseException as e:  # reported below
            outcome.append(e)

    start = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "open_page did not return 17 s after its timeout"
    assert isinstance(outcome[0], TimeoutError), outcome
    assert "not loaded and settled within 3 s" in str(outcome[0])
    assert time.monotonic() - start < 10


def test_nonblank_fraction_regions() -> None:
    pixels = np.full((100, 200, 3), 255, np.uint8)
    pixels[:, :50] = 0  # a quarter black; white is the dominant colour
    pixels[0, 199] = 250  # within tolerance of white
    png = png_bytes(pixels)
    assert nonblank_fraction(png) == pytest.approx(0.25)
    assert nonblank_fraction(png, (0, 0, 50, 100)) == 1.0
    assert nonblank_fraction(png, (100, 0, 100, 100)) == 0.0
    assert nonblank_fraction(png, (25, 0, 50, 100)) == pytest.approx(0.5)
    assert nonblank_fraction(png, (500, 500, 10, 10)) == 0.0  # outside the image


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_without_pillow(channels: int) -> None:
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(37), np.arange(23))[:, :, None] * np.arange(1, channels + 1)
    pixels = ((ramp + rng.integers(0, 9, ramp.shape)) % 256).astype(np.uint8)
    png = png_bytes(pixels, filters=[0, 1, 2, 3, 4])
    assert np.array_equal(_decode_png_zlib(png), pixels)
    assert np.array_equal(decode_png(png), pixels)
