"""aiohttp's side of the browser surface: the routes, the WebSocket and each page's sender.

Imported by the ``snaresynth-web`` thread only, after the daemon said it is ready: aiohttp
takes 0.2-0.4 s to import, and the page's listening socket (bound by ``io.web.WebServer`` in
the main thread) holds the browsers that connect meanwhile in its backlog. Everything here runs
on that thread's asyncio loop; the state it serves (pages, counters, the engine calls) is the
``WebServer``'s.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Callable
from importlib import resources

from aiohttp import WSMsgType, web

from snaresynth.io import osc_layout
from snaresynth.io.web import (
    BUFFER_MIN_S,
    MAX_CONNECTIONS,
    SEND_TIMEOUT_S,
    UPDATES_PER_S,
    Page,
    WebServer,
)
from snaresynth.io.web_protocol import WebError, buffer_frame, host_allowed, parse

log = logging.getLogger("snaresynth.io.web")

STATIC = ("index.html", "app.js", "style.css")


class HttpApp:
    """The aiohttp application of one ``WebServer``, served on its pre-bound socket."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self._runner: web.AppRunner | None = None

    async def start(self, sock: socket.socket) -> None:
        @web.middleware  # a plain function: aiohttp marks it, which a bound method cannot take
        async def check_host(request: web.Request, handler: Callable) -> web.StreamResponse:
            return await self._check_host(request, handler)

        app = web.Application(middlewares=[check_host], client_max_size=2**16)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/open-stage-control.json", self._osc_session)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def shutdown(self) -> None:
        for page in list(self.server.pages):
            page.closed = True
            await page.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP ----------------------------------------------------------------------------------
    async def _check_host(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host", ""), self.server.host, self.server.port):
            self.server.refused += 1
            return web.Response(status=403, text="Host not allowed\n")
        return await handler(request)

    def _token_ok(self, request: web.Request) -> bool:
        token = self.server.token
        return not token or hmac.compare_digest(request.query.get("token", ""), token)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            self.server.refused += 1
            return web.Response(status=403, text="token required: open the URL printed in "
                                "snaresynth's ready line\n")
        return self._file("index.html")

    async def _osc_session(self, request: web.Request) -> web.StreamResponse:
        """The Open Stage Control session of the kit loaded now (io/osc_layout.py)."""
        if not self._token_ok(request):
            self.server.refused += 1
            return web.Response(status=403, text="token required\n")
        server = self.server
        layout = osc_layout.session(server.engine.kit, server.latent_dim, server.presets())
        return web.json_response(layout, headers={
            "Content-Disposition": 'attachment; filename="snaresynth.json"'})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            return web.Response(status=404, text="not found\n")
        return self._file(name)

    @staticmethod
    def _file(name: str) -> web.Response:
        kind = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[
            name.rsplit(".", 1)[1]]
        text = resources.files("snaresynth.io").joinpath("web_static", name).read_text("utf-8")
        return web.Response(text=text, content_type=kind, charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    # --- WebSocket -----------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        origin = request.headers.get("Origin")
        host = request.headers.get("Host", "")
        if origin is not None and origin != f"http://{host}":
            server.refused += 1
            log.warning("WebSocket from origin %s refused (the page is http://%s)", origin, host)
            return web.Response(status=403, text="Origin not allowed\n")
        if not self._token_ok(request):
            server.refused += 1
            return web.Response(status=403, text="token required\n")
        if len(server.pages) >= MAX_CONNECTIONS:
            return web.Response(status=503, text="too many pages open\n")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=2**16)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        page = Page(ws, loop)
        server.pages.add(page)
        page.reply("/presets", server.presets())
        for slot in range(len(server.engine.buffers)):  # every slot's sound, for audition
            page.want_buffer(slot)
        sender = loop.create_task(self._send_loop(page))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # parsed at once; applied when no more frames are waiting, so a flood of
                    # knob moves collapses to the last value of each knob
                    page.inbox.extend(parse(msg.data, server.latent_dim))
                    if not page.applying:
                        page.applying = True
                        loop.call_soon(server.apply, page)
                elif msg.type == WSMsgType.BINARY:
                    server.fail(page, WebError("?", "binary messages are not understood"))
        finally:
            page.closed = True
            server.pages.discard(page)
            sender.cancel()
        return ws

    async def _send_loop(self, page: Page) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while not page.closed:
            await page.wake.wait()
            page.wake.clear()
            wait = last + 1.0 / UPDATES_PER_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # later changes join this send
            last = loop.time()
            messages, state, buffers = page.take()
            if state:
                messages.insert(0, {"address": "/state", "args": [self.server.state()]})
            try:
                if messages:
                    await asyncio.wait_for(page.ws.send_str(json.dumps(messages)),
                                           SEND_TIMEOUT_S)
                for slot in sorted(buffers):
                    await self._send_buffer(page, slot)
            except (TimeoutError, ConnectionError, RuntimeError) as exc:
                log.info("closing a page that does not read (%s)", type(exc).__name__)
                page.closed = True
                await page.ws.close()
                return

    async def _send_buffer(self, page: Page, slot: int) -> None:
        loop = asyncio.get_running_loop()
        since = loop.time() - page.buffer_sent_at.get(slot, -1e9)
        if since < BUFFER_MIN_S:  # at most a few a second: the rest come with the next one
            loop.call_later(BUFFER_MIN_S - since, page.want_buffer, slot)
            return
        buffer = self.server.buffer(slot)
        if buffer is None:
            return
        page.buffer_sent_at[slot] = loop.time()
        frame = buffer_frame(slot, int(self.server.engine.rate), self.server.generation, buffer)
        await asyncio.wait_for(page.ws.send_bytes(frame), SEND_TIMEOUT_S)
