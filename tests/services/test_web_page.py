"""The browser page in a real browser: headless Chromium (Debian's package) with a fake microphone fed by
real speech (jfk), driven over the DevTools protocol. It opens the page, starts capture, and reads the
words off the page; a screenshot of the page is kept as a test artifact (and is the README's)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess

import pytest
import soundfile
import websockets

from tests.conftest import ROOT, internal_pcm
from tests.services.conftest import web

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands on one page's session."""

    def __init__(self, socket):
        self.socket, self.ids, self.session = socket, iter(range(1, 1_000_000)), None

    async def call(self, method: str, **params):
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


async def test_the_page_captures_the_microphone_and_shows_the_spoken_words(jfk_path, tmp_path):
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, __import__("numpy").frombuffer(internal_pcm(jfk_path), "<i2"), 16000, subtype="PCM_16")
    async with web() as base:
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--remote-debugging-port=0",
                f"--user-data-dir={tmp_path / 'profile'}",
                "about:blank",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            endpoint = await asyncio.to_thread(_devtools_url, browser)
            async with websockets.connect(endpoint, max_size=None) as socket:
                tools = DevTools(socket)
                target = await tools.call("Target.createTarget", url=base + "/")
                attached = await tools.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                tools.session = attached["sessionId"]
                async with asyncio.timeout(20):
                    while await tools.evaluate("typeof startMicrophone") != "function":  # the page and its script
                        await asyncio.sleep(0.2)
                started = await tools.evaluate("startMicrophone().then(() => 'started', (e) => 'failed: ' + e)")
                assert started == "started", started
                shown = ""
                try:
                    async with asyncio.timeout(60):
                        while "country" not in shown.lower():
                            await asyncio.sleep(0.5)
                            shown = await tools.evaluate("document.getElementById('utterances').innerText") or ""
                except TimeoutError:
                    page = await tools.evaluate("document.body.innerText")
                    raise AssertionError(f"the page never showed the words; it shows: {page!r}") from None
                await asyncio.sleep(1.0)  # let the processed text and the latency land for the screenshot
                shot = await tools.call("Page.captureScreenshot", format="png")
        finally:
            browser.terminate()
            browser.wait(10)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "web-page.png").write_bytes(base64.b64decode(shot["data"]))
    words = set(re.findall(r"[a-z]+", shown.lower()))
    # the microphone's capture differs run to run, and tiny.en with it ("what" once came out "watch")
    assert len({"ask", "not", "what", "your", "country"} & words) >= 4, shown
    assert "ms after speech end" in shown and re.search(r"\[\s*\d+\.\d\d . \d+\.\d\d s\]", shown), shown


def _devtools_url(browser: subprocess.Popen) -> str:
    assert browser.stderr is not None
    for line in browser.stderr:
        if match := re.search(r"DevTools listening on (ws://\S+)", line):
            return match.group(1)
    raise RuntimeError("chromium exited before it listened for DevTools")
