"""A writer process for the cross-process CAS test: read, append a tag, compare-and-swap."""

from __future__ import annotations

import json
import sys

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import VersionConflict
from sleeptime_agent.storage.block_store import ChromaBlockStore


def main() -> None:
    host, port, prefix, name, rounds = sys.argv[1:6]
    store = ChromaBlockStore.http(host, int(port), prefix=prefix)
    ns = ("shared-user",)
    acked: list[dict[str, object]] = []
    conflicts = 0
    for i in range(int(rounds)):
        current = store.get_block(ns, "counter")
        base = current.version if current else 0
        value = (current.value if current else "") + f"{name}:{i};"
        try:
            stored = store.put_block(
                ns,
                MemoryBlock(label="counter", value=value, limit=100_000),
                expected_version=base,
                author="sleeptime",
            )
            acked.append({"tag": f"{name}:{i};", "version": stored.version, "base": base})
        except VersionConflict:
            conflicts += 1
    print(json.dumps({"acked": acked, "conflicts": conflicts}))


if __name__ == "__main__":
    main()
