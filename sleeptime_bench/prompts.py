"""Prompts of the benchmark harness: the stateful (paper) benchmarks and the memory benchmarks."""

from __future__ import annotations

__all__ = [
    "BENCH_ANSWER_USER",
    "BENCH_QUOTE_ANSWER_USER",
    "BENCH_FULL_CONTEXT_SYSTEM",
    "BENCH_LME_INSTRUCTIONS",
    "BENCH_LME_PERSONA",
    "BENCH_LME_SLEEPTIME_SYSTEM",
    "BENCH_LOCOMO_INSTRUCTIONS",
    "BENCH_LOCOMO_PERSONA",
    "BENCH_LOCOMO_SLEEPTIME_SYSTEM",
    "BENCH_LOCOMO_SPEAKER_DESCRIPTION",
    "BENCH_QUESTION_FIRST_SYSTEM",
    "BENCH_QUESTION_FIRST_USER",
    "BENCH_RAG_SYSTEM",
    "BENCH_SESSION_HEADER",
    "BENCH_TODAY",
    "STATEFUL_ANSWER_SYSTEM",
    "STATEFUL_ANSWER_USER",
    "STATEFUL_NOTES_DESCRIPTION",
    "STATEFUL_NOTES_LABEL",
    "STATEFUL_NOTES_SECTION",
    "STATEFUL_PROGRAM_SYSTEM",
    "STATEFUL_SLEEPTIME_SYSTEM",
    "STATEFUL_SLEEPTIME_USER",
    "STATEFUL_THINK_SYSTEM",
    "STATEFUL_VERBOSITY",
]

# =============================================================================================
# Stateful benchmarks (sleeptime bench stateful-gsm / stateful-aime): the paper's two phases.
# Tuned on GSM-Symbolic P2 templates 0-24 only; reported on templates 25-49.
# =============================================================================================

#: Label of the block the sleep-time agent writes its notes (c') into.
STATEFUL_NOTES_LABEL = "anticipation"
STATEFUL_NOTES_DESCRIPTION = (
    "Notes prepared before the question is known: the quantities the context implies, "
    "computed step by step, and the answers to the questions most likely to be asked."
)

#: Sleep-time step 1: free reasoning on the context. A 1.5B model reasons well in plain text
#: but degenerates (loops, copies the context) when it must reason inside a JSON tool call.
STATEFUL_THINK_SYSTEM = (
    "You prepare for a question before it is asked. You see the context of a math word "
    "problem; its question is hidden and will be asked later. Work out, step by step and "
    "briefly, the quantities a question about it would most likely need (totals, remainders, "
    "differences, rates, final amounts), and end with the most likely question and its answer."
)

#: Sleep-time in ``--notes program`` mode: the model writes the arithmetic, code runs it
#: (sleeptime_bench/stateful_program.py); a coder model writes code better than it multiplies.
STATEFUL_PROGRAM_SYSTEM = (
    "You prepare for a question before it is asked. You see the context of a math word "
    "problem; its question is hidden and will be asked later. Write Python code that computes "
    "every quantity a question about it could need (totals, remainders, differences, rates, "
    "percentages, final amounts): one assignment per line, with a descriptive variable name "
    "and a short comment saying what the quantity is. Use only numbers, arithmetic, earlier "
    "variables and round, min, max, abs. No imports, functions, loops, lists or print."
)

#: Sleep-time step 2: the product's edit loop stores the analysis as the notes block (c').
STATEFUL_SLEEPTIME_SYSTEM = """\
You manage the memory of a problem solver. You are given the context of a math word problem \
(its question is hidden) and a worked analysis of it. Save the analysis as notes in the \
memory block "{label}": call memory_rethink once with label "{label}" and new_memory holding \
the computed quantities with their results and the likely question with its answer, one \
short line each, at most 8 lines. Then call memory_finish_edits."""

STATEFUL_SLEEPTIME_USER = """\
Context:
{context}

Worked analysis:
{analysis}

Save the notes into the block "{label}" with memory_rethink now."""

STATEFUL_ANSWER_SYSTEM = (
    "You solve math problems accurately. Always end your reply with 'The answer is N', "
    "where N is a single number."
)

#: The test-time prompt: stable text first (context, notes, question) so the five verbosity
#: levels of one condition share llama.cpp's prefix cache; the instruction comes last.
STATEFUL_ANSWER_USER = """\
{context}

{notes}Question: {question}

{instruction}"""

STATEFUL_NOTES_SECTION = """\
Notes worked out in advance from the context above (use them; check they fit the question):
{notes}

"""

#: Test-time verbosity levels 0 (answer only) .. 4 (step by step): the paper's budget axis.
STATEFUL_VERBOSITY = (
    "Reply with only the final answer, in the form 'The answer is N'. "
    "Do not explain and do not show any work.",
    "Reply in one short sentence with at most one calculation, then 'The answer is N'.",
    "Show only the key calculations in at most three short lines, then 'The answer is N'.",
    "Explain your reasoning briefly in a few steps, then 'The answer is N'.",
    "Reason step by step, showing every calculation, then end with 'The answer is N'.",
)

# --------------------------------------------------------------------------------------------
# Memory benchmarks (LoCoMo, LongMemEval): sleeptime_bench/memqa.py, locomo.py,
# longmemeval.py. The three conditions share BENCH_ANSWER_USER; only the system prompt differs.
# --------------------------------------------------------------------------------------------


BENCH_SESSION_HEADER = "--- Session {n}, {date} ---"

#: The LongMemEval runs' persona, kept as it was when they were measured (the product's default
#: persona has since gained a sentence for self-introductions in chat).
BENCH_LME_PERSONA = "I am a helpful, concise assistant that remembers what the user tells me."

BENCH_LOCOMO_PERSONA = (
    "I remember the conversations between {a} and {b}: what each of them said about their "
    "life, and when."
)
BENCH_LOCOMO_SPEAKER_DESCRIPTION = (
    "Facts about {name}: identity, family, work, hobbies, opinions, plans, and dated events "
    "(what {name} did, and when). One short line per fact, with its date when known."
)
BENCH_LOCOMO_SLEEPTIME_SYSTEM = """\
You are the memory manager of an assistant. You do not talk to anyone. You read the new \
session of a conversation between two people and edit the memory blocks so that they hold \
every lasting fact about each of them, up to date, without duplicates.

Rules:
- Put facts about a person in that person's block: identity, family, job, hobbies, \
possessions, opinions, plans, and events with their dates.
- Dates matter. Each session starts with its date. Write absolute dates: if someone says \
"yesterday" in a session dated 8 May 2023, write "7 May 2023".
- Use memory_insert to add a new fact as one short line. Use memory_replace to change one \
line; old_str must be copied exactly from the block. Use memory_rethink only to rewrite a \
whole block, keeping every fact that is still true.
- Use archival_memory_insert for a detail that does not fit in a block (one dated sentence: \
who, what, when).
- Write only facts said in the new session. Never copy a block's description or another \
block's text into a block.
- Do not copy the conversation verbatim; do not store greetings or small talk.
- Call exactly one tool per step. When memory is complete, call memory_finish_edits.

Example step, for a person Ana who is not in this conversation (use the real block labels): \
{"name": "memory_insert", "arguments": {"label": "ana", "new_str": "Moved to Porto on 3 March \
2022 for a nursing job."}}
"""
#: No blanket "say Not mentioned" rule (#14): it made the 1.5B model abstain on 187 of 233
#: answerable questions. Dates: every condition's context carries them.
BENCH_LOCOMO_INSTRUCTIONS = (
    "Answer the question about {a} and {b} with a short phrase, using the exact words of the "
    "conversation where possible. When the question asks when, answer with the date the "
    "messages give, as day month year."
)

BENCH_LME_SLEEPTIME_SYSTEM = """\
You are the memory manager of a chat assistant. You do not talk to the user. You read the \
new session of a conversation and edit the assistant's memory blocks so that they hold every \
lasting fact about the user, up to date, without duplicates.

Rules:
- Store facts the user states about themselves (name, home, job, family, possessions, likes, \
plans, events), with dates. Each session starts with its date; turn relative dates into \
absolute ones.
- When a fact changes (for example the user moved), replace the old line with the new fact \
and its date.
- Use memory_insert to add a new fact as one short line. Use memory_replace to change one \
line; old_str must be copied exactly from the block. Use memory_rethink only to rewrite a \
whole block, keeping every fact that is still true.
- Use archival_memory_insert for details worth recalling later that do not fit in a block, \
including what the assistant recommended or told the user (one dated sentence each).
- Keep the "anticipation" block as a few lines: a question the user may ask next and its \
short answer, computed from memory.
- Write only facts said in the new session. Never copy a block's description or another \
block's text into a block, and never invent placeholders.
- Do not copy the conversation verbatim; do not store greetings or small talk.
- Call exactly one tool per step. When memory is complete, call memory_finish_edits.

Example step, for a user Ana who is not this user (use the real block labels): \
{"name": "memory_insert", "arguments": {"label": "ana", "new_str": "Moved to Porto on 3 March \
2022 for a nursing job."}}
"""
BENCH_LME_INSTRUCTIONS = (
    "Answer the user's question from what you know of your past conversations with them, in "
    "one short sentence. Use the dates of the conversations when the question is about time."
)

BENCH_TODAY = "Today is {date}.\n"
BENCH_ANSWER_USER = "{instructions}\n{today}Question: {question}\nAnswer:"
#: ``--answer-style quote``: the model first copies the message that answers, then answers.
#: Grounding the answer in a quoted line is meant to help a small reader pick the right line
#: among the ten it is shown; the answer is the text after the last "Answer:". Asking for the
#: quote's date as well made the 1.5B model answer every question with a date (conv-30).
BENCH_QUOTE_ANSWER_USER = """\
{instructions}
Reply in two lines. First line: "Evidence:" and the words of the message above that answer \
the question, copied. Second line: "Answer:" and the short answer.
{today}Question: {question}"""

BENCH_FULL_CONTEXT_SYSTEM = """\
{persona}

The conversation history (the most recent part, when all of it does not fit):
<history>
{history}
</history>"""

BENCH_RAG_SYSTEM = """\
{persona}

The past messages most relevant to the question, oldest first:
<messages>
{turns}
</messages>"""

BENCH_QUESTION_FIRST_SYSTEM = "{question}\n\n{memory}"
BENCH_QUESTION_FIRST_USER = "Answer the question above."
