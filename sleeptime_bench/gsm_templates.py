"""GSM-Symbolic instances generated from Apple's annotated templates (P1, P2 and the base set).

Apple released the templates but neither its generator nor ``GSM_p1.jsonl`` at a size the offline
store keeps, so this module re-implements the generator. A template's ``question_annotated`` is
the problem with slots ``{var, default}`` (the default is the original GSM8K value), then

- ``#init:`` one line per variable: ``- $x = range(30, 90)``, ``- name = sample(names)``,
  ``- a, b = sample(["red", "blue", "green"], 2)``, ``- $frac = sample(fractions)``. A right side
  that is already a draw (``sample(...)``, ``sample_sequential(...)``) is used as is; one that
  gives a collection (``range``, a list, ``np.arange``, ``numbers_within``) is drawn from
  uniformly; a scalar is used as is. A drawn pair ``("twice", 2)`` shows its first element in
  the text and computes with its second (``$`` marks numeric variables);
- ``#conditions:`` expressions that must all hold (instances are drawn again until they do);
- ``#answer:`` the expression of the final answer.

``answer_annotated`` is the worked solution with ``{expr}`` slots; its last line ``#### {expr}``
is a second, independently written formula for the answer, which validation compares with
``#answer``. Expressions run through :mod:`sleeptime_bench.gsm_expr` (an AST whitelist). The
vocabularies the templates sample from (``names``, ``multiple_ice``, ...) are data in
:mod:`sleeptime_bench.gsm_vocab`.

Instances depend only on ``(seed, split, template, instance)``; they are generated at run time and
never written to disk (the data is CC BY-NC-ND 4.0).
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sleeptime_bench.gsm_expr import ExpressionError, evaluate, helpers, is_int
from sleeptime_bench.gsm_vocab import VOCABULARIES, word_value

__all__ = [
    "DEFAULT_SEED",
    "SPLITS",
    "TEMPLATE_DIR",
    "Assignment",
    "GenerationError",
    "InitLine",
    "Instance",
    "Split",
    "Template",
    "annotated_answer",
    "assignment_from_text",
    "default_assignment",
    "failed_conditions",
    "format_value",
    "generate",
    "generate_instance",
    "instance_rng",
    "load_templates",
    "parse_number",
    "parse_template",
    "render",
    "sample_assignment",
    "template_answer",
]

Split = Literal["symbolic", "p1", "p2"]
SPLITS: tuple[Split, ...] = ("symbolic", "p1", "p2")
#: The templates inside the data directory: ``<TEMPLATE_DIR>/<split>/NNNN.json``.
TEMPLATE_DIR = "gsm-symbolic/templates"
#: The seed of the committed runs' instances.
DEFAULT_SEED = 0
#: Draws of one instance before giving up on a template's conditions.
MAX_TRIES = 20_000

_SLOT = re.compile(r"\{\s*([A-Za-z_]\w*)\s*,\s*([^{}]*?)\s*\}")
_EXPR_SLOT = re.compile(r"\{([^{}]*)\}")
# "#answer = expr" also occurs (p2/0013).
_SECTION = re.compile(r"^\s*#(init|conditions|answer)\s*[:=]\s*(.*)$")
_TARGETS = re.compile(r"^\s*(\$?[A-Za-z_]\w*(?:\s*,\s*\$?[A-Za-z_]\w*)*)\s*=(?!=)\s*(.+)$")
_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")
_DRAWS = ("sample", "sample_sequential")


class GenerationError(RuntimeError):
    """A template cannot be instantiated (bad annotation, or conditions never met)."""


class InitLine(BaseModel):
    """One ``#init`` line: the variables it assigns and the expression that draws them."""

    model_config = ConfigDict(frozen=True)

    targets: tuple[str, ...]
    """Variable names, without Apple's ``$`` marker."""
    numeric: tuple[bool, ...]
    """Per target: marked ``$`` (a number in the expressions)."""
    source: str
    """The right-hand side."""

    @property
    def draws(self) -> bool:
        """Whether the right side is itself a draw (``sample(...)``), not a pool to draw from."""
        head = self.source.split("(", 1)[0].strip()
        return head in _DRAWS


class Template(BaseModel):
    """One annotated GSM-Symbolic template."""

    model_config = ConfigDict(frozen=True)

    split: Split
    index: int
    """The file number (``0000.json`` is 0)."""
    id_orig: int
    """The GSM8K test item the template was made from."""
    original_question: str
    original_answer: str
    """The GSM8K solution; its ``#### N`` is the original answer."""
    body: str
    """The annotated problem text (before ``#init``)."""
    init: tuple[InitLine, ...]
    conditions: tuple[str, ...]
    answer_expr: str
    answer_annotated: str

    @property
    def name(self) -> str:
        """``"p1/0007"``: how reports refer to the template."""
        return f"{self.split}/{self.index:04d}"

    @property
    def slots(self) -> list[tuple[str, str]]:
        """``(variable, default)`` of every slot of the text, in order (repeats included)."""
        return [(m.group(1), m.group(2)) for m in _SLOT.finditer(self.body)]

    @property
    def variables(self) -> list[str]:
        """Every variable ``#init`` assigns, in order."""
        return [t for line in self.init for t in line.targets]


class Assignment(BaseModel):
    """Values of a template's variables: what expressions compute with, what the text shows."""

    values: dict[str, Any]
    surfaces: dict[str, str]


class Instance(BaseModel):
    """One generated problem (never written to disk)."""

    model_config = ConfigDict(frozen=True)

    template: str
    """The template's name (``"p1/0007"``)."""
    split: Split
    index: int
    instance: int
    seed: int
    text: str
    """The whole problem."""
    answer: float
    """``#answer`` at the drawn values."""
    surfaces: dict[str, str]
    """What each variable shows in the text."""


# ----------------------------------------------------------------------------- parsing


def parse_template(raw: Mapping[str, Any], split: Split, index: int) -> Template:
    """Parse one template file's JSON.

    Args:
        raw: The file's object (``question_annotated``, ``answer_annotated``, ...).
        split: Which directory it came from.
        index: Its file number.

    Returns:
        The template.

    Raises:
        GenerationError: A section or ``#init`` line cannot be read.
    """
    text = str(raw["question_annotated"])
    body, sep, rest = text.partition("#init:")
    if not sep:
        raise GenerationError(f"{split}/{index:04d}: no #init section")
    section = "init"
    lines: dict[str, list[str]] = {"init": [], "conditions": [], "answer": []}
    for line in rest.splitlines():
        head = _SECTION.match(line)
        if head:
            section = head.group(1)
            if head.group(2).strip():
                lines[section].append(head.group(2).strip())
            continue
        stripped = line.strip()
        if stripped.startswith("-"):
            lines[section].append(stripped[1:].strip())
        elif stripped and section == "answer":
            lines[section].append(stripped)
    init: list[InitLine] = []
    for entry in lines["init"]:
        m = _TARGETS.match(entry)
        if m is None:
            raise GenerationError(f"{split}/{index:04d}: cannot read #init line {entry!r}")
        names = [n.strip() for n in m.group(1).split(",")]
        init.append(
            InitLine(
                targets=tuple(n.lstrip("$") for n in names),
                numeric=tuple(n.startswith("$") for n in names),
                source=m.group(2).strip(),
            )
        )
    if not lines["answer"]:
        raise GenerationError(f"{split}/{index:04d}: no #answer")
    return Template(
        split=split,
        index=index,
        id_orig=int(raw.get("id_orig", -1)),
        original_question=str(raw.get("question", "")),
        original_answer=str(raw.get("answer", "")),
        body=body.strip(),
        init=tuple(init),
        conditions=tuple(lines["conditions"]),
        # "#answer: {t + k}" (symbolic/0017) would read as a set literal.
        answer_expr=_unbrace(" ".join(lines["answer"])),
        answer_annotated=str(raw.get("answer_annotated", "")),
    )


def _unbrace(expr: str) -> str:
    s = expr.strip()
    return s[1:-1].strip() if s.startswith("{") and s.endswith("}") else s


def load_templates(data_dir: Path, split: Split) -> list[Template]:
    """Load every template of a split, ordered by file number.

    Args:
        data_dir: The data directory (holds ``gsm-symbolic/templates``).
        split: ``"symbolic"``, ``"p1"`` or ``"p2"``.

    Returns:
        The templates.

    Raises:
        FileNotFoundError: The split's directory is missing.
    """
    folder = data_dir / TEMPLATE_DIR / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no GSM-Symbolic templates at {folder}")
    out = []
    for path in sorted(folder.glob("*.json")):
        out.append(parse_template(json.loads(path.read_text("utf-8")), split, int(path.stem)))
    return out


# ----------------------------------------------------------------------------- values


def format_value(value: Any) -> str:
    """How a drawn number appears in a problem: ``12``, ``2.25``, ``1/3``.

    Args:
        value: A drawn value.

    Returns:
        Its text; whole floats lose their ``.0`` (``np.arange(11, 12, 0.5)`` draws ``11.0``,
        which a problem writes as ``11``).
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else str(value)
    if isinstance(value, float):
        if is_int(value):
            return str(round(value))
        return repr(round(value, 10))
    return str(value)


def parse_number(text: str) -> int | float | None:
    """Read a number written in a slot (``"3,000"``, ``"2.5"``, ``"1/2"``); ``None`` if not one.

    Args:
        text: The slot's text.

    Returns:
        An ``int`` for whole numbers written without a point, else a ``float``.
    """
    s = text.strip()
    if "/" in s:
        num, _, den = s.partition("/")
        a, b = parse_number(num), parse_number(den)
        return None if a is None or b is None or b == 0 else a / b
    if not s or not _NUMBER.match(s) or not any(ch.isdigit() for ch in s):
        return None
    s = s.replace(",", "")
    return float(s) if "." in s else int(s)


class _WordInt(int):
    """A drawn pair's number that still indexes like the pair (``mult[1]``, ``mult[0]``).

    Most templates compute with a pair variable directly (``sides - target``), a few index it
    (``n1 * mult1[1]``, symbolic/0057): both must work.
    """

    surface: str

    def __new__(cls, value: int, surface: str) -> _WordInt:
        obj = super().__new__(cls, value)
        obj.surface = surface
        return obj

    def __getitem__(self, index: int) -> Any:
        return (self.surface, int(self))[index]


class _WordFloat(float):
    """The float twin of :class:`_WordInt` (``("half", 0.5)``)."""

    surface: str

    def __new__(cls, value: float, surface: str) -> _WordFloat:
        obj = super().__new__(cls, value)
        obj.surface = surface
        return obj

    def __getitem__(self, index: int) -> Any:
        return (self.surface, float(self))[index]


def _word_number(value: Any, surface: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int):
        return _WordInt(value, surface)
    return _WordFloat(value, surface)


def _split_drawn(value: Any, numeric: bool) -> tuple[Any, str]:
    """``("twice", 2)`` -> value 2, surface ``twice``; anything else shows itself."""
    if isinstance(value, tuple) and len(value) == 2:
        surface = format_value(value[0])
        return _word_number(value[1], surface), surface
    if numeric and isinstance(value, str):
        # A numeric slot drawn as text ("half" from a word list): compute with its value.
        number = word_value(value)
        if number is not None:
            return _word_number(number, value), value
    return value, format_value(value)


def _namespace(values: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    return {**VOCABULARIES, **helpers(rng), **values}


def _draw_line(line: InitLine, names: Mapping[str, Any], rng: random.Random) -> list[Any]:
    result = evaluate(line.source, names)
    if len(line.targets) > 1:
        drawn = list(result)
        if not line.draws:
            drawn = rng.sample(drawn, len(line.targets))
        if len(drawn) != len(line.targets):
            raise ExpressionError(f"{line.source!r} gave {len(drawn)} values")
        return drawn
    if not line.draws and isinstance(result, list | range | tuple) and not _is_pair(result):
        return [rng.choice(list(result))]
    return [result]


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)


def failed_conditions(template: Template, assignment: Assignment) -> list[str]:
    """The ``#conditions`` that do not hold (an error counts as not holding).

    Args:
        template: The template.
        assignment: Its variables' values.

    Returns:
        The failing conditions' text, in order.
    """
    names = _namespace(assignment.values, random.Random(0))
    failed = []
    for cond in template.conditions:
        try:
            ok = bool(evaluate(cond, names))
        except ExpressionError:
            ok = False
        if not ok:
            failed.append(cond)
    return failed


def _conditions_hold(template: Template, names: Mapping[str, Any]) -> bool:
    for cond in template.conditions:
        try:
            if not evaluate(cond, names):
                return False
        except ExpressionError:
            return False
    return True


def _pinned(template: Template) -> dict[str, str]:
    """Variables an equation condition fixes (``ans == n - k``): computed, not drawn.

    Drawing ``ans`` from ``range(60, 101, 2)`` and rejecting until the equation holds needs
    ~1/|pool| luck per try (p1/0011 met it in none of 20,000); computing ``ans`` from the
    equation and rejecting when it falls outside the pool gives the same distribution. Only
    variables that no ``#init`` line uses are pinned.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for line in template.init:
        used |= set(_names(line.source))
    for line in template.init:
        if len(line.targets) != 1 or line.draws or line.targets[0] in used:
            continue
        var = line.targets[0]
        for cond in template.conditions:
            sides = _equation_sides(cond)
            if sides is None:
                continue
            for mine, other in (sides, sides[::-1]):
                if (
                    mine.strip() == var
                    and var not in _names(other)
                    and not (set(_names(other)) & set(out))
                ):
                    out[var] = other
                    break
            if var in out:
                break
    return out


def sample_assignment(
    template: Template, rng: random.Random, max_tries: int = MAX_TRIES
) -> Assignment:
    """Draw every ``#init`` variable until all ``#conditions`` hold.

    Args:
        template: The template.
        rng: The random source.
        max_tries: Draws before giving up.

    Returns:
        The values and their surfaces.

    Raises:
        GenerationError: An ``#init`` line fails to evaluate, or no draw met the conditions.
    """
    pinned = _pinned(template)
    for _ in range(max_tries):
        values: dict[str, Any] = {}
        surfaces: dict[str, str] = {}
        pools: dict[str, list[Any]] = {}
        names = _namespace(values, rng)
        for line in template.init:
            try:
                if line.targets[0] in pinned:
                    pools[line.targets[0]] = list(evaluate(line.source, names))
                    continue
                drawn = _draw_line(line, names, rng)
            except (ExpressionError, TypeError) as exc:
                raise GenerationError(f"{template.name}: #init {line.source!r}: {exc}") from None
            for target, numeric, value in zip(line.targets, line.numeric, drawn, strict=True):
                values[target], surfaces[target] = _split_drawn(value, numeric)
                names[target] = values[target]
        if not _fill_pinned(pinned, pools, names, values, surfaces):
            continue
        if _conditions_hold(template, names):
            return Assignment(values=values, surfaces=surfaces)
    raise GenerationError(f"{template.name}: no draw met the conditions in {max_tries} tries")


def _fill_pinned(
    pinned: Mapping[str, str],
    pools: Mapping[str, list[Any]],
    names: dict[str, Any],
    values: dict[str, Any],
    surfaces: dict[str, str],
) -> bool:
    for var, expr in pinned.items():
        try:
            value = evaluate(expr, names)
        except ExpressionError:
            return False
        match = [p for p in pools[var] if isinstance(p, int | float) and abs(p - value) < 1e-9]
        if not match:
            return False
        values[var] = names[var] = match[0]
        surfaces[var] = format_value(match[0])
    return True


def _pairs(template: Template) -> dict[str, dict[str, Any]]:
    """Per variable: surface -> value of the pairs its ``#init`` line can draw."""

    def pool(values: Iterable[Any], k: int | None = None) -> list[Any]:
        return list(values)

    names: dict[str, Any] = {**VOCABULARIES, **helpers(random.Random(0))}
    names |= {"sample": pool, "sample_sequential": pool, "shuffle_list": pool}
    out: dict[str, dict[str, Any]] = {}
    for line in template.init:
        try:
            result = evaluate(line.source, names)
            candidates = list(result) if isinstance(result, list | range) else [result]
        except (ExpressionError, TypeError):
            continue
        table = {format_value(c[0]): c[1] for c in candidates if _is_pair(c)}
        for target in line.targets:
            out[target] = table
    return out


def _resolve_text_values(template: Template, shown: Mapping[str, str]) -> Assignment:
    """Values from the surfaces a text shows; variables it does not show are derived."""
    numeric = {
        t: n for line in template.init for t, n in zip(line.targets, line.numeric, strict=True)
    }
    pairs = _pairs(template)
    values: dict[str, Any] = {}
    surfaces = dict(shown)
    for var, text in shown.items():
        table = {k.lower(): v for k, v in pairs.get(var, {}).items()}
        number = parse_number(text)
        if text.lower() in table:
            values[var] = _word_number(table[text.lower()], text)
        elif number is not None:
            # Also for variables without "$": symbolic/0023 draws "n1, ..., n5" unmarked.
            values[var] = number
        elif numeric.get(var, False) and word_value(text) is not None:
            values[var] = _word_number(word_value(text), text)
        else:
            values[var] = text
    _derive_hidden(template, values, surfaces)
    return Assignment(values=values, surfaces=surfaces)


def _derive_hidden(template: Template, values: dict[str, Any], surfaces: dict[str, str]) -> None:
    """Fill variables the text never shows from the conditions that pin them down.

    A default problem shows every variable but e.g. the answer (``x + y + z + ans == total``,
    symbolic/0009) or a side length (``width * (width + diff) == area``, p1/0050). Each such
    equation with one unknown is solved: exactly when it is linear, else by trying whole
    numbers up to 2,000. A scalar ``#init`` line (``- $k = n - 2``) is evaluated.
    """
    missing = [v for v in template.variables if v not in values]
    rng = random.Random(0)
    progress = True
    while missing and progress:
        progress = False
        for cond in template.conditions:
            eq = _equation_sides(cond)
            if eq is None:
                continue
            unknown = [v for v in _names(cond) if v in missing]
            if len(unknown) != 1:
                continue
            solved = _solve(eq, unknown[0], values, rng)
            if solved is not None:
                values[unknown[0]] = solved
                surfaces[unknown[0]] = format_value(solved)
                missing.remove(unknown[0])
                progress = True
        for line in template.init:
            todo = [t for t in line.targets if t in missing]
            if len(line.targets) != 1 or not todo or line.draws:
                continue
            try:
                result = evaluate(line.source, _namespace(values, rng))
            except ExpressionError:
                continue
            if isinstance(result, int | float | Fraction) and not isinstance(result, bool):
                values[todo[0]] = result
                surfaces[todo[0]] = format_value(result)
                missing.remove(todo[0])
                progress = True


def _names(expr: str) -> list[str]:
    try:
        tree = ast.parse(expr.strip().replace("$", ""), mode="eval")
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})


def _equation_sides(cond: str) -> tuple[str, str] | None:
    """``"a + b == c"`` -> ``("a + b", "c")``; ``None`` unless the condition is one equation."""
    try:
        tree = ast.parse(cond.strip().replace("$", ""), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        return ast.unparse(tree.left), ast.unparse(tree.comparators[0])
    return None


def _solve(
    sides: tuple[str, str], var: str, values: Mapping[str, Any], rng: random.Random
) -> int | float | None:
    expr = f"({sides[0]}) - ({sides[1]})"

    def f(x: float) -> float | None:
        try:
            return float(evaluate(expr, {**_namespace(values, rng), var: x}))
        except (ExpressionError, TypeError, ValueError):
            return None

    f0, f1 = f(0), f(1)
    if f0 is not None and f1 is not None and f1 != f0:
        x = -f0 / (f1 - f0)
        guess: int | float = round(x) if is_int(x) else x
        check = f(guess)
        if check is not None and abs(check) < 1e-6:
            return guess
    for n in range(2001):
        check = f(n)
        if check is not None and abs(check) < 1e-9:
            return n
    return None


def default_assignment(template: Template) -> Assignment:
    """The values the template's slots default to (the original GSM8K problem's).

    Args:
        template: The template.

    Returns:
        The values; a variable without a slot is derived from an ``x == expr`` condition or
        a scalar ``#init`` line, or left out.
    """
    shown: dict[str, str] = {}
    for var, default in template.slots:
        shown.setdefault(var, default)
    return _resolve_text_values(template, shown)


def _text_pattern(template: Template) -> re.Pattern[str]:
    numeric = {
        t: n for line in template.init for t, n in zip(line.targets, line.numeric, strict=True)
    }
    pairs = _pairs(template)
    parts: list[str] = []
    seen: set[str] = set()
    last = 0
    for m in _SLOT.finditer(template.body):
        parts.append(_literal(template.body[last : m.start()]))
        var = m.group(1)
        # A number never spans a space; keeping its group to \S+ stops the backtracking that
        # took seconds on mismatching texts (p2/0007).
        spaced = any(" " in surface for surface in pairs.get(var, {}))
        group = r"\S+?" if numeric.get(var, False) and not spaced else r"[^\n]+?"
        parts.append(f"(?P={var})" if var in seen else f"(?P<{var}>{group})")
        seen.add(var)
        last = m.end()
    parts.append(_literal(template.body[last:]))
    # Apple capitalizes a slot that starts a sentence ("A tenth of the balls", p2/0008).
    return re.compile("".join(parts), re.DOTALL | re.IGNORECASE)


def _literal(text: str) -> str:
    """A regex for literal text between slots; any run of whitespace matches any other."""
    if not text:
        return ""
    if not text.strip():
        return r"\s*"
    core = r"\s+".join(re.escape(chunk) for chunk in text.split())
    return (r"\s*" if text[0].isspace() else "") + core + (r"\s*" if text[-1].isspace() else "")


def assignment_from_text(template: Template, text: str) -> Assignment | None:
    """Read the values of a problem generated from ``template`` (e.g. a ``GSM_p2.jsonl`` row).

    Args:
        template: The template.
        text: The generated problem.

    Returns:
        The values, or ``None`` when the text does not fit the template.
    """
    m = _text_pattern(template).fullmatch(text.strip())
    if m is None:
        return None
    return _resolve_text_values(template, {k: v for k, v in m.groupdict().items() if v})


def render(template: Template, assignment: Assignment) -> str:
    """The problem text with every slot showing its variable's surface.

    Args:
        template: The template.
        assignment: Values with surfaces for every slot variable.

    Returns:
        The problem.

    Raises:
        GenerationError: A slot's variable has no value.
    """

    def fill(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in assignment.surfaces:
            raise GenerationError(f"{template.name}: slot {var!r} has no value")
        surface = assignment.surfaces[var]
        before = template.body[: m.start()].rstrip()
        if surface and (not before or before[-1] in ".?!"):
            return surface[0].upper() + surface[1:]  # "a third of them ..." starts a sentence
        return surface

    return _SLOT.sub(fill, template.body)


def template_answer(template: Template, assignment: Assignment) -> float:
    """``#answer`` at the given values.

    Args:
        template: The template.
        assignment: The values.

    Returns:
        The answer as a float (rounded to 10 decimals to drop float noise).

    Raises:
        ExpressionError: The expression fails at these values.
    """
    value = evaluate(template.answer_expr, _namespace(assignment.values, random.Random(0)))
    return round(float(value), 10)


def annotated_answer(template: Template, assignment: Assignment) -> float | None:
    """The worked solution's ``#### {expr}`` at the given values.

    Args:
        template: The template.
        assignment: The values.

    Returns:
        The number, or ``None`` when the solution has no ``#### {expr}`` line.

    Raises:
        ExpressionError: The expression fails at these values.
    """
    lines = template.answer_annotated.strip().splitlines()
    if not lines or not lines[-1].strip().startswith("####"):
        return None
    m = _EXPR_SLOT.search(lines[-1])
    if m is None:
        number = parse_number(lines[-1].strip().lstrip("#"))
        return None if number is None else float(number)
    value = evaluate(m.group(1), _namespace(assignment.values, random.Random(0)))
    return round(float(value), 10)


# ----------------------------------------------------------------------------- generation


def instance_rng(seed: int, template: Template, instance: int) -> random.Random:
    """The random source of one instance (independent of every other instance)."""
    # A string seed is hashed with SHA-512: the same instance on every machine and run.
    return random.Random(f"gsm-symbolic:{seed}:{template.split}:{template.index}:{instance}")


def generate_instance(template: Template, instance: int, seed: int = DEFAULT_SEED) -> Instance:
    """Generate one problem of a template.

    Args:
        template: The template.
        instance: Which instance (0, 1, ...); each has its own random stream.
        seed: The run's seed.

    Returns:
        The problem with its answer.

    Raises:
        GenerationError: The template cannot be instantiated.
    """
    assignment = sample_assignment(template, instance_rng(seed, template, instance))
    try:
        answer = template_answer(template, assignment)
    except ExpressionError as exc:
        raise GenerationError(f"{template.name}: #answer: {exc}") from None
    return Instance(
        template=template.name,
        split=template.split,
        index=template.index,
        instance=instance,
        seed=seed,
        text=render(template, assignment),
        answer=answer,
        surfaces=assignment.surfaces,
    )


def generate(
    templates: Sequence[Template], instances: Iterable[int], seed: int = DEFAULT_SEED
) -> list[Instance]:
    """Generate instances of several templates, ordered by (instance, template).

    Args:
        templates: The templates (leave out those validation failed).
        instances: Instance numbers to generate for each template.
        seed: The run's seed.

    Returns:
        The problems; a prefix spreads over every template, as with ``load_gsm_p2``.
    """
    numbers = list(instances)
    return [generate_instance(t, i, seed) for i in numbers for t in templates]
