"""MemoryEditor: applies the memory tools' edits to one namespace, with compare-and-swap.

:class:`MemoryEditor` holds the logic: validate, apply the edit to the block's current value, write
it with compare-and-swap, and on a conflict re-read and re-apply (rebase). Errors a model can fix
come back as :class:`ToolError` text, and nothing changes. The guards
(:mod:`sleeptime_agent.tools.guards`) refuse edits that would lose facts or save facts the run's
transcript never held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sleeptime_agent.blocks import AGENT_AUTHORS, MemoryBlock, Namespace
from sleeptime_agent.errors import BlockLimitExceeded, ReadOnlyBlock, VersionConflict
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.tools.guards import (
    content_words,
    dropped_facts,
    near_duplicate,
    ungrounded_facts,
)
from sleeptime_agent.tools.schemas import TOOL_ARGS

__all__ = ["MemoryEditor", "ToolCallInvalid", "ToolError"]

_MAX_REBASES = 5


class ToolError(Exception):
    """A tool call the model can fix: its text goes back to the model; memory is unchanged."""


class ToolCallInvalid(ToolError):
    """The call itself is malformed: unknown tool, or arguments that fail the schema."""


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
        if block.read_only and self.author in AGENT_AUTHORS:
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
        if self.guard and not new_str.strip() and content_words(old_str):
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
            near = near_duplicate(new_str, block.value)
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
        if current.read_only and self.author in AGENT_AUTHORS:
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
