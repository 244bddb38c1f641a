"""One approval path for tools marked `needs_approval` and for hosted MCP `mcp_approval_request` items.

An approver is a coroutine `async def approve(request: ApprovalRequest) -> bool | ApprovalDecision`. The CLI's
`--approve always|never` is a policy approver; `talk` (later) prompts; a library app supplies its own. An approver
that raises or times out counts as a refusal, with the reason given to the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Union

log = logging.getLogger(__name__)
APPROVAL_TIMEOUT = 120.0


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is asked: a function call of a tool that `needs_approval` (`kind` "function", `id` its call_id)
    or a hosted MCP call (`kind` "mcp", `id` the `mcp_approval_request` item, `server_label` its server), with the
    tool's `name` and its `arguments` as the model wrote them (JSON text).
    """

    kind: Literal["function", "mcp"]
    id: str  # the function call's call_id, or the mcp_approval_request item's id
    name: str
    arguments: str
    server_label: str | None = None


@dataclass(frozen=True)
class ApprovalDecision:
    """An approver's answer: `approve`, and a `reason` the model is told when it is refused."""

    approve: bool
    reason: str | None = None


Approver = Callable[[ApprovalRequest], Awaitable[Union[bool, ApprovalDecision]]]


def policy(rule: str) -> Approver:
    """`always` approves everything, `never` refuses everything (the safe default for scripted calls)."""
    if rule not in ("always", "never"):
        raise ValueError(f"approval policy {rule!r}: use always or never")

    async def approve(request: ApprovalRequest) -> ApprovalDecision:
        if rule == "always":
            return ApprovalDecision(True, "approved by policy (--approve always)")
        return ApprovalDecision(False, "refused by policy (--approve never)")

    return approve


async def decide(
    approver: Approver | None, request: ApprovalRequest, timeout: float = APPROVAL_TIMEOUT
) -> ApprovalDecision:
    if approver is None:
        return ApprovalDecision(False, "no approver is configured, so tools that need approval are refused")
    try:
        answer = await asyncio.wait_for(approver(request), timeout)
    except TimeoutError:
        return ApprovalDecision(False, f"no answer from the user within {timeout:g} s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("approver failed on %s: %s", request.name, exc)
        return ApprovalDecision(False, f"the approval failed: {exc}")
    return answer if isinstance(answer, ApprovalDecision) else ApprovalDecision(bool(answer))
