"""Program notes: the sleep-time model writes the arithmetic, code computes it.

A 1.5B coder model writes correct Python for a word problem far more often than it gets every
multiplication of a worked analysis right (the analyses and edit-loop notes of the P1 tuning
run carried wrong intermediate numbers that the primary then copied). So in ``--notes
program`` mode the sleep-time step asks for one assignment per quantity, and this module runs
them: each right-hand side is whitelisted by :mod:`sleeptime_bench.gsm_expr` (numbers,
arithmetic, ``round``/``min``/``max``/``abs``/``int``/``float``, earlier variables; nothing
else), evaluated in order, and rendered as a line the primary reads::

    money left after the purchases: money_left = total_money - total_spent = 2

A line that does not parse, is not a plain assignment, or fails to evaluate is skipped and
reported in ``problems``; the other lines still count. Nothing the model writes is executed
outside the whitelist.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sleeptime_bench.gsm_expr import ExpressionError, evaluate

__all__ = ["ProgramNotes", "program_notes"]

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_MAX_LINES = 40
_MAX_ABS = 1e15  # a quantity of a word problem; anything larger is a runaway expression
_SAFE_CALLS: dict[str, Any] = {
    "round": round,
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
}


@dataclass(frozen=True)
class ProgramNotes:
    """The quantities one sleep-time program computed."""

    text: str
    """One line per computed quantity, in program order."""
    computed: int
    """Assignments that evaluated."""
    problems: tuple[str, ...]
    """Why each skipped line was skipped."""


def _code(reply: str) -> str:
    fenced = _FENCE.findall(reply)
    return "\n".join(fenced) if fenced else reply


def _format(value: Any) -> str:
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return f"{number:.4f}".rstrip("0").rstrip(".")


def _numeric(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        return False
    return math.isfinite(float(value)) and abs(float(value)) <= _MAX_ABS


def _only_numbers(expr: ast.expr) -> bool:
    # gsm_expr allows strings and lists (the templates need them); a quantity does not, and a
    # string constant could be multiplied into a huge allocation.
    return not any(
        isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Subscript | ast.Attribute)
        or (isinstance(node, ast.Constant) and not _numeric(node.value))
        for node in ast.walk(expr)
    )


def _label(comment: str, name: str) -> str:
    text = comment.strip().lstrip("#").strip()
    return text if text else name.replace("_", " ")


def program_notes(reply: str) -> ProgramNotes:
    """Run the assignments of a model-written program and render what they computed.

    Args:
        reply: The sleep-time model's reply (code, fenced or not, with ``#`` comments).

    Returns:
        The rendered quantities, how many evaluated, and why the rest were skipped.
    """
    scope: dict[str, Any] = dict(_SAFE_CALLS)
    lines: list[str] = []
    problems: list[str] = []
    for raw in _code(reply).splitlines():
        source, _, comment = raw.partition("#")
        if not source.strip():
            continue
        if len(lines) >= _MAX_LINES:
            problems.append(f"more than {_MAX_LINES} quantities: the rest left out")
            break
        try:
            tree = ast.parse(source.strip())
        except SyntaxError:
            problems.append(f"not Python: {raw.strip()[:80]}")
            continue
        stmt = tree.body[0] if len(tree.body) == 1 else None
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and not stmt.targets[0].id.startswith("_")
            and stmt.targets[0].id not in _SAFE_CALLS
        ):
            problems.append(f"not an assignment to a name: {raw.strip()[:80]}")
            continue
        name, expr = stmt.targets[0].id, stmt.value
        if not _only_numbers(expr):
            problems.append(f"not arithmetic: {raw.strip()[:80]}")
            continue
        rhs = ast.unparse(expr)
        try:
            value = evaluate(rhs, scope)
        except ExpressionError as exc:
            problems.append(str(exc)[:120])
            continue
        if not _numeric(value):
            problems.append(f"{name} is not a number: {value!r}"[:120])
            continue
        scope[name] = value
        shown = _format(value)
        formula = "" if rhs == shown or _is_literal(expr) else f" = {rhs}"
        lines.append(f"{_label(comment, name)}: {name}{formula} = {shown}")
    return ProgramNotes(text="\n".join(lines), computed=len(lines), problems=tuple(problems))


def _is_literal(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) or (
        isinstance(expr, ast.UnaryOp) and isinstance(expr.operand, ast.Constant)
    )
