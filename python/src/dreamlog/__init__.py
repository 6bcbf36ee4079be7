"""dreamlog for Python: a client for `dreamlog serve`, and the Claude memory tool backed by
it (`dreamlog.memory_tool.DreamlogMemoryTool`, for the Anthropic SDK's tool runner; needs
the `anthropic` extra).

    from dreamlog import Client
    c = Client("http://127.0.0.1:7700")
    print(c.memory_tool("support", {"command": "view", "path": "/memories"}).content)
"""

from .client import Client, DreamlogError, Session, TailEvent, ToolResult

__all__ = ["Client", "DreamlogError", "Session", "TailEvent", "ToolResult"]
__version__ = "0.1.0"
