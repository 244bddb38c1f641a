"""Approvals asked in the conversation: `talk` shows a prompt and the person answers it with one key.

    allow send_email(to="ada@example.com", body="Hello")? y / n / a (always for this tool)

`ConversationApprover` is an `Approver` (voiceclient.tools.approvals): a tool marked `needs_approval`, or a hosted
MCP server's `mcp_approval_request`, waits on it while the conversation goes on. The next typed line that is `y`,
`n` or `a` answers the oldest prompt (with Enter, as every typed line); `a` approves that tool for
the rest of the call. No answer within the approver's timeout (`decide`'s) is a refusal, said to the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable

from voiceclient.tools.approvals import ApprovalDecision, ApprovalRequest

log = logging.getLogger(__name__)
ANSWERS = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "a": "always", "always": "always"}


def describe(request: ApprovalRequest) -> str:
    """`send_email(to="ada@example.com")`, or `docs: search(q="x")` for an MCP server's tool."""
    try:
        args = json.loads(request.arguments) if request.arguments.strip() else {}
    except json.JSONDecodeError:
        args = None
    if isinstance(args, dict):
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    else:
        shown = request.arguments
    if len(shown) > 200:
        shown = shown[:197] + "..."
    where = f"{request.server_label}: " if request.server_label else ""
    return f"{where}{request.name}({shown})"


def prompt_text(request: ApprovalRequest) -> str:
    return f"allow {describe(request)}? y / n / a (always for this tool)"


class ConversationApprover:
    """Asks the person in the conversation. `show` puts a line on the screen (the prompt, then the answer)."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show
        self.always: set[tuple[str, str | None]] = set()  # (tool, MCP server) approved for the rest of the call
        self.asked = 0
        self._pending: deque[tuple[ApprovalRequest, asyncio.Future[ApprovalDecision]]] = deque()

    @property
    def prompt(self) -> str | None:
        """The prompt waiting for an answer (the oldest), for the panel."""
        return prompt_text(self._pending[0][0]) if self._pending else None

    async def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        if (request.name, request.server_label) in self.always:
            return ApprovalDecision(True, "approved by the user for the rest of the call")
        future: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
        entry = (request, future)
        self._pending.append(entry)
        self.asked += 1
        self.show(prompt_text(request))
        try:
            return await future
        except asyncio.CancelledError:  # no answer in time (decide's timeout), or the call is ending
            self.show(f"(no answer: {request.name} not allowed)")
            raise
        finally:
            if entry in self._pending:
                self._pending.remove(entry)

    def answer(self, line: str) -> bool:
        """Take `line` as the answer to the oldest prompt, if one waits and it is y / n / a; True if taken."""
        word = ANSWERS.get(line.strip().lower())
        if word is None or not self._pending:
            return False
        request, future = self._pending.popleft()
        if future.done():
            return False
        if word == "always":
            self.always.add((request.name, request.server_label))
            self.show(f"(allowed {request.name} for the rest of the call)")
            future.set_result(ApprovalDecision(True, "approved by the user, for the rest of the call"))
        elif word == "yes":
            self.show(f"(allowed {request.name})")
            future.set_result(ApprovalDecision(True, "approved by the user"))
        else:
            self.show(f"(refused {request.name})")
            future.set_result(ApprovalDecision(False, "the user refused"))
        if self._pending:  # the next one waits: ask again so it is the last thing on the screen
            self.show(prompt_text(self._pending[0][0]))
        return True
