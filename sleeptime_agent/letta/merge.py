r"""The three-way merge plan of the Letta bridge: per block and per field, what flows where.

Pure logic, no client calls: the bridge (:mod:`sleeptime_agent.letta.bridge`) reads both sides
and the sync record, asks :func:`plan_block` what to do with each label, and carries it out.
Every field Letta and we share is synced: ``value``, ``limit``, ``description``, ``read_only``,
``metadata`` (:data:`SYNC_FIELDS`); ``label`` is the key.

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
    (``{"block_id": ..., "fields": {field: hash}}``, read by :meth:`SyncRecord.parse`). Keeping
    it out of the synced blocks means the blocks' ``metadata`` round-trips to Letta untouched, a
    sync adds no version to a block whose content did not change, and one namespace can be synced
    with several agents. A record for another Letta block id than the one now under the label is
    ignored. A stale record can only make the bridge report a conflict, never overwrite a change.

Refusals decided here (:func:`push_refusal`, :func:`pull_refusal`):
    Push never updates a Letta block that is ``read_only`` on either side (Letta's REST API does
    not enforce ``read_only``; we do); creating a missing block in Letta is allowed, with its
    ``read_only`` flag. Neither direction writes a value longer than the limit the target would
    have.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, Field

from sleeptime_agent.blocks import DEFAULT_LIMIT, MemoryBlock

__all__ = [
    "LETTA_AUTHOR",
    "SYNC_FIELDS",
    "BlockChange",
    "BlockIssue",
    "BlockPlan",
    "SyncConflict",
    "SyncField",
    "SyncRecord",
    "block_from_letta",
    "field_hashes",
    "letta_kwargs",
    "plan_block",
    "pull_refusal",
    "push_refusal",
    "waiting_reason",
    "with_fields",
]

SyncField: TypeAlias = Literal["value", "limit", "description", "read_only", "metadata"]
#: The fields kept equal on both sides, in the order they are reported.
SYNC_FIELDS: tuple[SyncField, ...] = ("value", "limit", "description", "read_only", "metadata")
#: Author of the versions a pull writes into our store, and of Letta's side of a conflict.
LETTA_AUTHOR = "letta"


# ---------------------------------------------------------------------------------------------
# Report items: what happened (or would happen) to one block
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


# ---------------------------------------------------------------------------------------------
# Field mapping and hashing
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


def field_hashes(block: MemoryBlock) -> dict[SyncField, str]:
    """The hash of each normalized sync field of ``block`` (what a sync record stores)."""
    return {name: _hash(v) for name, v in _fields(block).items()}


def block_from_letta(raw: Any) -> MemoryBlock:
    """A letta-client ``BlockResponse`` as our block (version 0: it is not in our store)."""
    return MemoryBlock(
        label=str(raw.label),
        value=_norm("value", raw.value),
        limit=_norm("limit", raw.limit),
        description=_norm("description", raw.description),
        read_only=_norm("read_only", raw.read_only),
        metadata=_norm("metadata", raw.metadata),
        author=LETTA_AUTHOR,
    )


def letta_kwargs(values: dict[SyncField, Any]) -> dict[str, Any]:
    """Keyword arguments for letta-client's block create/update from normalized fields."""
    out: dict[str, Any] = {str(k): v for k, v in values.items()}
    if "description" in out and out["description"] is None:
        out["description"] = ""  # None would leave Letta's description unchanged
    return out


def with_fields(block: MemoryBlock, changes: dict[SyncField, Any]) -> MemoryBlock:
    """A copy of ``block`` with ``changes`` applied."""
    return block.model_copy(update={str(k): v for k, v in changes.items()})


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRecord:
    """What both sides held after the last sync of one block with one agent."""

    block_id: str
    hashes: dict[str, str]
    version: int  # the record block's own version, for compare-and-swap

    @classmethod
    def parse(cls, block: MemoryBlock) -> SyncRecord | None:
        """The record stored in ``block``, or None when it is unreadable."""
        try:
            data = json.loads(block.value)
            return cls(str(data["block_id"]), dict(data["fields"]), block.version)
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as no record (conflicts, never overwrites)


@dataclass
class BlockPlan:
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
        """The block is missing here: a pull creates it."""
        return self.ours is None

    @property
    def create_theirs(self) -> bool:
        """The block is missing in Letta: a push creates it."""
        return self.theirs is None


def plan_block(
    label: str,
    ours: MemoryBlock | None,
    theirs: MemoryBlock | None,
    letta_id: str | None,
    record: SyncRecord | None,
    keep: Literal["ours", "theirs"] | None = None,
) -> BlockPlan:
    """Decide, field by field, what flows where (``keep`` forces one side, for ``resolve``)."""
    plan = BlockPlan(label, ours, theirs, letta_id)
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


def push_refusal(plan: BlockPlan) -> str | None:
    """Why a push of this plan must not happen, or None."""
    if plan.theirs is None:
        assert plan.ours is not None
        return _limit_reason(plan.ours, "in Letta")
    if plan.theirs.read_only:
        return "read_only in Letta: push never writes it"
    if plan.ours is not None and plan.ours.read_only:
        return "read_only here: push never overwrites Letta with it"
    return _limit_reason(with_fields(plan.theirs, plan.to_theirs), "in Letta")


def pull_refusal(plan: BlockPlan) -> str | None:
    """Why a pull of this plan must not happen, or None."""
    target = plan.theirs if plan.ours is None else with_fields(plan.ours, plan.to_ours)
    assert target is not None
    return _limit_reason(target, "here")


def waiting_reason(plan: BlockPlan, direction: Literal["pull", "push"]) -> str:
    """Why a one-way sync left a change for the other direction."""
    if direction == "pull":
        if plan.ours is None:
            return "only in Letta: pull imports it"
        return f"changed in Letta ({', '.join(plan.to_ours)}): pull takes it"
    if plan.theirs is None:
        return "only here: push creates it in Letta"
    return f"changed here ({', '.join(plan.to_theirs)}): push sends it"
