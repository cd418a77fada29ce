"""The fact-loss and grounding guards as pure functions of text."""

from __future__ import annotations

from sleeptime_agent.tools.guards import dropped_facts, ungrounded_facts


def test_guard_allows_rephrasing_and_declared_removals() -> None:
    old = "Name: Ada\nLives in Berlin\nWorks at Initech as a nurse"
    assert dropped_facts(old, "Ada lives in Berlin and works at Initech as a nurse.") == []
    assert dropped_facts(old, "Name: Ada\nLives in Lisbon") == [
        "Lives in Berlin",
        "Works at Initech as a nurse",
    ]
    assert (
        dropped_facts(
            old,
            "Name: Ada\nLives in Lisbon\nWorks at Initech as a nurse",
            removed="moved away from Berlin",
        )
        == []
    )


def test_ungrounded_facts_pass_rephrasing_and_catch_elaboration() -> None:
    said = "user: I work as a marine biologist at the aquarium. My dog Bolt is a beagle."
    assert ungrounded_facts("I work as a marine biologist at the aquarium.", said) == []
    assert ungrounded_facts("Job: marine biologist\nDog: Bolt (beagle)", said) == []
    assert ungrounded_facts("Works at the aquarium; dogs: Bolt", said) == []  # plurals
    elaboration = (
        "Marine biologists work in aquariums. They may also conduct research on ecosystems "
        "and develop new technologies for conservation."
    )
    assert ungrounded_facts(elaboration, said) == [
        "They may also conduct research on ecosystems and develop new technologies for "
        "conservation."
    ]
    assert ungrounded_facts("Dog: Max", said) == ["Dog: Max"]  # an invented name
    assert ungrounded_facts("The beagle is 7 years old", said) == ["The beagle is 7 years old"]
    # One-character numbers count as names and numbers even though they are not content words.
    assert ungrounded_facts("Code F-w1-0", "remember F-w1-0 please") == []
    assert ungrounded_facts("Code F-w1-1", "remember F-w1-0 please") == ["Code F-w1-1"]
