"""Validation of the GSM-Symbolic generator against what Apple shipped.

Apple's generator is not public, so :mod:`sleeptime_bench.gsm_templates` must earn trust:

- **base set** (``symbolic``): the template's defaults are the original GSM8K problem, so
  ``#answer`` at the defaults must give the GSM8K answer;
- **P2**: the instances Apple shipped (``GSM_p2.jsonl``, 50 per template) are read back into
  variable values through the template's text, and ``#answer`` at those values must give each
  instance's answer;
- **P1**: Apple shipped no P1 instances here, and a P1 template adds a clause to the GSM8K problem,
  so its defaults give the GSM8K answer only when that clause is neutral (e.g. "0 less than").
  A P1 template passes when its base-set twin (same GSM8K item) passes, its defaults evaluate,
  and on every sampled instance the conditions hold and ``#answer`` equals the worked
  solution's ``#### {expr}`` (two formulas Apple wrote independently);
- every split: instances generate within the draw budget, render with no slot left, and the
  worked solution agrees with ``#answer`` on them.

Failing templates are listed by name with the reason and left out of generation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sleeptime_bench.gsm_expr import ExpressionError
from sleeptime_bench.gsm_templates import (
    DEFAULT_SEED,
    SPLITS,
    GenerationError,
    Split,
    Template,
    annotated_answer,
    assignment_from_text,
    default_assignment,
    instance_rng,
    load_templates,
    parse_number,
    render,
    sample_assignment,
    template_answer,
)
from sleeptime_bench.paths import data_dir as resolve_data
from sleeptime_bench.paths import default_out

__all__ = [
    "GSM_P2_FILE",
    "SAMPLES",
    "SplitValidation",
    "TemplateCheck",
    "register",
    "all_splits",
    "cached_validation",
    "passing_templates",
    "validate_split",
    "main",
    "validate_template",
    "write_validation",
]

GSM_P2_FILE = "gsm-symbolic/generated_data/GSM_p2.jsonl"
#: Instances drawn per template to check conditions and the two answer formulas.
SAMPLES = 10


class TemplateCheck(BaseModel):
    """The outcome for one template."""

    name: str
    passed: bool
    reason: str | None = None
    """Why it failed (the first failed check)."""
    defaults_answer: float | None = None
    gsm8k_answer: float | None = None
    defaults_reproduce_gsm8k: bool | None = None
    shipped_instances: int = 0
    """P2: shipped instances read back through the template."""
    shipped_matching: int = 0
    """P2: of those, how many give the shipped answer."""
    sampled: int = 0


class SplitValidation(BaseModel):
    """Every template of a split."""

    split: Split
    n_templates: int
    n_passed: int
    defaults_reproduce_gsm8k: int
    failures: dict[str, str]
    """Template name -> reason."""
    checks: list[TemplateCheck]


def _gold(answer: str) -> float | None:
    last = answer.strip().splitlines()[-1] if answer.strip() else ""
    if not last.startswith("####"):
        return None
    number = parse_number(last.lstrip("#").strip())
    return None if number is None else float(number)


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _shipped(data_dir: Path) -> dict[int, list[dict[str, Any]]]:
    path = data_dir / GSM_P2_FILE
    out: dict[int, list[dict[str, Any]]] = {}
    if not path.exists():
        return out
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(int(row["id"]), []).append(row)
    return out


def validate_template(
    template: Template,
    *,
    shipped: Sequence[dict[str, Any]] = (),
    twin_passed: bool | None = None,
    samples: int = SAMPLES,
    seed: int = DEFAULT_SEED,
) -> TemplateCheck:
    """Run every check that applies to one template.

    Args:
        template: The template.
        shipped: P2 only: Apple's instances of this template.
        twin_passed: P1 only: whether the base-set template of the same GSM8K item passed.
        samples: Instances to generate.
        seed: Their seed.

    Returns:
        The outcome; ``reason`` names the first failed check.
    """
    check = TemplateCheck(name=template.name, passed=False)
    check.gsm8k_answer = _gold(template.original_answer)
    try:
        defaults = default_assignment(template)
        check.defaults_answer = template_answer(template, defaults)
    except (ExpressionError, GenerationError) as exc:
        check.reason = f"defaults: {exc}"
        return check
    check.defaults_reproduce_gsm8k = _close(check.defaults_answer, check.gsm8k_answer)
    if template.split == "symbolic" and not check.defaults_reproduce_gsm8k:
        check.reason = f"defaults give {check.defaults_answer:g}, GSM8K says {check.gsm8k_answer:g}"
        return check
    if template.split == "p1" and twin_passed is False:
        check.reason = "its base-set template (same GSM8K item) failed"
        return check
    if template.split == "p2":
        check.shipped_instances = len(shipped)
        bad: list[str] = []
        for row in shipped:
            values = assignment_from_text(template, row["question"])
            if values is None:
                bad.append(f"instance {row['instance']}: text does not fit the template")
                continue
            try:
                got: float | None = template_answer(template, values)
            except ExpressionError as exc:
                got = None
                bad.append(f"instance {row['instance']}: {exc}")
            if _close(got, _gold(row["answer"])):
                check.shipped_matching += 1
            elif got is not None:
                bad.append(
                    f"instance {row['instance']}: {got:g} vs shipped {row['answer'][-12:]!r}"
                )
        if bad:
            check.reason = (
                f"{check.shipped_matching}/{len(shipped)} shipped instances reproduced; "
                f"first: {bad[0]}"
            )
            return check
    for i in range(samples):
        try:
            values = sample_assignment(template, instance_rng(seed, template, i))
            text = render(template, values)
            ours = template_answer(template, values)
            theirs = annotated_answer(template, values)
        except (ExpressionError, GenerationError) as exc:
            check.reason = f"instance {i}: {exc}"
            return check
        if "{" in text or "}" in text:
            check.reason = f"instance {i}: a slot is left in the text"
            return check
        if theirs is not None and not _close(ours, theirs):
            check.reason = f"instance {i}: #answer gives {ours:g}, the worked solution {theirs:g}"
            return check
        check.sampled += 1
    check.passed = True
    return check


def validate_split(
    data_dir: Path, split: Split, samples: int = SAMPLES, seed: int = DEFAULT_SEED
) -> SplitValidation:
    """Validate every template of a split.

    Args:
        data_dir: The data directory.
        split: ``"symbolic"``, ``"p1"`` or ``"p2"``.
        samples: Instances generated per template.
        seed: Their seed.

    Returns:
        Counts and per-template outcomes.
    """
    templates = load_templates(data_dir, split)
    twins: dict[int, bool] = {}
    if split == "p1":
        for check, base in zip(
            validate_split(data_dir, "symbolic", samples, seed).checks,
            load_templates(data_dir, "symbolic"),
            strict=True,
        ):
            twins[base.id_orig] = check.passed
    shipped = _shipped(data_dir) if split == "p2" else {}
    checks = [
        validate_template(
            t,
            shipped=shipped.get(t.index, []),
            twin_passed=twins.get(t.id_orig),
            samples=samples,
            seed=seed,
        )
        for t in templates
    ]
    return SplitValidation(
        split=split,
        n_templates=len(checks),
        n_passed=sum(c.passed for c in checks),
        defaults_reproduce_gsm8k=sum(bool(c.defaults_reproduce_gsm8k) for c in checks),
        failures={c.name: c.reason or "" for c in checks if not c.passed},
        checks=checks,
    )


@lru_cache(maxsize=8)
def cached_validation(data_dir: str, split: Split, seed: int = DEFAULT_SEED) -> SplitValidation:
    """:func:`validate_split`, computed once per process (it takes ~20 s of CPU).

    Args:
        data_dir: The data directory, as a string (the cache key).
        split: Which split.
        seed: The seed validation samples with.

    Returns:
        The validation.
    """
    return validate_split(Path(data_dir), split, seed=seed)


def _passing(data_dir: str, split: Split, seed: int) -> tuple[int, ...]:
    report = cached_validation(data_dir, split, seed)
    return tuple(int(c.name.split("/")[1]) for c in report.checks if c.passed)


def passing_templates(
    data_dir: Path, split: Split, indices: Iterable[int] | None = None, seed: int = DEFAULT_SEED
) -> list[Template]:
    """The templates of a split that pass validation (the only ones generation uses).

    Args:
        data_dir: The data directory.
        split: Which split.
        indices: Keep only these template numbers.
        seed: The seed validation samples with.

    Returns:
        The passing templates, in file order.
    """
    ok = set(_passing(str(data_dir), split, seed))
    keep = None if indices is None else set(indices)
    return [
        t
        for t in load_templates(data_dir, split)
        if t.index in ok and (keep is None or t.index in keep)
    ]


def all_splits(data_dir: Path) -> dict[str, SplitValidation]:
    """Validate every split (the ``gsm-validate`` command)."""
    return {split: validate_split(data_dir, split) for split in SPLITS}


def write_validation(data_dir: Path, out: Path) -> dict[str, Any]:
    """Validate every split and write the counts and failures (no problem text) to ``out``.

    Args:
        data_dir: The data directory.
        out: The JSON file to write.

    Returns:
        What was written: per split, templates, passed, defaults reproducing GSM8K, P2 shipped
        instances reproduced, and the failures by name with the reason.
    """
    summary: dict[str, Any] = {}
    for split, report in all_splits(data_dir).items():
        summary[split] = {
            "n_templates": report.n_templates,
            "n_passed": report.n_passed,
            "defaults_reproduce_gsm8k": report.defaults_reproduce_gsm8k,
            "shipped_instances": sum(c.shipped_instances for c in report.checks),
            "shipped_reproduced": sum(c.shipped_matching for c in report.checks),
            "sampled_per_template": SAMPLES,
            "failures": report.failures,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return summary


def register(sub: Any) -> None:
    """Add ``sleeptime bench gsm-validate``."""
    p = sub.add_parser(
        "gsm-validate",
        help="check the GSM-Symbolic instance generator against Apple's templates and instances",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=None, help="evaluation data directory")
    p.add_argument(
        "--out",
        default=str(Path(default_out("gsm-validate")) / "gsm-validation.json"),
        help="the JSON summary to write (the committed one: "
        "benchmarks/results/stateful-gsm-p1/gsm-validation.json)",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    summary = write_validation(resolve_data(args.data), Path(args.out))
    for split, row in summary.items():
        print(  # noqa: T201 - the command's output
            f"{split}: {row['n_passed']}/{row['n_templates']} templates pass; defaults give the "
            f"GSM8K answer in {row['defaults_reproduce_gsm8k']}; shipped instances reproduced "
            f"{row['shipped_reproduced']}/{row['shipped_instances']}; failing: "
            + (", ".join(row["failures"]) or "none")
        )
    print(f"wrote {args.out}")  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sleeptime_bench.gsm_validate``: the same as ``sleeptime bench gsm-validate``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["gsm-validate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
