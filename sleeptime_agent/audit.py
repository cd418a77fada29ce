"""Check the run ledger against block history: no edit lost, none applied twice.

Every block edit a sleep-time run records in its ledger entry names the version it wrote
(``{"tool", "label", "from", "to"}``); every archival insert names its note id. History is
append-only, so the two must agree exactly:

- a *lost* edit is one the ledger records but history does not hold (the version is missing
  or was written by someone else), or a recorded note that is not in the store;
- a *duplicated* edit is a sleep-time version in history that no ledger entry accounts for
  (what re-applying a preempted or retried step would leave behind), or one recorded twice.

Runs that end without a record (a process killed mid-run) also leave unrecorded versions, so
audit namespaces whose runs all finished.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace

__all__ = ["EditAudit", "audit_edits"]


@dataclass
class EditAudit:
    """What :func:`audit_edits` found."""

    edits: int = 0
    """Edits the ledger records (block versions and notes)."""
    lost: list[str] = field(default_factory=list)
    """Recorded edits missing from the store, described."""
    duplicated: list[str] = field(default_factory=list)
    """Sleep-time writes in history that no single ledger entry accounts for, described."""

    @property
    def ok(self) -> bool:
        """No edit lost and none duplicated."""
        return not self.lost and not self.duplicated


def audit_edits(
    store: ChromaBlockStore,
    namespace: Namespace,
    runs: Iterable[RunRecord],
    *,
    author: str = "sleeptime",
) -> EditAudit:
    """Compare the edits recorded by ``runs`` of ``namespace`` with its blocks' history.

    Args:
        store: The block store the runs wrote to.
        namespace: Whose blocks and notes to check.
        runs: Ledger records (runs of other namespaces are ignored).
        author: The author the runs write as.

    Returns:
        The audit; ``ok`` when every recorded edit is in history exactly once and history
        holds no unrecorded write by ``author``.
    """
    audit = EditAudit()
    recorded: Counter[tuple[str, int]] = Counter()
    notes: Counter[str] = Counter()
    for run in runs:
        if tuple(run.namespace) != tuple(namespace):
            continue
        for edit in run.edits:
            audit.edits += 1
            if edit.get("note_id"):
                notes[str(edit["note_id"])] += 1
            elif edit.get("label") is not None:
                recorded[(str(edit["label"]), int(edit["to"]))] += 1
    written: dict[tuple[str, int], str | None] = {}
    for label in {b.label for b in store.list_blocks(namespace)} | {k[0] for k in recorded}:
        for block in store.history(namespace, label):
            written[(label, block.version)] = block.author
    for (label, number), count in sorted(recorded.items()):
        if written.get((label, number)) != author:
            audit.lost.append(f"{label} v{number}: recorded, not in history as {author!r}")
        if count > 1:
            audit.duplicated.append(f"{label} v{number}: recorded {count} times")
    for (label, number), who in sorted(written.items()):
        if who == author and (label, number) not in recorded:
            audit.duplicated.append(f"{label} v{number}: written by {author!r}, not recorded")
    stored = {n.id: str(n.metadata.get("author", "")) for n in store.list_notes(namespace)}
    for note_id, count in sorted(notes.items()):
        if note_id not in stored:
            audit.lost.append(f"note {note_id}: recorded, not stored")
        if count > 1:
            audit.duplicated.append(f"note {note_id}: recorded {count} times")
    for note_id, who in sorted(stored.items()):
        if who == author and note_id not in notes:
            audit.duplicated.append(f"note {note_id}: stored by {author!r}, not recorded")
    return audit
