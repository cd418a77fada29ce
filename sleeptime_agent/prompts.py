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
    "SLEEPTIME_SYSTEM",
    "SLEEPTIME_USER",
]

PERSONA_DEFAULT = "I am a helpful, concise assistant that remembers what the user tells me."
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
