"""Program notes: model-written assignments are whitelisted, computed in order and rendered."""

from __future__ import annotations

from sleeptime_bench.stateful_program import program_notes


def test_assignments_are_computed_in_order_and_rendered_with_their_formula() -> None:
    reply = """Here is the code:
```python
bills = 2 * 10  # money Ibrahim starts with
games = 8 * 2  # cost of the board games
money_left = bills - games  # money left after the games
half = money_left / 3
```"""
    notes = program_notes(reply)
    assert notes.computed == 4 and notes.problems == ()
    assert notes.text.splitlines() == [
        "money Ibrahim starts with: bills = 2 * 10 = 20",
        "cost of the board games: games = 8 * 2 = 16",
        "money left after the games: money_left = bills - games = 4",
        "half: half = money_left / 3 = 1.3333",
    ]


def test_lines_outside_the_whitelist_are_skipped_and_said_the_rest_still_count() -> None:
    reply = "\n".join(
        [
            "import os",
            "total = 5 + 7",
            "os.system('rm -rf /')",
            "leak = __import__('os')",
            "word = 'ab' * 10",
            "items = [1, 2, 3]",
            "def f(x): return x",
            "broken = total +",
            "unknown = total * missing",
            "huge = 10 ** 10 ** 10",
            "ratio = total / 0",
            "print(total)",
            "double = total * 2",
        ]
    )
    notes = program_notes(reply)
    assert notes.text.splitlines() == [
        "total: total = 5 + 7 = 12",
        "double: double = total * 2 = 24",
    ]
    assert len(notes.problems) == 11


def test_a_builtin_name_cannot_be_rebound_and_literals_show_once() -> None:
    notes = program_notes("round = 3\nprice = 4.50  # price of a ticket\nneg = -2")
    assert notes.text.splitlines() == ["price of a ticket: price = 4.5", "neg: neg = -2"]
    assert notes.problems and "round" in notes.problems[0]
