"""The consolidation pipeline: dates, attribution, recall, facts, and one run end to end."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Literal

from sleeptime_agent import ChromaBlockStore, MemoryBlock
from sleeptime_agent.memory import MemoryView, ReadOptions, SleeptimeMemory
from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.pipeline.dates import format_day, parse_date, resolve_relative
from sleeptime_agent.pipeline.enrich import grounded
from sleeptime_agent.pipeline.render import observe, third_person
from sleeptime_agent.storage.facts import Fact, FactStore
from sleeptime_agent.storage.recall import RecallIndex, RecallRecord, tokenize
from sleeptime_agent.storage.transcript import TranscriptMessage
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call

NS = ("u1",)
MAY8 = datetime(2023, 5, 8, 13, 56)


def _store() -> ChromaBlockStore:
    return ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())


def _msg(seq: int, role: str, text: str) -> TranscriptMessage:
    return TranscriptMessage(seq, "t", role, text, datetime(2024, 1, 1, tzinfo=UTC))


def test_session_dates_parse_in_both_benchmark_formats() -> None:
    assert parse_date("1:56 pm on 8 May, 2023") == MAY8
    assert parse_date("2023/05/21 (Sun) 19:50") == datetime(2023, 5, 21, 19, 50)


def test_unparseable_date_is_none() -> None:
    assert parse_date("sometime after the flood") is None
    assert parse_date("") is None


def test_yesterday_resolves_against_the_session_date_not_today() -> None:
    (found,) = resolve_relative("I went to a support group yesterday.", MAY8)
    assert found.text == "7 May 2023"


def test_relative_phrases_keep_their_granularity() -> None:
    texts = {
        "We went camping last week.": "the week before 8 May 2023",
        "I start next month.": "June 2023",
        "We won a competition last year.": "2022",
    }
    for text, expected in texts.items():
        assert [r.text for r in resolve_relative(text, MAY8)] == [expected]


def test_weekday_names_and_may_are_not_dates() -> None:
    assert resolve_relative("We may go there now.", MAY8) == []


def test_third_person_names_the_speaker_and_the_listener() -> None:
    out = third_person("I'm sad, I love my dog. Do you like yours?", "Jon", "Gina")
    assert out == "Jon is sad, Jon loves Jon's dog. Do Gina like Gina's?"


def test_observe_dates_messages_by_their_session_header() -> None:
    msgs = [
        _msg(1, "session", "--- Session 1, 1:56 pm on 8 May, 2023 ---"),
        _msg(2, "Caroline", "I went to a support group yesterday."),
        _msg(3, "Melanie", "Wow, how was it?"),
    ]
    first, second = observe(msgs)
    assert first.line() == (
        "[8 May 2023] Caroline: Caroline went to a support group yesterday (7 May 2023)."
    )
    assert second.speaker == "Melanie"


def test_observe_without_header_uses_the_recorded_time() -> None:
    (obs,) = observe([_msg(1, "user", "I moved to Gdansk yesterday.")], names={"user": "Tomasz"})
    assert obs.day == format_day(datetime(2024, 1, 1))
    assert "Tomasz moved to Gdansk yesterday (31 December 2023)" in obs.rendered


def test_grounded_refuses_words_not_in_the_message() -> None:
    assert grounded("Jon lost his job as a banker", "Jon lost Jon's job as a banker", names=["Jon"])
    assert not grounded("Ana moved to Porto for a nursing job", "Jon likes dancing")


def test_recall_hybrid_search_finds_by_keys_and_hides_uncommitted() -> None:
    recall = RecallIndex(_store())
    recall.add(
        NS,
        [
            RecallRecord(1, "[8 May 2023] Jon: Jon lost Jon's job.", "Jon", "t", "", ("banker",)),
            RecallRecord(2, "[8 May 2023] Gina: Gina opened a store.", "Gina", "t", ""),
            RecallRecord(3, "[9 May 2023] Jon: Jon went to Paris.", "Jon", "t", ""),
        ],
    )
    hits = recall.search(NS, "When did Jon lose his banker job?", 2, max_seq=3)
    assert hits[0].seq == 1
    assert all(h.seq <= 2 for h in recall.search(NS, "Paris", 3, max_seq=2))


def test_recall_leaves_bm25s_logging_to_the_application() -> None:
    """bm25s sets its logger to DEBUG at import: "DEBUG bm25s: Building index from tokens"
    appeared in the chat's terminal under a WARNING root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        recall = RecallIndex(_store())
        recall.add(NS, [RecallRecord(1, "[8 May 2023] Jon: Jon went to Paris.", "Jon", "t", "")])
        assert recall.search(NS, "Paris", 1, max_seq=1)[0].seq == 1  # the BM25 index was built
        assert not logging.getLogger("bm25s").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(level)


def test_recall_keeps_one_record_per_message_after_a_rerun() -> None:
    recall = RecallIndex(_store())
    rec = RecallRecord(1, "Jon: Jon dances.", "Jon", "t", "")
    recall.add(NS, [rec])
    recall.add(NS, [rec])
    assert [h.seq for h in recall.all(NS)] == [1]


def test_tokenize_drops_stop_words_and_stems() -> None:
    assert tokenize("What paintings did she paint?") == ["paint", "paint"]


def test_facts_skip_near_duplicates_and_superseded() -> None:
    facts = FactStore(_store())
    (old,) = facts.add(NS, [Fact("Jon lives in Paris.", "Jon", sources=(1,))])
    assert facts.add(NS, [Fact("Jon lives in Paris.", "Jon", sources=(2,))]) == []
    facts.add(NS, [Fact("Jon lives in Rome now.", "Jon", sources=(3,), supersedes=(old.id,))])
    assert [f.text for f in facts.all(NS)] == ["Jon lives in Rome now."]
    assert [f.text for f in facts.search(NS, "Where does Jon live?", 3, max_seq=3)] == [
        "Jon lives in Rome now."
    ]


def test_facts_past_the_cursor_are_not_read() -> None:
    facts = FactStore(_store())
    facts.add(NS, [Fact("Jon lives in Paris.", "Jon", sources=(5,))])
    assert facts.search(NS, "Where does Jon live?", 3, max_seq=4) == []


def _run(con: PipelineConsolidator) -> None:
    asyncio.run(con.arun_until_caught_up(NS))


def test_code_only_run_indexes_every_message_and_moves_the_cursor() -> None:
    store = _store()
    con = PipelineConsolidator(store, ScriptedChatModel(), keywords=False, max_transcript_chars=60)
    con.transcript.append(NS, "t", "session", "--- Session 1, 1:56 pm on 8 May, 2023 ---")
    con.transcript.append(NS, "t", "user", "I adopted a cat named Miso yesterday.")
    con.transcript.append(NS, "t", "assistant", "Congratulations on Miso!")
    _run(con)
    assert con.transcript.cursor(NS).seq == 3
    lines = [h.line for h in con.recall.all(NS)]
    assert lines[0] == "[8 May 2023] the user: I adopted a cat named Miso yesterday (7 May 2023)."
    assert len(lines) == 2


def test_recall_can_show_the_words_as_said_and_still_find_them_by_the_rendering() -> None:
    store = _store()
    con = PipelineConsolidator(store, ScriptedChatModel(), names={"user": "Tomasz"})
    con.transcript.append(NS, "t", "session", "--- Session 1, 1:56 pm on 8 May, 2023 ---")
    con.transcript.append(NS, "t", "user", "I adopted a cat named Miso yesterday.")
    con.transcript.append(NS, "t", "assistant", "Did you pick the name?")
    _run(con)
    said, question = con.recall.all(NS)
    assert said.line == "[8 May 2023] Tomasz: I adopted a cat named Miso yesterday (7 May 2023)."
    assert question.line == "[8 May 2023] the assistant: Did you pick the name?"
    # "Tomasz" is in the assistant's message only through its rendering, now a search key.
    found = con.recall.search(NS, "Tomasz", k=5, max_seq=3, vector=False)
    assert question.seq in [h.seq for h in found]
    # The third-person line is still there for who wants it.
    other = PipelineConsolidator(_store(), ScriptedChatModel(), names={"user": "Tomasz"})
    other.recall_line = "rendered"
    other.transcript.append(NS, "t", "user", "I adopted a cat.")
    _run(other)
    assert [h.line for h in other.recall.all(NS)][0].endswith("Tomasz: Tomasz adopted a cat.")


def test_model_layers_add_keys_facts_and_a_profile_block() -> None:
    store = _store()
    model = ScriptedChatModel(
        replies=[
            tool_call("labels", keywords=["cat", "Miso"], entities=["Miso"]),
            tool_call("facts", facts=[{"about": "the user", "fact": "The user adopted a cat."}]),
        ]
    )
    human = MemoryBlock(label="human", value="", limit=500)
    con = PipelineConsolidator(store, model, blocks=[human], keywords=True, facts=True)
    con.transcript.append(NS, "t", "user", "I adopted a cat named Miso.")
    _run(con)
    (hit,) = con.recall.all(NS)
    assert hit.seq == 1
    (fact,) = con.fact_store.all(NS)
    assert fact.subject == "the user"
    block = store.get_block(NS, "human")
    assert block is not None
    assert "The user adopted a cat." in block.value


def test_read_keeps_recall_within_budget_even_with_full_blocks() -> None:
    from sleeptime_agent.memory import ReadOptions, SleeptimeMemory

    store = _store()
    big = MemoryBlock(label="human", value="x" * 4000, limit=5000)
    opts = ReadOptions(token_budget=400, chars_per_token=4.0)
    memory = SleeptimeMemory(
        store,
        ScriptedChatModel(),
        consolidation="pipeline",
        read_options=opts,
        consolidator_options={"blocks": [big]},
    )
    for i in range(30):
        memory.record(NS, "t", "user", f"I visited museum number {i} in Paris.")
    asyncio.run(memory.consolidate_now(NS))
    view = memory.read(NS, "Which museum in Paris did I visit?")
    assert view.recalled, "full blocks must not crowd recall out"
    retrieved = sum(len(h.line) + 1 for h in view.recalled)
    assert retrieved <= 400 * 4.0 * opts.retrieval_share
    assert [h.seq for h in view.recalled] == sorted(h.seq for h in view.recalled)
    assert view.pending == []


def _recalling_memory(
    turns: list[tuple[str, str]],
    *,
    before: int = 0,
    replies: int = 0,
    speaker_boost: bool = False,
    focus: bool = False,
) -> SleeptimeMemory:
    """A pipeline memory of one dated session of ``turns``, consolidated, recall_k=1."""
    m = SleeptimeMemory(
        _store(),
        ScriptedChatModel(),
        consolidation="pipeline",
        read_options=ReadOptions(
            recall_k=1,
            recall_before=before,
            recall_replies=replies,
            speaker_boost=speaker_boost,
            line_chars=200,
            recall_focus=focus,
        ),
        consolidator_options={"names": {"user": "Ana", "assistant": "Ben"}},
    )
    m.record(NS, "t", "session", "--- Session 1, 1:56 pm on 8 May, 2023 ---")
    for role, text in turns:
        m.record(NS, "t", role, text)
    asyncio.run(m.consolidate_now(NS))
    return m


def test_recall_focus_shows_the_part_of_a_long_turn_that_answers() -> None:
    filler = " ".join(f"Option {i} mixes well with tonic and lime." for i in range(1, 9))
    turns = [("assistant", f"Here is your gin bar list. {filler} The fifth bottle is Absinthe.")]
    plain = _recalling_memory(turns).read(NS, "What was the fifth bottle?").recalled[0].line
    focused = (
        _recalling_memory(turns, focus=True).read(NS, "What was the fifth bottle?").recalled[0].line
    )
    assert "Absinthe" not in plain and plain.endswith("[...]")  # cut at its start
    assert "Absinthe" in focused and "[...] " in focused
    assert focused.startswith("[8 May 2023] Ben: ")  # date and speaker kept
    assert len(focused) <= 200 + len(" [...]")


def test_recall_before_shows_the_question_a_recalled_reply_answers() -> None:
    def memory(before: int) -> SleeptimeMemory:
        turns = [
            ("assistant", "Did you go to the pottery workshop in Lisbon?"),
            ("user", "Yes, I loved the glazing class yesterday."),
            ("assistant", "Nice weather today."),
        ]
        return _recalling_memory(turns, before=before)

    alone = memory(0).read(NS, "glazing class")
    assert [h.seq for h in alone.recalled] == [3]
    view = memory(1).read(NS, "glazing class")
    # The reply's context: the question before it (the session header is not a turn).
    assert [h.seq for h in view.recalled] == [2, 3]
    assert "pottery workshop in Lisbon" in view.recalled[0].line


def test_recall_order_relevance_puts_the_best_match_last_and_says_so() -> None:
    def view(order: Literal["time", "relevance"]) -> MemoryView:
        m = SleeptimeMemory(
            _store(),
            ScriptedChatModel(),
            consolidation="pipeline",
            read_options=ReadOptions(recall_k=3, recall_order=order),
        )
        m.record(NS, "t", "user", "The glazing class in Lisbon taught me raku firing.")
        m.record(NS, "t", "user", "I bought a kiln for pottery.")
        m.record(NS, "t", "user", "Pottery is relaxing.")
        asyncio.run(m.consolidate_now(NS))
        return m.read(NS, "Where did I learn raku firing in the glazing class?")

    by_time, by_relevance = view("time"), view("relevance")
    assert [h.seq for h in by_time.recalled] == sorted(h.seq for h in by_time.recalled)
    assert len(by_relevance.recalled) == len(by_time.recalled) > 1
    assert "raku" in by_relevance.recalled[-1].line  # the best match, next to the question
    assert "raku" in by_time.recalled[0].line  # said first, so shown first by time
    assert "oldest first" in by_time.render_notes()
    assert "the most relevant last" in by_relevance.render_notes()


def test_speaker_boost_prefers_the_turns_of_the_speaker_a_question_names() -> None:
    turns = [
        ("user", "Ben, cooking is my passion: I cook curry, I cook soup, I cook every day."),
        ("assistant", "On Sundays I make a curry, then we go hiking in the hills."),
        ("user", "Nice weather today."),
    ]
    question = "What does Ben cook?"
    plain = _recalling_memory(turns).read(NS, question)
    # Without the boost the turn with the most matching words wins, whoever said it.
    assert [h.speaker for h in plain.recalled] == ["Ana"]
    boosted = _recalling_memory(turns, speaker_boost=True).read(NS, question)
    assert [h.speaker for h in boosted.recalled] == ["Ben"]
    assert "Sundays" in boosted.recalled[0].line
    # A question that names both speakers (or neither) is ranked as without the boost.
    both = _recalling_memory(turns, speaker_boost=True).read(NS, "What do Ana and Ben cook?")
    assert [h.speaker for h in both.recalled] == ["Ana"]


def test_facts_that_are_questions_or_do_not_name_their_subject_are_dropped() -> None:
    from sleeptime_agent.pipeline.enrich import extract_facts

    (obs,) = observe(
        [_msg(1, "user", "Jon, I won first place at regionals! Did you see it?")],
        names={"user": "Gina"},
    )
    reply = tool_call(
        "facts",
        facts=[
            {"about": "Gina", "fact": "Did Gina see it?"},
            {"about": "Gina", "fact": "won first place"},
            {"about": "Gina", "fact": "Gina won first place at regionals."},
        ],
    )
    got = asyncio.run(extract_facts(ScriptedChatModel(replies=[reply]), obs, ["Gina", "Jon"]))
    assert [f.text for f in got.facts] == ["Gina won first place at regionals."]
    assert [d.split(":")[0] for d in got.dropped] == [
        "a question, not a fact",
        "does not name Gina",
    ]


def test_a_fact_reads_with_the_day_month_year_of_the_recalled_turns() -> None:
    fact = Fact("Jon lost his job.", "Jon", date="2023-01-20T16:04:00")
    assert fact.line() == "[20 January 2023] Jon lost his job."
    assert Fact("Jon lost his job.", "Jon").line() == "Jon lost his job."
    assert Fact("x", "Jon", date="sometime").line() == "[sometime] x"


def test_recall_replies_shows_the_answer_to_a_recalled_question() -> None:
    def memory(replies: int) -> SleeptimeMemory:
        turns = [
            ("user", "I tried the glazing class yesterday."),
            ("assistant", "Which pottery workshop did you go to?"),
            ("user", "The one in Lisbon, near the river."),
            ("assistant", "Which pottery workshop is it again? Sounds fun."),
            ("user", "Nice weather today."),
        ]
        return _recalling_memory(turns, replies=replies)

    alone = memory(0).read(NS, "Which pottery workshop did you go to?")
    assert [h.seq for h in alone.recalled] == [3]
    view = memory(1).read(NS, "Which pottery workshop did you go to?")
    # The question's reply comes with it; a turn that is not a question brings nothing.
    assert [h.seq for h in view.recalled] == [3, 4]
    assert "Lisbon" in view.recalled[1].line
    statement = memory(1).read(NS, "glazing class")
    assert [h.seq for h in statement.recalled] == [2]
