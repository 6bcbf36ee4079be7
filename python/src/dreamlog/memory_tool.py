"""`DreamlogMemoryTool`: the Claude memory tool (`memory_20250818`) backed by a dreamlog
server, for the Anthropic Python SDK's tool runner.

    import anthropic
    from dreamlog import Client
    from dreamlog.memory_tool import DreamlogMemoryTool

    memory = DreamlogMemoryTool(Client("http://127.0.0.1:7700"), store="support",
                                session="ticket-42", actor="agent:support-bot")
    runner = anthropic.Anthropic().beta.messages.tool_runner(
        model="claude-sonnet-4-5", max_tokens=1024, tools=[memory],
        messages=[{"role": "user", "content": "Remember that refunds need an identity check."}],
    )
    for message in runner:
        ...

Every call goes to the server's memory tool endpoint with the model's input verbatim, so
the model sees dreamlog's exact tool texts, and each change is recorded as a `memory`
event of the store with its actor, session and causes: `dreamlog memory blame` and
`history` show which session of which agent wrote every line. A refusal raises the SDK's
`ToolError` with the tool's text, so the runner hands it back with `is_error: true`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from anthropic.lib.tools import BetaAbstractMemoryTool, ToolError
from anthropic.types.beta import (
    BetaCacheControlEphemeralParam,
    BetaMemoryTool20250818CreateCommand,
    BetaMemoryTool20250818DeleteCommand,
    BetaMemoryTool20250818InsertCommand,
    BetaMemoryTool20250818RenameCommand,
    BetaMemoryTool20250818StrReplaceCommand,
    BetaMemoryTool20250818ViewCommand,
)

from .client import Client, ToolResult

__all__ = ["DreamlogMemoryTool"]


class DreamlogMemoryTool(BetaAbstractMemoryTool):
    """The memory tool over one dreamlog memory store.

    `session` and `actor` are recorded with every change (`actor` like `agent:NAME`,
    default the server's); `causes` are event ids (or unique prefixes) every change
    derives from (blame shows them as evidence). All three can be changed between calls
    (`tool.session = "next-ticket"`). `last` holds the last call's `ToolResult` (with the
    memory event's id and position when it changed the store).
    """

    def __init__(
        self,
        client: Client,
        store: str,
        *,
        session: Optional[str] = None,
        actor: Optional[str] = None,
        causes: Optional[List[str]] = None,
        cache_control: Optional[BetaCacheControlEphemeralParam] = None,
    ) -> None:
        super().__init__(cache_control=cache_control)
        self.client = client
        self.store = store
        self.session = session
        self.actor = actor
        self.causes: List[str] = list(causes or [])
        self.last: Optional[ToolResult] = None

    def _send(self, tool_input: Mapping[str, Any]) -> str:
        result = self.client.memory_tool(
            self.store,
            dict(tool_input),
            actor=self.actor,
            session=self.session,
            causes=self.causes or None,
        )
        self.last = result
        if result.is_error:
            raise ToolError(result.content)
        return result.content

    def call(self, input: object) -> str:  # noqa: A002 - the SDK's parameter name
        """The runner's entry point: the model's input, sent as it came."""
        if not isinstance(input, Mapping):
            raise ToolError(f"Error: the memory tool's input must be an object, got {type(input).__name__}")
        return self._send(input)

    @staticmethod
    def _input(command: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = command.to_dict()
        return out

    def view(self, command: BetaMemoryTool20250818ViewCommand) -> str:
        return self._send(self._input(command))

    def create(self, command: BetaMemoryTool20250818CreateCommand) -> str:
        return self._send(self._input(command))

    def str_replace(self, command: BetaMemoryTool20250818StrReplaceCommand) -> str:
        return self._send(self._input(command))

    def insert(self, command: BetaMemoryTool20250818InsertCommand) -> str:
        return self._send(self._input(command))

    def delete(self, command: BetaMemoryTool20250818DeleteCommand) -> str:
        return self._send(self._input(command))

    def rename(self, command: BetaMemoryTool20250818RenameCommand) -> str:
        return self._send(self._input(command))
