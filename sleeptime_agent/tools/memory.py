"""Memory-edit tools with Letta's names and arguments, on a ChromaBlockStore.

:class:`MemoryEditor` holds the logic: validate, apply the edit to the block's current value, write
it with compare-and-swap, and on a conflict re-read and re-apply (rebase). Errors a model can fix
come back as :class:`ToolError` text, and nothing changes. :func:`create_memory_tools` wraps the
editor as LangChain tools whose namespace comes from the run's config (``configurable.user_id`` and
optionally ``agent_id``); the store is bound in, never an argument the model sees.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import (
    BlockLimitExceeded,
    ConfigurationError,
    ReadOnlyBlock,
    VersionConflict,
)
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace

__all__ = [
    "ArchivalInsertArgs",
    "ArchivalSearchArgs",
    "FinishArgs",
    "MemoryEditor",
    "MemoryInsertArgs",
    "MemoryReplaceArgs",
    "MemoryRethinkArgs",
    "TOOL_ARGS",
    "ToolCallInvalid",
    "ToolError",
    "create_memory_tools",
    "dropped_facts",
    "ungrounded_facts",
    "namespace_from_config",
    "tool_specs",
]

_MAX_REBASES = 5


class ToolError(Exception):
    """A tool call the model can fix: its text goes back to the model; memory is unchanged."""


class ToolCallInvalid(ToolError):
    """The call itself is malformed: unknown tool, or arguments that fail the schema."""


# -- argument schemas (what the model sees) -----------------------------------------------------


class MemoryReplaceArgs(BaseModel):
    """Replace one exact occurrence of old_str in a memory block with new_str."""

    label: str = Field(description="Label of the block to edit.")
    old_str: str = Field(description="Text copied exactly from the block; must occur once.")
    new_str: str = Field(description="Replacement text (may be empty to delete old_str).")


class MemoryInsertArgs(BaseModel):
    """Insert text as new line(s) into a memory block."""

    label: str = Field(description="Label of the block to edit.")
    new_str: str = Field(description="Text to insert, e.g. one new fact.")
    insert_line: int = Field(
        default=-1, description="Line number to insert after (0 = at the top, -1 = at the end)."
    )


class MemoryRethinkArgs(BaseModel):
    """Rewrite a whole memory block, keeping every fact that is still true."""

    label: str = Field(description="Label of the block to rewrite (created if missing).")
    new_memory: str = Field(description="The complete new value of the block.")
    removed: str = Field(
        default="",
        description="Facts deliberately dropped from the block and why (e.g. outdated).",
    )


class FinishArgs(BaseModel):
    """Finish editing memory for now."""


class ArchivalInsertArgs(BaseModel):
    """Save a detail to long-term archival memory (searchable later)."""

    content: str = Field(description="The text to archive.")


class ArchivalSearchArgs(BaseModel):
    """Search long-term archival memory."""

    query: str = Field(description="What to look for.")
    k: int = Field(default=5, ge=1, le=50, description="How many results.")


TOOL_ARGS: dict[str, type[BaseModel]] = {
    "memory_replace": MemoryReplaceArgs,
    "memory_insert": MemoryInsertArgs,
    "memory_rethink": MemoryRethinkArgs,
    "memory_finish_edits": FinishArgs,
    "archival_memory_insert": ArchivalInsertArgs,
    "archival_memory_search": ArchivalSearchArgs,
}


# -- the destructive-rewrite guard --------------------------------------------------------------

_STOP = frozenset(
    "the a an and or of to in on at for with is are was were be been my your his her their "
    "our user users has have had i me he she they it this that from as by not no".split()
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[\w']+", text.lower()) if len(w) > 1 and w not in _STOP}


def _distinctive(fact: str) -> set[str]:
    """Numbers and mid-sentence capitalised words: the part of a fact that must survive."""
    tokens = re.findall(r"[\w']+", fact)
    return {
        t.lower()
        for i, t in enumerate(tokens)
        if t[0].isdigit() or (i > 0 and t[0].isupper() and t.lower() not in _STOP)
    }


def _near_duplicate(new: str, value: str, share: float = 0.8) -> str | None:
    """An existing line that already holds at least ``share`` of ``new``'s content words."""
    words = _words(new)
    if len(words) < 3:
        return None  # too short to judge; exact repeats are caught separately
    for line in value.split("\n"):
        if len(words & _words(line)) / len(words) >= share:
            return line
    return None


def _facts(value: str) -> list[str]:
    parts = re.split(r"\n+|(?<=[.!?])\s+(?=[A-Z0-9-])", value)
    return [p.strip(" -*\t") for p in parts if _words(p)]


def dropped_facts(old: str, new: str, *, removed: str = "", keep: float = 0.5) -> list[str]:
    """Facts of ``old`` that ``new`` no longer holds and ``removed`` does not account for.

    A fact is a line (or sentence) of the old value. It counts as kept when more than ``keep``
    of its content words appear in the new value, or when all its numbers and names
    (mid-sentence capitalised words) do, so "Age: 36" may become "36 years"; it counts as
    accounted for when at least ``keep`` of its words appear in ``removed``. Word overlap is
    deliberately simple: a rewrite may rephrase and merge lines, but not lose a fact silently.
    """
    new_words, removed_words = _words(new), _words(removed)
    lost = []
    for fact in _facts(old):
        words = _words(fact)
        if len(words & new_words) / len(words) > keep:
            continue
        names = _distinctive(fact)
        if names and names <= new_words:
            continue
        if len(words & removed_words) / len(words) >= keep:
            continue
        lost.append(fact)
    return lost


def _stem(word: str) -> str:
    # Plural and possessive endings only: enough for "biologists" to match "biologist".
    word = word.removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


_FIELD_LABEL = re.compile(r"^[\w' ]{1,30}:\s+")


def ungrounded_facts(text: str, sources: str, *, support: float = 0.5) -> list[str]:
    """Sentences of ``text`` that ``sources`` does not support.

    A sentence is supported when at least ``support`` of its content words (plural endings
    ignored; a leading field label such as "Name:" left out) occur in ``sources`` and every
    name and number in it (see :func:`dropped_facts`) does too. Rephrasing and shortening
    pass; elaboration the conversation never contained ("Marine biologists also develop new
    technologies ...") and invented names do not.
    """
    known = {_stem(w) for w in _words(sources)}
    # Names and numbers are looked up among every token: "0" or "7" is not a content word.
    tokens = {_stem(t.lower()) for t in re.findall(r"[\w']+", sources)}
    out = []
    for fact in _facts(text):
        body = _FIELD_LABEL.sub("", fact)
        words = {_stem(w) for w in _words(body)}
        if not words:
            continue
        names = {_stem(w) for w in _distinctive(body)}
        if len(words & known) / len(words) < support or not names <= tokens:
            out.append(fact)
    return out


# -- the editor ---------------------------------------------------------------------------------


@dataclass
class MemoryEditor:
    """Applies memory edits for one namespace and author, recording what happened.

    ``seen`` maps a label to the version the agent was shown; ``memory_rethink`` (a whole rewrite
    computed from what the agent saw) refuses to overwrite a newer version, while
    ``memory_replace`` and ``memory_insert`` are re-applied to the newest value (rebase).
    """

    store: ChromaBlockStore
    namespace: Namespace
    author: str = "sleeptime"
    guard: bool = True
    sources: str | None = None
    """What this run read (its transcript). When set, new text must be supported by it or by
    the block's current value (:func:`ungrounded_facts`), except in ``free_labels``."""
    free_labels: frozenset[str] = frozenset({"anticipation"})
    """Blocks of the agent's own predictions, not facts from the conversation."""
    seen: dict[str, int] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def _current(self, label: str) -> MemoryBlock:
        block = self.store.get_block(self.namespace, label)
        if block is None:
            labels = [b.label for b in self.store.list_blocks(self.namespace)]
            raise ToolError(f"unknown block label {label!r}; existing labels: {labels}")
        if block.read_only and self.author in ("primary", "sleeptime"):
            raise ToolError(f"block {label!r} is read_only; it cannot be edited")
        return block

    def _check_grounded(self, label: str | None, text: str, value: str = "") -> None:
        if self.sources is None or label in self.free_labels:
            return
        invented = ungrounded_facts(text, f"{self.sources}\n{value}")
        if invented:
            # Seen on a 1.5B model: the user's line saved with made-up elaboration after it.
            raise ToolError(
                "not in the conversation: "
                + "; ".join(repr(f if len(f) <= 200 else f[:200] + "...") for f in invented[:5])
                + ". Save only what was said (shortened or rephrased is fine)"
                + ("" if label is None else ", or put predictions in the anticipation block")
                + "."
            )

    def _write(self, label: str, change: Callable[[MemoryBlock], str], kind: str) -> MemoryBlock:
        """Apply ``change`` to the newest value and CAS-write it, re-applying on conflict."""
        for _ in range(_MAX_REBASES):
            block = self._current(label)
            value = change(block)
            if value == block.value:
                raise ToolError(f"this edit does not change block {label!r}; nothing to do")
            try:
                stored = self.store.put_block(
                    self.namespace,
                    block.model_copy(update={"value": value}),
                    expected_version=block.version,
                    author=self.author,
                )
            except VersionConflict:
                continue  # someone wrote meanwhile: re-read and re-apply the same edit
            except (BlockLimitExceeded, ReadOnlyBlock) as exc:
                raise ToolError(str(exc)) from exc
            if self.seen.get(label, block.version) == block.version:
                # Only an edit on top of the version the agent saw leaves it knowing the block;
                # after a rebase over someone else's write, a rewrite must be shown it first.
                self.seen[label] = stored.version
            self.edits.append(
                {"tool": kind, "label": label, "from": block.version, "to": stored.version}
            )
            return stored
        raise ToolError(f"block {label!r} keeps changing under this edit; try again later")

    def memory_replace(self, label: str, old_str: str, new_str: str) -> str:
        """Replace the unique occurrence of ``old_str``."""
        if not old_str:
            raise ToolError("old_str is empty; copy the exact text to replace from the block")
        if self.guard and not new_str.strip() and _words(old_str):
            # Seen on a 1.5B model: facts "replaced" by nothing, one per step, until the block
            # was blank lines. History keeps them, but memory lost them without a reason.
            raise ToolError(
                "new_str is empty: this would delete a fact. To update it, write the new fact "
                "as new_str; to record that it no longer holds, say so (e.g. 'No longer ...')"
            )

        def change(block: MemoryBlock) -> str:
            n = block.value.count(old_str)
            if n == 0:
                raise ToolError(f"old_str {old_str!r} does not occur in block {label!r}")
            if n > 1:
                raise ToolError(
                    f"old_str {old_str!r} occurs {n} times in block {label!r}; "
                    "include more surrounding text so it is unique"
                )
            self._check_grounded(label, new_str, block.value)
            return block.value.replace(old_str, new_str, 1)

        stored = self._write(label, change, "memory_replace")
        return f"replaced text in block {label!r} (now version {stored.version})"

    def memory_insert(self, label: str, new_str: str, insert_line: int = -1) -> str:
        """Insert ``new_str`` after line ``insert_line`` (-1 = at the end)."""
        if not new_str.strip():
            raise ToolError("new_str is empty; nothing to insert")

        def change(block: MemoryBlock) -> str:
            if new_str.strip() in block.value:
                # Small models repeat edits they already made; a repeat is not an edit.
                raise ToolError(f"block {label!r} already contains this text; nothing to do")
            near = _near_duplicate(new_str, block.value)
            if near is not None:
                # Seen on a 1.5B model: each insert re-stated the previous line plus a sentence.
                raise ToolError(
                    f"block {label!r} already holds this (line: {near!r}); insert only new facts, "
                    "or use memory_replace to change that line"
                )
            self._check_grounded(label, new_str, block.value)
            lines = block.value.split("\n") if block.value else []
            # Past the end means "at the end": small models guess line numbers.
            at = len(lines) if insert_line < 0 else min(insert_line, len(lines))
            return "\n".join(lines[:at] + new_str.split("\n") + lines[at:])

        stored = self._write(label, change, "memory_insert")
        return f"inserted into block {label!r} (now version {stored.version})"

    def memory_rethink(self, label: str, new_memory: str, removed: str = "") -> str:
        """Rewrite a whole block (create it if missing), guarded against silent fact loss."""
        current = self.store.get_block(self.namespace, label)
        if current is None:
            if not new_memory.strip():
                raise ToolError("new_memory is empty; nothing to create")
            self._check_grounded(label, new_memory)
            try:
                stored = self.store.put_block(
                    self.namespace,
                    MemoryBlock(label=label, value=new_memory),
                    expected_version=0,
                    author=self.author,
                )
            except (BlockLimitExceeded, VersionConflict, ValidationError) as exc:
                # ValidationError: a label MemoryBlock refuses (empty, over 200 characters).
                raise ToolError(str(exc)) from exc
            self.seen[label] = stored.version
            self.edits.append({"tool": "memory_rethink", "label": label, "from": 0, "to": 1})
            return f"created block {label!r}"
        if current.read_only and self.author in ("primary", "sleeptime"):
            raise ToolError(f"block {label!r} is read_only; it cannot be edited")
        if not new_memory.strip() and current.value.strip():
            raise ToolError(
                f"refusing to empty block {label!r}; use memory_replace to remove single facts"
            )
        self._check_grounded(label, new_memory, current.value)
        seen = self.seen.get(label, current.version)
        if current.version != seen:
            # A whole rewrite is computed from what the agent saw; never clobber newer text.
            # The error shows the new value, so the agent has now seen this version.
            self.seen[label] = current.version
            raise ToolError(
                f"block {label!r} changed since you read it (version {seen} -> "
                f"{current.version}). Its value is now:\n{current.value}\nRewrite it from this."
            )
        if self.guard:
            dropping = dropped_facts(current.value, new_memory)
            if len(dropping) > 1:
                # Declared or not, several facts gone in one rewrite is how consolidation
                # destroys memory (seen on a 1.5B model); outdated facts go one at a time.
                raise ToolError(
                    f"memory_rethink would drop {len(dropping)} facts at once: "
                    + "; ".join(repr(f) for f in dropping)
                    + ". Keep them; replace an outdated fact on its own with memory_replace."
                )
            lost = dropped_facts(current.value, new_memory, removed=removed)
            if lost:
                raise ToolError(
                    "memory_rethink would drop these facts: "
                    + "; ".join(repr(f) for f in lost)
                    + ". Keep them, or list them in `removed` with the reason they are outdated."
                )

        def change(block: MemoryBlock) -> str:
            if block.version != current.version:
                raise ToolError(f"block {label!r} changed while rewriting; read it again")
            return new_memory

        stored = self._write(label, change, "memory_rethink")
        return f"rewrote block {label!r} (now version {stored.version})"

    def memory_finish_edits(self) -> str:
        """End the edit loop."""
        self.finished = True
        return "memory edits finished"

    def archival_memory_insert(self, content: str) -> str:
        """Archive a note."""
        if not content.strip():
            raise ToolError("content is empty; nothing to archive")
        self._check_grounded(None, content)
        note_id = self.store.add_note(self.namespace, content, {"author": self.author})
        self.edits.append({"tool": "archival_memory_insert", "note_id": note_id})
        return "archived"

    def archival_memory_search(self, query: str, k: int = 5) -> str:
        """Search archived notes."""
        hits = self.store.search_notes(self.namespace, query, k)
        if not hits:
            return "no archival notes match"
        return "\n".join(f"- {h.text} (score {h.score:.2f})" for h in hits)

    def call(self, name: str, args: dict[str, Any]) -> str:
        """Validate and run one tool call; :class:`ToolError` means the model can fix it."""
        schema = TOOL_ARGS.get(name)
        if schema is None:
            raise ToolCallInvalid(f"unknown tool {name!r}; available tools: {sorted(TOOL_ARGS)}")
        try:
            parsed = schema.model_validate(args)
        except Exception as exc:  # pydantic's message lists every bad field
            raise ToolCallInvalid(f"invalid arguments for {name}: {exc}") from exc
        method: Callable[..., str] = getattr(self, name)
        return method(**parsed.model_dump())


def tool_specs(
    names: tuple[str, ...] = tuple(TOOL_ARGS), labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """OpenAI-format tool specs (name, description, JSON schema) for ``bind_tools``.

    With ``labels``, the ``label`` argument is an enum of them: providers with constrained
    decoding (and the local model's grammar) then cannot name a block that does not exist or
    that the agent may not edit. Small models otherwise invent labels from descriptions.
    """
    specs = []
    for name in names:
        schema = TOOL_ARGS[name]
        params = schema.model_json_schema()
        params.pop("title", None)
        params.pop("description", None)
        if labels and "label" in params.get("properties", {}):
            params["properties"]["label"] = {
                **params["properties"]["label"],
                "enum": list(labels),
            }
        specs.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": (schema.__doc__ or name).strip(),
                    "parameters": params,
                },
            }
        )
    return specs


def namespace_from_config(config: RunnableConfig | None) -> Namespace:
    """``(user_id,)`` or ``(user_id, agent_id)`` from ``config["configurable"]``."""
    conf = (config or {}).get("configurable", {})
    user_id = conf.get("user_id")
    if not user_id:
        raise ConfigurationError("set config['configurable']['user_id'] to choose whose memory")
    agent_id = conf.get("agent_id")
    namespace = (str(user_id), str(agent_id)) if agent_id else (str(user_id),)
    if any("\x00" in part for part in namespace):
        # NUL is reserved: (user_id, "\x00sleeptime") holds that user's cursor and lease.
        raise ConfigurationError("user_id and agent_id may not contain NUL characters")
    return namespace


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
