"""Forced decoding on the local model: the log-probability of a question given its context.

Used by ``sleeptime bench predictability`` (the paper's predictability axis).
"""

from __future__ import annotations

from sleeptime_agent.local.chat_model import LocalChatModel
from sleeptime_agent.local.server import LocalModelError, check_response

__all__ = ["forced_logprobs"]


def forced_logprobs(
    prompt: str, continuation: str, *, model: LocalChatModel | None = None
) -> list[float]:
    """Log-probability of each token of ``continuation`` after a raw ``prompt``, by forced decoding.

    llama.cpp does not echo prompt log-probabilities, so the continuation is generated under a
    grammar that admits exactly its token ids, with ``logprobs`` on: each chosen token's
    log-probability is the model's own (OFFLINE.md). Token ids come from the server's
    ``/tokenize``; the prompt is sent as plain text (no chat template).

    Args:
        prompt: The conditioning text (e.g. a problem's context).
        continuation: The text to score (e.g. ``" " + question``).
        model: Whose server to use (default: ``LocalChatModel()``).

    Returns:
        One natural-log probability per token of ``continuation``.

    Raises:
        ValueError: ``prompt`` is empty: llama.cpp generates nothing without a prompt.
        LocalModelError: llama.cpp refused the request or returned fewer tokens.
    """
    import httpx

    if not prompt.strip():
        raise ValueError("forced decoding needs a non-empty prompt to condition on")

    server = (model or LocalChatModel()).server()
    reply = httpx.post(
        f"{server.listening_address}/tokenize",
        json={"content": continuation, "add_special": False},
        timeout=600,
    )
    reply.raise_for_status()
    ids = [int(i) for i in reply.json()["tokens"]]
    if not ids:
        return []
    request = {
        "prompt": prompt,
        "max_tokens": len(ids),
        "temperature": 0,
        "logprobs": 1,
        "grammar": "root ::= " + " ".join(f"<[{i}]>" for i in ids),
    }
    response = check_response(server.handle_completions(request))
    content = ((response.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
    got = [int(c["id"]) for c in content]
    if got != ids:
        raise LocalModelError(f"forced decoding returned tokens {got}, expected {ids}")
    return [float(c["logprob"]) for c in content]
