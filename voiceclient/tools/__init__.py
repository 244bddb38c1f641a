"""Function tools: `@tool` declares them, the runner executes them during a call, plugins load them."""

from .registry import Tool, tool

__all__ = ["Tool", "tool"]
