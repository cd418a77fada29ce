"""The Letta bridge (extra ``letta``): share memory blocks with a Letta agent through letta-client.

Importing this package without the extra raises :class:`~sleeptime_agent.errors.MissingExtra`
with the one-line install hint.
"""

from __future__ import annotations

from importlib.util import find_spec

from sleeptime_agent.errors import MissingExtra

if find_spec("letta_client") is None:
    raise MissingExtra("letta", "letta_client")

from sleeptime_agent.letta.bridge import (  # noqa: E402 - after the extra check
    LettaBridge,
    SyncReport,
    format_report,
    make_letta_client,
)

__all__ = ["LettaBridge", "SyncReport", "format_report", "make_letta_client"]
