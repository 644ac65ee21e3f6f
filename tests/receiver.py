"""A real HTTP/1.1 webhook receiver on 127.0.0.1 that records what it gets and answers as told."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec

# An answer status that hangs up without answering (the sender sees a dropped connection).
DROP = 0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, object]:
        return msgspec.json.decode(self.body)  # type: ignore[no-any-return]


# (request) -> (status, extra headers); the default answers 200
Answer = Callable[[Received], tuple[int, dict[str, str]]]


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    answer: Answer = lambda _request: (200, {})
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # the body of every answer
    body: bytes = b"ok"
    # while this event is not set, requests are recorded but not answered (a hanging receiver)
    hold: asyncio.Event | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str = "/hooks") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Wait (bounded) until at least `count` requests have arrived."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def on(self, path: str = "/hooks") -> list[Received]:
        """The requests that arrived at `path`, in arrival order."""
        return [request for request in self.received if request.path == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                _method, path, _version = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(path=path, headers=headers, body=body)
                status, extra = self.answer(request)
                self.received.append(request)
                self.arrived.set()
                if self.hold is not None:
                    await self.hold.wait()
                if status == DROP:
                    writer.transport.abort()
                    return
                # a 204 or 304 has no content (RFC 9110), and strict clients reject one that does
                body = b"" if status in (204, 304) else self.body
                head = [
                    f"HTTP/1.1 {status} X",
                    *([] if status in (204, 304) else [f"content-length: {len(body)}"]),
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()


@contextlib.asynccontextmanager
async def receiving(answer: Answer | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    if answer is not None:
        receiver.answer = answer
    server = await asyncio.start_server(receiver._serve, receiver.host, 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        if receiver.hold is not None:
            receiver.hold.set()
        # connections still open (kept alive, or held) end with the receiver
        handlers = list(receiver._handlers)
        for writer in receiver._writers:
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
