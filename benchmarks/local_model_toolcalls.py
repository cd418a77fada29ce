"""Local model: load time, prompt/generation speed, and tool-call validity on memory edits.

Ten short memory-edit situations; the model (bound to four memory tools, tool_choice="any")
must pick one edit. A reply counts as *valid* when it parses into a tool call with valid
arguments, and as *sensible* when the tool fits the situation (an edit where there is news, with
the right block label and, for memory_replace, an old_str that occurs in the block and differs
from new_str; finish where there is none). A second step feeds back "edit applied" and checks
that the multi-step history renders (valid call; finishing is the sensible choice there).

Run: python benchmarks/local_model_toolcalls.py [--no-followup]
Writes benchmarks/results/local_model_toolcalls.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from sleeptime_agent.local import LocalChatModel


@tool
def memory_replace(label: str, old_str: str, new_str: str) -> str:
    """Replace the exact text old_str with new_str in the memory block `label`."""
    return "ok"


@tool
def memory_insert(label: str, new_str: str) -> str:
    """Append new_str as a new line at the end of the memory block `label`."""
    return "ok"


@tool
def memory_rethink(label: str, new_memory: str) -> str:
    """Rewrite the whole memory block `label` as new_memory (to reorganize or deduplicate)."""
    return "ok"


@tool
def memory_finish_edits() -> str:
    """Call when the memory blocks are up to date and no further edit is needed."""
    return "ok"


TOOLS = [memory_replace, memory_insert, memory_rethink, memory_finish_edits]
EDITS = {"memory_replace", "memory_insert", "memory_rethink"}

SYSTEM = (
    "You are a sleep-time memory agent. You maintain two memory blocks for a chat assistant: "
    "`human` holds facts about the user, `persona` holds how the assistant should behave. "
    "Update them from the latest conversation, one edit per step: memory_replace to correct "
    "outdated text, memory_insert to add a new fact, memory_rethink to rewrite a messy block, "
    "memory_finish_edits when the conversation holds nothing new worth remembering. Write short "
    "third-person facts (e.g. 'Lives in Paris.'); never copy the conversation."
    "\n\n<memory>\n{blocks}\n</memory>"
)
PERSONA = "I am a friendly assistant. I answer in plain English."

CASES: list[dict[str, Any]] = [
    {
        "human": "Name: Anna\nLives in Berlin.",
        "chat": "user: I finally moved to Paris last week, the flat is tiny but I love it.",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Omar\nHas one daughter.",
        "chat": "user: My daughter Mia turns six tomorrow, any party ideas?",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Lena\nLikes hiking.",
        "chat": "user: Suggest a dinner recipe. Keep in mind I've been vegetarian for years.",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Raj\nWorks as a nurse.",
        "chat": "user: What a grey day.\nassistant: It is! Anything planned?\nuser: Not really.",
        "expect": "finish",
        "label": None,
    },
    {
        "human": "Name: John Smith\nPlays chess.",
        "chat": "user: Small thing: my name is spelled Jon, not John.",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Kate\nJob: primary school teacher.",
        "chat": "user: I quit teaching; I started as a software engineer at a bank on Monday.",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Tom\nLikes jazz.\nName: Tom\nLikes jazz music.\nHas a cat.",
        "chat": "user: My cat Luna knocked my coffee over again.",
        "expect": "edit",
        "label": "human",
    },
    {
        "human": "Name: Sara\nStudies law.",
        "chat": "user: Your answers are way too long. Please keep replies to two sentences.",
        "expect": "edit",
        "label": "persona",
    },
    {
        "human": "Name: Ivan\nLives in Oslo.\nLoves skiing.",
        "chat": "user: As I said, I live in Oslo, so skiing is easy.\nassistant: Lucky you!",
        "expect": "finish",
        "label": None,
    },
    {
        "human": "Name: Mei\nBorn in 1990.",
        "chat": "user: Remind me to celebrate: my birthday is March 3.",
        "expect": "edit",
        "label": "human",
    },
]


def blocks(human: str) -> str:
    return f"<persona>\n{PERSONA}\n</persona>\n<human>\n{human}\n</human>"


def judge(case: dict[str, Any], msg: AIMessage) -> dict[str, Any]:
    if not msg.tool_calls:
        error = msg.invalid_tool_calls[0]["error"] if msg.invalid_tool_calls else "no call"
        return {"valid": False, "sensible": False, "error": error}
    call = msg.tool_calls[0]
    name, args = call["name"], call["args"]
    if case["expect"] == "finish":
        sensible = name == "memory_finish_edits"
    else:
        block = PERSONA if case["label"] == "persona" else case["human"]
        sensible = name in EDITS and args.get("label") == case["label"]
        if name == "memory_replace":
            old, new = args.get("old_str") or "", args.get("new_str")
            sensible = sensible and bool(old) and old in block and old != new
    return {"valid": True, "sensible": sensible, "tool": name, "args": args}


def timing_totals(messages: list[AIMessage]) -> dict[str, float]:
    t = [m.response_metadata.get("timings", {}) for m in messages]
    prompt_n = sum(x.get("prompt_n", 0) for x in t)
    prompt_ms = sum(x.get("prompt_ms", 0.0) for x in t)
    pred_n = sum(x.get("predicted_n", 0) for x in t)
    pred_ms = sum(x.get("predicted_ms", 0.0) for x in t)
    return {
        "prompt_tokens_computed": prompt_n,
        "prompt_tokens_per_s": round(1000 * prompt_n / prompt_ms, 1) if prompt_ms else 0.0,
        "generated_tokens": pred_n,
        "generation_tokens_per_s": round(1000 * pred_n / pred_ms, 1) if pred_ms else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-followup", action="store_true", help="skip the second step")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "local_model_toolcalls.json"
    )
    opts = parser.parse_args()

    model = LocalChatModel(max_tokens=opts.max_tokens)
    start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - start
    print(f"model load: {load_s:.1f} s")

    # Plain generation speed on a fresh (uncached) prompt.
    plain = model.invoke(
        "Explain in about 60 words why a memory agent should consolidate notes between turns.",
        max_tokens=96,
    )
    assert isinstance(plain, AIMessage)
    print("plain generation:", timing_totals([plain]))

    bound = model.bind_tools(TOOLS, tool_choice="any")
    rows: list[dict[str, Any]] = []
    replies: list[AIMessage] = []
    for i, case in enumerate(CASES):
        history: list[BaseMessage] = [
            SystemMessage(SYSTEM.format(blocks=blocks(case["human"]))),
            HumanMessage(f"Latest conversation:\n{case['chat']}"),
        ]
        t0 = time.perf_counter()
        msg = bound.invoke(history)
        seconds = time.perf_counter() - t0
        assert isinstance(msg, AIMessage)
        replies.append(msg)
        row = {"case": i, "expect": case["expect"], "seconds": round(seconds, 2)}
        row |= judge(case, msg)
        row["output_tokens"] = (msg.usage_metadata or {}).get("output_tokens")
        if not opts.no_followup and msg.tool_calls and msg.tool_calls[0]["name"] in EDITS:
            call = msg.tool_calls[0]
            history += [
                msg,
                ToolMessage(
                    f"Edit applied to block '{call['args'].get('label')}'. "
                    "Do not repeat it; call memory_finish_edits if nothing else is needed.",
                    tool_call_id=call["id"] or "",
                ),
            ]
            t0 = time.perf_counter()
            follow = bound.invoke(history)
            assert isinstance(follow, AIMessage)
            replies.append(follow)
            row["followup"] = {
                "seconds": round(time.perf_counter() - t0, 2),
                "valid": bool(follow.tool_calls),
                "tool": follow.tool_calls[0]["name"] if follow.tool_calls else None,
            }
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False))

    first = rows
    followups = [r["followup"] for r in rows if "followup" in r]
    summary = {
        "valid": f"{sum(r['valid'] for r in first)}/{len(first)}",
        "sensible": f"{sum(r['sensible'] for r in first)}/{len(first)}",
        "mean_seconds_per_call": round(sum(r["seconds"] for r in first) / len(first), 2),
        "followup_valid": f"{sum(f['valid'] for f in followups)}/{len(followups)}",
        "followup_finished": (
            f"{sum(f['tool'] == 'memory_finish_edits' for f in followups)}/{len(followups)}"
        ),
    }
    report = {
        "command": "python benchmarks/local_model_toolcalls.py"
        + (" --no-followup" if opts.no_followup else ""),
        "model": model.model_name,
        "n_ctx": model.n_ctx,
        "n_threads": model.n_threads,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # The machine is shared: a high load average means the speeds below are depressed.
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "python": sys.version.split()[0],
        "load_seconds": round(load_s, 2),
        "plain_generation": timing_totals([plain]),
        "tool_calls_timings": timing_totals(replies),
        "summary": summary,
        "cases": rows,
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
