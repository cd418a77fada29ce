"""Sentence splitting and the stateful (context, question) split of a word problem.

The paper's script splits on every ``"."``, which cuts decimals (``"$0.7"``, ``"1.5 liters"``)
in half: 250 of the 2,500 GSM-Symbolic P2 problems are damaged that way. This splitter only ends a
sentence at ``.``, ``!``, ``?`` or an ellipsis that is followed by whitespace and then by something
other than a lowercase letter, and it never ends one after a title (``Mr.``, ``Dr.``), after
``a.m.``/``p.m.`` followed by a lowercase word or a digit, or inside a LaTeX math span (AIME).
"""

from __future__ import annotations

import re

__all__ = ["split_context_question", "split_sentences"]

# A run of terminal punctuation, then closing quotes or brackets; must be followed by whitespace
# or the end of the text to count (so "1.5" and "$3.50" are never candidates).
_TERMINAL = re.compile(r"(?:\.{2,}|…|[.!?])+[\"'”’)\]]*(?=\s|$)")
# Titles are never the last word of a sentence.
_TITLES = frozenset(
    "mr mrs ms mx dr prof rev fr gen col capt lt sgt gov sen rep hon mt ft".split()
    + "vs e.g i.e cf approx".split()
)
# These end a sentence only when the next word is capitalised ("at 9 a.m. She left"; "Main St.
# Then ..."), never before a digit ("No. 5") or a lowercase word.
_AMBIGUOUS = frozenset("a.m p.m etc inc ltd co corp u.s u.k no vol fig sr st jr".split())
_INITIAL = re.compile(r"^[A-Z]$")
# LaTeX spans that are never cut (only with latex=True: in GSM problems "$" is a currency sign).
_LATEX = re.compile(
    r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)|\[asy\].*?\[/asy\]|<asy>.*?</asy>"
    r"|\\begin\{(\w+\*?)\}.*?\\end\{\1\}",
    re.DOTALL,
)
_QUESTION_START = re.compile(
    r"^[\"'“(\s]*(?:find|compute|calculate|determine|evaluate|express|what|how|which|who|"
    r"whom|whose|when|where|why)\b",
    re.IGNORECASE,
)


def _previous_token(text: str, end: int) -> str:
    """The word that ends at ``end`` (exclusive), without leading brackets or quotes."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip("\"'“‘([")


def _is_boundary(text: str, punct_start: int, punct_end: int) -> bool:
    """Whether the terminal punctuation ``text[punct_start:punct_end]`` ends a sentence."""
    rest = text[punct_end:].lstrip()
    if not rest:
        return True
    nxt = rest[0]
    if nxt.islower():
        return False
    if text[punct_start:punct_end] != ".":
        return True  # "?", "!", "...", or a period followed by a closing quote
    token = _previous_token(text, punct_start)
    key = token.lower()
    if key in _TITLES or _INITIAL.match(token):
        return False  # "Dr. Lee", "J. Smith" (so "Plan A. Then" is not split: a known limit)
    if key in _AMBIGUOUS:
        return nxt.isupper()
    return True


def _sentence_spans(text: str, latex: bool) -> list[tuple[int, int]]:
    """Return (start, end) offsets of the sentences of ``text``, whitespace excluded."""
    protected = [(m.start(), m.end()) for m in _LATEX.finditer(text)] if latex else []

    def inside(pos: int) -> bool:
        return any(a <= pos < b for a, b in protected)

    ends: list[int] = []
    for m in _TERMINAL.finditer(text):
        if not inside(m.start()) and _is_boundary(text, m.start(), m.end()):
            ends.append(m.end())
    for a, b in protected:
        # "... = 10.$$ Find $xy$." ends a sentence at the closing dollar signs.
        inner = text[a:b].rstrip("$").rstrip()
        if inner.endswith((".", "?", "!")) and text[a:b].startswith("$"):
            rest = text[b:].lstrip()
            if not rest or (rest[0] not in ".,;:" and not rest[0].islower()):
                ends.append(b)
    ends = sorted(set(ends))
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*ends, len(text)]:
        chunk = text[start:end]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip())
            trail = len(chunk) - len(chunk.rstrip())
            spans.append((start + lead, end - trail))
        start = end
    return spans


def split_sentences(text: str, *, latex: bool = False) -> list[str]:
    r"""Split ``text`` into sentences, keeping decimals, prices, titles and ellipses intact.

    Args:
        text: A word problem or any English prose.
        latex: Treat ``$...$``, ``$$...$$``, ``\[...\]``, Asymptote and ``\begin...\end``
            blocks as unbreakable (AIME). Leave it off for GSM, where ``$`` is a currency sign.

    Returns:
        The sentences, stripped, in order; joining them with spaces gives ``text`` back modulo
        whitespace.
    """
    return [text[a:b] for a, b in _sentence_spans(text, latex)]


def _is_question(sentence: str) -> bool:
    return "?" in sentence or _QUESTION_START.match(sentence) is not None


def split_context_question(text: str, *, latex: bool = False) -> tuple[str, str]:
    """Split a word problem into the context and the question, for the stateful setting.

    The question is the last sentence that asks something: it contains ``"?"`` or opens with an
    interrogative or imperative word ("How many ...", "Calculate ...", "Find ..."); with no such
    sentence it is the last sentence. Everything else, in its original order, is the context.
    Usually the question is the last sentence. In GSM-Symbolic P2 templates 27 and 48 a condition
    follows it ("... in a 4 day work week? Sanjay work overtime on the last day ..."); that
    trailing sentence is a fact about the situation, so it goes to the context.

    Args:
        text: The full problem.
        latex: Protect LaTeX math and figures from splitting (see :func:`split_sentences`).

    Returns:
        ``(context, question)``. The context is ``""`` when the problem is a single sentence.
    """
    spans = _sentence_spans(text, latex)
    if not spans:
        return "", text.strip()
    sentences = [text[a:b] for a, b in spans]
    asking = [i for i, s in enumerate(sentences) if _is_question(s)]
    q = asking[-1] if asking else len(spans) - 1
    start, end = spans[q]
    before, after = text[:start].rstrip(), text[end:].lstrip()
    gap = text[end : len(text) - len(text[end:].lstrip())]
    sep = "\n" if "\n" in gap else " "
    context = before + sep + after if before and after else before or after
    return context, sentences[q]
