"""k samples per message in the pipeline's model layers, combined by agreement."""

from __future__ import annotations

import asyncio

import pytest

from sleeptime_agent import ChromaBlockStore, ConfigurationError
from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.pipeline.enrich import (
    ExtractedFact,
    FactReply,
    Labels,
    combine_facts,
    combine_labels,
)
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call

NS = ("u1",)


def test_labels_keep_the_spans_at_least_half_the_samples_agree_on() -> None:
    samples = [
        Labels(keywords=("CS:GO", "tournament"), entities=("Jon",), input_tokens=10),
        Labels(keywords=("cs:go", "drums"), entities=("Jon",), input_tokens=10),
        Labels(keywords=("tournament", "RPGs"), entities=(), input_tokens=10),
        Labels(keywords=("CS:GO",), entities=("Gina",), input_tokens=10),
    ]
    got = combine_labels(samples)
    # 3 votes first, then 2; "drums", "RPGs" and "Gina" have one of four.
    assert got.keywords == ("CS:GO", "tournament")
    assert got.entities == ("Jon",)
    assert got.input_tokens == 40


def test_failed_label_samples_do_not_vote() -> None:
    failed = Labels(input_tokens=5, failure="unparseable reply")
    got = combine_labels([failed, Labels(keywords=("cat",)), Labels(keywords=("Miso",))])
    # Two usable samples: each span needs one of them.
    assert got.keywords == ("cat", "Miso")
    assert got.failure is None
    assert combine_labels([failed, failed]).failure == "unparseable reply"


def test_facts_agree_by_subject_and_shared_words_and_keep_the_first_wording() -> None:
    a = ExtractedFact("Jon", "Jon lost his job at the bank (7 May 2023).")
    a2 = ExtractedFact("Jon", "Jon lost the job at the bank.")
    other_subject = ExtractedFact("Gina", "Jon lost his job at the bank (7 May 2023).")
    lone = ExtractedFact("Jon", "Jon plays the drums.")
    got = combine_facts(
        [
            FactReply((a, lone), output_tokens=7),
            FactReply((a2,), output_tokens=7),
            FactReply((other_subject,), output_tokens=7),
        ]
    )
    assert got.facts == (a,)  # 2 of 3 agree; the greedy sample's words are kept
    assert got.output_tokens == 21
    assert sum("no agreement" in d for d in got.dropped) == 2


def test_pipeline_samples_each_message_k_times_and_indexes_what_they_agree_on() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    model = ScriptedChatModel(
        replies=[
            tool_call("labels", keywords=["feline", "kitten"], entities=[]),
            tool_call("labels", keywords=["feline"], entities=[]),
            tool_call("labels", keywords=["shelter"], entities=[]),
            tool_call("labels", keywords=["weather"], entities=[]),
            tool_call("labels", keywords=["weather"], entities=[]),
            tool_call("labels", keywords=["weather"], entities=[]),
        ]
    )
    con = PipelineConsolidator(store, model, keywords=True, samples=3)
    con.transcript.append(NS, "t", "user", "I adopted a cat named Miso.")
    con.transcript.append(NS, "t", "user", "It rained all day.")
    (record,) = asyncio.run(con.arun_until_caught_up(NS))
    assert record.steps == 6  # three calls per message
    found = {
        q: [h.seq for h in con.recall.search(NS, q, max_seq=2, vector=False)]
        for q in ("feline", "kitten", "shelter", "weather")
    }
    assert found == {"feline": [1], "kitten": [], "shelter": [], "weather": [2]}


def test_samples_below_one_is_a_configuration_error() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    with pytest.raises(ConfigurationError, match="samples"):
        PipelineConsolidator(store, ScriptedChatModel(), keywords=True, samples=0)
