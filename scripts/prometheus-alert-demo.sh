#!/usr/bin/env bash
# Shows the chart's alert rules working in a real Prometheus (Debian's /usr/bin/prometheus):
#   1. starts the local cluster (`curia up --dynamic-ports`) and Prometheus on loopback, scraping every
#      /metrics every 2 s with the labels the chart's PodMonitor gives (curia_service, namespace);
#   2. loads a generated copy of helm/curia/files/alerts.yaml in which every `for:` is shortened to
#      DEMO_FOR (default 10s) and rules are evaluated every 2 s: the expressions are the shipped ones;
#   3. SIGTERMs one service (default embed) and polls /api/v1/alerts until CuriaTargetDown for it goes
#      inactive -> pending -> firing (the process is gone but its scrape target is still listed, as for
#      a crashed pod);
#   4. removes the target from file_sd (as Kubernetes does when the pod object is deleted) and waits
#      for CuriaScrapeAbsent for the service: inactive -> pending -> firing.
# Prints every transition with UTC timestamps and seconds since the SIGTERM, exits non-zero if an alert
# never fires within its bound, and always stops Prometheus and the cluster (trap).
# Usage: bash scripts/prometheus-alert-demo.sh [--service embed] [--only a,b,...] [--keep-dir]
#   --only is passed to `curia up` (default: every service).
# Needs a built tree (npm run build). Whole run: ~45 s, bounded at 170 s (cluster start up to 90 s).
set -euo pipefail

SERVICE=embed
ONLY=""
KEEP_DIR=0
DEMO_FOR="${DEMO_FOR:-10s}"
PHASE_TIMEOUT_S=60
while [ $# -gt 0 ]; do
  case "$1" in
    --service) SERVICE="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --keep-dir) KEEP_DIR=1; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$SERVICE" in
  gateway | preprocess | embed | heads | segment | register) ;;
  *) echo "--service must be one of gateway, preprocess, embed, heads, segment, register (got '$SERVICE')" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RULES_SRC="$ROOT/helm/curia/files/alerts.yaml"
T_START=$SECONDS
HARD_LIMIT_S=170

if [ ! -f "$ROOT/libs/cli/dist/main.js" ]; then
  echo "libs/cli/dist/main.js is missing: run 'npm run build' first" >&2
  exit 2
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus package (prometheus + promtool)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi

WORK="$(mktemp -d)"
UP_PID=""
PROM_PID=""
cleanup() {
  local rc=$?
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill -TERM "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    # SIGINT: the launcher drains every service (gateway first) and exits; SIGKILL after 40 s.
    kill -INT "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 400); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$UP_PID" 2>/dev/null || true
    wait "$UP_PID" 2>/dev/null || true
  fi
  if [ "$KEEP_DIR" -eq 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date -u +%H:%M:%S.%3N; }
log() { printf '%s  %s\n' "$(now)" "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
check_budget() {
  if [ $((SECONDS - T_START)) -gt "$HARD_LIMIT_S" ]; then
    log "FAIL: demo exceeded its ${HARD_LIMIT_S} s bound"
    exit 1
  fi
}

# ---- 1. the local cluster
UP_ARGS=(up --dynamic-ports --log-level info)
[ -n "$ONLY" ] && UP_ARGS+=(--only "$ONLY")
log "starting the local cluster (node libs/cli/dist/main.js ${UP_ARGS[*]})"
node "$ROOT/libs/cli/dist/main.js" "${UP_ARGS[@]}" >"$WORK/up.out" 2>"$WORK/up.err" &
UP_PID=$!
for _ in $(seq 1 900); do
  grep -q 'SERVING after' "$WORK/up.out" 2>/dev/null && break
  kill -0 "$UP_PID" 2>/dev/null || { echo "curia up exited early:" >&2; tail -20 "$WORK/up.err" >&2; exit 1; }
  sleep 0.1
done
if ! grep -q 'SERVING after' "$WORK/up.out"; then
  echo "cluster not SERVING within 90 s; last launcher/service output:" >&2
  tail -n 15 "$WORK/up.err" | cut -c1-300 >&2
  exit 1
fi
log "$(grep 'SERVING after' "$WORK/up.out")"
# Endpoint table rows: replica, gRPC, metrics URL, pid.
awk '$2 ~ /^127\.0\.0\.1:/ { print }' "$WORK/up.out" >"$WORK/endpoints"
sed 's/^/            /' "$WORK/endpoints"
VICTIM_PID="$(awk -v s="$SERVICE" '$1 == s || $1 ~ ("^" s "-[0-9]+$") { print $4; exit }' "$WORK/endpoints")"
[ -n "$VICTIM_PID" ] || { echo "no replica of $SERVICE in the endpoint table" >&2; exit 1; }

# file_sd targets carrying the labels the chart's PodMonitor relabels in (curia_service) or adds (namespace).
write_targets() { # write_targets [EXCLUDED_SERVICE]
  python3 - "$WORK/endpoints" "${1:-}" >"$WORK/targets.json.tmp" <<'PY'
import json, re, sys
rows, excluded = open(sys.argv[1]).read().split('\n'), sys.argv[2]
groups = []
for row in filter(None, rows):
    replica, _grpc, metrics, _pid = row.split()
    service = re.sub(r'-\d+$', '', replica)
    if service == excluded:
        continue
    hostport = re.match(r'http://([^/]+)/metrics', metrics).group(1)
    groups.append({'targets': [hostport], 'labels': {'curia_service': service, 'namespace': 'local',
                                                      'pod': replica}})
print(json.dumps(groups, indent=1))
PY
  mv "$WORK/targets.json.tmp" "$WORK/targets.json"
}
write_targets

# ---- 2. rules (shipped expressions, shortened `for:`) and Prometheus
sed -E "s/^( *)for: [0-9]+[smhd]\$/\1for: ${DEMO_FOR}/" "$RULES_SRC" >"$WORK/alerts.demo.yaml"
promtool check rules "$WORK/alerts.demo.yaml" >/dev/null
PROM_PORT="$(free_port)"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 1s
  evaluation_interval: 2s
rule_files:
  - $WORK/alerts.demo.yaml
scrape_configs:
  - job_name: curia
    honor_labels: true
    file_sd_configs:
      - files: [$WORK/targets.json]
        refresh_interval: 1s
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null
log "starting $(prometheus --version 2>&1 | head -1) on 127.0.0.1:$PROM_PORT (scrape + evaluation every 2 s, for: ${DEMO_FOR})"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
API="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 1 300); do
  curl -fsS "$API/-/ready" >/dev/null 2>&1 && break
  kill -0 "$PROM_PID" 2>/dev/null || { echo "prometheus exited:" >&2; tail -20 "$WORK/prometheus.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$API/-/ready" >/dev/null || { echo "prometheus not ready within 30 s" >&2; exit 1; }

# Every target scraped healthy once, and the alert of interest not active, before the fault.
n_targets="$(wc -l <"$WORK/endpoints")"
for _ in $(seq 1 150); do
  up_count="$(curl -fsS "$API/api/v1/targets?state=active" | python3 -c \
    'import json,sys; print(sum(t["health"] == "up" for t in json.load(sys.stdin)["data"]["activeTargets"]))')"
  [ "$up_count" -eq "$n_targets" ] && break
  sleep 0.2
done
[ "$up_count" -eq "$n_targets" ] || { echo "only $up_count/$n_targets targets up after 30 s" >&2; exit 1; }
log "Prometheus scrapes $up_count/$n_targets targets, all up; rules loaded: $(curl -fsS "$API/api/v1/rules" | python3 -c \
  'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')"

# Prints the state of ALERT for curia_service=SERVICE: inactive, pending or firing.
alert_state() {
  curl -fsS "$API/api/v1/alerts" | python3 -c '
import json, sys
name, service = sys.argv[1], sys.argv[2]
states = [a["state"] for a in json.load(sys.stdin)["data"]["alerts"]
          if a["labels"].get("alertname") == name and a["labels"].get("curia_service") == service]
print("firing" if "firing" in states else "pending" if "pending" in states else "inactive")' "$1" "$SERVICE"
}

T_FAULT=0
elapsed() { python3 -c "import time; print(f'{time.time() - $T_FAULT:6.1f}')"; }
# watch_alert ALERT: polls every 0.5 s, prints transitions, returns once firing (1 on timeout).
watch_alert() {
  local alert="$1" state last="" deadline=$((SECONDS + PHASE_TIMEOUT_S))
  while [ "$SECONDS" -lt "$deadline" ]; do
    check_budget
    state="$(alert_state "$alert")"
    if [ "$state" != "$last" ]; then
      log "+$(elapsed) s  $alert{curia_service=\"$SERVICE\"}  ${last:-(start)} -> $state"
      last="$state"
    fi
    [ "$state" = firing ] && return 0
    sleep 0.5
  done
  log "FAIL: $alert for $SERVICE did not fire within ${PHASE_TIMEOUT_S} s (last state: $last)"
  return 1
}

# Rules evaluated before the first scrape see no `up` at all (CuriaScrapeAbsent pending): wait until both
# alerts are inactive for the service, as in a healthy cluster.
for a in CuriaTargetDown CuriaScrapeAbsent; do
  for _ in $(seq 1 60); do
    s="$(alert_state "$a")"
    [ "$s" = inactive ] && break
    sleep 0.5
  done
  [ "$s" = inactive ] || { log "FAIL: $a stays $s for $SERVICE while it is healthy"; exit 1; }
done

# ---- 3. stop the service: its target stays listed and `up` turns 0
T_FAULT="$(date +%s.%N)"
log "+$(elapsed) s  SIGTERM $SERVICE (pid $VICTIM_PID)"
kill -TERM "$VICTIM_PID"
watch_alert CuriaTargetDown
for _ in $(seq 1 100); do kill -0 "$VICTIM_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$VICTIM_PID" 2>/dev/null && { log "FAIL: $SERVICE (pid $VICTIM_PID) still running"; exit 1; }

# ---- 4. the pod object disappears: no target at all, so absent(up{curia_service=...}) turns 1
write_targets "$SERVICE"
log "+$(elapsed) s  removed the $SERVICE target from file_sd (pod deleted)"
watch_alert CuriaScrapeAbsent

log "PASS: CuriaTargetDown and CuriaScrapeAbsent fired for $SERVICE in a real Prometheus ($((SECONDS - T_START)) s in all)"
