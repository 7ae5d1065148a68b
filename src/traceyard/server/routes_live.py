"""``WS /api/ws``: the live stream of changes, optionally for one project or one trace.

Frames are JSON: first ``{"type": "hello", "mode": ...}``, then ``{"type": "changes",
"changes": [...]}`` with one entry per change (``type``: trace, observation, score;
``action``: created/updated/deleted, started/ended, added). Payloads are not included; a
client fetches what it shows. A client that falls behind is closed with code 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from traceyard.server.auth import select_subprotocol
from traceyard.server.live import CLOSE_TOO_SLOW, LiveClient, LiveFilter
from traceyard.server.state import ServerState

router = APIRouter(tags=["live"])

#: Close code sent to clients when the server stops ("going away").
CLOSE_GOING_AWAY = 1001


@router.websocket("/api/ws")
async def live_stream(
    websocket: WebSocket, project: str | None = None, trace_id: str | None = None
) -> None:
    state: ServerState = websocket.app.state.traceyard
    await websocket.accept(subprotocol=select_subprotocol(websocket.scope.get("subprotocols", [])))
    client = state.hub.subscribe(LiveFilter(project=project or None, trace_id=trace_id or None))
    try:
        hello = {"type": "hello", "mode": "poll" if state.poll_store else "push"}
        await websocket.send_text(json.dumps(hello))
        await _pump(websocket, client)
    finally:
        state.hub.unsubscribe(client)


async def _pump(websocket: WebSocket, client: LiveClient) -> None:
    """Send frames until the client leaves, falls behind, or the server stops."""
    receiver = asyncio.create_task(_until_disconnect(websocket))
    try:
        while True:
            getter = asyncio.create_task(client.next_frame())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                return
            frame = getter.result()
            if frame is None:
                code = CLOSE_TOO_SLOW if client.too_slow else CLOSE_GOING_AWAY
                reason = "client too slow" if client.too_slow else "server stopping"
                with contextlib.suppress(Exception):
                    await websocket.close(code=code, reason=reason)
                return
            await websocket.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client went away mid-send
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends; return when it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
