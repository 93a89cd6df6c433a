"""The browser surface end to end: the daemon (``--audio null --record``) serves its page to
Debian's chromium driven by Playwright; hits, knobs and the pattern are checked in the daemon's
counters, in an OSC subscriber, in a second page and in the recorded audio. One daemon serves
the module (the recording is read at the end, after it stopped); a second one binds wide.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from snaresynth.testing.daemon import Daemon
from snaresynth.testing.osc import PREFIX, OscClient
from snaresynth.testing.signals import onsets

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WEB_URL = re.compile(r"\| web (http://\S+)")
RATE = 48000
TEMPO = 120.0  # 16th-note steps of exactly 6000 frames at 48 kHz
SWING = 0.4  # odd steps 0.5 * 0.4 * 6000 = 1200 frames late
PATTERN = (0, 3, 4, 8, 11)

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (scripts/setup.sh test)",
                allow_module_level=True)


def web_url(daemon: Daemon) -> str:
    match = WEB_URL.search(daemon.ready_line)
    assert match, f"no web URL in the ready line: {daemon.ready_line!r}"
    return match.group(1)


class Started:
    """Start a daemon in a thread, so two start at once (each takes seconds on 2 cores)."""

    def __init__(self, home: Path, *args: str) -> None:
        self.daemon: Daemon | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, args=(home, args), daemon=True)
        self._thread.start()

    def _start(self, home: Path, args: tuple[str, ...]) -> None:
        try:
            self.daemon = Daemon.in_home(home, *args)
        except BaseException as exc:  # re-raised in the test thread by get()
            self.error = exc

    def get(self) -> Daemon:
        self._thread.join(200)
        if self.error is not None:
            raise self.error
        assert self.daemon is not None
        return self.daemon


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("web")
    record = home / "played.wav"
    main = Started(home / "main", "--audio", "null", "--midi-in", "none", "--http-port", "0",
                   "--record", str(record))
    wide = Started(home / "wide", "--audio", "null", "--midi-in", "none", "--http-port", "0",
                   "--http-host", "0.0.0.0")
    started = {"main": main.get(), "wide": wide.get(), "record": record}
    yield started
    for key in ("main", "wide"):
        started[key].stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def osc(daemons: dict) -> Iterator[OscClient]:
    with OscClient(daemons["main"].osc_port) as client:
        yield client


def open_page(browser: object, url: str) -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_function("window.snaresynth.connected && window.snaresynth.state !== null",
                           timeout=15000)
    return page


def test_pad_strike_is_a_hit(browser: object, daemons: dict, osc: OscClient) -> None:
    page = open_page(browser, web_url(daemons["main"]))
    before = osc.status()["hits"]
    pad = page.locator('[data-pad="0"]')
    box = pad.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + 5)  # near the top: loud
    osc.wait_status(lambda s: s["hits"] == before + 1, 5.0, "the pad's hit")
    assert page.locator(".pad").count() == len(osc.state()["kit"]["slot"])
    page.close()


def test_knob_reaches_osc_subscriber_and_second_page(browser: object, daemons: dict,
                                                     osc: OscClient) -> None:
    url = web_url(daemons["main"])
    first, second = open_page(browser, url), open_page(browser, url)
    assert osc.request(PREFIX + "/subscribe")  # this client's address
    knob = first.locator('#knobs input[data-param="latent/0"]')
    box = knob.bounding_box()
    first.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    shown = float(knob.input_value())
    assert 0.7 < shown < 0.9
    deadline = time.monotonic() + 5.0
    while True:  # the subscriber sees the page's value (maybe after older ones)
        value = osc.receive(PREFIX + "/latent/0", timeout=max(deadline - time.monotonic(), 0.01))
        if abs(value[0] - shown) < 1e-6:
            break
    second.wait_for_function(
        f"Math.abs(document.querySelector('#knobs input[data-param=\"latent/0\"]').value"
        f" - {shown}) < 1e-6", timeout=10000)
    osc.send(PREFIX + "/unsubscribe")
    first.close()
    second.close()


def test_osc_change_shows_on_page(browser: object, daemons: dict, osc: OscClient) -> None:
    page = open_page(browser, web_url(daemons["main"]))
    osc.send(PREFIX + "/level", 0.25)
    page.wait_for_function(
        "document.querySelector('#knobs input[data-param=\"level\"]').value == '0.25'",
        timeout=10000)
    osc.send(PREFIX + "/level", 0.8333)
    page.close()


def test_page_sets_the_variants_of_a_slot(browser: object, daemons: dict,
                                           osc: OscClient) -> None:
    page = open_page(browser, web_url(daemons["main"]))
    page.evaluate("send('/variants', [3, 1])")
    deadline = time.monotonic() + 10
    while osc.state()["kit"]["slot"][1].get("variants") != 3:
        assert time.monotonic() < deadline, osc.state()["kit"]["slot"][1]
        time.sleep(0.1)
    page.evaluate("send('/variants', [4, 1])")
    page.close()


def test_bad_message_gets_fail(browser: object, daemons: dict) -> None:
    page = open_page(browser, web_url(daemons["main"]))
    page.evaluate("window.snaresynth.fails = []; "
                  "send('/latent/0', [1.5]); send('/nowhere', []); send('/select', ['x'])")
    page.wait_for_function("window.snaresynth.fails.length >= 3", timeout=10000)
    fails = page.evaluate("window.snaresynth.fails")
    assert ["/latent/0", "value must be in 0..1, got 1.5"] in fails
    assert ["/nowhere", "unknown address"] in fails
    page.close()


class _OtherSite(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (f"<script>const ws = new WebSocket('{self.target}');"
                "ws.onopen = () => { window.result = 'open'; };"
                "ws.onerror = () => { window.result = 'refused'; };</script>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_page_from_another_origin_cannot_connect(browser: object, daemons: dict) -> None:
    url = web_url(daemons["main"])
    _OtherSite.target = url.replace("http://", "ws://").rstrip("/") + "/ws"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_function("window.result !== undefined", timeout=10000)
        assert page.evaluate("window.result") == "refused"
        page.close()
    finally:
        server.shutdown()


def test_wide_bind_needs_the_token(browser: object, daemons: dict) -> None:
    url = web_url(daemons["wide"])
    token = re.search(r"\?token=([\w-]+)", url)
    assert token, f"a wide bind names its token in the ready line: {url}"
    port = int(re.search(r":(\d+)/", url).group(1))
    local = f"http://127.0.0.1:{port}/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(local, timeout=5)
    assert refused.value.code == 403
    page = browser.new_page()
    page.goto(local + "static/index.html")  # the page itself, without a token
    page.goto(local + "?token=wrong")
    assert "token required" in page.content()
    page.goto(local + f"?token={token.group(1)}")
    page.wait_for_function("window.snaresynth.connected && window.snaresynth.state !== null",
                           timeout=15000)
    page.close()


def test_pattern_on_the_step_grid_and_recorded(browser: object, daemons: dict,
                                               osc: OscClient) -> None:
    """Last: it stops the module's daemon to read the whole recording."""
    page = open_page(browser, web_url(daemons["main"]))
    osc.send(PREFIX + "/decay", 0.0, 0)  # 20 ms hits: every onset stands alone
    osc.send(PREFIX + "/level", 0.8333, 0)
    page.locator("#seq-tempo").fill(str(int(TEMPO)))
    page.locator("#seq-tempo").dispatch_event("change")
    page.evaluate(f"send('/seq/swing', [{SWING}])")
    for step in PATTERN:
        page.locator(f'[data-step="0:{step}"]').click()
    page.wait_for_function(f"document.querySelectorAll('.step.on').length == {len(PATTERN)}",
                           timeout=10000)
    osc.wait_settled()
    before = osc.status()["hits"]
    page.locator("#seq-play").click()
    osc.wait_status(lambda s: s["hits"] >= before + len(PATTERN), 6.0, "one bar of the pattern")
    page.locator("#seq-play").click()  # stop
    page.wait_for_function("!window.snaresynth.seq.playing", timeout=10000)
    time.sleep(0.3)
    played = osc.status()["hits"] - before
    page.close()
    main: Daemon = daemons["main"]
    main.stop()

    import soundfile as sf

    audio, rate = sf.read(daemons["record"], dtype="float32")
    assert rate == RATE
    starts = onsets(audio.mean(axis=1), threshold=1e-3, min_silence=2400)
    assert len(starts) >= played  # every step played (after the other tests' hits)
    pattern = starts[-played:]
    step = RATE * 60.0 / TEMPO / 4.0
    grid = [round(n * step + (0.5 * SWING * step if n % 2 else 0.0))
            for n in range(2 * 16) if n % 16 in PATTERN]
    offsets = [s - pattern[0] for s in pattern]
    assert offsets == grid[: len(offsets)], (offsets, grid[: len(offsets)])
    assert np.max(np.abs(audio)) < 1.0
