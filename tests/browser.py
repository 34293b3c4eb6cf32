"""Open a page in headless Chromium and read what a person would see: its text after the report's tree is
expanded, and a screenshot.

Chromium is started with the flags that keep it offline and stateless (a fresh ``--user-data-dir``, no
background networking, no component updates, no sync) and driven over the DevTools protocol on a
loopback port it picks itself (``--remote-debugging-port=0``, announced in ``DevToolsActivePort``), with
the websocket client the Kubernetes client already brings. Every wait goes through the harness's one poll
primitive, with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websocket

from conformance.core.expect import eventually
from conformance.core.timeouts import Timeouts

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: Deadlines of the browser's waits: start, page load, rendering of the report's tree.
BROWSER_TIMEOUTS = Timeouts(converge=60.0, poll_interval=0.2)
WINDOW = (1400, 1000)

#: Opens every group of the Allure 3 report's tree (a group shows its children only once opened).
EXPAND_TREE = """
(async () => {
  for (let round = 0; round < 10; round++) {
    const closed = [...document.querySelectorAll('[data-testid="tree-section-title"]')]
      .filter(e => !e.dataset.egressOpened);
    if (!closed.length) break;
    for (const e of closed) { e.dataset.egressOpened = "1"; e.click(); }
    await new Promise(r => setTimeout(r, 300));
  }
  return document.querySelectorAll('[data-testid="tree-leaf"]').length;
})()
"""


@dataclass(frozen=True)
class RenderedPage:
    text: str
    leaves: int
    screenshot: Path


class DevTools:
    """A minimal DevTools protocol client: one page, one request at a time."""

    def __init__(self, url: str) -> None:
        self._socket: Any = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._socket.close()


@contextlib.contextmanager
def chromium(binary: str) -> Iterator[DevTools]:
    """A headless Chromium on a fresh profile, stopped (only this process) when the block ends."""
    with tempfile.TemporaryDirectory(prefix="egress-conformance-chromium-") as profile:
        process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tools: DevTools | None = None
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            port = eventually(
                lambda: port_file.read_text().split("\n", 1)[0] if port_file.is_file() else "",
                lambda text: text.isdigit(),
                timeouts=BROWSER_TIMEOUTS,
                consecutive=1,
                description="Chromium announces its DevTools port",
            )
            # Loopback only: never through an environment proxy.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
                targets = json.load(response)
            page = next(t for t in targets if t.get("type") == "page")
            tools = DevTools(page["webSocketDebuggerUrl"])
            yield tools
        finally:
            if tools is not None:
                with contextlib.suppress(Exception):
                    tools.call("Browser.close")
                tools.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def render_allure_report(binary: str, index: Path, screenshot: Path) -> RenderedPage:
    """Open an Allure 3 single-file report, expand its tree, return its text and save a screenshot."""
    with chromium(binary) as tools:
        tools.call("Page.enable")
        tools.call("Page.navigate", url=index.resolve().as_uri())
        eventually(
            lambda: tools.evaluate("document.querySelectorAll('[data-testid=\"tree-section-title\"]').length"),
            lambda count: bool(count),
            timeouts=BROWSER_TIMEOUTS,
            consecutive=1,
            description=f"the Allure report's tree in {index}",
        )
        leaves = int(tools.evaluate(EXPAND_TREE))
        text = str(tools.evaluate("document.body.innerText"))
        tools.evaluate("window.scrollTo(0, 0)")  # the report's header and the top of the opened tree
        image = tools.call("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(image["data"]))
    return RenderedPage(text, leaves, screenshot)
