"""Namespace fuzz: no read or search ever returns another namespace's data."""

from __future__ import annotations

import random

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import TRICKY_NAMESPACE_PARTS

TRICKY = TRICKY_NAMESPACE_PARTS


def test_fuzzed_namespaces_never_leak() -> None:
    rng = random.Random(7)
    store = ChromaBlockStore.ephemeral()
    namespaces = [(t,) for t in TRICKY] + [("a", "b"), ("a", "b", "c"), ("ab", "c")]
    namespaces += [tuple(rng.choice(TRICKY) for _ in range(rng.randint(1, 3))) for _ in range(20)]
    namespaces = list(dict.fromkeys(namespaces))
    for i, ns in enumerate(namespaces):
        store.put_block(ns, MemoryBlock(label="human", value=f"secret-{i}"), expected_version=0)
        store.add_note(ns, f"note secret-{i} about hiking")
    for i, ns in enumerate(namespaces):
        assert store.get_block(ns, "human").value == f"secret-{i}"  # type: ignore[union-attr]
        assert [b.value for b in store.list_blocks(ns)] == [f"secret-{i}"]
        assert [b.value for b in store.history(ns, "human")] == [f"secret-{i}"]
        assert [n.text for n in store.search_notes(ns, "hiking", k=50)] == [
            f"note secret-{i} about hiking"
        ]
