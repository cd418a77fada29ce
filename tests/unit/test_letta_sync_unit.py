"""Letta bridge logic without a server: pure merge rules, and letta-client over MockTransport."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from letta_client import Letta

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import ConfigurationError, MemoryUnavailable
from sleeptime_agent.letta import LettaBridge, SyncReport, format_report, make_letta_client
from sleeptime_agent.letta.bridge import _transcript
from sleeptime_agent.letta.merge import SyncRecord, field_hashes, plan_block
from sleeptime_agent.storage.block_store import ChromaBlockStore

NS = ("t", "u")
AGENT = "agent-00000000-0000-4000-8000-000000000001"


class FakeLetta:
    """Just enough of Letta's REST API, in memory, behind httpx.MockTransport.

    Like letta 0.11.7 it ignores ``after`` on the agent block list (so auto-pagination would
    never end) and does not enforce read_only.
    """

    def __init__(self) -> None:
        self.blocks: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, list[str]] = {AGENT: []}
        self.messages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.status_for_all: int | None = None
        #: Called first with each request; a response it returns is sent instead.
        self.hook: Callable[[httpx.Request], httpx.Response | None] | None = None

    def add(self, **fields: Any) -> str:
        block_id = f"block-{uuid.uuid4()}"
        self.blocks[block_id] = {
            "id": block_id,
            "description": None,
            "limit": 5000,
            "metadata": {},
            "read_only": False,
            **fields,
        }
        self.agents[AGENT].append(block_id)
        return block_id

    def by_label(self, label: str) -> dict[str, Any]:
        return next(self.blocks[i] for i in self.agents[AGENT] if self.blocks[i]["label"] == label)

    def handler(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.requests.append((request.method, path, body))
        if self.hook is not None and (response := self.hook(request)) is not None:
            return response
        if self.status_for_all is not None:
            return httpx.Response(self.status_for_all, json={"detail": "nope\nsecond line"})
        m = re.fullmatch(r"/v1/agents/([^/]+)/core-memory/blocks/?", path)
        if m and request.method == "GET":
            if m[1] not in self.agents:
                return httpx.Response(404, json={"detail": f"Agent with ID {m[1]} not found"})
            return httpx.Response(200, json=[self.blocks[i] for i in self.agents[m[1]]])
        m = re.fullmatch(r"/v1/agents/([^/]+)/core-memory/blocks/attach/([^/]+)", path)
        if m:
            self.agents[m[1]].append(m[2])
            return httpx.Response(200, json={"id": m[1], "name": "a"})
        m = re.fullmatch(r"/v1/agents/([^/]+)/core-memory/blocks/([^/]+)", path)
        if m:
            block = self.by_label(m[2])
            if request.method == "PATCH":
                limit = body.get("limit", block["limit"])
                if len(body.get("value", block["value"])) > limit:
                    return httpx.Response(400, json={"detail": "Value length exceeds the limit"})
                block.update(body)
            return httpx.Response(200, json=block)
        if path.rstrip("/") == "/v1/blocks" and request.method == "POST":
            block_id = f"block-{uuid.uuid4()}"
            self.blocks[block_id] = {"id": block_id, **body}
            return httpx.Response(200, json=self.blocks[block_id])
        if re.fullmatch(r"/v1/agents/([^/]+)/messages/?", path):
            return httpx.Response(200, json=self.messages)
        return httpx.Response(500, json={"detail": f"unexpected {request.method} {path}"})


@pytest.fixture
def fake() -> FakeLetta:
    return FakeLetta()


@pytest.fixture
def client(fake: FakeLetta) -> Letta:
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    return Letta(base_url="http://letta.test", http_client=http, max_retries=0)


@pytest.fixture
def bridge(store: ChromaBlockStore, client: Letta) -> LettaBridge:
    return LettaBridge(store, client, namespace=NS)


def block(value: str = "v", **kw: Any) -> MemoryBlock:
    return MemoryBlock(label="human", value=value, **kw)


# -- the three-way merge, as a pure function ---------------------------------------------------


def record_of(b: MemoryBlock, block_id: str = "block-1") -> SyncRecord:
    return SyncRecord(block_id, {str(k): v for k, v in field_hashes(b).items()}, version=1)


def test_plan_one_sided_changes_flow_and_two_sided_conflict() -> None:
    base = block("base", limit=100)
    synced = record_of(base)
    ours_changed = plan_block("human", block("ours", limit=100), base, "block-1", synced)
    assert ours_changed.to_theirs == {"value": "ours"} and not ours_changed.to_ours
    theirs_changed = plan_block("human", base, block("theirs", limit=100), "block-1", synced)
    assert theirs_changed.to_ours == {"value": "theirs"} and not theirs_changed.to_theirs
    split = plan_block(
        "human", block("ours", limit=100), block("base", limit=50), "block-1", synced
    )
    assert (split.to_theirs, split.to_ours, split.conflict) == (
        {"value": "ours"},
        {"limit": 50},
        [],
    )
    both = plan_block("human", block("ours"), block("theirs"), "block-1", synced)
    assert both.conflict == ["value"] and not both.to_ours and not both.to_theirs


def test_plan_without_a_valid_record_conflicts_on_any_difference() -> None:
    assert plan_block("human", block("a"), block("b"), "block-1", None).conflict == ["value"]
    stale = record_of(block("a"), block_id="block-OTHER")  # a record for another Letta block
    assert plan_block("human", block("a"), block("b"), "block-1", stale).conflict == ["value"]
    assert plan_block("human", block("same"), block("same"), "block-1", None).conflict == []


def test_plan_normalizes_what_means_the_same() -> None:
    ours = block(description=None, metadata={})
    theirs = block(description="", metadata={})
    plan = plan_block("human", ours, theirs, "block-1", None)
    assert not plan.conflict and not plan.to_ours and not plan.to_theirs


def test_plan_creates_missing_sides_and_keep_forces_a_side() -> None:
    only_theirs = plan_block("human", None, block("t"), "block-1", None)
    assert only_theirs.create_ours and only_theirs.to_ours["value"] == "t"
    only_ours = plan_block("human", block("o"), None, None, None)
    assert only_ours.create_theirs and only_ours.to_theirs["value"] == "o"
    forced = plan_block("human", block("o"), block("t"), "block-1", None, keep="theirs")
    assert forced.to_ours == {"value": "t"} and not forced.conflict


# -- the bridge over a fake server -------------------------------------------------------------


def test_pull_reads_one_page_only_and_maps_every_field(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    fake.add(label="human", value="Ada", limit=40, description="d", metadata={"k": [1]})
    fake.add(label="persona", value="p", read_only=True)
    report = bridge.pull(AGENT)  # would loop forever if it followed `after` cursors
    assert sorted(c.label for c in report.pulled) == ["human", "persona"]
    lists = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/core-memory/blocks")]
    assert len(lists) == 1
    human = store.get_block(NS, "human")
    assert human is not None
    assert (human.value, human.limit, human.description, human.metadata) == (
        "Ada",
        40,
        "d",
        {"k": [1]},
    )
    persona = store.get_block(NS, "persona")
    assert persona is not None and persona.read_only and persona.author == "letta"


def test_pull_reimports_a_block_deleted_here(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    fake.add(label="human", value="Ada")
    bridge.pull(AGENT)
    store.delete_block(NS, "human", expected_version=1)
    report = bridge.pull(AGENT)  # deletions are not propagated: Letta still has it
    assert [(c.label, c.created) for c in report.pulled] == [("human", True)]
    again = store.get_block(NS, "human")
    assert again is not None and again.value == "Ada" and again.version == 3


def test_push_creates_attaches_and_sends_empty_description(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    store.put_block(NS, block("hello", limit=10, read_only=True), expected_version=0)
    report = bridge.push(AGENT)
    assert [(c.label, c.created) for c in report.pushed] == [("human", True)]
    [create] = [r for r in fake.requests if r[0] == "POST"]
    assert create[2] == {
        "label": "human",
        "value": "hello",
        "limit": 10,
        "description": "",  # None would mean "leave unchanged" to Letta
        "read_only": True,
        "metadata": {},
    }
    assert any("/attach/" in r[1] for r in fake.requests)
    assert fake.by_label("human")["value"] == "hello"


def test_push_never_patches_a_letta_read_only_block(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    fake.add(label="human", value="v", read_only=True)
    bridge.pull(AGENT)
    current = store.get_block(NS, "human")
    assert current is not None
    store.put_block(NS, current.model_copy(update={"value": "w"}), expected_version=1)
    report = bridge.push(AGENT)
    assert [i.label for i in report.refused] == ["human"] and not report.pushed
    assert not [r for r in fake.requests if r[0] == "PATCH"]


def test_push_skips_a_block_that_changed_in_letta_during_the_sync(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    fake.add(label="human", value="v")
    bridge.pull(AGENT)
    current = store.get_block(NS, "human")
    assert current is not None
    store.put_block(NS, current.model_copy(update={"value": "ours"}), expected_version=1)

    def race(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path.endswith("/blocks/human"):
            fake.by_label("human")["value"] = "someone else"  # lands between list and write

    fake.hook = race
    report = bridge.push(AGENT)
    assert not report.pushed and "during the sync" in report.skipped[0].reason
    assert fake.by_label("human")["value"] == "someone else"
    assert not [r for r in fake.requests if r[0] == "PATCH"]


def test_server_refusal_of_a_write_is_reported(
    bridge: LettaBridge, fake: FakeLetta, store: ChromaBlockStore
) -> None:
    fake.add(label="human", value="v")
    bridge.pull(AGENT)
    current = store.get_block(NS, "human")
    assert current is not None
    store.put_block(NS, current.model_copy(update={"value": "x" * 10}), expected_version=1)

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH":
            return httpx.Response(400, json={"detail": "Value length exceeds the limit"})
        return None

    fake.hook = refuse
    report = bridge.push(AGENT)
    assert report.refused[0].reason == "Letta refused the write: Value length exceeds the limit"


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, ConfigurationError, "LETTA_API_KEY"),
        (403, ConfigurationError, "LETTA_API_KEY"),
        (404, ConfigurationError, "not found"),
        (422, ConfigurationError, "HTTP 422"),
        (500, MemoryUnavailable, "HTTP 500"),
    ],
)
def test_http_errors_map_to_one_line_library_errors(
    bridge: LettaBridge, fake: FakeLetta, status: int, error: type[Exception], words: str
) -> None:
    fake.status_for_all = status
    with pytest.raises(error) as err:
        bridge.pull(AGENT)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert "http://letta.test" in str(err.value)


def test_connection_refused_is_memory_unavailable(store: ChromaBlockStore) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    client = Letta(base_url="http://letta.test", http_client=http, max_retries=0)
    with pytest.raises(MemoryUnavailable, match="unreachable.*Connection refused"):
        LettaBridge(store, client, namespace=NS).status(AGENT)


def test_make_letta_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETTA_BASE_URL", raising=False)
    monkeypatch.delenv("LETTA_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="LETTA_BASE_URL"):
        make_letta_client()
    monkeypatch.setenv("LETTA_BASE_URL", "http://127.0.0.1:8283")
    monkeypatch.setenv("LETTA_API_KEY", "sk-test")
    client = make_letta_client()
    assert str(client.base_url).startswith("http://127.0.0.1:8283") and client.api_key == "sk-test"
    assert str(make_letta_client("http://other:1").base_url).startswith("http://other:1")


def test_transcript_keeps_user_and_assistant_oldest_first() -> None:
    def msg(kind: str, content: Any, minute: int) -> SimpleNamespace:
        date = datetime(2025, 1, 1, 12, minute, tzinfo=UTC)
        return SimpleNamespace(message_type=kind, content=content, date=date)

    newest_first = [
        msg("assistant_message", [SimpleNamespace(text="Noted.")], 5),
        msg("reasoning_message", None, 4),
        msg("user_message", json.dumps({"type": "heartbeat", "reason": "x"}), 3),
        msg("user_message", json.dumps({"type": "user_message", "message": "I like tea"}), 2),
        msg("system_message", "You are Letta...", 1),
    ]
    out = _transcript(AGENT, newest_first)
    assert [(m.seq, m.role, m.content) for m in out] == [
        (1, "user", "I like tea"),
        (2, "assistant", "Noted."),
    ]
    assert out[0].thread_id == AGENT and out[0].created_at.minute == 2


def test_consolidate_wants_a_sync_callable(bridge: LettaBridge, fake: FakeLetta) -> None:
    async def run(namespace: Any, transcript: Any) -> None:
        return None

    with pytest.raises(ConfigurationError, match="aconsolidate"):
        bridge.consolidate(AGENT, run)
    report = asyncio.run(bridge.aconsolidate(AGENT, run))
    assert report.operation == "consolidate"


def test_format_report_and_json() -> None:
    ours, theirs = block("ours value"), block("theirs value", author="letta")
    report = SyncReport.model_validate(
        {
            "operation": "status",
            "agent_id": AGENT,
            "namespace": NS,
            "dry_run": True,
            "pushed": [{"label": "notes", "fields": ["value"], "created": False}],
            "conflicts": [{"label": "human", "fields": ["value"], "ours": ours, "theirs": theirs}],
            "refused": [{"label": "persona", "reason": "read_only in Letta: push never writes it"}],
        }
    )
    text = format_report(report)
    assert "(dry run)" in text and "would be pushed  notes: value" in text
    assert "'ours value'" in text and "'theirs value'" in text and "refused  persona" in text
    assert not report.ok
    dumped = json.loads(json.dumps(report.model_dump(mode="json")))
    assert dumped["conflicts"][0]["theirs"]["value"] == "theirs value"
