"""Headless Chromium driven through the DevTools protocol: load a page, list its images and console errors,
take a full-page screenshot. Used by the report tests; needs Debian's ``chromium`` and ``websocket-client``."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome")
# Headless as root, and nothing that reaches the network (without these it tries to contact Google and fails).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
HOW_TO_ENABLE = (
    "headless Chromium not found: install it (Debian/Ubuntu: `apt-get install chromium`; .ci/run does) "
    "to render report.html in this test"
)


def find_chromium() -> str | None:
    """The path of a Chromium binary on this machine, or None."""
    return next((path for path in map(shutil.which, BINARIES) if path), None)


class Chromium:
    """One headless browser with one page; use as a context manager."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.binary, self.width, self.height, self.timeout = binary, width, height, timeout
        self.events: list[dict] = []
        self._next_id = 0

    def __enter__(self) -> Chromium:
        import websocket

        self._profile = tempfile.TemporaryDirectory(prefix="assocmem-chromium-", ignore_cleanup_errors=True)
        profile = Path(self._profile.name)
        self._log = open(profile / "stderr.log", "w+b")  # closed in __exit__
        self.process = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,  # its helper processes share this group, ended together in __exit__
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                raise RuntimeError(
                    f"Chromium did not start: {self._log.read().decode(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as reply:
            targets = json.load(reply)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True
        )
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.ws.close()
        finally:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
            self._log.close()
            self._profile.cleanup()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)  # the group of the browser this object started, and only that
        except ProcessLookupError:
            pass

    def call(self, method: str, **params: object) -> dict:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        """Wait for the next event named ``event`` (events already received count)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for i, message in enumerate(self.events):
                if message.get("method") == event:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {event} within {self.timeout} s")

    def load(self, path: Path) -> None:
        """Open a local file and wait until it has loaded (images included)."""
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def images(self) -> list[dict]:
        """Every <img> of the page: its alt text, whether it finished loading, and its natural width."""
        return self.evaluate(
            "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"
        )

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads reported since the page was opened."""
        self.evaluate("0")  # flush events queued before this point
        errors = []
        for message in self.events:
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        return errors

    def screenshot(self, dest: Path) -> Path:
        """Save a PNG of the whole page (not just the window) to ``dest``."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=int(size["height"]) + 1,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(shot["data"]))
        return dest
