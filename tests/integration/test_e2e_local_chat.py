"""End to end on the real local model: a scripted chat, consolidation, recall in a new thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleeptime_agent.cli.chat import run_chat
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.recall import RecallIndex

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from sleeptime_agent.local.chat_model import LocalChatModel

    m = LocalChatModel(max_tokens=160)
    m.load()
    return m


def test_two_facts_are_consolidated_and_recalled_in_a_new_thread(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ChromaBlockStore.persistent(tmp_path / "store")
    printed: list[str] = []
    lines = iter(
        [
            "Hi! My name is Marta and I live in Porto.\n",
            "I have a dog named Bolt.\n",
            "Thanks, that's all for now.\n",
        ]
    )
    assert (
        run_chat(store, model, model, user="marta", thread="one", lines=lines, write=printed.append)
        == 0
    )
    # run_chat waited for the sleep-time runs: the facts are in memory now. The embedded model
    # consolidates with the pipeline (#14): every message is filed for recall, attributed,
    # dated and in the third person ("Marta lives in Porto" is not the assistant's claim).
    recalled = [h.line for h in RecallIndex(store).all(("marta",))]
    memory_text = "\n".join(recalled).lower()
    assert "porto" in memory_text and "bolt" in memory_text, memory_text
    assert any(line.startswith("[") and "the user: " in line for line in recalled), recalled

    printed.clear()
    lines = iter(["Where do I live, and what is my dog's name?\n"])
    assert (
        run_chat(store, model, model, user="marta", thread="two", lines=lines, write=printed.append)
        == 0
    )
    answer = "".join(printed).lower()
    assert "porto" in answer and "bolt" in answer, answer
