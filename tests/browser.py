"""Headless Chromium driven over the DevTools protocol, with aiohttp's websocket client.

Just enough of the protocol for end-to-end page tests: open a URL, evaluate JavaScript, wait for
a condition, and click an element with real mouse events (pressed and released at its centre,
through the browser's input pipeline, as a user's click). No new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

FLAGS = [
    "--headless",
    "--no-sandbox",  # containers run tests as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # Chromium picks a port and writes it to DevToolsActivePort
]


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self._ws = ws
        self._ids = itertools.count(1)
        self.console: list[str] = []  # console messages and uncaught errors, for failure reports

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        # Text frames: DevTools closes the socket on a binary one.
        await self._ws.send_str(
            orjson.dumps({"id": command_id, "method": method, "params": params}).decode()
        )
        while True:
            frame = await self._ws.receive()
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools closed the connection during {method}: {frame}")
            message = orjson.loads(frame.data)
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._on_event(message)

    def _on_event(self, message: dict[str, Any]) -> None:
        params = message.get("params", {})
        if message.get("method") == "Runtime.consoleAPICalled":
            self.console.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif message.get("method") == "Runtime.exceptionThrown":
            self.console.append(
                "uncaught: "
                + str(params["exceptionDetails"].get("exception", {}).get("description"))
            )

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def wait_for(self, expression: str, seconds: float = 10.0) -> Any:
        """Poll until `expression` is truthy; its value."""
        try:
            async with asyncio.timeout(seconds):
                while not (value := await self.evaluate(expression)):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"waited for {expression}; console: {self.console}") from None
        return value

    async def click(self, selector: str) -> None:
        """Mouse down and up at the centre of the element, as a user's click."""
        box = await self.wait_for(
            f"(() => {{ const e = document.querySelector({orjson.dumps(selector).decode()});"
            " if (!e || !e.offsetParent) return null; e.scrollIntoView();"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )


@contextlib.asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Page]:
    """A fresh headless browser (its own profile) and its first tab, closed afterwards.

    Chromium is several processes (renderers, utilities) writing to the profile, so it is asked
    to close, and its children with it, before the profile is removed. If it does not close (or
    the test failed half-way), its process group, its own since it was started here, is killed;
    a child still writing then may leave some of the profile behind, which is not an error.
    """
    with tempfile.TemporaryDirectory(
        prefix="flywheel-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = await _devtools_port(Path(profile), process)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with session.ws_connect(page_url, max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.send("Runtime.enable")
                    await page.send("Page.enable")
                    yield page
                    with contextlib.suppress(RuntimeError):  # it may hang up before answering
                        await page.send("Browser.close")
        finally:
            try:
                await asyncio.to_thread(process.wait, 5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


async def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before it was ready")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        await asyncio.sleep(0.05)
    raise RuntimeError("chromium never opened its DevTools port")
