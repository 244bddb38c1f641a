"""The tool items of a response's output, and what they leave for later turns: function calls (and whose call a
function output answers), the hosted MCP tools' listing (`mcp_list_tools`), approval requests (waiting for the
client's `mcp_approval_response`) and calls. The tools themselves are the responder's."""

from __future__ import annotations

import asyncio
from typing import Any

from voiceclient.protocol.events import new_id
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation
from voiceclient.server.responders import FunctionCall, McpApprovalRequest, McpCall, mcp_tool_names
from voiceclient.server.response_items import ActiveResponse, OutputItems


class ToolItems:
    def __init__(self, ctx: SessionContext, conversation: Conversation, items: OutputItems) -> None:
        self.ctx = ctx
        self.conversation = conversation
        self.items = items
        self.call_origins: dict[str, Any] = {}  # function call_id -> what the responder attached to it
        self.pending: dict[str, McpApprovalRequest] = {}  # approval request item id -> the request
        self.listed: set[str] = set()  # the MCP servers whose tools were listed

    def list_mcp_tools(self) -> None:
        """`mcp_list_tools.*` for each MCP server the session gained (the tools are the responder's)."""
        send, dialect = self.ctx.send, self.ctx.dialect
        for tool in self.ctx.session.get("tools") or []:
            label = tool.get("server_label")
            if tool.get("type") != "mcp" or label in self.listed:
                continue
            self.listed.add(label)
            item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": label, "tools": []}
            previous = self.conversation.add_output(item)
            send(dialect.item_added(item, previous))
            send(dialect.mcp_tools_listing(item["id"]))
            allowed = tool.get("allowed_tools")
            offered = mcp_tool_names(self.ctx.responder, label)
            names = [n for n in offered if not isinstance(allowed, list) or n in allowed]
            item["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in names]
            send(dialect.mcp_tools_listed(item["id"]))
            send(dialect.item_done(item, previous))

    def has_request(self, item_id: str) -> bool:
        """Whether an MCP approval request with this item id waits for its answer."""
        return item_id in self.pending

    def approval(self, item_id: str, keep: bool) -> McpApprovalRequest | None:
        """The approval request an `mcp_approval_response` answers; no longer waiting unless `keep` (an
        out-of-band response reads it without answering it for the conversation)."""
        return self.pending.get(item_id) if keep else self.pending.pop(item_id, None)

    def function_call(self, resp: ActiveResponse, index: int, call: FunctionCall) -> None:
        if not resp.budget.take_call(call.name, call.arguments):  # a call is made whole or not at all
            return
        item_id, call_id = new_id("item"), new_id("call")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        previous = self.items.added(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item_id, "output_index": index, "call_id": call_id}
        half = len(call.arguments) // 2
        for delta in (call.arguments[:half], call.arguments[half:]):
            if delta:
                self.ctx.send(self.ctx.dialect.function_arguments_delta(ids, delta))
        self.ctx.send(self.ctx.dialect.function_arguments_done(ids, call.name, call.arguments))
        item["arguments"] = call.arguments
        self.call_origins[call_id] = call.origin
        self.items.done(resp, index, item, previous, "completed")

    def mcp_approval_request(self, resp: ActiveResponse, index: int, request: McpApprovalRequest) -> None:
        call = request.call
        item = {
            "id": new_id("item"),
            "type": "mcp_approval_request",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": call.arguments,
        }
        previous = self.items.added(resp, index, item)
        self.pending[item["id"]] = request
        self.items.done(resp, index, item, previous)

    async def mcp_call(self, resp: ActiveResponse, index: int, call: McpCall) -> None:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "mcp_call",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": "",
        }
        if call.approval_request_id:
            item["approval_request_id"] = call.approval_request_id
        previous = self.items.added(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item["id"], "output_index": index}
        self.ctx.send(self.ctx.dialect.mcp_arguments_delta(ids, call.arguments))
        self.ctx.send(self.ctx.dialect.mcp_arguments_done(ids, call.arguments))
        item["arguments"] = call.arguments
        self.ctx.send(self.ctx.dialect.mcp_call_in_progress(item["id"], index))
        await asyncio.sleep(0.05)  # the hosted call takes a moment
        if call.error is not None:
            item["error"] = {"type": "tool_execution_error", "message": call.error}
            self.ctx.send(self.ctx.dialect.mcp_call_finished(item["id"], index, failed=True))
        else:
            item["output"] = call.output or ""
            self.ctx.send(self.ctx.dialect.mcp_call_finished(item["id"], index, failed=False))
        self.items.done(resp, index, item, previous)
