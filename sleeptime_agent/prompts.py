"""Every prompt text the library sends to a model, as constants (overridable where used)."""

from __future__ import annotations

__all__ = [
    "TOOLS_PROMPT",
    "TOOL_CHOICE_REQUIRED",
    "TOOL_CHOICE_FORCED",
    "TOOL_CHOICE_AUTO",
    "TOOL_ENTRY",
    "STRUCTURED_PROMPT",
    "TOOL_RESPONSE",
    "ANTICIPATION_DESCRIPTION",
    "HUMAN_DESCRIPTION",
    "PERSONA_DEFAULT",
    "PERSONA_DESCRIPTION",
    "PRIMARY_SYSTEM",
    "PRIMARY_SYSTEM_NO_BLOCKS",
    "SLEEPTIME_SYSTEM",
    "SLEEPTIME_USER",
]

#: The second sentence: with only the first, the 1.5B model answered "I'm Tomasz. I repair
#: vintage motorcycles..." with "I'm Tomasz, a motorcycle repairer in Gdansk..." (it took the
#: user's introduction for its own); with it, "Hello, Tomasz! ...".
PERSONA_DEFAULT = (
    "I am a helpful, concise assistant that remembers what the user tells me. What the user "
    "says about themselves is about them, not me: when they introduce themselves, I greet them "
    "by name."
)
PERSONA_DESCRIPTION = "Who the assistant is and how it behaves."
HUMAN_DESCRIPTION = (
    "Facts the user has stated about themselves, one per line. "
    "Only the current truth: an outdated fact is replaced."
)
ANTICIPATION_DESCRIPTION = (
    "Questions the user is likely to ask next, each with a short worked answer or a "
    "pre-computed quantity, derived from the memory above."
)

SLEEPTIME_SYSTEM = """\
You are the memory manager of a chat assistant. You do not talk to the user. You read the \
new part of a conversation and edit the assistant's memory blocks so that they hold every \
lasting fact about the user, up to date, without duplicates.

Rules:
- Store the lasting facts the user states about themselves, one short line each.
- Never invent or guess: store only what the user actually said in the conversation.
- When a fact changes (for example the user moved to a new city), replace the old line with \
the new fact; the old value stays in the block's history automatically.
- Use memory_insert to add a new fact as one short line. Use memory_replace to change one \
line; old_str must be copied exactly from the block. Use memory_rethink only to rewrite a \
whole block, keeping every fact that is still true.
- Keep the "anticipation" block (if present) as a few lines: a question the user may ask \
next and its short answer, computed from memory.
- Do not copy the conversation verbatim; do not store greetings or small talk.
- Call exactly one tool per step. When memory is complete, call memory_finish_edits.
"""

SLEEPTIME_USER = """\
Memory blocks (label, description, current value):
{blocks}

New conversation since your last run:
{transcript}

Edit the memory blocks now with facts from this conversation only, one tool call at a time, \
then call memory_finish_edits."""

PRIMARY_SYSTEM = """\
{persona}

You are talking with a user. Below is your memory about them, refined between turns by a \
background process. Use it to answer; do not mention that you have memory blocks.

<memory>
{blocks}
</memory>
{notes}"""

#: The primary's system prompt while every block but the persona is empty. The primary never
#: writes blocks, and the 1.5B model read the empty blocks' descriptions as if they were memory.
PRIMARY_SYSTEM_NO_BLOCKS = """\
{persona}

You are talking with a user. Use what you remember below to answer; do not mention that you \
have a memory.
{notes}"""

# -- the local model's tool-calling protocol (constrained JSON) -------------------------

TOOLS_PROMPT = (
    "# Tools\n\n"
    "You can call the tools below. Reply with exactly one JSON object of the form "
    '{{"name": <tool name>, "arguments": <object of arguments>}} and nothing else; '
    "call one tool per reply.{choice}\n\n{tools}"
)
TOOL_CHOICE_REQUIRED = " You must call one of the tools."
TOOL_CHOICE_FORCED = " You must call the tool `{name}`."
TOOL_CHOICE_AUTO = (
    " To reply in text without calling a tool, answer with "
    '{{"name": "{text}", "arguments": {{"content": <your reply>}}}}.'
)
TOOL_ENTRY = "## {name}\n{description}\nArguments (JSON schema): {schema}"
STRUCTURED_PROMPT = (
    "Reply with exactly one JSON object that matches this JSON schema and nothing else.\n"
    "{description}Schema: {schema}"
)
TOOL_RESPONSE = '<tool_response name="{name}">\n{content}\n</tool_response>'

# --------------------------------------------------------------------------------------------
# #14: the primary's dated facts and recalled turns; the consolidation pipeline's calls.
# --------------------------------------------------------------------------------------------

__all__ += [
    "PIPELINE_ANTICIPATE_SYSTEM",
    "PIPELINE_ANTICIPATE_USER",
    "PIPELINE_FACTS_SYSTEM",
    "PIPELINE_LABELS_SYSTEM",
    "PIPELINE_MESSAGE",
    "PRIMARY_FACTS",
    "PRIMARY_RECALL",
    "PRIMARY_RECALL_ORDER",
]

#: Dated facts the sleep-time agent wrote, after the blocks (the primary's ``{notes}`` slot).
PRIMARY_FACTS = """
Dated facts from earlier conversations (when two disagree, the later one holds):
{facts}
"""

#: Recalled turns, in the order of ``ReadOptions.recall_order``. The dates are what lets a small
#: model answer "when" questions: A-Mem's dates lifted LoCoMo temporal F1 from 4 to 24 with a
#: 1.5B model.
PRIMARY_RECALL = """
Earlier messages that may matter now, {order}. Each starts with the date it was said; \
a relative date such as "yesterday" is followed by the date it means. When asked when \
something happened, answer with that date.
{turns}
"""

#: How ``PRIMARY_RECALL`` names each order of the recalled turns.
PRIMARY_RECALL_ORDER = {"time": "oldest first", "relevance": "the most relevant last"}

#: One message for a pipeline call, already attributed, dated and in the third person (by code).
PIPELINE_MESSAGE = "Message said on {day}:\n{line}"

#: Keywords as short spans of the message: what the 1.5B model did well in a probe.
PIPELINE_LABELS_SYSTEM = (
    "You label one message of a conversation for a search index. Reply with its keywords "
    "(the specific things, activities, places and events it mentions, as short spans copied "
    "from the message) and the named entities it mentions (people, places, organisations, "
    "titles). Use words from the message only; empty lists for small talk."
)

#: Atomic facts; ``about`` is pinned by the schema to the speakers (a choice, not free text).
PIPELINE_FACTS_SYSTEM = (
    "You read one message of a conversation between {subjects} and list what it says about "
    "the life of one of them: facts, events, plans, possessions, preferences. Each fact is one "
    "short sentence that names the person and keeps any date given in the message. Questions, "
    "greetings and compliments state no fact: reply with an empty list."
)

#: The anticipation block (c'): likely next questions, each answered from the memory shown only.
#: An empty answer is allowed (and dropped by code) so the model need not invent one.
PIPELINE_ANTICIPATE_SYSTEM = (
    "You prepare an assistant for the next turn of a conversation between {subjects}. From the "
    "memory below, list up to {count} questions the user is likely to ask next about what was "
    "said, each with a short answer worked out from the memory only: a name, a date, a place, "
    "a count or one short sentence. Use words and dates from the memory; if the memory does "
    "not hold the answer, leave the answer empty."
)

#: What the anticipation call reads: the subjects' profile blocks, then the batch and its facts.
PIPELINE_ANTICIPATE_USER = """\
Profile blocks:
{blocks}

New messages:
{messages}

Facts from the new messages:
{facts}"""
