r"""The Letta bridge: sync a namespace's memory blocks with a Letta agent's core memory.

:class:`LettaBridge` mirrors the core-memory blocks of a Letta agent into one namespace of a
:class:`~sleeptime_agent.storage.block_store.ChromaBlockStore` and back. Every field
Letta and we share is synced: ``value``, ``limit``, ``description``, ``read_only``, ``metadata``;
``label`` is the key.

How changes are detected (a three-way merge per field):
    After each sync the bridge records, per block and per field, a hash of the value both sides
    held. On the next sync a field that differs between the sides has changed on the side whose
    hash no longer matches the record. A field changed on one side only flows to the other; if
    any field changed on both sides the block is a :class:`SyncConflict`: neither side is
    written and both blocks are in the report. Detection compares content, so a write that
    restores the synced value is no change, and both sides reaching the same value is no conflict.

Where the sync record lives:
    In the same store, as one block per label in a hidden namespace
    ``(*namespace, "\x00letta", agent_id)`` whose value is JSON
    (``{"block_id": ..., "fields": {field: hash}}``). Keeping it out of the synced blocks means
    the blocks' ``metadata`` round-trips to Letta untouched, a sync adds no version to a block
    whose content did not change, and one namespace can be synced with several agents. A record
    for another Letta block id than the one now under the label is ignored. A stale record can
    only make the bridge report a conflict, never overwrite a change.

Rules:
    * Push never updates a Letta block that is ``read_only`` on either side (Letta's REST API does
      not enforce ``read_only``; we do). Creating a missing block in Letta is allowed, with its
      ``read_only`` flag, so a block round-trips to a new agent.
    * Neither direction writes a value longer than the limit the target would have: such a block
      is refused locally with a reason instead of being sent.
    * Deletions are not propagated: a block missing on one side is created there by the next
      pull (ours missing) or push (Letta's missing). Push never detaches or deletes Letta blocks.
    * Refusals, conflicts and concurrent changes are reported in :class:`SyncReport`, not raised.
      Unreachable servers, bad credentials and unknown agents raise :class:`MemoryUnavailable` or
      :class:`ConfigurationError`, mapped from letta-client errors at one boundary.

The bridge talks to Letta through ``letta-client`` (``letta_client.Letta``), never the ``letta``
package.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

import letta_client
from letta_client import Letta
from pydantic import BaseModel, Field

from sleeptime_agent.blocks import DEFAULT_LIMIT, MemoryBlock, utcnow
from sleeptime_agent.errors import ConfigurationError, MemoryUnavailable, VersionConflict
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = [
    "BlockChange",
    "BlockIssue",
    "LettaBridge",
    "RunSleeptime",
    "SyncConflict",
    "SyncReport",
    "format_report",
    "make_letta_client",
]

SyncField: TypeAlias = Literal["value", "limit", "description", "read_only", "metadata"]
#: The fields kept equal on both sides, in the order they are reported.
SYNC_FIELDS: tuple[SyncField, ...] = ("value", "limit", "description", "read_only", "metadata")
Operation: TypeAlias = Literal["pull", "push", "status", "consolidate", "resolve"]
#: The sleep-time seam of :meth:`LettaBridge.consolidate`: edit the namespace's blocks (through
#: ``store.put_block``) from the agent's recent messages. May be sync or async.
RunSleeptime: TypeAlias = Callable[[Namespace, list[TranscriptMessage]], None | Awaitable[None]]

_AUTHOR = "letta"  # author of the versions a pull writes into our store
_RECORD_AUTHOR = "system"
_RECORD_LIMIT = 1_000_000
_RECORD_SEGMENT = "\x00letta"  # NUL cannot come from a typed namespace part: no collision
_BLOCK_PAGE = 1000  # blocks read per agent; the server ignores `after`, so one page only
_SKIPPED_USER_EVENTS = frozenset({"heartbeat", "login", "system_alert"})


# ---------------------------------------------------------------------------------------------
# Report objects
# ---------------------------------------------------------------------------------------------


class BlockChange(BaseModel):
    """A block written (or, in a dry run, to be written) on one side."""

    label: str
    fields: list[str] = Field(description="The fields written, or every field for a new block.")
    created: bool = Field(default=False, description="The block did not exist on that side.")
    letta_block_id: str | None = None


class BlockIssue(BaseModel):
    """A block left alone on purpose, and why."""

    label: str
    reason: str


class SyncConflict(BaseModel):
    """A block changed on both sides since the last sync: neither side was written."""

    label: str
    fields: list[str] = Field(description="The fields that differ and changed on both sides.")
    ours: MemoryBlock
    theirs: MemoryBlock = Field(description="Letta's block (version 0, author 'letta').")
    letta_block_id: str | None = None


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
# Pure helpers: field mapping, hashing, planning
# ---------------------------------------------------------------------------------------------


def _norm(name: SyncField, value: Any) -> Any:
    """Normalize one field so both sides compare equal when they mean the same."""
    if name == "description":
        return value or None  # Letta cannot store None through an update; "" means none
    if name == "metadata":
        return dict(value or {})
    if name == "limit":
        return int(value) if value is not None else DEFAULT_LIMIT
    if name == "read_only":
        return bool(value)
    return value if value is not None else ""


def _fields(block: MemoryBlock) -> dict[SyncField, Any]:
    return {name: _norm(name, getattr(block, name)) for name in SYNC_FIELDS}


def _hash(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _hashes(block: MemoryBlock) -> dict[SyncField, str]:
    return {name: _hash(v) for name, v in _fields(block).items()}


def _from_letta(raw: Any) -> MemoryBlock:
    """A letta-client ``BlockResponse`` as our block (version 0: it is not in our store)."""
    return MemoryBlock(
        label=str(raw.label),
        value=_norm("value", raw.value),
        limit=_norm("limit", raw.limit),
        description=_norm("description", raw.description),
        read_only=_norm("read_only", raw.read_only),
        metadata=_norm("metadata", raw.metadata),
        author=_AUTHOR,
    )


def _letta_kwargs(values: dict[SyncField, Any]) -> dict[str, Any]:
    """Keyword arguments for letta-client's block create/update from normalized fields."""
    out: dict[str, Any] = {str(k): v for k, v in values.items()}
    if "description" in out and out["description"] is None:
        out["description"] = ""  # None would leave Letta's description unchanged
    return out


def _with(block: MemoryBlock, changes: dict[SyncField, Any]) -> MemoryBlock:
    return block.model_copy(update={str(k): v for k, v in changes.items()})


@dataclass(frozen=True)
class _Record:
    """What both sides held after the last sync of one block with one agent."""

    block_id: str
    hashes: dict[str, str]
    version: int  # the record block's own version, for compare-and-swap

    @classmethod
    def parse(cls, block: MemoryBlock) -> _Record | None:
        try:
            data = json.loads(block.value)
            return cls(str(data["block_id"]), dict(data["fields"]), block.version)
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as no record (conflicts, never overwrites)


@dataclass
class _Plan:
    """The per-label decision of a three-way merge; pure data, no I/O."""

    label: str
    ours: MemoryBlock | None
    theirs: MemoryBlock | None
    letta_id: str | None
    to_ours: dict[SyncField, Any] = field(default_factory=dict)
    to_theirs: dict[SyncField, Any] = field(default_factory=dict)
    conflict: list[SyncField] = field(default_factory=list)

    @property
    def create_ours(self) -> bool:
        return self.ours is None

    @property
    def create_theirs(self) -> bool:
        return self.theirs is None


def _plan(
    label: str,
    ours: MemoryBlock | None,
    theirs: MemoryBlock | None,
    letta_id: str | None,
    record: _Record | None,
    keep: Literal["ours", "theirs"] | None = None,
) -> _Plan:
    """Decide, field by field, what flows where (``keep`` forces one side, for ``resolve``)."""
    plan = _Plan(label, ours, theirs, letta_id)
    if ours is None and theirs is not None:
        plan.to_ours = _fields(theirs)
        return plan
    if theirs is None and ours is not None:
        plan.to_theirs = _fields(ours)
        return plan
    assert ours is not None and theirs is not None
    base = record.hashes if record is not None and record.block_id == letta_id else {}
    mine, yours = _fields(ours), _fields(theirs)
    for name in SYNC_FIELDS:
        o, t = _hash(mine[name]), _hash(yours[name])
        if o == t:
            continue
        s = base.get(name)
        if keep == "ours" or (keep is None and s is not None and t == s):
            plan.to_theirs[name] = mine[name]
        elif keep == "theirs" or (keep is None and s is not None and o == s):
            plan.to_ours[name] = yours[name]
        else:
            plan.conflict.append(name)
    return plan


def _limit_reason(block: MemoryBlock, where: str) -> str | None:
    if len(block.value) > block.limit:
        return (
            f"value would be {len(block.value)} characters, over the limit of {block.limit} {where}"
        )
    return None


def _push_refusal(plan: _Plan) -> str | None:
    """Why a push of this plan must not happen, or None."""
    if plan.theirs is None:
        assert plan.ours is not None
        return _limit_reason(plan.ours, "in Letta")
    if plan.theirs.read_only:
        return "read_only in Letta: push never writes it"
    if plan.ours is not None and plan.ours.read_only:
        return "read_only here: push never overwrites Letta with it"
    return _limit_reason(_with(plan.theirs, plan.to_theirs), "in Letta")


def _pull_refusal(plan: _Plan) -> str | None:
    """Why a pull of this plan must not happen, or None."""
    target = plan.theirs if plan.ours is None else _with(plan.ours, plan.to_ours)
    assert target is not None
    return _limit_reason(target, "here")


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
# Client construction and the error boundary
# ---------------------------------------------------------------------------------------------


def make_letta_client(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    timeout: float = 30.0,
    max_retries: int = 2,
) -> Letta:
    """Build a letta-client ``Letta`` from arguments or ``LETTA_BASE_URL`` / ``LETTA_API_KEY``.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8283``; defaults to ``$LETTA_BASE_URL``.
            With neither but an API key, letta-client's default (Letta Cloud) is used.
        api_key: defaults to ``$LETTA_API_KEY``; a self-hosted server usually needs none.
        timeout: seconds per request.
        max_retries: letta-client's retries on connection errors and 5xx answers.

    Raises:
        ConfigurationError: no server URL and no API key: nothing says where Letta is.
    """
    base_url = base_url or os.environ.get("LETTA_BASE_URL") or None
    api_key = api_key or os.environ.get("LETTA_API_KEY") or None
    if base_url is None and api_key is None:
        raise ConfigurationError(
            "no Letta server configured: pass base_url or set LETTA_BASE_URL "
            "(and LETTA_API_KEY if the server needs one)"
        )
    if base_url is None:
        return Letta(api_key=api_key, timeout=timeout, max_retries=max_retries)
    return Letta(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def _detail(exc: letta_client.APIStatusError) -> str:
    body = exc.body
    detail = body.get("detail") if isinstance(body, dict) else None
    text = str(detail if detail is not None else exc.message)
    return " ".join(text.split())


@contextmanager
def _map_letta_errors(base_url: str, agent_id: str) -> Iterator[None]:
    """The one boundary where letta-client errors become this library's errors (httpx style)."""
    where = f"Letta server at {base_url}"
    try:
        yield
    except letta_client.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise MemoryUnavailable(f"{where} is unreachable: {' '.join(str(cause).split())}") from exc
    except (letta_client.AuthenticationError, letta_client.PermissionDeniedError) as exc:
        raise ConfigurationError(
            f"{where} refused the credentials (HTTP {exc.status_code}): check LETTA_API_KEY"
        ) from exc
    except letta_client.NotFoundError as exc:
        raise ConfigurationError(
            f"agent {agent_id!r} not found on {where}: {_detail(exc)}"
        ) from exc
    except letta_client.InternalServerError as exc:
        raise MemoryUnavailable(f"{where} failed (HTTP {exc.status_code}): {_detail(exc)}") from exc
    except letta_client.APIStatusError as exc:
        raise ConfigurationError(
            f"{where} rejected a request (HTTP {exc.status_code}): {_detail(exc)}"
        ) from exc
    except letta_client.APIResponseValidationError as exc:
        raise ConfigurationError(f"{where} sent an unexpected response: {exc}") from exc


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
            page = self.client.agents.messages.list(agent_id, limit=self.max_messages, order="desc")
            return _transcript(agent_id, page.items)  # first page only: `after` is unreliable

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
        return _map_letta_errors(str(self.client.base_url), agent_id)

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
            raw = self.client.agents.blocks.list(agent_id, limit=_BLOCK_PAGE).items
            theirs = {str(b.label): b for b in raw if b.label}
            ours = {b.label: b for b in self.store.list_blocks(self.namespace)}
            records = {
                b.label: rec
                for b in self.store.list_blocks(record_ns)
                if (rec := _Record.parse(b)) is not None
            }
            labels = sorted(set(ours) | set(theirs))
            if only is not None:
                if only not in labels:
                    raise ConfigurationError(f"no block {only!r} on either side")
                labels = [only]
            for label in labels:
                raw_block = theirs.get(label)
                plan = _plan(
                    label,
                    ours.get(label),
                    _from_letta(raw_block) if raw_block is not None else None,
                    str(raw_block.id) if raw_block is not None else None,
                    records.get(label),
                    keep,
                )
                self._carry_out(plan, report, record_ns, records.get(label), pull, push, dry_run)
        return report

    def _carry_out(
        self,
        plan: _Plan,
        report: SyncReport,
        record_ns: Namespace,
        record: _Record | None,
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
                report.skipped.append(BlockIssue(label=label, reason=_waiting(plan, "pull")))
        if plan.to_theirs:
            if push:
                done = self._push_one(plan, report.agent_id, dry_run)
                _note(report, done, "push")
                if done.after is not None and done.change is not None:
                    theirs, letta_id = done.after, done.change.letta_block_id
            else:
                report.skipped.append(BlockIssue(label=label, reason=_waiting(plan, "push")))
        if not dry_run and ours is not None and theirs is not None:
            self._save_record(record_ns, record, letta_id, ours, theirs)

    def _pull_one(self, plan: _Plan, dry_run: bool) -> _Applied:
        reason = _pull_refusal(plan)
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
            new, expected = _with(plan.ours, plan.to_ours), plan.ours.version
        try:
            try:
                stored = self.store.put_block(
                    self.namespace, new, expected_version=expected, author=_AUTHOR
                )
            except VersionConflict as exc:
                if (
                    plan.ours is not None
                    or self.store.get_block(self.namespace, plan.label) is not None
                ):
                    raise
                # We deleted it (a tombstone holds the version): re-import over the tombstone.
                stored = self.store.put_block(
                    self.namespace, new, expected_version=exc.current, author=_AUTHOR
                )
        except VersionConflict:
            reason = "changed here during the sync: run it again"
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason))
        return _Applied(change=change, after=stored)

    def _push_one(self, plan: _Plan, agent_id: str, dry_run: bool) -> _Applied:
        reason = _push_refusal(plan)
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
                    label=plan.label, **_letta_kwargs(plan.to_theirs)
                )
                try:
                    blocks.attach(written.id, agent_id=agent_id)
                except Exception:
                    self.client.blocks.delete(written.id)  # leave no orphan block behind
                    raise
                change.letta_block_id = str(written.id)
            else:
                # Letta has no compare-and-swap: re-read right before writing to narrow the race.
                try:
                    now = blocks.retrieve(plan.label, agent_id=agent_id)
                except letta_client.NotFoundError:
                    now = None
                if (
                    now is None
                    or str(now.id) != plan.letta_id
                    or _hashes(_from_letta(now)) != _hashes(plan.theirs)
                ):
                    reason = "changed in Letta during the sync: run it again"
                    return _Applied(issue=BlockIssue(label=plan.label, reason=reason))
                written = blocks.update(
                    plan.label, agent_id=agent_id, **_letta_kwargs(plan.to_theirs)
                )
        except (letta_client.BadRequestError, letta_client.UnprocessableEntityError) as exc:
            reason = f"Letta refused the write: {_detail(exc)}"
            return _Applied(issue=BlockIssue(label=plan.label, reason=reason), refused=True)
        return _Applied(change=change, after=_from_letta(written))

    def _save_record(
        self,
        record_ns: Namespace,
        record: _Record | None,
        letta_id: str | None,
        ours: MemoryBlock,
        theirs: MemoryBlock,
    ) -> None:
        """Record, per field, the hash both sides now agree on (disagreeing fields keep theirs)."""
        if letta_id is None:
            return
        base = dict(record.hashes) if record is not None and record.block_id == letta_id else {}
        mine, yours = _hashes(ours), _hashes(theirs)
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


def _waiting(plan: _Plan, direction: Literal["pull", "push"]) -> str:
    """Why a one-way sync left a change for the other direction."""
    if direction == "pull":
        if plan.ours is None:
            return "only in Letta: pull imports it"
        return f"changed in Letta ({', '.join(plan.to_ours)}): pull takes it"
    if plan.theirs is None:
        return "only here: push creates it in Letta"
    return f"changed here ({', '.join(plan.to_theirs)}): push sends it"


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
