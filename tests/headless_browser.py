"""A real headless Chromium driven over the DevTools protocol, for the viewer's browser test.

Only the standard library and ``websockets`` (a dependency of viser) are used: the browser is
started with a remote-debugging port, the page's DevTools socket takes JSON commands
(Page.navigate, Page.captureScreenshot) and answers them by id.
"""
import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Optional

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> Optional[str]:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessBrowser:
    def __init__(self, width: int = 1000, height: int = 700, timeout: float = 60.0):
        from websockets.sync.client import connect
        executable = find_browser()
        if executable is None:
            raise RuntimeError("no Chromium found (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="viewer-test-browser-")
        self.process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
             "--enable-unsafe-swiftshader", "--use-angle=swiftshader",  # WebGL without a GPU
             f"--window-size={width},{height}", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._debugging_port(timeout)
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(p for p in pages if p.get("type") == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        self.next_id = 0
        self.timeout = timeout

    def _debugging_port(self, timeout: float) -> int:
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.isfile(path):
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with status {self.process.returncode}")
            time.sleep(0.1)
        raise RuntimeError("Chromium did not open its debugging port")

    def command(self, method: str, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.socket.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            message = json.loads(self.socket.recv(timeout=self.timeout))
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.command("Page.navigate", url=url)

    def screenshot(self) -> np.ndarray:
        """The page as uint8 [H, W, 3]."""
        from PIL import Image
        data = base64.b64decode(self.command("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
