"""`sleeptime bench memory-curve`: a setting swept across memory-bench runs, no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sleeptime_agent.cli import main
from sleeptime_agent.errors import ConfigurationError
from sleeptime_bench.memory_curve import run_curve, setting_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_dir(
    root: Path,
    name: str,
    settings: dict[str, Any],
    scores: list[float],
    tokens: tuple[int, int] = (0, 0),
    rag: float | None = None,
) -> Path:
    out = root / name
    out.mkdir(parents=True)
    conditions: dict[str, Any] = {"sleeptime": {"overall": {"mean_prompt_tokens": 700.0}}}
    if rag is not None:
        conditions["rag"] = {"overall": {"mean_score": rag}}
    report = {
        "settings": settings,
        "complete": True,
        "command": f"sleeptime bench locomo --out {out}",
        "conditions": conditions,
        "sleeptime_ingestion": {
            "per_dialogue": [
                {
                    "messages": 10,
                    "input_tokens": tokens[0],
                    "output_tokens": tokens[1],
                    "wall_time_s": 120.0,
                }
            ]
        },
    }
    (out / "locomo.json").write_text(json.dumps(report))
    rows = [
        {"item_id": f"q{i}", "condition": "sleeptime", "score": s, "category": "single-hop"}
        for i, s in enumerate(scores)
    ]
    # An adversarial answer and another condition's answer never count.
    adversarial = {"item_id": "qa", "condition": "sleeptime", "score": 1.0}
    rows.append({**adversarial, "category": "adversarial"})
    rows.append({"item_id": "q0", "condition": "rag", "score": 1.0, "category": "single-hop"})
    (out / "locomo.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return out


def test_setting_value_counts_model_samples_only_when_the_pipeline_calls_the_model() -> None:
    assert setting_value({"keywords": False, "facts": False, "samples": 1}, "model-samples") == 0
    assert setting_value({"keywords": True, "samples": 4}, "model-samples") == 4
    assert setting_value({"rag_k": 10}, "rag-k") == 10
    with pytest.raises(ConfigurationError, match="no number"):
        setting_value({"keywords": True}, "recall-k")
    assert setting_value({"keywords": True}, "recall-k", missing=10) == 10
    assert setting_value({"recall_k": 20}, "recall-k", missing=10) == 20


def test_the_curve_pairs_each_run_with_the_reference(tmp_path: Path) -> None:
    ref = _run_dir(tmp_path, "code", {"samples": 1}, [0.5] * 20, rag=0.3)
    k1 = _run_dir(tmp_path, "k1", {"keywords": True, "samples": 1}, [0.4] * 20, (900, 100))
    # k=2: better on half of the questions it shares with the reference, one question fewer.
    k2 = _run_dir(
        tmp_path, "k2", {"keywords": True, "samples": 2}, [0.9] * 10 + [0.5] * 9, (1200, 200)
    )
    path = run_curve("locomo", ref, [(k2, "k=2"), (k1, None)], tmp_path / "curve")
    data = json.loads(path.read_text())
    assert [p["x"] for p in data["runs"]] == [1.0, 2.0]  # sorted by the setting
    one, two = data["runs"]
    assert data["reference"]["x"] == 0.0 and data["reference"]["mean"] == pytest.approx(0.5)
    assert one["label"] == "k1" and two["label"] == "k=2"
    assert one["vs_reference"]["difference"] == pytest.approx(-0.1)
    assert one["vs_reference"]["evidence"]  # every question lower: the interval excludes 0
    assert two["n"] == 19 and two["vs_reference"]["n"] == 19
    assert two["vs_reference"]["difference"] == pytest.approx(0.4 * 10 / 19)
    assert two["sleeptime_tokens_per_message"] == pytest.approx(140.0)
    assert two["sleeptime_output_tokens_per_message"] == pytest.approx(20.0)
    assert data["baselines"] == {"rag": 0.3}
    table = (tmp_path / "curve" / "curve.md").read_text()
    assert "| k=2 | 2 | 19 |" in table and "evidence" in table
    assert (tmp_path / "curve" / "curve.png").read_bytes().startswith(PNG_MAGIC)


def test_the_command_writes_the_curve_and_refuses_a_directory_without_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _run_dir(tmp_path, "code", {"samples": 1}, [0.5, 0.2])
    k1 = _run_dir(tmp_path, "k1", {"keywords": True, "samples": 1}, [0.4, 0.1])
    argv = ["bench", "memory-curve", "--reference", str(ref), "--runs", f"{k1}=one sample"]
    argv += ["--out", str(tmp_path / "out")]
    monkeypatch.setattr("sys.argv", ["sleeptime", *argv])
    assert main(argv) == 0
    data = json.loads((tmp_path / "out" / "curve.json").read_text())
    assert data["runs"][0]["label"] == "one sample"
    assert data["command"].startswith("sleeptime bench memory-curve")
    (tmp_path / "empty").mkdir()
    argv[argv.index(f"{k1}=one sample")] = str(tmp_path / "empty")
    assert main(argv) != 0
    assert "no locomo.json" in capsys.readouterr().err
