"""`sleeptime bench locomo-recall`: evidence recall of each retriever, no model."""

from __future__ import annotations

from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_bench.conversations import LocomoConversation, LocomoQA, LocomoSession, LocomoTurn
from sleeptime_bench.recall_bench import RETRIEVERS, evidence_recall


def _conversation() -> LocomoConversation:
    said = [
        ("Ana", "Ben, cooking is my passion: I cook curry, I cook soup, I cook every day."),
        ("Ben", "On Sundays I make a curry, then we go hiking in the hills."),
        ("Ana", "The weather has been lovely this week."),
        ("Ben", "My sister visited us from Porto."),
    ]
    turns = [LocomoTurn(dia_id=f"D1:{i}", speaker=s, text=t) for i, (s, t) in enumerate(said, 1)]
    return LocomoConversation(
        sample_id="conv-test",
        speaker_a="Ana",
        speaker_b="Ben",
        sessions=[LocomoSession(index=1, date_time="1:56 pm on 8 May, 2023", turns=turns)],
        qa=[
            LocomoQA(question="What does Ben cook?", answer="curry", evidence=["D1:2"], category=4),
            LocomoQA(question="Who visited Ben?", answer="sister", evidence=["D1:4"], category=4),
            # Adversarial questions have no evidence to find: left out.
            LocomoQA(question="What does Ana paint?", evidence=["D1:3"], category=5),
        ],
    )


def test_evidence_recall_counts_evidence_turns_in_each_retrievers_top_k() -> None:
    res = evidence_recall(_conversation(), 1, ChromaBlockStore.ephemeral())
    assert set(res) == set(RETRIEVERS)
    for name in RETRIEVERS:
        assert res[name]["evidence_turns"] == 2  # the adversarial question is not counted
    # Top 1: the hybrid read ranks Ana's cooking turn first for "What does Ben cook?"; with
    # the named speaker ranked higher it finds Ben's, so it finds both evidence turns.
    assert res["pipeline-hybrid"]["recall"] == 0.5
    assert res["pipeline-hybrid-speaker"]["recall"] == 1.0
    assert res["pipeline-hybrid-speaker"]["by_category"] == {"single-hop": 1.0}
