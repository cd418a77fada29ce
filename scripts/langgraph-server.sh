#!/usr/bin/env bash
# The deployment of docs/scale-out.md, command for command: a Chroma server, PostgreSQL, and
# `langgraph dev` on the project's langgraph.json with Postgres checkpoints, all on 127.0.0.1.
# Then one client turn in each of two threads of one user (langgraph-sdk), and everything stops.
#
#   scripts/langgraph-server.sh                                   # scripted models (seconds)
#   SLEEPTIME_MODEL=local scripts/langgraph-server.sh             # the bundled local model
#
# Needs the project's virtualenv active (chroma, langgraph, python) and the `server` extra.
# DATA (default: a new temporary directory) holds Chroma's and PostgreSQL's files and the logs;
# the ports are CHROMA_PORT (8000), PG_PORT (5432) and PORT (2024). It cds to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
OWN_DATA=; if [ -z "${DATA:-}" ]; then DATA=$(mktemp -d /tmp/sleeptime-deploy.XXXXXX); OWN_DATA=1; fi
CHROMA_PORT=${CHROMA_PORT:-8000} PG_PORT=${PG_PORT:-5432} PORT=${PORT:-2024}
PGBIN=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
chmod 755 "$DATA"
pids=()
cleanup() {  # the server first, then PostgreSQL, then Chroma; SIGTERM (background jobs ignore SIGINT)
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM -- "-${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    rm -f langgraph.postgres.json
    if [ -n "$OWN_DATA" ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT
wait_for() { for _ in $(seq 1 240); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.5; done; echo "timeout: $1" >&2; return 1; }

# 1. memory: a Chroma server
setsid chroma run --path "$DATA/chroma" --host 127.0.0.1 --port "$CHROMA_PORT" >"$DATA/chroma.log" 2>&1 &
pids+=($!)

# 2. checkpoints: PostgreSQL (initdb/postgres refuse root: run them as the package's user)
AS=(); if [ "$(id -u)" = 0 ]; then install -d -o postgres "$DATA/pg"; AS=(runuser -u postgres --); else mkdir -p "$DATA/pg"; fi
"${AS[@]}" "$PGBIN/initdb" -D "$DATA/pg/data" -U postgres -A trust >"$DATA/initdb.log"
setsid "${AS[@]}" "$PGBIN/postgres" -D "$DATA/pg/data" -k "$DATA/pg" \
    -c listen_addresses=127.0.0.1 -p "$PG_PORT" >"$DATA/postgres.log" 2>&1 &
pids+=($!)

# 3. the server: the project's langgraph.json plus a checkpointer section
python - <<'PY'
import json
cfg = json.load(open("langgraph.json"))
cfg["checkpointer"] = {"backend": "custom",
                       "path": "./sleeptime_agent/graphs/checkpointer.py:postgres_checkpointer"}
json.dump(cfg, open("langgraph.postgres.json", "w"), indent=2)
PY
export SLEEPTIME_CHROMA_URL=http://127.0.0.1:$CHROMA_PORT
export SLEEPTIME_POSTGRES_URI=postgresql://postgres@127.0.0.1:$PG_PORT/postgres
export SLEEPTIME_MODEL=${SLEEPTIME_MODEL:-scripted:recall}
if [ "$SLEEPTIME_MODEL" = scripted:recall ]; then export SLEEPTIME_SLEEPTIME_MODEL=scripted:memorize; fi
export LANGGRAPH_CLI_NO_ANALYTICS=1 LANGSMITH_TRACING=false
wait_for "curl -sf http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat"
wait_for "python -c 'import psycopg, os; psycopg.connect(os.environ[\"SLEEPTIME_POSTGRES_URI\"]).close()'"
setsid langgraph dev --host 127.0.0.1 --port "$PORT" --no-browser --no-reload \
    --n-jobs-per-worker 25 --config langgraph.postgres.json >"$DATA/langgraph-dev.log" 2>&1 &
pids+=($!)
wait_for "curl -sf http://127.0.0.1:$PORT/ok"

# 4. a client app: a fact in one thread, a question in another thread of the same user
PORT=$PORT python - <<'PY'
import asyncio, os, time
from langgraph_sdk import get_client

from sleeptime_agent import ChromaBlockStore
from sleeptime_agent.storage.transcript import Transcript

async def main() -> None:
    client = get_client(url=f"http://127.0.0.1:{os.environ['PORT']}")
    async def say(thread: str, text: str) -> str:
        out = await client.runs.wait(thread, "sleeptime_chat",
                                     input={"messages": [{"role": "user", "content": text}]},
                                     config={"configurable": {"user_id": "ada"}}, raise_error=True)
        return out["messages"][-1]["content"]
    monday = (await client.threads.create())["thread_id"]
    print("monday> My favourite colour is teal.\nbot>", await say(monday, "My favourite colour is teal."))
    transcript = Transcript(ChromaBlockStore.from_url(os.environ["SLEEPTIME_CHROMA_URL"]))
    for _ in range(600):  # the sleep-time run consolidates the turn
        if transcript.cursor(("ada",)).seq >= transcript.last_seq(("ada",)):
            break
        await asyncio.sleep(1)
    friday = (await client.threads.create())["thread_id"]
    print("friday> What is my favourite colour?\nbot>", await say(friday, "What is my favourite colour?"))
    state = await client.threads.get_state(monday)
    print("monday thread holds", len(state["values"]["messages"]), "messages (checkpoints in Postgres)")

asyncio.run(main())
PY
python - <<'PY'
import os, psycopg
with psycopg.connect(os.environ["SLEEPTIME_POSTGRES_URI"]) as conn:
    n = conn.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
print(f"postgres: checkpoints of {n} threads")
PY
