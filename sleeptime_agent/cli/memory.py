"""``sleeptime memory``: show, recall, history, diff, rollback, export and import memory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from rich.console import Console
from rich.table import Table

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.cli.common import add_store_options, namespace_of, open_store
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.memory import MemoryView, ReadOptions, SleeptimeMemory
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.facts import Fact, FactStore
from sleeptime_agent.storage.recall import RecallIndex

__all__ = [
    "EXPORT_FORMAT",
    "export_memory",
    "fact_lines",
    "import_memory",
    "read_for",
    "read_lines",
    "recall_summary",
    "register",
]

EXPORT_FORMAT = "sleeptime-agent/memory-v1"


def register(sub: Any) -> None:
    """Add ``memory`` and its subcommands."""
    p = sub.add_parser(
        "memory",
        help="inspect and edit memory blocks",
        description="Inspect and edit the memory blocks that `sleeptime chat --user U` uses.",
    )
    msub = p.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    def action(name: str, help_: str, json_flag: bool = False) -> argparse.ArgumentParser:
        ap: argparse.ArgumentParser = msub.add_parser(name, help=help_, description=help_)
        add_store_options(ap)
        if json_flag:
            ap.add_argument("--json", action="store_true", help="machine-readable output")
        return ap

    ap = action("show", "show the current blocks and the dated facts", json_flag=True)
    ap.set_defaults(func=cmd_show)
    ap = action(
        "recall",
        "what the assistant would read for a message: dated facts and recalled messages",
        json_flag=True,
    )
    ap.add_argument("message", help="a message or question, as the user would write it")
    ap.add_argument(
        "--k",
        type=int,
        default=ReadOptions().recall_k,
        help=f"messages recalled before the token budget (default {ReadOptions().recall_k})",
    )
    ap.set_defaults(func=cmd_recall)
    ap = action("facts", "list the dated facts the sleep-time agent stored", json_flag=True)
    ap.set_defaults(func=cmd_facts)
    ap = action("history", "every version of one block, oldest first", json_flag=True)
    ap.add_argument("label")
    ap.set_defaults(func=cmd_history)
    ap = action("diff", "unified diff of a block between two versions", json_flag=True)
    ap.add_argument("label")
    ap.add_argument("v1", type=int)
    ap.add_argument("v2", type=int)
    ap.set_defaults(func=cmd_diff)
    ap = action("rollback", "write a new version equal to an old one (history is kept)")
    ap.add_argument("label")
    ap.add_argument("version", type=int)
    ap.set_defaults(func=cmd_rollback)
    ap = action("export", "write blocks, history and notes to a Letta-compatible JSON file")
    ap.add_argument("file", help="output path, or - for standard output")
    ap.set_defaults(func=cmd_export)
    ap = action("import", "load blocks and notes from an export (or a Letta agent file)")
    ap.add_argument("file", help="input path, or - for standard input")
    ap.set_defaults(func=cmd_import)


def _block_json(block: MemoryBlock) -> dict[str, Any]:
    return block.model_dump(mode="json")


def _out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fact_lines(facts: list[Fact]) -> list[str]:
    """One plain line per fact: date, whom it is about, the fact, the messages it came from."""
    out = []
    for f in facts:
        when = f.date[:10] if f.date else "undated"
        sources = ", ".join(str(s) for s in f.sources)
        out.append(
            f"{when}  {f.subject}: {f.text}" + (f"  (messages {sources})" if sources else "")
        )
    return out


def recall_summary(store: ChromaBlockStore, namespace: Namespace, newest: int = 5) -> list[str]:
    """How many messages recall memory holds, and the newest few as the primary reads them."""
    hits = RecallIndex(store).all(namespace)
    if not hits:
        return []
    return [f"{len(hits)} messages filed for recall; the newest:"] + [
        f"  {h.line}" for h in hits[-newest:]
    ]


def cmd_show(args: argparse.Namespace) -> int:
    """Print the current blocks (JSON: the blocks only; see ``memory facts --json``)."""
    store = open_store(args)
    namespace = namespace_of(args)
    blocks = store.list_blocks(namespace)
    if args.json:
        _out([_block_json(b) for b in blocks])
        return 0
    console = Console()
    facts = FactStore(store).all(namespace)
    if not blocks and not facts:
        console.print(f"no memory yet for user {args.user!r}")
        return 0
    for b in blocks:
        ro = " [read-only]" if b.read_only else ""
        console.rule(f"[bold]{b.label}[/] v{b.version} · {len(b.value)}/{b.limit} chars{ro}")
        if b.description:
            console.print(f"[dim]{b.description}[/]")
        console.print(b.value or "[dim](empty)[/]", highlight=False)
        console.print(f"[dim]by {b.author} at {b.updated_at:%Y-%m-%d %H:%M:%S}[/]")
    console.rule(f"[bold]dated facts[/] · {len(facts)}")
    for line in fact_lines(facts) or ["(none yet)"]:
        console.print(line, highlight=False)
    recall = recall_summary(store, namespace)
    if recall:
        console.rule("[bold]recall memory[/]")
        for line in recall:
            console.print(line, highlight=False)
    return 0


def read_for(store: ChromaBlockStore, namespace: Namespace, message: str, k: int) -> MemoryView:
    """What the primary reads for ``message``: the same read as ``sleeptime chat``'s."""
    scheduler = SleeptimeScheduler()
    try:
        # A read never calls the sleep-time model; a model that cannot answer stands in for it.
        memory = SleeptimeMemory(
            store,
            GenericFakeChatModel(messages=iter(())),
            scheduler=scheduler,
            consolidation="pipeline",
            read_options=ReadOptions(recall_k=k),
        )
        return memory.read(namespace, query=message)
    finally:
        scheduler.shutdown()


def cmd_recall(args: argparse.Namespace) -> int:
    """Print the dated facts and recalled messages the assistant would read for a message."""
    store = open_store(args)
    namespace = namespace_of(args)
    if not store.list_blocks(namespace):  # nothing to read, and a read would create the blocks
        sys.stdout.write(f"no memory yet for user {args.user!r}\n")
        return 0
    view = read_for(store, namespace, args.message, args.k)
    if args.json:
        _out(
            {
                "facts": [f.line() for f in view.facts],
                "recalled": [
                    {"seq": h.seq, "line": h.line, "score": round(h.score, 4)}
                    for h in view.recalled
                ],
                "unconsolidated": [m.content for m in view.pending],
            }
        )
        return 0
    sys.stdout.write("\n".join(read_lines(view)) + "\n")
    return 0


def read_lines(view: MemoryView) -> list[str]:
    """A read as plain lines: dated facts, recalled messages, then the unconsolidated tail."""
    lines = [f"dated facts ({len(view.facts)}):"] + [f"  {f.line()}" for f in view.facts]
    lines.append(f"recalled messages ({len(view.recalled)}, {view.recall_order} order):")
    lines += [f"  {h.line}" for h in view.recalled]
    if view.pending:
        lines.append(f"not yet consolidated, read as said ({len(view.pending)}):")
        lines += [f"  {m.role}: {m.content}" for m in view.pending]
    return lines


def cmd_facts(args: argparse.Namespace) -> int:
    """Print the dated facts, oldest first."""
    facts = FactStore(open_store(args)).all(namespace_of(args))
    if args.json:
        _out([{**f.metadata(), "id": f.id, "text": f.text} for f in facts])
        return 0
    for line in fact_lines(facts) or [f"no dated facts yet for user {args.user!r}"]:
        sys.stdout.write(line + "\n")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Print every version of a block."""
    versions = open_store(args).history(namespace_of(args), args.label)
    if not versions:
        raise_not_found(args.label)
    if args.json:
        _out([_block_json(b) for b in versions])
        return 0
    table = Table("version", "author", "updated_at", "value", title=f"history of {args.label!r}")
    for b in versions:
        table.add_row(str(b.version), b.author or "", f"{b.updated_at:%Y-%m-%d %H:%M:%S}", b.value)
    Console().print(table)
    return 0


def raise_not_found(label: str) -> None:
    """No such block: exit code 5 through the common handler."""
    from sleeptime_agent.errors import BlockNotFound

    raise BlockNotFound(label)


def cmd_diff(args: argparse.Namespace) -> int:
    """Print a unified diff between two versions."""
    text = open_store(args).diff(namespace_of(args), args.label, args.v1, args.v2)
    if args.json:
        _out({"label": args.label, "from": args.v1, "to": args.v2, "diff": text})
    else:
        sys.stdout.write((text or "(no differences)") + "\n")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Restore an old version as a new one."""
    block = open_store(args).rollback(namespace_of(args), args.label, args.version)
    sys.stdout.write(f"{args.label}: version {block.version} now equals version {args.version}\n")
    return 0


def export_memory(store: ChromaBlockStore, namespace: Namespace) -> dict[str, Any]:
    """Blocks (Letta ``CreateBlock`` fields first), their history, and archival notes."""
    blocks = store.list_blocks(namespace)
    return {
        "format": EXPORT_FORMAT,
        "namespace": list(namespace),
        # Each entry can be passed as-is in Letta's `memory_blocks` (extra keys are ours).
        "blocks": [_block_json(b) for b in blocks],
        "history": {
            b.label: [_block_json(v) for v in store.history(namespace, b.label)] for b in blocks
        },
        "notes": [
            {"text": n.text, "metadata": n.metadata, "created_at": n.created_at}
            for n in store.list_notes(namespace)
        ],
    }


def import_memory(
    store: ChromaBlockStore, namespace: Namespace, data: dict[str, Any]
) -> dict[str, int]:
    """Create or update blocks (compare-and-swap, author "user") and add missing notes."""
    raw_blocks = data.get("blocks") or data.get("memory_blocks") or data.get("core_memory")
    if not isinstance(raw_blocks, list):
        raise ConfigurationError("not a memory export: no 'blocks' list found")
    counts = {"created": 0, "updated": 0, "unchanged": 0, "notes": 0}
    for raw in raw_blocks:
        fields = {
            k: raw[k]
            for k in ("label", "value", "limit", "description", "read_only", "metadata")
            if k in raw and raw[k] is not None
        }
        block = MemoryBlock.model_validate(fields)
        current = store.get_block(namespace, block.label)
        if current is not None and _same(current, block):
            counts["unchanged"] += 1
            continue
        expected = current.version if current else _last_version(store, namespace, block.label)
        store.put_block(namespace, block, expected_version=expected, author="user")
        counts["updated" if current else "created"] += 1
    known = {n.text for n in store.list_notes(namespace)}
    for note in data.get("notes", []):
        if note["text"] not in known:
            store.add_note(namespace, note["text"], note.get("metadata"))
            counts["notes"] += 1
    return counts


def _same(a: MemoryBlock, b: MemoryBlock) -> bool:
    keys = ("value", "limit", "description", "read_only", "metadata")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _last_version(store: ChromaBlockStore, namespace: Namespace, label: str) -> int:
    history = store.history(namespace, label)
    return history[-1].version if history else 0  # a deleted block continues its history


def cmd_export(args: argparse.Namespace) -> int:
    """Write an export file."""
    data = export_memory(open_store(args), namespace_of(args))
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        sys.stderr.write(f"exported {len(data['blocks'])} blocks, {len(data['notes'])} notes\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Load an export file."""
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read {args.file}: {exc}") from exc
    counts = import_memory(open_store(args), namespace_of(args), data)
    sys.stdout.write(", ".join(f"{v} {k}" for k, v in counts.items()) + "\n")
    return 0
