"""Safe evaluation of GSM-Symbolic template expressions (``#init``, ``#conditions``, ``#answer``).

Apple's annotated templates are written in a small Python dialect: arithmetic, comparisons,
``int``/``round``/``Fraction``, list literals, ``range``, ``np.arange`` and sampling helpers
(``sample``, ``sample_sequential``, ``numbers_within``, ...). Apple did not release the code that
runs them, so this module re-implements it. An expression is parsed with :mod:`ast`, every node is
checked against a whitelist (no attribute access except ``np.arange`` and
``np.random.randint``, no names outside the template's variables and the helpers, no lambdas,
comprehensions, dunders or keyword tricks), and only then compiled and evaluated with no
builtins. A parsed expression is cached: rejection sampling evaluates each condition thousands
of times.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from types import CodeType, SimpleNamespace
from typing import Any

from sleeptime_bench.gsm_vocab import spell_number

__all__ = [
    "ExpressionError",
    "compile_expression",
    "divides",
    "evaluate",
    "helpers",
    "is_int",
]

_TOL = 1e-9


class ExpressionError(ValueError):
    """A template expression is not in the whitelisted dialect, or fails to evaluate."""


_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Subscript,
    ast.Slice,
    ast.Attribute,
    ast.keyword,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
)
# The only attribute chains a template may use.
_ALLOWED_ATTRIBUTES = frozenset({"np.arange", "np.random.randint"})
_MAX_POWER = 64
_POW = "__power"  # templates cannot name it: names starting with "_" are refused
# Apple marks numeric variables with "$x"; a "$" inside a string ("$" as a currency) stays.
_DOLLAR = re.compile(r"\$(?=[A-Za-z_])")


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _check(tree: ast.AST, source: str) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"{type(node).__name__} is not allowed in {source!r}")
        if isinstance(node, ast.Attribute):
            if _dotted(node) not in _ALLOWED_ATTRIBUTES and not any(
                name.startswith(f"{_dotted(node)}.") for name in _ALLOWED_ATTRIBUTES
            ):
                raise ExpressionError(f"attribute {_dotted(node)!r} is not allowed in {source!r}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"name {node.id!r} is not allowed in {source!r}")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, int | float | str | type(None)
        ):
            raise ExpressionError(f"constant {node.value!r} is not allowed in {source!r}")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise ExpressionError(f"**kwargs are not allowed in {source!r}")


@lru_cache(maxsize=8192)
def compile_expression(source: str) -> CodeType:
    """Parse, whitelist-check and compile one expression.

    Args:
        source: The expression text (a leading ``$`` on names, Apple's marker for a numeric
            variable, is dropped).

    Returns:
        The compiled code, to run with :func:`evaluate`.

    Raises:
        ExpressionError: Not valid Python, or outside the whitelisted dialect.
    """
    text = _DOLLAR.sub("", source.strip())
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {source!r}: {exc.msg}") from None
    _check(tree, source)
    # "a ** b" runs through a checked power (a variable exponent could ask for 10**10**10).
    tree = ast.fix_missing_locations(_PowerGuard().visit(tree))
    return compile(tree, "<gsm-template>", "eval")


class _PowerGuard(ast.NodeTransformer):
    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.Call(ast.Name(_POW, ast.Load()), [node.left, node.right], [])
        return node


def _power(base: Any, exponent: Any) -> Any:
    if abs(float(exponent)) > _MAX_POWER:
        raise ValueError(f"exponent {exponent} is too large")
    return base**exponent


def evaluate(source: str, names: Mapping[str, Any]) -> Any:
    """Evaluate a whitelisted expression over ``names`` (variables and helpers).

    Args:
        source: The expression.
        names: Every name it may use.

    Returns:
        The value.

    Raises:
        ExpressionError: The expression is not allowed, names something unknown, or fails
            (division by zero, a bad argument).
    """
    code = compile_expression(source)
    try:
        scope = {**names, _POW: _power}
        return eval(code, {"__builtins__": {}}, scope)  # noqa: S307 - AST-whitelisted
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"{source.strip()!r}: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------- helpers


def is_int(x: Any) -> bool:
    """Whether ``x`` is a whole number (floats within 1e-9, as Apple's float arithmetic needs)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and abs(value - round(value)) < _TOL * max(1.0, abs(value))


def divides(a: Any, b: Any) -> bool:
    """Apple's ``divides(a, b)``: ``a / b`` is a whole number (``b`` divides ``a``)."""
    try:
        return float(b) != 0 and is_int(Fraction(a) / Fraction(b))
    except (TypeError, ValueError):
        return bool(float(b) != 0 and is_int(float(a) / float(b)))


def _arange(start: float, stop: float | None = None, step: float = 1) -> list[float]:
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("step must not be 0")
    n = max(0, math.ceil((stop - start) / step - _TOL))
    # Round away the float drift of repeated addition (np.arange(0.21, 1, 0.01)[5] is 0.26).
    return [round(start + i * step, 10) for i in range(n)]


def _fix_floats(values: Iterable[float]) -> list[float]:
    return [round(float(v), 2) for v in values]


def _format_frac(x: Any) -> str:
    frac = Fraction(x).limit_denominator(1000)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def helpers(rng: random.Random) -> dict[str, Any]:
    """The functions a template may call, the random ones drawing from ``rng``.

    Args:
        rng: The instance's random source (seeded by the caller).

    Returns:
        Name to helper; merge with the variables before :func:`evaluate`.
    """

    def sample(pool: Iterable[Any], k: int | None = None) -> Any:
        items = list(pool)
        if not items:
            raise ValueError("sample from an empty pool")
        if k is None:
            return rng.choice(items)
        return rng.sample(items, k)

    def sample_sequential(pool: Sequence[Any], k: int) -> list[Any]:
        # Consecutive, wrapping ("Saturday, Sunday, Monday" is a default of template p1/16).
        items = list(pool)
        start = rng.randrange(len(items))
        return [items[(start + i) % len(items)] for i in range(k)]

    def numbers_within(low: int, high: int) -> list[tuple[str, int]]:
        # Inclusive, and shown in words: the defaults are "two", "three" (p1/0021) and
        # Apple's P2 instances show "thirty five" for numbers_within(31, 35).
        return [(spell_number(n), n) for n in range(int(low), int(high) + 1)]

    def shuffle_list(values: Iterable[Any]) -> list[Any]:
        items = list(values)
        rng.shuffle(items)
        return items

    def randint(low: int, high: int, size: int | None = None) -> Any:
        if size is None:
            return rng.randrange(int(low), int(high))
        return [rng.randrange(int(low), int(high)) for _ in range(int(size))]

    fns: dict[str, Any] = {
        "sample": sample,
        "sample_sequential": sample_sequential,
        "numbers_within": numbers_within,
        "shuffle_list": shuffle_list,
        "frange": _arange,
        "fix_floats": _fix_floats,
        "format_frac": _format_frac,
        "is_int": is_int,
        "divides": divides,
        "Fraction": Fraction,
        "np": SimpleNamespace(arange=_arange, random=SimpleNamespace(randint=randint)),
        "int": int,
        "float": float,
        "round": round,
        "abs": abs,
        "min": min,
        "max": max,
        "sum": sum,
        "len": len,
        "list": list,
        "range": range,
        "str": str,
        "True": True,
        "False": False,
    }
    return fns
