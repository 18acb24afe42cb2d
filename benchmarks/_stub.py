"""A stub /v1/send that accepts every number at once, shared by the benchmarks; two ways to reach it.

* ``InstantSendTransport``: an httpx transport, in process: no socket, no HTTP parsing, no wait.
* ``loopback_server()``: the same answers over real HTTP/1.1 on 127.0.0.1, from another process (this file
  run as a script: ``python benchmarks/_stub.py`` prints its port and serves until its stdin closes). Only
  the stdlib: asyncio streams, keep-alive, one request at a time per connection, bodies by Content-Length.

Every answer names each number asked with one sms_id ``"<id>$<phone>"``, the phone exactly as sent: the
library pairs the answer with the numbers by that suffix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

_JSON = {"content-type": "application/json"}


_TO, _REQUEST_ID = b'"to":[', b'"request_id":'


class Answers:
    """Makes the body of a successful /v1/send answer to a request body, as cheaply as it can.

    With ``cache``, the sms_ids of a list of numbers already seen are reused (found by the bytes of the
    ``"to"`` array, no JSON decoding), so that answering costs next to nothing beside the client under test
    once a warm-up round has been through. Without it (for memory measurements, where a cache would be
    counted), every body is decoded and every answer made anew.
    """

    def __init__(self, *, cache: bool) -> None:
        self._cache: dict[bytes, bytes] | None = {} if cache else None
        self._calls = 0

    def __call__(self, body: bytes) -> bytes:
        self._calls += 1
        start = body.find(_TO)
        end = body.find(b"]", start)
        rid = body.rfind(_REQUEST_ID)
        if self._cache is None or start < 0 or rid < 0 or b"\\" in body:
            return self._decoded(body)
        to = body[start + len(_TO) - 1 : end + 1]
        ids = self._cache.get(to)
        if ids is None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            ids = self._cache[to] = self._ids(json.loads(to))
        request_id = json.loads(body[rid + len(_REQUEST_ID) :].partition(b",")[0].rstrip(b"}"))
        return b'{"request_id":%b,"sms_ids":%b}' % (json.dumps(request_id).encode(), ids)

    def _ids(self, phones: list[str]) -> bytes:
        ids = [f"{self._calls}-{i}${phone}" for i, phone in enumerate(phones)]
        return json.dumps(ids, ensure_ascii=False, separators=(",", ":")).encode()

    def _decoded(self, body: bytes) -> bytes:
        payload = json.loads(body)
        return b'{"request_id":%b,"sms_ids":%b}' % (
            json.dumps(payload.get("request_id")).encode(),
            self._ids(payload["to"]),
        )


class InstantSendTransport(httpx.AsyncBaseTransport):
    """Accepts every number of every send at once: an sms_id per number, nothing else.

    ``answers`` may be shared by several transports, so that its cache outlives each of them.

    ``cpu`` adds up the CPU seconds spent making answers, so that a benchmark can tell the stub's share of
    its process's CPU time from the client's.
    """

    def __init__(self, latency: float = 0.0, *, answers: Answers | None = None) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.latency = latency
        self._answers = answers or Answers(cache=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)  # a round trip, as over a network
        body = await request.aread()
        start = time.process_time()
        answer = self._answers(body)
        self.cpu += time.process_time() - start
        return httpx.Response(200, content=answer, headers=_JSON)


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    """Start the stub as an HTTP server in a child process; yield its base URL (``http://127.0.0.1:N/v1``)."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.stdin.close()  # the server stops when its stdin closes
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: Answers
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = answers(await reader.readexactly(length))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                % (len(answer), answer)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed the connection
    finally:
        writer.close()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    answers = Answers(cache=True)

    def wait_for_stdin_to_close() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    server = await asyncio.start_server(
        lambda reader, writer: _serve_connection(reader, writer, answers), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve())
