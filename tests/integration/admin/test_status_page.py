"""The status page in a real browser: headless Debian Chromium loads it from a running
proxy, takes a screenshot and dumps the DOM; both are checked for what a person sees."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import trio

from proxy.demo import GREETER, INVENTORY
from tests.integration.admin.png import read_png
from tests.integration.admin.stack import FEATURE, admin_stack

CHROMIUM = "/usr/bin/chromium"
WINDOW = (900, 640)
BROWSER_TIMEOUT_S = 60.0
# why: a cold headless Chromium starts in 1-3 s on this machine; 60 s means it hung.
OWN_GREEN = (0xD3, 0xF5, 0xDC)
FALLBACK_GREY = (0xEA, 0xEE, 0xF2)
NO_ROUTE_RED = (0xFF, 0xD7, 0xD5)
MIN_CELL_PIXELS = 200
# why: one matrix cell is ~100 x 25 px; fewer pixels of its colour means it is not drawn.

ROUTES = """
environments:
  feature-1: {}
  locked: {strict: true}
"""


class Cells(HTMLParser):
    """Collects the matrix: (service, env) -> (css class, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], tuple[str, str]] = {}
        self.text: list[str] = []
        self._service = ""
        self._cell: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-service"):
            self._service = a["data-service"] or ""
        if tag == "td" and a.get("data-env"):
            self._cell = (a.get("data-env") or "", a.get("class") or "")
            self.cells[(self._service, self._cell[0])] = (self._cell[1], "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            env, css = self._cell
            key = (self._service, env)
            self.cells[key] = (css, self.cells[key][1] + data)


def chromium_args(profile: Path) -> list[str]:
    if shutil.which(CHROMIUM) is None:
        raise AssertionError(
            f"{CHROMIUM} is missing: install Debian's chromium (tests/setup_deps.sh does)"
        )
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]


async def test_status_page_in_headless_chromium(tmp_path: Path) -> None:
    async with admin_stack(tmp_path, ROUTES) as stack:
        assert (await stack.dubbo_call(tag=FEATURE)).ok
        url = f"http://{stack.admin}/"
        shot = tmp_path / "status.png"
        with trio.fail_after(BROWSER_TIMEOUT_S):
            dom = await trio.run_process(
                [*chromium_args(tmp_path / "profile-dom"), "--dump-dom", url],
                capture_stdout=True,
                capture_stderr=True,
            )
            await trio.run_process(
                [*chromium_args(tmp_path / "profile-shot"), f"--screenshot={shot}", url],
                capture_stdout=True,
                capture_stderr=True,
            )
    page = Cells()
    page.feed(dom.stdout.decode())
    text = " ".join(page.text)
    assert "Which lane serves each service" in text
    assert "No live tunnels (the tunnel listener is off)." in text
    assert "Last (re)load" in text and "succeeded" in text
    cells = page.cells
    assert cells[(GREETER, "main")] == ("own", "main")
    assert cells[(GREETER, FEATURE)] == ("own", FEATURE)
    assert cells[(INVENTORY, FEATURE)] == ("fallback", "→ main")
    assert cells[(GREETER, "locked")] == ("none", "no route")  # strict env, no provider
    assert cells[("demo.Greeter", FEATURE)] == ("own", FEATURE)
    image = read_png(shot.read_bytes())
    assert (image.width, image.height) == WINDOW
    colours = image.colours()
    for colour in (OWN_GREEN, FALLBACK_GREY, NO_ROUTE_RED):
        assert colours[colour] >= MIN_CELL_PIXELS, (colour, colours[colour])
