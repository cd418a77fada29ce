"""The memory tools as LangChain tools: :func:`create_memory_tools`.

Each tool wraps one :class:`~sleeptime_agent.tools.editor.MemoryEditor` method. Its namespace
comes from the run's config (``configurable.user_id`` and optionally ``agent_id``); the store is
bound in, never an argument the model sees.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool

from sleeptime_agent.blocks import namespace_from_config
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.tools.editor import MemoryEditor, ToolError
from sleeptime_agent.tools.schemas import TOOL_ARGS

__all__ = ["create_memory_tools"]


def create_memory_tools(
    store: ChromaBlockStore,
    *,
    author: str = "sleeptime",
    include: tuple[str, ...] = tuple(TOOL_ARGS),
) -> list[BaseTool]:
    """LangChain tools over ``store``; each call reads its namespace from the run's config.

    A missing ``user_id`` is a developer error and is raised (ToolNode does not feed it to the
    model); a bad edit comes back to the model as the tool's text result.
    """

    def make(name: str) -> BaseTool:
        schema = TOOL_ARGS[name]

        def run(config: RunnableConfig, **kwargs: Any) -> str:
            editor = MemoryEditor(store, namespace_from_config(config), author=author)
            try:
                return editor.call(name, kwargs)
            except ToolError as exc:
                return f"Error: {exc}"

        async def arun(config: RunnableConfig, **kwargs: Any) -> str:
            return await asyncio.to_thread(run, config, **kwargs)

        return StructuredTool.from_function(
            func=run,
            coroutine=arun,
            name=name,
            description=(schema.__doc__ or name).strip(),
            args_schema=schema,
        )

    return [make(n) for n in include]
