"""``sleeptime letta``: share memory blocks with a Letta agent, or consolidate it from outside.

pull: import the agent's core-memory blocks into --user's memory. push: write our blocks to the
agent (never a read-only block, never over a limit). status: what pull and push would do.
consolidate: pull blocks and recent messages, run our sleep-time agent, push the edits back.
A block changed on both sides since the last sync is a conflict: neither side is overwritten.
Needs the ``letta`` extra; without it the actions exit 3 with the install hint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from sleeptime_agent import config
from sleeptime_agent.cli.common import add_store_options, namespace_of, open_store
from sleeptime_agent.models import SLEEPTIME_MODEL_ENV, resolve_model
from sleeptime_agent.storage.block_store import Namespace
from sleeptime_agent.storage.transcript import TranscriptMessage

if TYPE_CHECKING:
    from sleeptime_agent.letta import SyncReport

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``letta`` and its actions (letta-client is imported only when one runs)."""
    p = sub.add_parser(
        "letta",
        help="sync memory blocks with a Letta agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = p.add_subparsers(dest="letta_command", metavar="ACTION", required=True)
    for name, help_ in (
        ("pull", "import the agent's blocks"),
        ("push", "write our blocks to the agent"),
        ("status", "dry run: what pull and push would do"),
        ("consolidate", "pull, run the sleep-time agent on the agent's messages, push"),
    ):
        ap = lsub.add_parser(name, help=help_, description=help_)
        ap.add_argument("--agent-id", required=True, help="the Letta agent's id")
        ap.add_argument(
            "--base-url",
            default=config.letta_base_url(),
            help="Letta server (default: $LETTA_BASE_URL; $LETTA_API_KEY is the key)",
        )
        add_store_options(ap)
        ap.add_argument("--json", action="store_true", help="machine-readable report")
        if name == "consolidate":
            ap.add_argument(
                "--sleeptime-model",
                default=None,
                help="'local' or 'provider:model' (default: $SLEEPTIME_SLEEPTIME_MODEL or local)",
            )
        ap.set_defaults(func=_cmd, action=name)


def _cmd(args: argparse.Namespace) -> int:
    # Imported here so that the rest of the CLI works without the `letta` extra; without it this
    # raises MissingExtra (a ConfigurationError: exit 3 with the one-line install hint).
    from sleeptime_agent.letta import LettaBridge, format_report

    store = open_store(args)
    bridge = LettaBridge.from_env(store, namespace=namespace_of(args), base_url=args.base_url)
    report: SyncReport
    if args.action == "consolidate":
        from sleeptime_agent.consolidation import Consolidator

        model = resolve_model(args.sleeptime_model, env_var=SLEEPTIME_MODEL_ENV)
        consolidator = Consolidator(store, model)

        async def run(namespace: Namespace, messages: list[TranscriptMessage]) -> None:
            record = await consolidator.arun_messages(namespace, messages)
            why = f" ({record.reason})" if record.reason else ""
            sys.stderr.write(
                f"[sleep-time] {record.status}: {len(record.edits)} edits, "
                f"{record.total_tokens} tokens{why}\n"
            )

        report = asyncio.run(bridge.aconsolidate(args.agent_id, run))
    else:
        report = getattr(bridge, args.action)(args.agent_id)
    if args.json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    else:
        sys.stdout.write(format_report(report) + "\n")
    return 0 if report.ok else 5
