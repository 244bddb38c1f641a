"""Function tools: `@tool` declares them, the runner executes them during a call, plugins load them."""

from voiceclient.tools.approvals import ApprovalDecision, ApprovalRequest, Approver, policy
from voiceclient.tools.registry import Tool, ToolContext, tool

__all__ = ["ApprovalDecision", "ApprovalRequest", "Approver", "Tool", "ToolContext", "policy", "tool"]
