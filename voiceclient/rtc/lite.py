"""ICE-lite for the answering side, as OpenAI's service has run it since about April 2026 (RFC 8445 section 2.5).

A lite agent gathers host candidates only, answers the checks it receives and starts none; it is always the
controlled agent, and the full agent (the client) picks the pair: a check that carries USE-CANDIDATE nominates the
pair it came on. aioice has no local lite mode (aiortc/aioice issue 114), so `LiteConnection` is an aioice
`Connection` whose check list is driven only by incoming checks, and `use_ice_lite` puts one under each ICE
transport of an answering `RTCPeerConnection` after the offer is set and before candidates are gathered.

Liveness: a lite agent sends no consent checks (RFC 7675 leaves that to the full agent, which sends one every ~5 s);
a client whose checks stop for `CONSENT_TIMEOUT` seconds is gone, and the connection closes as aioice's own does
when consent expires, so aiortc reports the peer connection `failed`.

`deaf=True` answers nothing at all: a server whose candidates nobody can reach (UDP dropped on the way), for the
`unreachable` fault.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import string
import time
import zlib
from typing import Any

import aioice
from aioice import stun
from aioice.candidate import Candidate, candidate_priority
from aioice.ice import CandidatePair, StunProtocol, get_host_addresses

log = logging.getLogger(__name__)
CONSENT_TIMEOUT = 30.0  # seconds without a check from the client before the connection is taken as gone
BASE62 = string.ascii_letters + string.digits


def lite_credentials() -> tuple[str, str]:
    """A ufrag and password in the real service's shape: `hcFtUn/u7/3oNQFw` (16 characters with two `/`) and
    32 characters of base62 (both within ice-char, RFC 8445 section 5.3)."""
    head = "".join(secrets.choice(BASE62) for _ in range(6))
    tail = "".join(secrets.choice(BASE62) for _ in range(6))
    ufrag = f"{head}/u{secrets.randbelow(10)}/{tail}"
    password = "".join(secrets.choice(BASE62) for _ in range(32))
    return ufrag, password


class LiteConnection(aioice.Connection):
    """An aioice connection in the ICE-lite role: host candidates on `host` only (IPv4), checks answered, none
    started, the client's nomination taken."""

    def __init__(self, host: str, local_username: str, local_password: str, deaf: bool = False) -> None:
        super().__init__(
            ice_controlling=False, use_ipv6=False, local_username=local_username, local_password=local_password
        )
        self.bind_host = host
        self.deaf = deaf
        self.last_check = 0.0
        self.checks_received = 0
        self._watchdog: asyncio.Task[None] | None = None

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        if self.bind_host in ("", "0.0.0.0"):
            addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
        else:
            addresses = [str(ipaddress.ip_address(self.bind_host))]
        for candidate in await self.get_component_candidates(component=1, addresses=addresses):
            # The real service's foundations are decimal numbers; aioice's are md5 hex. Same inputs, same value.
            candidate.foundation = str(zlib.crc32(f"host|udp|{candidate.host}".encode()))
            candidate.priority = candidate_priority(1, "host")
            self._local_candidates.append(candidate)
        self._local_candidates_end = True

    async def add_remote_candidate(self, remote_candidate: Candidate | None) -> None:
        """A lite agent pairs with the addresses checks come from (peer-reflexive), not with the offer's candidates:
        nothing to resolve, nothing to check."""

    async def connect(self) -> None:
        if not self._local_candidates_end:
            raise ConnectionError("Local candidates gathering was not performed")
        for early in self._early_checks:
            self.check_incoming(*early)
        self._early_checks.clear()
        self._early_checks_done = True
        result = await self._check_list_state.get()
        if result != aioice.ice.ICE_COMPLETED:
            raise ConnectionError("ICE negotiation failed")
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_consent())

    def request_received(self, message: stun.Message, addr: tuple[str, int], protocol: StunProtocol) -> None:
        if self.deaf:
            return
        self.last_check = time.monotonic()
        self.checks_received += 1
        super().request_received(message, addr, protocol)

    def check_incoming(self, message: stun.Message, addr: tuple[str, int], protocol: StunProtocol) -> None:
        """A check answered makes its pair valid (a lite agent does no triggered checks); USE-CANDIDATE nominates
        it, and the highest-priority nominated pair carries the media (RFC 8445 section 8.2.2)."""
        component = protocol.local_candidate.component
        remote = next((c for c in self._remote_candidates if c.host == addr[0] and c.port == addr[1]), None)
        if remote is None:
            remote = Candidate(
                foundation=secrets.token_hex(5),
                component=component,
                transport="udp",
                priority=message.attributes["PRIORITY"],
                host=addr[0],
                port=addr[1],
                type="prflx",
            )
            self._remote_candidates.append(remote)
        pair = self._find_pair(protocol, remote)
        if pair is None:
            pair = CandidatePair(protocol, remote)
            self._check_list.append(pair)
        pair.state = CandidatePair.State.SUCCEEDED
        if "USE-CANDIDATE" not in message.attributes:
            return
        pair.nominated = pair.remote_nominated = True
        current = self._nominated.get(component)
        if current is not pair and (current is None or remote.priority >= current.remote_candidate.priority):
            log.debug("ICE-lite: nominated %s", pair)
            self._nominated[component] = pair
        self._check_list_maybe_complete()

    def switch_role(self, ice_controlling: bool) -> None:
        """A lite agent is always controlled; a peer that claims the same role is answered, not followed."""

    async def _watch_consent(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(5.0, CONSENT_TIMEOUT / 4))
            if time.monotonic() - self.last_check > CONSENT_TIMEOUT:
                log.info("ICE-lite: no check from the client for %g s; the connection is gone", CONSENT_TIMEOUT)
                self._watchdog = None
                await self.close()
                return

    async def close(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        await super().close()


async def use_ice_lite(pc: Any, host: str, deaf: bool = False) -> list[LiteConnection]:
    """Put a `LiteConnection` under every ICE transport of an answering peer connection (one with BUNDLE), all
    with one ufrag and password, as aiortc shares its credentials between transports. Call it after
    `setRemoteDescription(offer)` and before `setLocalDescription`: the offer's transports exist then, and nothing
    has been gathered or checked."""
    ufrag, password = lite_credentials()
    connections = []
    for transport in ice_transports(pc):
        old = transport._connection
        lite = LiteConnection(host, ufrag, password, deaf=deaf)
        transport.iceGatherer._connection = lite
        transport._connection = lite
        transport._recv = lite.recv
        transport._send = lite.send
        connections.append(lite)
        await old.close()  # it holds nothing yet but the offer's candidates (and any mDNS lookup of theirs)
    return connections


def ice_transports(pc: Any) -> list[Any]:
    """The distinct ICE transports of a peer connection, in m-line order (one with BUNDLE)."""
    found: dict[int, Any] = {}
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport.transport
        found.setdefault(id(transport), transport)
    if pc.sctp is not None:
        found.setdefault(id(pc.sctp.transport.transport), pc.sctp.transport.transport)
    return list(found.values())
