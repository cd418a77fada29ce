"""The Letta bridge (extra ``letta``): share memory blocks with a Letta agent through letta-client.

* :mod:`~sleeptime_agent.letta.merge`: the three-way merge plan (pure logic, no client calls).
* :mod:`~sleeptime_agent.letta.client`: the client, its error mapping and its paging.
* :mod:`~sleeptime_agent.letta.bridge`: :class:`LettaBridge` and its :class:`SyncReport`.

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
    Operation,
    RunSleeptime,
    SyncReport,
    format_report,
)
from sleeptime_agent.letta.client import make_letta_client, map_letta_errors  # noqa: E402
from sleeptime_agent.letta.merge import BlockChange, BlockIssue, SyncConflict  # noqa: E402

__all__ = [
    "BlockChange",
    "BlockIssue",
    "LettaBridge",
    "Operation",
    "RunSleeptime",
    "SyncConflict",
    "SyncReport",
    "format_report",
    "make_letta_client",
    "map_letta_errors",
]
