#!/usr/bin/env bash
# Live smoke test of a running Fleetflow stack (`fleetflow up`, or a hub with its edges),
# through the hub's REST API and WebSocket, the way an operator would use them.
#
#   FLEETFLOW_API    the hub's base URL (default http://localhost:8003)
#   FLEETFLOW_TOKEN  an admin (or planner) bearer token; default: the file
#                    $FLEETFLOW_DATA/admin-token that `fleetflow up` writes
#   FLEETFLOW_DATA   fleetflow up's data directory (default .fleetflow)
#
# Each check prints `ok <what>`; the first failure prints the request and the hub's answer
# on stderr and exits non-zero. Needs bash, curl and python3 (standard library only). The
# workflows it creates are named smoke-<time>-<pid>-*; it cancels the ones it pinned to no
# agent. Writes ask for `strong` consistency, so each answer is the edge's.
set -euo pipefail

API="${FLEETFLOW_API:-http://localhost:8003}"
API="${API%/}"
DATA="${FLEETFLOW_DATA:-.fleetflow}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
RUN="smoke-$(date +%s)-$$"
NOBODY="$RUN-nobody"   # pinned to this agent, which does not exist, a workflow stays active

fail() {
  echo "FAIL $*" >&2
  exit 1
}

if [ -n "${FLEETFLOW_TOKEN:-}" ]; then
  TOKEN="$FLEETFLOW_TOKEN"
elif [ -r "$DATA/admin-token" ]; then
  TOKEN="$(tr -d '[:space:]' < "$DATA/admin-token")"
else
  fail "no token: set FLEETFLOW_TOKEN, or FLEETFLOW_DATA to the directory holding admin-token"
fi

# call METHOD PATH [JSON_BODY] [curl args...]: the answer's status in $STATUS, body in $TMP/body.
call() {
  local method="$1" path="$2" data="${3:-}"
  shift $(( $# < 3 ? $# : 3 ))
  local args=(-sS --max-time 60 -o "$TMP/body" -w '%{http_code}' -X "$method"
              -H "Authorization: Bearer $TOKEN" -H "X-Consistency: strong"
              -H "X-Reason: smoke test $RUN")
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data "$data")
  fi
  REQUEST="$method $path${data:+ $data}"
  STATUS="$(curl "${args[@]}" "$@" "$API$path")" || fail "$REQUEST: cannot reach $API"
}

# expect "200 201" WHAT: the last answer's status is one of those, else fail with it.
expect() {
  case " $1 " in
    *" $STATUS "*) ;;
    *) fail "$2: $REQUEST answered HTTP $STATUS (expected $1): $(head -c 3000 "$TMP/body")" ;;
  esac
}

# j EXPR: evaluate the Python expression EXPR on the last answer's JSON (as d); print it
# (strings raw, anything else as JSON).
j() {
  python3 - "$TMP/body" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"d": d, "any": any, "all": all, "len": len, "str": str})
print(v if isinstance(v, str) else json.dumps(v))
PY
}

# check EXPR WHAT: EXPR (see j) is true of the last answer, else fail with the answer.
check() {
  local got
  got="$(j "$1")" || fail "$2: cannot read the answer to $REQUEST: $(head -c 3000 "$TMP/body")"
  [ "$got" = "true" ] || fail "$2: not true: $1; answer to $REQUEST: $(head -c 3000 "$TMP/body")"
}

ok() { echo "ok $*"; }

# --- health and auth ---------------------------------------------------------------------
call GET /health
expect 200 "health"
check 'd["status"] == "ok" and d["online"] >= 1' "health: at least one edge online"
ok "health: $(j 'd["online"]') of $(j 'd["facilities"]') facilities online"

STATUS="$(curl -sS --max-time 30 -o "$TMP/body" -w '%{http_code}' "$API/api/v1/workflows")" \
  || fail "cannot reach $API"
REQUEST="GET /api/v1/workflows (no token)"
expect 401 "auth"
ok "auth: a request without a token is refused (401)"

call GET /api/v1/facilities
expect 200 "facilities"
F1="$(j '[f["id"] for f in d if f["online"] and not f["stale"]][0]')" \
  || fail "no online facility: $(cat "$TMP/body")"
ok "facilities: using $F1"

call GET /api/v1/templates
expect 200 "templates"
TEMPLATE="$(j '([t["name"] for t in d if t["name"] == "pick_and_deliver"]
               + [t["name"] for t in d])[0]')" || fail "the hub knows no template"
# A template with a sync point whose participants are ordinary steps: for the sync check.
read -r SYNC_TEMPLATE SYNC_STEP SYNC_PARTS < <(j '" ".join([(t["name"], s["id"],
    ",".join(s["participants"])) for t in d for s in t["steps"]
    if s["kind"] == "sync" and s.get("participants") and not s.get("team")][0])') \
  || fail "no template has a sync step: $(head -c 2000 "$TMP/body")"
ok "templates: $TEMPLATE; sync point $SYNC_TEMPLATE.$SYNC_STEP"

# --- CRUD ----------------------------------------------------------------------------------
create() {  # create ID TEMPLATE PRIORITY [EXTRA_JSON_FIELDS]: a workflow in $F1
  call POST /api/v1/workflows "{\"facility\": \"$F1\", \"template\": \"$2\",
    \"workflow_id\": \"$1\", \"priority\": $3, \"reason\": \"smoke test\"${4:-}}"
  expect 201 "create $1"
  check "d[\"state\"] == \"applied\" and d[\"args\"][\"workflow_id\"] == \"$1\"" "create $1"
}
PINNED=", \"agents\": [\"$NOBODY\"]"
A="$RUN-a"
B="$RUN-b"
C="$RUN-c"
D="$RUN-d"
create "$A" "$TEMPLATE" 5 "$PINNED"
ok "create: $A in $F1 (command $(j 'd["command_id"]'))"

call GET "/api/v1/workflows/$A"
expect 200 "get"
check "d[\"id\"] == \"$A\" and d[\"facility\"] == \"$F1\" and d[\"priority\"] == 5 \
  and d[\"state\"].split(\".\")[0] in (\"pending\", \"active\")" "get $A"
CREATED="$(j 'd["created_at"]')"
ok "get: $A is $(j 'd["state"]')"

SINCE="$(python3 -c "print($CREATED - 0.001)")"
UNTIL="$(python3 -c "print($CREATED + 0.001)")"
call GET "/api/v1/workflows?facility=$F1&template=$TEMPLATE&since=$SINCE&until=$UNTIL&limit=500"
expect 200 "list"
check "\"$A\" in [w[\"id\"] for w in d[\"items\"]] and d[\"count\"] >= 1 \
  and all(w[\"facility\"] == \"$F1\" and w[\"template\"] == \"$TEMPLATE\" for w in d[\"items\"])" \
  "list with filters"
call GET "/api/v1/workflows?facility=$F1&state=active&limit=2"
expect 200 "list"
check 'len(d["items"]) <= 2 and d["count"] >= 1 and all(w["state"].startswith("active")
  for w in d["items"])' "list active workflows, two a page"
ok "list: filters by facility, template, time range and state, with counts"

call PUT "/api/v1/workflows/$A" '{"priority": 9, "data": {"smoke": "yes"}}'
expect 200 "update"
call GET "/api/v1/workflows/$A"
check 'd["priority"] == 9 and d["data"].get("smoke") == "yes"' "update shows in the view"
ok "update: priority 9 and data merged"

# --- dependencies --------------------------------------------------------------------------
# A dependency is added to a workflow that has not started: B waits for A already.
create "$B" "$TEMPLATE" 5 ", \"depends_on\": [\"$A\"]"
create "$C" "$TEMPLATE" 5 "$PINNED"
call POST "/api/v1/workflows/$B/dependencies" "{\"source\": \"$C\", \"type\": \"sequential\"}"
expect 200 "add a dependency"
call GET "/api/v1/workflows/$B/dependencies"
expect 200 "list dependencies"
check "\"$A\" in d[\"depends_on\"] and \"$C\" in d[\"depends_on\"]" "the dependencies are listed"
ok "dependencies: $B waits for $A (at creation) and $C (added)"
create "$D" "$TEMPLATE" 5 ", \"depends_on\": [\"$B\"]"
call POST "/api/v1/workflows/$B/dependencies" "{\"source\": \"$D\", \"type\": \"sequential\"}"
expect 409 "a dependency cycle"
check '"cycle" in d["error"]["message"]' "the refusal names the cycle"
ok "dependencies: a cycle is refused (409: $(j 'd["error"]["message"]'))"

# --- coordination --------------------------------------------------------------------------
call POST "/api/v1/workflows/$A/coordination" \
  "{\"protocol\": \"auction_based\", \"agents\": [\"$NOBODY\"]}"
expect 200 "set coordination"
call GET "/api/v1/workflows/$A"
check 'd["coordination"] == "auction_based"' "the protocol shows in the view"
ok "coordination: $A allocates by auction"

# --- checkpoint and recovery ---------------------------------------------------------------
call POST "/api/v1/workflows/$A/checkpoint" '{"label": "smoke"}'
expect 200 "checkpoint"
CHECKPOINT="$(j 'd["result"]["checkpoint"]')"
call GET "/api/v1/workflows/$A/checkpoints"
expect 200 "list checkpoints"
check "\"$CHECKPOINT\" in d[\"checkpoints\"]" "the checkpoint is listed"
ok "checkpoint: $CHECKPOINT taken and listed"
call POST "/api/v1/workflows/$A/recover" \
  "{\"strategy\": \"checkpoint_restore\", \"checkpoint\": \"$CHECKPOINT\"}"
expect 200 "recover"
check 'd["result"]["strategy"] == "checkpoint_restore"' "recover"
ok "recover: $A restored to $CHECKPOINT (now $(j 'd["result"]["state"]'))"

# --- sync arrival: a person's arrival reported through the hub -----------------------------
S="$RUN-sync"
create "$S" "$SYNC_TEMPLATE" 1000
AGENT=""
for _ in $(seq 1 360); do  # until one of its participant steps is done (3 min at most)
  call GET "/api/v1/workflows/$S"
  expect 200 "watch $S"
  AGENT="$(j "([s[\"outputs\"].get(\"agent\") for s in d[\"steps\"]
    if s[\"id\"] in \"$SYNC_PARTS\".split(\",\") and s[\"state\"] == \"done\"
    and (s[\"outputs\"] or {}).get(\"agent\")] + [\"\"])[0]")"
  [ -n "$AGENT" ] && break
  sleep 0.5
done
[ -n "$AGENT" ] || fail "sync arrival: no participant step of $S finished in 3 minutes (are \
agents running?): $(head -c 3000 "$TMP/body")"
call POST "/api/v1/workflows/$S/sync/$SYNC_STEP/agent/$AGENT" '{"reason": "seen at the cell"}'
expect 200 "sync arrival"
check "d[\"result\"][\"agent_id\"] == \"$AGENT\"" "sync arrival"
ok "sync arrival: $AGENT at $S.$SYNC_STEP (arrived: $(j 'd["result"]["arrived"]'), released: \
$(j 'd["result"]["released"]'))"

# --- agents --------------------------------------------------------------------------------
call GET "/api/v1/agents?facility=$F1&limit=500"
expect 200 "agents"
check "\"$AGENT\" in [a[\"id\"] for a in d[\"items\"]]" "the agent is listed"
FOUND=""
CURSOR=""
for _ in $(seq 1 50); do  # page through the agent's workflows (oldest first) to $S
  call GET "/api/v1/agents/$AGENT/workflows?limit=500${CURSOR:+&cursor=$CURSOR}"
  expect 200 "agent workflows"
  [ "$(j "\"$S\" in [w[\"id\"] for w in d[\"items\"]]")" = true ] && FOUND=1 && break
  CURSOR="$(j '__import__("urllib.parse").parse.quote(d["next_cursor"] or "", safe="")')"
  [ -n "$CURSOR" ] || break
done
[ -n "$FOUND" ] || fail "agent workflows: $S is not among the workflows of $AGENT"
ok "agent workflows: $AGENT worked on $(j 'd["count"]') workflow(s)"

# --- conflicts -----------------------------------------------------------------------------
call GET "/api/v1/conflicts?status=open&limit=500"
expect 200 "conflicts"
OPEN="$(j '" ".join(next(([c["id"], c["facility"]] for c in d["items"]
                          if c["rule"] != "facility_stop"), []))')"
read -r CONFLICT CONFLICT_FACILITY <<< "$OPEN" || true
if [ -n "${CONFLICT:-}" ]; then
  call POST "/api/v1/conflicts/$CONFLICT/resolve" \
    "{\"facility\": \"$CONFLICT_FACILITY\", \"resolution\": \"resolved by the smoke test\"}"
  if [ "$STATUS" = 404 ]; then  # settled by its facility meanwhile: it must be gone from open
    call GET "/api/v1/conflicts?status=open&facility=$CONFLICT_FACILITY&limit=500"
    expect 200 "conflicts"
    check "\"$CONFLICT\" not in [c[\"id\"] for c in d[\"items\"]]" "a conflict gone is not open"
    ok "conflicts: $CONFLICT was resolved by its edge before the operator"
  else
    expect 200 "resolve a conflict"
    ok "conflicts: $CONFLICT resolved"
  fi
else
  call POST "/api/v1/conflicts/$RUN-no-such-conflict/resolve" '{}'
  expect 404 "resolve an unknown conflict"
  ok "conflicts: none open; an unknown id is 404"
fi

# --- performance and state sync ------------------------------------------------------------
call GET /api/v1/performance/cache
expect 200 "cache performance"
check 'all(t in d["tiers"] for t in ("memory", "warm", "storage"))' "three cache tiers"
ok "performance: cache tiers memory, warm, storage"
call GET /api/v1/performance/system
expect 200 "system performance"
check '"api" in d' "system figures"
ok "performance: system"
call POST /api/v1/state/sync "{\"facility\": \"$F1\"}"
expect 200 "state sync"
call POST /api/v1/state/sync '{}'
expect 200 "state sync of every facility"
ok "state sync: $F1, then every facility"

# --- WebSocket: one change, read live --------------------------------------------------------
call GET "/api/v1/events?workflow_id=$A&limit=1000"
expect 200 "change feed"
SINCE_TOKEN="$(j 'd["next"] or ""')"
[ -n "$SINCE_TOKEN" ] || fail "the change feed has nothing of $A"
API="$API" TOKEN="$TOKEN" WF="$A" SINCE="$SINCE_TOKEN" python3 - <<'PY' || fail "websocket"
"""A minimal RFC 6455 client: handshake, make a change, read frames until it, close."""
import base64, hashlib, json, os, socket, ssl, struct, sys, urllib.parse, urllib.request

api, token, wf, since = (os.environ[k] for k in ("API", "TOKEN", "WF", "SINCE"))
url = urllib.parse.urlsplit(api)
host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
sock = socket.create_connection((host, port), timeout=30)
if url.scheme == "https":
    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
key = base64.b64encode(os.urandom(16)).decode()
path = f"/ws/workflows?workflow_id={wf}&since={since}"
sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              f"Sec-WebSocket-Key: {key}\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = sock.recv(4096)
    if not chunk:
        sys.exit(f"handshake: the server closed the connection: {head!r}")
    head += chunk
head, _, rest = head.partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
if lines[0].split()[1] != "101":
    sys.exit(f"handshake refused: {lines[0]}")
headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
want = base64.b64encode(hashlib.sha1(
    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
if headers.get("sec-websocket-accept") != want:
    sys.exit(f"handshake: bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
buf = bytearray(rest)

def read(n):
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection mid-frame")
        buf.extend(chunk)
    out = bytes(buf[:n])
    del buf[:n]
    return out

def frame():
    b0, b1 = read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read(8))[0]
    if b1 & 0x80:
        sys.exit("a server frame must not be masked")
    return b0 & 0x0F, read(n)

def send(opcode, payload=b""):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

# The change, made after the stream is open (its `since` token covers any gap in between).
req = urllib.request.Request(f"{api}/api/v1/workflows/{wf}", method="PUT",
                             data=json.dumps({"priority": 3}).encode(),
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json",
                                      "X-Reason": "websocket smoke test"})
urllib.request.urlopen(req, timeout=30).read()
for _ in range(50):
    opcode, payload = frame()
    if opcode == 9:  # ping
        send(10, payload)
        continue
    if opcode == 8:
        sys.exit(f"the server closed the stream: {payload!r}")
    if opcode != 1:
        sys.exit(f"unexpected frame opcode {opcode}")
    change = json.loads(payload)
    event = change["event"]
    if event["workflow_id"] != wf:
        sys.exit(f"a change of another workflow despite the filter: {change}")
    if event["kind"] == "workflow_updated":
        break
else:
    sys.exit("no workflow_updated change within 50 frames")
send(8, struct.pack(">H", 1000))
while True:  # the server's close frame ends the exchange
    opcode, _ = frame()
    if opcode == 8:
        break
sock.close()
print(f"ok websocket: /ws/workflows streamed {event['kind']} of {wf} "
      f"(token {change['token']}), then closed cleanly")
PY

# --- cancel via DELETE (and tidy up) -------------------------------------------------------
for W in "$D" "$B" "$C" "$A"; do  # dependants first: a cancelled prerequisite fails them
  call DELETE "/api/v1/workflows/$W"
  expect 200 "cancel $W"
done
for W in "$A" "$D"; do  # cancelled at once (nothing ran), or once an agent stopped its step
  for _ in $(seq 1 120); do
    call GET "/api/v1/workflows/$W"
    [ "$(j 'd["state"]')" = cancelling ] || break
    sleep 0.5
  done
  check 'd["state"] == "cancelled"' "cancelled shows in the view"
done
ok "cancel: DELETE cancelled $A, $B, $C and $D"

echo "all checks passed against $API"
