"""Closing a peer connection survives a cancelled caller while aiortc closes it in a task of its own.

aiortc starts `pc.close()` itself once every DTLS transport has closed. A second `close()` awaits the first
one's future; cancelling that second caller used to cancel the shared future, so aiortc's task failed on
`set_result` ("Task exception was never retrieved", logged from a finalizer: CI once saw that log break an
unrelated `ast.parse`)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiortc import RTCPeerConnection

from voiceclient.rtc.peer import close_peer_connection

pytestmark = pytest.mark.timeout(30)


async def test_a_cancelled_close_leaves_aiortcs_own_close_whole() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    own = asyncio.ensure_future(pc.close())  # as aiortc does once the DTLS transports have closed
    await asyncio.sleep(0)  # aiortc's close is under way: its future is set, it awaits the transports
    ours = asyncio.ensure_future(close_peer_connection(pc))
    await asyncio.sleep(0)
    ours.cancel()  # a shutdown timeout, a torn-down task group
    with pytest.raises(asyncio.CancelledError):
        await ours
    await asyncio.wait_for(own, 10)  # finishes cleanly: no InvalidStateError on the shared future
    assert pc.connectionState == "closed"
    await asyncio.wait_for(pc.close(), 10)  # and a later close returns at once
    gc.collect()
