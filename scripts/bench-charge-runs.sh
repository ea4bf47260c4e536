#!/usr/bin/env bash
# Charge-run benchmark: obol (`obol serve`, SQLite) charging saved cards
# through a standalone sandbox (`obol sandbox --rate-limit R`), with obol's
# own limiter (`stripe.rate_limit_per_second`) at the same R. Prints, per R:
# items/s, how full the sandbox's limit was kept, the 429s it answered; and
# obol's peak RSS (VmHWM) for a run of 1,000 and one of 100,000 items.
# Figures, not a test: run it on a quiet machine.
#
#   ./scripts/bench-charge-runs.sh                 # R = 25, 100, 1000 and the RSS pair
#   ./scripts/bench-charge-runs.sh --quick         # fewer items everywhere (a minute or two)
#   ./scripts/bench-charge-runs.sh --rates 1000 --no-rss
#   ./scripts/bench-charge-runs.sh --rss-only --big 20000
# Options: --rates LIST (comma-separated), --no-rss, --rss-only, --big LIST
# (the larger RSS runs after the one of 1,000 items, comma-separated,
# default 10000,100000), --pool N (members with a saved card,
# default 1000), --workers N / --concurrency N (charge_runs.*, default 4 / 32),
# --keep (leave the work directory and logs). Needs curl, jq, python3.
# Diagnosis (environment): BENCH_OBOL_LOG (obol's log filter, e.g.
# warn,obol::ops::charge_runs=trace for per-item timings), BENCH_OBOL_RATE
# (obol's limiter apart from the sandbox's R), BENCH_NO_WEBHOOKS=1 (no
# webhooks to obol during the runs), BENCH_SANDBOX_DB=memory (only with
# --rates 1000: the sandbox then is never restarted), BENCH_OBOL_BIN (an
# obol binary to measure instead of a fresh release build, e.g. one with
# symbols), BENCH_OBOL_WRAP (a command obol serve runs under, e.g.
# "heaptrack -o /tmp/obol-heap": then the figures are the wrapped
# process's, for diagnosis only).
set -euo pipefail
cd "$(dirname "$0")/.."

rates="25,100,1000"
rss=1
throughput=1
quick=0
big=10000,100000
pool=1000
workers=4
concurrency=32
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates=$2; shift ;;
    --no-rss) rss=0 ;;
    --rss-only) throughput=0 ;;
    --quick) quick=1 ;;
    --big) big=$2; shift ;;
    --pool) pool=$2; shift ;;
    --workers) workers=$2; shift ;;
    --concurrency) concurrency=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  [ "$big" = 10000,100000 ] && big=10000
  [ "$pool" = 1000 ] && pool=200
fi
# Items per throughput run: about 20 s at the limit, 10 s at 1000/s.
items_for() {
  local r=$1 n
  n=$((r * 20)); [ "$r" -ge 1000 ] && n=$((r * 10)); [ "$n" -lt 200 ] && n=200
  [ "$quick" = 1 ] && n=$((n / 4))
  echo "$n"
}

for tool in curl jq python3; do
  command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ -n "${BENCH_OBOL_BIN:-}" ]; then
  bin=$BENCH_OBOL_BIN
else
  echo "building obol (release)…" >&2
  cargo build --release -q -p obol --bin obol
  bin=${CARGO_TARGET_DIR:-$(pwd)/target}/release/obol
fi

work=$(mktemp -d /tmp/obol-bench.XXXXXX)
sandbox_pid=""
obol_pid=""
cleanup() {
  [ -n "$obol_pid" ] && kill "$obol_pid" 2>/dev/null || true
  [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(free_port)
oport=$(free_port)
sandbox=http://127.0.0.1:$sport
obol=http://127.0.0.1:$oport
key=obol_sk_bench$(python3 -c 'import secrets; print(secrets.token_hex(20))')
sk=sk_test_obolbench
whsec=""
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

wait_listening() { # file pid what
  for _ in $(seq 1 300); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; echo "$3 died" >&2; exit 1; }
    sleep 0.1
  done
  echo "$3 did not start" >&2; exit 1
}

sandbox_rate=""
start_sandbox() { # rate; a sandbox already running at that rate is kept
  [ -n "$sandbox_pid" ] && [ "$sandbox_rate" = "$1" ] && return 0
  stop_sandbox
  "$bin" sandbox --listen "127.0.0.1:$sport" --db "${BENCH_SANDBOX_DB:-$work/sandbox.db}" \
    --rate-limit "$1" --webhook-retry-ms 500 >"$work/sandbox-$1.log" 2>&1 &
  sandbox_pid=$!
  sandbox_rate=$1
  wait_listening "$work/sandbox-$1.log" "$sandbox_pid" sandbox
}

obol_env() { # rate
  exec env -i PATH="$PATH" HOME="${HOME:-/root}" \
    OBOL_LISTEN="127.0.0.1:$oport" \
    OBOL_PUBLIC_URL="$obol" \
    OBOL_DATABASE_URL="sqlite://$work/obol.db?mode=rwc" \
    OBOL_API_KEYS="$key" \
    OBOL_STRIPE__SECRET_KEY="$sk" \
    OBOL_STRIPE__PUBLISHABLE_KEY=pk_test_obolbench \
    OBOL_STRIPE__API_BASE="$sandbox" \
    OBOL_STRIPE__WEBHOOK_SECRETS="${whsec:-whsec_none}" \
    OBOL_STRIPE__RATE_LIMIT_PER_SECOND="${BENCH_OBOL_RATE:-$1}" \
    OBOL_CHARGE_RUNS__WORKERS="$workers" \
    OBOL_CHARGE_RUNS__CONCURRENCY="$concurrency" \
    OBOL_JOBS__WORKERS=$((workers + 2)) \
    OBOL_JOBS__POLL_INTERVAL_MS=100 \
    OBOL_RECONCILE__INTERVAL_SECONDS=0 \
    OBOL_LOG="${BENCH_OBOL_LOG:-warn}" \
    "${@:2}"
}

starts=0
start_obol() { # rate
  starts=$((starts + 1))
  obol_log=$work/obol-$starts-$1.log
  # shellcheck disable=SC2086 # the wrapper is a command line
  obol_env "$1" ${BENCH_OBOL_WRAP:-} "$bin" serve >"$obol_log" 2>&1 &
  obol_pid=$!
  wait_listening "$obol_log" "$obol_pid" obol
  # Wrapped: measure (and later stop) obol itself, not its wrapper.
  if [ -n "${BENCH_OBOL_WRAP:-}" ]; then obol_pid=$(pgrep -n -f "$bin serve"); fi
}

stop_obol() {
  [ -n "$obol_pid" ] && { kill "$obol_pid" 2>/dev/null || true; wait "$obol_pid" 2>/dev/null || true; }
  obol_pid=""
}
stop_sandbox() {
  [ -n "$sandbox_pid" ] && { kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; }
  sandbox_pid=""
}

api() { # method path [json]
  local body=()
  [ $# -ge 3 ] && body=(-d "$3")
  curl -fsS --retry 5 -X "$1" "$obol$2" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' "${body[@]}"
}
stripe() { # path form...
  local path=$1; shift
  local args=()
  for f in "$@"; do args+=(--data-urlencode "$f"); done
  curl -fsS --retry 5 "$sandbox$path" -u "$sk:" "${args[@]}"
}
export -f api stripe
export obol sandbox key sk

# Wait until the sandbox delivered every webhook and obol applied them,
# so one phase's events do not land in the next.
drain() {
  for _ in $(seq 1 1200); do
    local pending received
    pending=$(curl -fsS "$sandbox/_sandbox/stats" | jq '.deliveries.pending // 0')
    received=$(api GET "/v1/webhook-events?status=received&limit=1" | jq '.data | length')
    [ "$pending" = 0 ] && [ "$received" = 0 ] && return 0
    sleep 0.5
  done
  log "webhooks still pending after 10 minutes"
}

# --- members with a saved 4242 card ------------------------------------------
setup_member() { # i
  local cus scus pm
  cus=$(api POST /v1/customers "{\"external_id\": \"bench-$1\", \"email\": \"m$1@club.example\", \"name\": \"Member $1\"}" | jq -r .id)
  scus=$(api POST "/v1/customers/$cus/card-update-links" '{}' | jq -r .stripe_customer_id)
  pm=$(stripe /v1/payment_methods/pm_card_visa/attach "customer=$scus" | jq -r .id)
  stripe "/v1/customers/$scus" "invoice_settings[default_payment_method]=$pm" >/dev/null
  echo "$cus"
}
export -f setup_member

log "set-up: sandbox and obol at 1000/s, webhook endpoint, $pool members with a saved card"
start_sandbox 1000
whsec=$(obol_env 1000 "$bin" stripe register-webhook | sed -n 's/.*signing secret (shown once by Stripe): \(whsec_[A-Za-z0-9_]*\).*/\1/p')
[ -n "$whsec" ] || { echo "no webhook secret from obol stripe register-webhook" >&2; exit 1; }
start_obol 1000
seq 1 "$pool" | xargs -P 8 -I{} bash -c 'setup_member {}' >"$work/members.txt"
[ "$(wc -l <"$work/members.txt")" = "$pool" ] || { echo "member set-up failed" >&2; exit 1; }
jq -R . "$work/members.txt" | jq -s . >"$work/members.json"
drain
with_card=$(tail -n 20 "$work/members.txt" | while read -r c; do
  api GET "/v1/customers/$c/payment-methods" | jq '[.data[] | select(.default)] | length'
done | paste -sd+ | bc)
[ "$with_card" = 20 ] || { echo "obol does not show the saved cards ($with_card of the last 20)" >&2; exit 1; }
if [ "${BENCH_NO_WEBHOOKS:-0}" = 1 ]; then
  # Diagnosis only: no webhooks to obol during the runs.
  for we in $(curl -fsS "$sandbox/v1/webhook_endpoints" -u "$sk:" | jq -r '.data[].id'); do
    curl -fsS -X DELETE "$sandbox/v1/webhook_endpoints/$we" -u "$sk:" >/dev/null
  done
  log "webhook endpoint deleted (BENCH_NO_WEBHOOKS=1)"
fi
stop_obol

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# --- one measured run ----------------------------------------------------------
results=()
run_once() { # rate items label
  local r=$1 n=$2 label=$3
  start_sandbox "$r"
  start_obol "$r" # a fresh process for each run: its VmHWM is this run's
  local run
  run=$(api POST /v1/charge-runs "{\"name\": \"bench $label\", \"currency\": \"eur\", \"description\": \"bench\"}" | jq -r .id)
  local from=0
  while [ "$from" -lt "$n" ]; do
    local to=$((from + 1000)); [ "$to" -gt "$n" ] && to=$n
    jq -c -n --slurpfile m "$work/members.json" --argjson a "$from" --argjson b "$to" \
      '{items: [range($a; $b) | {customer_id: $m[0][. % ($m[0] | length)], amount: 2500, external_reference: "r-\(.)"}]}' \
      >"$work/batch.json"
    curl -fsS --retry 5 "$obol/v1/charge-runs/$run/items" -H "Authorization: Bearer $key" \
      -H 'Content-Type: application/json' --data-binary "@$work/batch.json" >/dev/null
    from=$to
  done
  drain
  curl -fsS -X POST "$sandbox/_sandbox/rate/reset" >/dev/null
  # Peak so far: adding the items and applying their set-up webhooks.
  local load_hwm
  load_hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$obol_pid/status")
  local ocpu0 scpu0 ocpu1 scpu1
  ocpu0=$(cpu_ticks "$obol_pid"); scpu0=$(cpu_ticks "$sandbox_pid")
  api POST "/v1/charge-runs/$run/start" '{}' >/dev/null
  local view quarter=1 rss_marks=""
  while :; do
    view=$(api GET "/v1/charge-runs/$run")
    # obol's VmRSS as the run passes 25, 50 and 75 % (does memory follow the run's size?)
    while [ "$quarter" -le 3 ] && [ "$(jq --argjson q "$quarter" '.progress * 4 >= $q' <<<"$view")" = true ]; do
      rss_marks+="$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$obol_pid/status")/"
      quarter=$((quarter + 1))
    done
    case $(jq -r .status <<<"$view") in completed|canceled) break ;; esac
    kill -0 "$obol_pid" 2>/dev/null || { tail -50 "$obol_log" >&2; echo "obol died" >&2; exit 1; }
    # Not faster: reading a run counts its items, which costs obol time on a
    # large run; the figures use the run's own started_at and completed_at.
    sleep 1
  done
  ocpu1=$(cpu_ticks "$obol_pid"); scpu1=$(cpu_ticks "$sandbox_pid")
  local rate hwm shwm
  rate=$(curl -fsS "$sandbox/_sandbox/rate")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$obol_pid/status")
  rss_marks+="$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$obol_pid/status")"
  shwm=$(awk '/VmHWM/ {print $2}' "/proc/$sandbox_pid/status")
  # What the resident memory is at the end: heap (anonymous), mapped files, shared memory.
  local split
  split=$(awk '/^Rss(Anon|File|Shmem):/ {printf "%s%.0f", sep, $2 / 1024; sep="/"}' "/proc/$obol_pid/status")
  echo "$view" >"$work/run-$label.json"
  echo "$rate" >"$work/rate-$label.json"
  local line
  line=$(python3 - "$r" "$n" "$label" "$hwm" "$shwm" "$view" "$rate" \
    $((ocpu1 - ocpu0)) $((scpu1 - scpu0)) "$(getconf CLK_TCK)" "$rss_marks" "$load_hwm" "$split" <<'EOF'
import json, sys
from datetime import datetime
r, n, label, hwm, shwm = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
view, rate = json.loads(sys.argv[6]), json.loads(sys.argv[7])
tck = int(sys.argv[10])
ocpu, scpu = int(sys.argv[8]) / tck, int(sys.argv[9]) / tck
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
secs = (t(view["completed_at"]) - t(view["started_at"])).total_seconds()
c = view["counts"]
others = {k: v for k, v in c.items() if k != "succeeded" and v}
print("\t".join(str(x) for x in [
    label, r, n, f"{secs:.1f}", f"{n / secs:.1f}",
    f"{100 * rate['accepted'] / (secs * r):.0f}%", rate["max_in_any_second"], rate["rate_limited"],
    rate["requests"], c["succeeded"], json.dumps(others) if others else "-",
    f"{hwm / 1024:.0f}", sys.argv[12], sys.argv[11], sys.argv[13], f"{shwm / 1024:.0f}",
    f"{100 * ocpu / secs:.0f}%", f"{100 * scpu / secs:.0f}%"]))
EOF
)
  results+=("$line")
  log "$(tr '\t' ' ' <<<"$line")"
  [ "${4:-}" = last ] || drain # the next run starts with no webhooks in flight
  stop_obol
}

if [ "$throughput" = 1 ]; then
  for r in ${rates//,/ }; do
    n=$(items_for "$r")
    log "R=$r/s: $n items"
    run_once "$r" "$n" "rate-$r"
  done
fi
if [ "$rss" = 1 ]; then
  log "peak RSS: a run of 1000 items, then of ${big//,/, } items, at R=1000/s (fresh obol process each)"
  run_once 1000 1000 "rss-1000"
  sizes=(${big//,/ })
  for i in "${!sizes[@]}"; do
    if [ "$i" = $((${#sizes[@]} - 1)) ]; then
      run_once 1000 "${sizes[$i]}" "rss-${sizes[$i]}" last
    else
      run_once 1000 "${sizes[$i]}" "rss-${sizes[$i]}"
    fi
  done
fi

echo
echo "obol charge runs against 'obol sandbox --rate-limit R' (SQLite; charge_runs.workers=$workers, concurrency=$concurrency;"
echo "stripe.rate_limit_per_second=R; all cards 4242 4242 4242 4242). Items cycle over a pool of $pool members with"
echo "a saved card: a run may hold several items for one member (each its own external_reference)."
echo "fill = requests the sandbox accepted / (run seconds x R); run seconds = completed_at - started_at;"
echo "CPU = each process's user+system time over the run / run seconds ($(nproc) CPUs here: 100% is one core)."
echo
{
  printf 'run\tR/s\titems\tseconds\titems/s\tfill\tmax/1s\t429s\tsandbox requests\tsucceeded\tother outcomes\tobol VmHWM MiB\tVmHWM before start\tobol VmRSS MiB at 25/50/75/100 %%\tanon/file/shmem MiB at end\tsandbox VmHWM MiB\tobol CPU\tsandbox CPU\n'
  for l in "${results[@]}"; do printf '%s\n' "$l"; done
} | column -t -s $'\t'
