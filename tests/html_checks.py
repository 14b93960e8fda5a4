"""Parse HTML reports and check they are inert: known tags only, no event handlers, nothing fetched."""

from __future__ import annotations

from html.parser import HTMLParser

ALLOWED_TAGS = {  # what a comparison report may contain
    "html", "head", "meta", "title", "style", "body", "main", "header", "section", "h1", "h2", "h3", "p", "span",
    "div", "code", "pre", "br", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "details", "summary",
    "figure", "figcaption",
    # SVG written by matplotlib
    "svg", "defs", "g", "path", "use", "clippath", "rect", "text", "style", "tspan", "polyline", "line", "circle",
    "image",  # the cells of a heatmap over 24 layers, as an inline PNG (data: URL; the CSP allows no other image)
}


class Markup(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Markup:
    """The tags and text of `html`, parsed to the end."""
    m = Markup()
    m.feed(html)
    m.close()
    return m


def assert_inert(html: str) -> Markup:
    """Only report markup: known tags, no event handlers, no links or sources leaving the page."""
    m = parse(html)
    assert {t for t, _ in m.tags} <= ALLOWED_TAGS, {t for t, _ in m.tags} - ALLOWED_TAGS
    for tag, attrs in m.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "xlink:href", "src", "action", "formaction"):
                inline_png = tag == "image" and (value or "").startswith("data:image/png;base64,")
                assert (value or "").startswith("#") or inline_png, (tag, name, value)
            assert "javascript:" not in (value or "").lower()
    return m
