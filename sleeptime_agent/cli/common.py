"""Options shared by the subcommands: which memory (user, store) and which models."""

from __future__ import annotations

import argparse

from sleeptime_agent import config
from sleeptime_agent.config import default_store_path
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace

__all__ = ["add_model_options", "add_store_options", "namespace_of", "open_store"]


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--user`` and ``--store DIR | --chroma-url URL``."""
    parser.add_argument(
        "--user",
        default=config.user_id(),
        help="whose memory (default: $SLEEPTIME_USER or your login name)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store",
        metavar="DIR",
        help=f"embedded Chroma directory (default: {default_store_path()})",
    )
    where.add_argument(
        "--chroma-url",
        metavar="URL",
        default=config.chroma_url(),
        help="a Chroma server, e.g. http://127.0.0.1:8000 (default: $SLEEPTIME_CHROMA_URL)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--sleeptime-model``."""
    parser.add_argument(
        "--model",
        default=None,
        help="primary model: 'local' (default) or 'provider:model' such as openai:gpt-4o-mini "
        "(default: $SLEEPTIME_MODEL or local)",
    )
    parser.add_argument(
        "--sleeptime-model",
        default=None,
        help="sleep-time model, same forms (default: $SLEEPTIME_SLEEPTIME_MODEL, else --model)",
    )


def open_store(args: argparse.Namespace) -> ChromaBlockStore:
    """The store the options name (a server if --chroma-url, else an embedded directory)."""
    if args.chroma_url:
        return ChromaBlockStore.from_url(args.chroma_url)
    return ChromaBlockStore.persistent(args.store or default_store_path())


def namespace_of(args: argparse.Namespace) -> Namespace:
    """The namespace of ``--user``: the same one ``sleeptime chat --user`` reads and writes."""
    return (str(args.user),)
