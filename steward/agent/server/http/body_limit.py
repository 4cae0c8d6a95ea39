"""Request body size limit: a pure ASGI middleware answering 413 before the app reads it."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.agent.server.http.errors import MEDIA_TYPE, problem_body


def _too_large(limit: int, size: int | None, path: str) -> bytes:
    got = f"{size} bytes" if size is not None else "more"
    detail = f"request body: {got} exceeds the limit of {limit} bytes; send a smaller body"
    return problem_body(413, detail, path)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    close: bool = False,
    media_type: bytes = b"application/json",
) -> None:
    """Send a whole JSON response (``close``: ask the client to drop the connection)."""
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def too_large(scope: Scope, send: Send, limit: int, size: int | None) -> None:
    """Answer 413 (and close the connection) for a body over ``limit`` bytes."""
    body = _too_large(limit, size, scope.get("path", ""))
    await send_json(send, 413, body, close=True, media_type=MEDIA_TYPE.encode())


class BodySizeLimit:
    """Refuse bodies over ``limit`` bytes with 413 (declared length or streamed chunks).

    Args:
        app: the wrapped ASGI app.
        limit: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None:
            if declared > self.limit:
                await too_large(scope, send, self.limit, declared)
                return
            await self.app(scope, receive, send)
            return
        # no declared length (chunked): read it all, up to the limit, then replay it
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await too_large(scope, send, self.limit, None)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replay: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]
        await self.app(scope, _replay(replay, receive), send)


def _replay(messages: list[Message], receive: Receive | None = None) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replay
