r"""The Letta bridge: sync a namespace's memory blocks with a Letta agent's core memory.

:class:`LettaBridge` mirrors the core-memory blocks of a Letta agent into one namespace of a
:class:`~sleeptime_agent.storage.block_store.ChromaBlockStore` and back. Every field
Letta and we share is synced: ``value``, ``limit``, ``description``, ``read_only``, ``metadata``;
``label`` is the key. Each block goes through a three-way merge against the sync record of the
last sync: how changes are detected and where that record lives is explained in
:mod:`sleeptime_agent.letta.merge`; the client, its error mapping and its paging are in
:mod:`sleeptime_agent.letta.client`.

Rules:
    * Push never updates a Letta block that is ``read_only`` on either side (Letta's REST API does
      not enforce ``read_only``; we do). Creating a missing block in Letta is allowed, with its
      ``read_only`` flag, so a block round-trips to a new agent.
    * Neither direction writes a value longer than the limit the target would have: such a block
      is refused locally with a reason instead of being sent.
    * Deletions are not propagated: a block missing on one side is created there by the next
      pull (ours missing) or push (Letta's missing). Push never detaches or deletes Letta blocks.
    * Refusals, conflicts and concurrent changes are reported in :class:`SyncReport`, not raised.
      Unreachable servers, bad credentials and unknown agents raise
      :class:`~sleeptime_agent.errors.MemoryUnavailable` or
      :class:`~sleeptime_agent.errors.ConfigurationError`, mapped from letta-client errors at one
      boundary (:func:`~sleeptime_agent.letta.client.map_letta_errors`).

The bridge talks to Letta through ``letta-client`` (``letta_client.Letta``), never the ``letta``
package.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from letta_client import Letta
from pydantic import BaseModel, Field

from sleeptime_agent.blocks import MemoryBlock, utcnow
from sleeptime_agent.errors import ConfigurationError, VersionConflict
from sleeptime_agent.letta.client import (
    REFUSED_WRITE,
    error_detail,
    get_agent_block,
    list_agent_blocks,
    list_recent_messages,
    make_letta_client,
    map_letta_errors,
)
from sleeptime_agent.letta.merge import (
    LETTA_AUTHOR,
    SYNC_FIELDS,
    BlockChange,
    BlockIssue,
    BlockPlan,
    SyncConflict,
    SyncRecord,
    block_from_letta,
    field_hashes,
    letta_kwargs,
    plan_block,
    pull_refusal,
    push_refusal,
    waiting_reason,
    with_fields,
)
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = [
    "LettaBridge",
    "Operation",
    "RunSleeptime",
    "SyncReport",
    "format_report",
]

Operation: TypeAlias = Literal["pull", "push", "status", "consolidate", "resolve"]
#: The sleep-time seam of :meth:`LettaBridge.consolidate`: edit the namespace's blocks (through
#: ``store.put_block``) from the agent's recent messages. May be sync or async.
RunSleeptime: TypeAlias = Callable[[Namespace, list[TranscriptMessage]], None | Awaitable[None]]

_RECORD_AUTHOR = "system"
_RECORD_LIMIT = 1_000_000
_RECORD_SEGMENT = "\x00letta"  # NUL cannot come from a typed namespace part: no collision
_SKIPPED_USER_EVENTS = frozenset({"heartbeat", "login", "system_alert"})


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


class SyncReport(BaseModel):
    """What a sync did (or, for ``dry_run``, would do), per block label."""

    operation: Operation
    agent_id: str
    namespace: tuple[str, ...]
    dry_run: bool = False
    pulled: list[BlockChange] = Field(default_factory=list)
    pushed: list[BlockChange] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    skipped: list[BlockIssue] = Field(
        default_factory=list, description="Changes waiting for the other direction, or races."
    )
    conflicts: list[SyncConflict] = Field(default_factory=list)
    refused: list[BlockIssue] = Field(
        default_factory=list, description="Writes refused by a rule (read_only, limit, server)."
    )

    @property
    def ok(self) -> bool:
        """True when nothing conflicted and nothing was refused."""
        return not self.conflicts and not self.refused


# ---------------------------------------------------------------------------------------------
# Letta messages as our transcript
# ---------------------------------------------------------------------------------------------


def _text(content: Any) -> str:
    """Message content (a string or a list of content parts) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(getattr(p, "text", "") or "") for p in content).strip()
    return "" if content is None else str(content)


def _user_text(text: str) -> str | None:
    """Unwrap the JSON envelope older Letta puts around user messages; None for system events."""
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if data.get("type") in _SKIPPED_USER_EVENTS:
        return None
    message = data.get("message")
    return message if isinstance(message, str) else text


def _transcript(agent_id: str, messages: Sequence[Any]) -> list[TranscriptMessage]:
    """User and assistant messages of a Letta message page, oldest first."""
    items = list(messages)
    dates = [getattr(m, "date", None) for m in items]
    if len(items) > 1 and dates[0] is not None and dates[-1] is not None and dates[0] > dates[-1]:
        items.reverse()  # newest-first servers honour order="desc"; older ones ignore it
    out: list[TranscriptMessage] = []
    for message in items:
        kind = getattr(message, "message_type", None)
        text: str | None = _text(getattr(message, "content", None))
        if kind == "user_message":
            role, text = "user", _user_text(text or "")
        elif kind == "assistant_message":
            role = "assistant"
        else:
            continue  # system prompt, reasoning, tool calls and returns
        if not text:
            continue
        date = getattr(message, "date", None)
        out.append(
            TranscriptMessage(
                seq=len(out) + 1,
                thread_id=agent_id,
                role=role,
                content=text,
                created_at=date if isinstance(date, datetime) else utcnow(),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The bridge
# ---------------------------------------------------------------------------------------------


@dataclass
class _Applied:
    """Outcome of carrying out one plan in one direction."""

    change: BlockChange | None = None
    issue: BlockIssue | None = None
    refused: bool = False
    after: MemoryBlock | None = None  # the written side's block after the write


class LettaBridge:
    """Sync one namespace of a :class:`ChromaBlockStore` with Letta agents' core memory.

    Args:
        store: our side.
        client: a letta-client ``Letta`` (see :func:`make_letta_client`).
        namespace: the namespace that mirrors the agent's blocks.
        max_messages: how many recent messages :meth:`consolidate` reads from Letta.

    Example:
        >>> bridge = LettaBridge.from_env(store, namespace=("app", "user-1"))  # doctest: +SKIP
        >>> print(format_report(bridge.pull(agent_id)))  # doctest: +SKIP
    """

    def __init__(
        self,
        store: ChromaBlockStore,
        client: Letta,
        *,
        namespace: Namespace,
        max_messages: int = 100,
    ) -> None:
        self.store = store
        self.client = client
        self.namespace: Namespace = tuple(namespace)
        self.max_messages = max_messages

    @classmethod
    def from_env(
        cls,
        store: ChromaBlockStore,
        *,
        namespace: Namespace,
        base_url: str | None = None,
        api_key: str | None = None,
        max_messages: int = 100,
    ) -> LettaBridge:
        """A bridge whose client comes from :func:`make_letta_client` (``LETTA_BASE_URL``...)."""
        client = make_letta_client(base_url, api_key)
        return cls(store, client, namespace=namespace, max_messages=max_messages)

    # -- public operations -----------------------------------------------------------------------

    def status(self, agent_id: str) -> SyncReport:
        """Dry run: what :meth:`pull` and :meth:`push` would do; writes nothing on either side."""
        return self._sync(agent_id, "status", pull=True, push=True, dry_run=True)

    def pull(self, agent_id: str) -> SyncReport:
        """Bring Letta's changes (and blocks new in Letta) into our namespace."""
        return self._sync(agent_id, "pull", pull=True, push=False)

    def push(self, agent_id: str) -> SyncReport:
        """Send our changes to Letta: update changed blocks, create and attach missing ones."""
        return self._sync(agent_id, "push", pull=False, push=True)

    def resolve(self, agent_id: str, label: str, *, keep: Literal["ours", "theirs"]) -> SyncReport:
        """Settle a conflict on one block by copying the kept side over the other.

        The read_only and limit rules still apply: keeping ours for a block that is read_only in
        Letta is refused.
        """
        if keep not in ("ours", "theirs"):
            raise ConfigurationError(f"keep must be 'ours' or 'theirs', not {keep!r}")
        return self._sync(
            agent_id,
            "resolve",
            pull=keep == "theirs",
            push=keep == "ours",
            only=label,
            keep=keep,
        )

    def transcript(self, agent_id: str) -> list[TranscriptMessage]:
        """The agent's recent user and assistant messages (at most ``max_messages``), oldest first.

        System prompts, reasoning, tool calls and Letta's heartbeat/login events are left out.
        """
        with self._errors(agent_id):
            messages = list_recent_messages(self.client, agent_id, self.max_messages)
            return _transcript(agent_id, messages)

    def consolidate(self, agent_id: str, run_sleeptime: RunSleeptime) -> SyncReport:
        """Pull, let ``run_sleeptime(namespace, transcript)`` edit our blocks, then push.

        ``run_sleeptime`` edits blocks through the store (``put_block(..., author="sleeptime")``);
        its edits are pushed under the usual rules, so a block Letta changed meanwhile becomes a
        conflict instead of being overwritten. It must be synchronous here; use
        :meth:`aconsolidate` for a coroutine function.

        Raises:
            ConfigurationError: ``run_sleeptime`` returned an awaitable.
        """
        pulled = self.pull(agent_id)
        result = run_sleeptime(self.namespace, self.transcript(agent_id))
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise ConfigurationError(
                "run_sleeptime returned an awaitable: use `await bridge.aconsolidate(...)`"
            )
        return _merge(pulled, self.push(agent_id))

    # -- async twins: the same work in a worker thread -------------------------------------------

    async def astatus(self, agent_id: str) -> SyncReport:
        """Async :meth:`status`."""
        return await asyncio.to_thread(self.status, agent_id)

    async def apull(self, agent_id: str) -> SyncReport:
        """Async :meth:`pull`."""
        return await asyncio.to_thread(self.pull, agent_id)

    async def apush(self, agent_id: str) -> SyncReport:
        """Async :meth:`push`."""
        return await asyncio.to_thread(self.push, agent_id)

    async def aconsolidate(self, agent_id: str, run_sleeptime: RunSleeptime) -> SyncReport:
        """Async :meth:`consolidate`; ``run_sleeptime`` may be sync or a coroutine function."""
        pulled = await self.apull(agent_id)
        transcript = await asyncio.to_thread(self.transcript, agent_id)
        result = run_sleeptime(self.namespace, transcript)
        if inspect.isawaitable(result):
            await result
        return _merge(pulled, await self.apush(agent_id))

    # -- the sync engine -------------------------------------------------------------------------

    def _errors(self, agent_id: str) -> AbstractContextManager[None]:
        return map_letta_errors(str(self.client.base_url), agent_id)

    def _record_namespace(self, agent_id: str) -> Namespace:
        if not agent_id:
            raise ConfigurationError("agent_id must be a non-empty Letta agent id")
        return (*self.namespace, _RECORD_SEGMENT, agent_id)

    def _sync(
        self,
        agent_id: str,
        operation: Operation,
        *,
        pull: bool,
        push: bool,
        dry_run: bool = False,
        only: str | None = None,
        keep: Literal["ours", "theirs"] | None = None,
    ) -> SyncReport:
        record_ns = self._record_namespace(agent_id)
        report = SyncReport(
            operation=operation, agent_id=agent_id, namespace=self.namespace, dry_run=dry_run
        )
        with self._errors(agent_id):
            raw = list_agent_blocks(self.client, agent_id)
            theirs = {str(b.label): b for b in raw if b.label}
            ours = {b.label: b for b in self.store.list_blocks(self.namespace)}
            records = {
                b.label: rec
                for b in self.store.list_blocks(record_ns)
                if (rec := SyncRecord.parse(b)) is not None
            }
            labels = sorted(set(ours) | set(theirs))
            if only is not None:
                if only not in labels:
                    raise ConfigurationError(f"no block {only!r} on either side")
                labels = [only]
            for label in labels:
                raw_block = theirs.get(label)
                plan = plan_block(
                    label,
                    ours.get(label),
                    block_from_letta(raw_block) if raw_block is not None else None,
                    str(raw_block.id) if raw_block is not None else None,
                    records.get(label),
                    keep,
                )
                self._carry_out(plan, report, record_ns, records.get(label), pull, push, dry_run)
        return report

    def _carry_out(
        self,
        plan: BlockPlan,
        report: SyncReport,
        record_ns: Namespace,
        record: SyncRecord | None,
        pull: bool,
        push: bool,
        dry_run: bool,
    ) -> None:
        label = plan.label
        if plan.conflict:
            assert plan.ours is not None and plan.theirs is not None
            report.conflicts.append(
                SyncConflict(
                    label=label,
                    fields=list(plan.conflict),
                    ours=plan.ours,
                    theirs=plan.theirs,
                    letta_block_id=plan.letta_id,
                )
            )
            return
        if not plan.to_ours and not plan.to_theirs:
            report.unchanged.append(label)
            if not dry_run and plan.ours is not None and plan.theirs is not None:
                self._save_record(record_ns, record, plan.letta_id, plan.ours, plan.theirs)
            return
        ours, theirs, letta_id = plan.ours, plan.theirs, plan.letta_id
        if plan.to_ours:
            if pull:
                done = self._pull_one(plan, dry_run)
                _note(report, done, "pull")
                ours = done.after or ours
            else:
                report.skipped.append(BlockIssue(label=label, reason=waiting_reason(plan, "pull")))
        if plan.to_theirs:
            if push:
                done = self._push_one(plan, report.agent_id, dry_run)
                _note(report, done, "push")
                if done.after is not None and done.change is not None:
                    theirs, letta_id = done.after, done.change.letta_block_id
            else:
                report.skipped.append(BlockIssue(label=label, reason=waiting_reason(plan, "push")))
        if not dry_run and ours is not None and theirs is not None:
            self._save_record(record_ns, record, letta_id, ours, theirs)

    def _pull_one(self, plan: BlockPlan, dry_run: bool) -> _Applied:
        reason = pull_refusal(plan)
        if reason is not None:
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason), refused=True)
        change = BlockChange(
            label=plan.label,
            fields=list(plan.to_ours),
            created=plan.create_ours,
            letta_block_id=plan.letta_id,
        )
        if dry_run:
            return _Applied(change=change)
        if plan.ours is None:
            assert plan.theirs is not None
            new, expected = plan.theirs, 0
        else:
            new, expected = with_fields(plan.ours, plan.to_ours), plan.ours.version
        try:
            try:
                stored = self.store.put_block(
                    self.namespace, new, expected_version=expected, author=LETTA_AUTHOR
                )
            except VersionConflict as exc:
                if (
                    plan.ours is not None
                    or self.store.get_block(self.namespace, plan.label) is not None
                ):
                    raise
                # We deleted it (a tombstone holds the version): re-import over the tombstone.
                stored = self.store.put_block(
                    self.namespace, new, expected_version=exc.current, author=LETTA_AUTHOR
                )
        except VersionConflict:
            reason = "changed here during the sync: run it again"
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason))
        return _Applied(change=change, after=stored)

    def _push_one(self, plan: BlockPlan, agent_id: str, dry_run: bool) -> _Applied:
        reason = push_refusal(plan)
        if reason is not None:
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason), refused=True)
        change = BlockChange(
            label=plan.label,
            fields=list(plan.to_theirs),
            created=plan.create_theirs,
            letta_block_id=plan.letta_id,
        )
        if dry_run:
            return _Applied(change=change)
        blocks = self.client.agents.blocks
        try:
            if plan.theirs is None:
                written = self.client.blocks.create(
                    label=plan.label, **letta_kwargs(plan.to_theirs)
                )
                try:
                    blocks.attach(written.id, agent_id=agent_id)
                except Exception:
                    self.client.blocks.delete(written.id)  # leave no orphan block behind
                    raise
                change.letta_block_id = str(written.id)
            else:
                # Letta has no compare-and-swap: re-read right before writing to narrow the race.
                now = get_agent_block(self.client, agent_id, plan.label)
                if (
                    now is None
                    or str(now.id) != plan.letta_id
                    or field_hashes(block_from_letta(now)) != field_hashes(plan.theirs)
                ):
                    reason = "changed in Letta during the sync: run it again"
                    return _Applied(issue=BlockIssue(label=plan.label, reason=reason))
                written = blocks.update(
                    plan.label, agent_id=agent_id, **letta_kwargs(plan.to_theirs)
                )
        except REFUSED_WRITE as exc:
            reason = f"Letta refused the write: {error_detail(exc)}"
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason), refused=True)
        return _Applied(change=change, after=block_from_letta(written))

    def _save_record(
        self,
        record_ns: Namespace,
        record: SyncRecord | None,
        letta_id: str | None,
        ours: MemoryBlock,
        theirs: MemoryBlock,
    ) -> None:
        """Record, per field, the hash both sides now agree on (disagreeing fields keep theirs)."""
        if letta_id is None:
            return
        base = dict(record.hashes) if record is not None and record.block_id == letta_id else {}
        mine, yours = field_hashes(ours), field_hashes(theirs)
        merged: dict[str, str] = dict(base)
        merged.update({name: mine[name] for name in SYNC_FIELDS if mine[name] == yours[name]})
        if record is not None and record.block_id == letta_id and record.hashes == merged:
            return
        value = json.dumps({"block_id": letta_id, "fields": merged}, sort_keys=True)
        block = MemoryBlock(label=ours.label, value=value, limit=_RECORD_LIMIT)
        expected = record.version if record is not None else 0
        try:
            self.store.put_block(record_ns, block, expected_version=expected, author=_RECORD_AUTHOR)
        except VersionConflict:
            pass  # a concurrent sync wrote it; a stale record only ever yields a conflict


def _note(report: SyncReport, done: _Applied, direction: Literal["pull", "push"]) -> None:
    if done.change is not None:
        (report.pulled if direction == "pull" else report.pushed).append(done.change)
    elif done.issue is not None:
        (report.refused if done.refused else report.skipped).append(done.issue)


def _merge(first: SyncReport, second: SyncReport) -> SyncReport:
    """One consolidate report from its pull and its push (later facts win per label)."""
    pulled_labels = {c.label for c in first.pulled}
    conflicts = {c.label: c for c in [*first.conflicts, *second.conflicts]}
    refused = {(i.label, i.reason): i for i in [*first.refused, *second.refused]}
    return SyncReport(
        operation="consolidate",
        agent_id=second.agent_id,
        namespace=second.namespace,
        pulled=first.pulled,
        pushed=second.pushed,
        unchanged=[
            label
            for label in second.unchanged
            if label not in pulled_labels and label not in conflicts
        ],
        skipped=second.skipped,
        conflicts=list(conflicts.values()),
        refused=list(refused.values()),
    )


# ---------------------------------------------------------------------------------------------
# Human output (the CLI prints this; --json prints report.model_dump(mode="json"))
# ---------------------------------------------------------------------------------------------


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def format_report(report: SyncReport) -> str:
    """A few human-readable lines describing a :class:`SyncReport`."""
    verb = "would be " if report.dry_run else ""
    ns = "/".join(report.namespace)
    lines = [
        f"{report.operation} {report.agent_id} <-> {ns}"
        + (" (dry run)" if report.dry_run else "")
        + f": {len(report.pulled)} pulled, {len(report.pushed)} pushed, "
        f"{len(report.unchanged)} unchanged, {len(report.conflicts)} conflicts, "
        f"{len(report.refused)} refused, {len(report.skipped)} skipped"
    ]
    for direction, changes in (("pulled", report.pulled), ("pushed", report.pushed)):
        for c in changes:
            what = "created" if c.created else ", ".join(c.fields)
            lines.append(f"  {verb}{direction:<7} {c.label}: {what}")
    for conflict in report.conflicts:
        lines.append(
            f"  conflict {conflict.label}: {', '.join(conflict.fields)} changed on both sides"
        )
        for name in conflict.fields:
            ours, theirs = getattr(conflict.ours, name), getattr(conflict.theirs, name)
            lines.append(f"      {name} ours:   {_short(str(ours))}")
            lines.append(f"      {name} theirs: {_short(str(theirs))}")
    for issue in report.refused:
        lines.append(f"  refused  {issue.label}: {issue.reason}")
    for issue in report.skipped:
        lines.append(f"  skipped  {issue.label}: {issue.reason}")
    if report.unchanged:
        lines.append(f"  unchanged: {', '.join(report.unchanged)}")
    return "\n".join(lines)
