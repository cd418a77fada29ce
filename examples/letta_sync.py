"""Mirror a Letta agent's core memory into our block store, edit a block, and push it back.

Run a Letta server (for example `scripts/letta-server.sh start 8283`), then:

    LETTA_BASE_URL=http://127.0.0.1:8283 python examples/letta_sync.py [AGENT_ID]

Without AGENT_ID a demo agent is created on the server first.
"""

from __future__ import annotations

import sys
import tempfile

from sleeptime_agent.letta import LettaBridge, format_report, make_letta_client
from sleeptime_agent.storage.block_store import ChromaBlockStore


def demo_agent() -> str:
    client = make_letta_client()
    agent = client.agents.create(
        name="sleeptime-demo",
        model="letta/letta-free",
        embedding="letta/letta-free",
        memory_blocks=[
            {"label": "human", "value": "Name: Ada", "limit": 2000},
            {"label": "persona", "value": "A concise assistant.", "read_only": True},
        ],
        include_base_tools=False,
    )
    return str(agent.id)


def main() -> None:
    agent_id = sys.argv[1] if len(sys.argv) > 1 else demo_agent()
    namespace = ("demo", agent_id)
    store = ChromaBlockStore.persistent(tempfile.mkdtemp(prefix="sleeptime-letta-"))
    bridge = LettaBridge.from_env(store, namespace=namespace)  # LETTA_BASE_URL, LETTA_API_KEY

    print(format_report(bridge.pull(agent_id)))

    human = store.get_block(namespace, "human")
    if human is not None:
        edited = human.model_copy(update={"value": human.value + "\nPrefers short answers."})
        store.put_block(namespace, edited, expected_version=human.version, author="user")

    print(format_report(bridge.status(agent_id)))  # dry run: what push would do
    report = bridge.push(agent_id)
    print(format_report(report))
    print(report.model_dump_json(indent=2)[:400], "...")  # what a --json CLI would print


if __name__ == "__main__":
    main()
