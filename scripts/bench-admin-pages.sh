#!/usr/bin/env bash
# Admin page-timing benchmark: seeds a database with 100,000 payments
# (and in proportion 20,000 customers, 50,000 orders, 100,000 webhook
# events, 500 disputes with their tasks, 5,000 invoices) with bulk SQL,
# starts `obol serve` on it (with a standalone sandbox) on a random
# loopback port, signs in to /admin with the secret key, and prints the
# load time (median and max of --loads loads, default 7) of each list
# page, of a few searches and of the pages they lead to.
#
#   ./scripts/bench-admin-pages.sh                          # SQLite
#   ./scripts/bench-admin-pages.sh --postgres postgres://postgres:postgres@127.0.0.1:5432/postgres
#   ./scripts/bench-admin-pages.sh --payments 20000 --loads 3
#   ./scripts/bench-admin-pages.sh --release                # figures of a release build
#
# With --postgres URL a database `obol_bench_<random>` is created on that
# server and dropped at the end. Options: --payments N (the others scale
# with it), --loads N, --bin PATH (an obol binary already built), --release
# (build and use target/release/obol; default: the debug build, whose
# figures are several times slower), --keep (leave the work directory and,
# on PostgreSQL, the database). Needs curl, python3, sqlite3 or psql.
# A page slower than 100 ms (the issue's target) is marked `slow`.
# Figures, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."

payments=100000
loads=7
pg=""
bin=""
profile=debug
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) pg=$2; shift ;;
    --payments) payments=$2; shift ;;
    --loads) loads=$2; shift ;;
    --bin) bin=$2; shift ;;
    --release) profile=release ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ -n "$pg" ]; then command -v psql >/dev/null || { echo "missing: psql" >&2; exit 1; }
else command -v sqlite3 >/dev/null || { echo "missing: sqlite3" >&2; exit 1; }; fi
if [ -z "$bin" ]; then
  echo "building obol ($profile)…" >&2
  if [ "$profile" = release ]; then cargo build --release -q -p obol --bin obol
  else cargo build -q -p obol --bin obol; fi
  bin=${CARGO_TARGET_DIR:-$(pwd)/target}/$profile/obol
fi

work=$(mktemp -d /tmp/obol-admin-bench.XXXXXX)
sandbox_pid=""
obol_pid=""
dbname=""
cleanup() {
  [ -n "$obol_pid" ] && kill "$obol_pid" 2>/dev/null || true
  [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then
    echo "work directory kept: $work${dbname:+, database $dbname}" >&2
  else
    rm -rf "$work"
    [ -n "$dbname" ] && psql -q "$pg" -c "DROP DATABASE IF EXISTS $dbname" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(free_port)
oport=$(free_port)
sandbox=http://127.0.0.1:$sport
obol=http://127.0.0.1:$oport
key=obol_sk_bench$(python3 -c 'import secrets; print(secrets.token_hex(20))')

if [ -n "$pg" ]; then
  dbname=obol_bench_$(python3 -c 'import secrets; print(secrets.token_hex(4))')
  psql -q "$pg" -c "CREATE DATABASE $dbname" >/dev/null
  db_url=$(python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$pg" "$dbname")
  backend=postgres
else
  db_url="sqlite://$work/obol.db?mode=rwc"
  backend=sqlite
fi

obol_env() {
  env -i PATH="$PATH" HOME="${HOME:-/root}" \
    OBOL_LISTEN="127.0.0.1:$oport" \
    OBOL_PUBLIC_URL="$obol" \
    OBOL_DATABASE_URL="$db_url" \
    OBOL_API_KEYS="$key" \
    OBOL_STRIPE__SECRET_KEY=sk_test_obolbench \
    OBOL_STRIPE__PUBLISHABLE_KEY=pk_test_obolbench \
    OBOL_STRIPE__API_BASE="$sandbox" \
    OBOL_STRIPE__WEBHOOK_SECRETS=whsec_none \
    OBOL_RECONCILE__INTERVAL_SECONDS=0 \
    OBOL_LOG=warn \
    "$@"
}

wait_listening() { # file pid what
  for _ in $(seq 1 600); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; echo "$3 died" >&2; exit 1; }
    sleep 0.1
  done
  echo "$3 did not start" >&2; exit 1
}

log "migrating the $backend database"
obol_env "$bin" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }

# Row counts, in proportion to the payments.
P=$payments
C=$((P / 5)); O=$((P / 2)); E=$P; D=$((P / 200)); I=$((P / 20))
[ "$C" -lt 1 ] && C=1; [ "$D" -lt 1 ] && D=1; [ "$I" -lt 1 ] && I=1

log "seeding $P payments, $C customers, $O orders, $E webhook events, $D disputes, $I invoices"
seed_start=$(date +%s)
if [ "$backend" = sqlite ]; then
  # Times as sqlx writes them (RFC 3339, +00:00); a payment every 20 s back from now.
  t="strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || (i * 20) || ' seconds')"
  sqlite3 "$work/obol.db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $C)
INSERT INTO customers (id, account_id, external_id, email, name, stripe_customer_id, created_at, updated_at)
SELECT printf('cus_bench%021d', i), 'default', 'm-' || i, 'member' || i || '@example.com',
       'Member ' || i, printf('cus_stripe%d', i), $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $O)
INSERT INTO orders (id, number, account_id, customer_id, email, currency, subtotal, shipping_amount,
                    total, status, created_at, updated_at)
SELECT printf('ord_bench%021d', i), 'ORD-BENCH-' || i, 'default', printf('cus_bench%021d', 1 + i % $C),
       'member' || (1 + i % $C) || '@example.com', 'eur', 1000 + i % 9000, 0, 1000 + i % 9000,
       CASE i % 5 WHEN 0 THEN 'shipped' WHEN 1 THEN 'delivered' ELSE 'confirmed' END, $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $P)
INSERT INTO payments (id, account_id, customer_id, order_id, stripe_payment_intent_id, amount, currency,
                      amount_refunded, amount_captured, status, disputed, created_at, updated_at)
SELECT printf('pay_bench%021d', i), 'default', printf('cus_bench%021d', 1 + i % $C),
       CASE WHEN i <= $O THEN printf('ord_bench%021d', i) END, 'pi_bench' || i, 100 + i % 10000, 'eur',
       CASE WHEN i % 10 = 1 THEN 100 + i % 10000 ELSE 0 END, 100 + i % 10000,
       CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'refunded' ELSE 'completed' END,
       CASE WHEN i % 200 = 0 THEN 1 ELSE 0 END, $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $E)
INSERT INTO webhook_events (id, stripe_event_id, account_id, event_type, stripe_created, livemode, payload,
                            source, status, attempts, next_attempt_at, received_at, applied_at)
SELECT printf('whev_bench%021d', i), 'evt_bench' || i, 'default', 'payment_intent.succeeded',
       CAST(strftime('%s', 'now') AS INTEGER) - i * 20, 0, '{"id":"evt_bench' || i || '"}', 'webhook',
       CASE WHEN i % 100 = 0 THEN 'ignored' ELSE 'applied' END, 1, $t, $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $D)
INSERT INTO disputes (id, account_id, stripe_dispute_id, payment_id, amount, currency, reason, status,
                      evidence_due_by, observed_at, created_at, updated_at)
SELECT printf('dsp_bench%021d', i), 'default', 'dp_bench' || i, printf('pay_bench%021d', i * 200), 1000,
       'eur', 'fraudulent', CASE WHEN i % 2 = 0 THEN 'needs_response' ELSE 'lost' END,
       CAST(strftime('%s', 'now') AS INTEGER) + 86400 * 7, 0, $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $D)
INSERT INTO tasks (id, account_id, kind, title, subject_type, subject_id, payment_id, status, due_at, created_at)
SELECT printf('task_bench%021d', i), 'default', 'respond_to_dispute', 'Respond to dispute', 'dispute',
       printf('dsp_bench%021d', i), printf('pay_bench%021d', i * 200),
       CASE WHEN i % 2 = 0 THEN 'open' ELSE 'done' END, $t, $t FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $I)
INSERT INTO invoices (id, account_id, customer_id, number, status, currency, line_items, subtotal, pass_fees,
                      total, due_date, created_at, updated_at)
SELECT printf('inv_bench%021d', i), 'default', printf('cus_bench%021d', 1 + i % $C), 'INV-' || i,
       CASE i % 3 WHEN 0 THEN 'paid' WHEN 1 THEN 'processed' ELSE 'draft' END, 'eur',
       '[{"description":"Fee","unit_amount":5000,"quantity":1,"amount":5000}]', 5000, 0, 5000,
       '2026-12-31', $t, $t FROM n;
COMMIT;
ANALYZE;
SQL
else
  t="now() - i * interval '20 seconds'"
  psql -q -v ON_ERROR_STOP=1 "$db_url" <<SQL
BEGIN;
INSERT INTO customers (id, account_id, external_id, email, name, stripe_customer_id, created_at, updated_at)
SELECT 'cus_bench' || lpad(i::text, 21, '0'), 'default', 'm-' || i, 'member' || i || '@example.com',
       'Member ' || i, 'cus_stripe' || i, $t, $t FROM generate_series(1, $C) i;
INSERT INTO orders (id, number, account_id, customer_id, email, currency, subtotal, shipping_amount,
                    total, status, created_at, updated_at)
SELECT 'ord_bench' || lpad(i::text, 21, '0'), 'ORD-BENCH-' || i, 'default',
       'cus_bench' || lpad((1 + i % $C)::text, 21, '0'), 'member' || (1 + i % $C) || '@example.com', 'eur',
       1000 + i % 9000, 0, 1000 + i % 9000,
       CASE i % 5 WHEN 0 THEN 'shipped' WHEN 1 THEN 'delivered' ELSE 'confirmed' END, $t, $t
FROM generate_series(1, $O) i;
INSERT INTO payments (id, account_id, customer_id, order_id, stripe_payment_intent_id, amount, currency,
                      amount_refunded, amount_captured, status, disputed, created_at, updated_at)
SELECT 'pay_bench' || lpad(i::text, 21, '0'), 'default', 'cus_bench' || lpad((1 + i % $C)::text, 21, '0'),
       CASE WHEN i <= $O THEN 'ord_bench' || lpad(i::text, 21, '0') END, 'pi_bench' || i, 100 + i % 10000, 'eur',
       CASE WHEN i % 10 = 1 THEN 100 + i % 10000 ELSE 0 END, 100 + i % 10000,
       CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'refunded' ELSE 'completed' END,
       i % 200 = 0, $t, $t FROM generate_series(1, $P) i;
INSERT INTO webhook_events (id, stripe_event_id, account_id, event_type, stripe_created, livemode, payload,
                            source, status, attempts, next_attempt_at, received_at, applied_at)
SELECT 'whev_bench' || lpad(i::text, 21, '0'), 'evt_bench' || i, 'default', 'payment_intent.succeeded',
       extract(epoch from now())::bigint - i * 20, false, '{"id":"evt_bench' || i || '"}', 'webhook',
       CASE WHEN i % 100 = 0 THEN 'ignored' ELSE 'applied' END, 1, $t, $t, $t FROM generate_series(1, $E) i;
INSERT INTO disputes (id, account_id, stripe_dispute_id, payment_id, amount, currency, reason, status,
                      evidence_due_by, observed_at, created_at, updated_at)
SELECT 'dsp_bench' || lpad(i::text, 21, '0'), 'default', 'dp_bench' || i,
       'pay_bench' || lpad((i * 200)::text, 21, '0'), 1000, 'eur', 'fraudulent',
       CASE WHEN i % 2 = 0 THEN 'needs_response' ELSE 'lost' END,
       extract(epoch from now())::bigint + 86400 * 7, 0, $t, $t FROM generate_series(1, $D) i;
INSERT INTO tasks (id, account_id, kind, title, subject_type, subject_id, payment_id, status, due_at, created_at)
SELECT 'task_bench' || lpad(i::text, 21, '0'), 'default', 'respond_to_dispute', 'Respond to dispute', 'dispute',
       'dsp_bench' || lpad(i::text, 21, '0'), 'pay_bench' || lpad((i * 200)::text, 21, '0'),
       CASE WHEN i % 2 = 0 THEN 'open' ELSE 'done' END, $t, $t FROM generate_series(1, $D) i;
INSERT INTO invoices (id, account_id, customer_id, number, status, currency, line_items, subtotal, pass_fees,
                      total, due_date, created_at, updated_at)
SELECT 'inv_bench' || lpad(i::text, 21, '0'), 'default', 'cus_bench' || lpad((1 + i % $C)::text, 21, '0'),
       'INV-' || i, CASE i % 3 WHEN 0 THEN 'paid' WHEN 1 THEN 'processed' ELSE 'draft' END, 'eur',
       '[{"description":"Fee","unit_amount":5000,"quantity":1,"amount":5000}]', 5000, false, 5000,
       '2026-12-31', $t, $t FROM generate_series(1, $I) i;
COMMIT;
ANALYZE;
SQL
fi
log "seeded in $(( $(date +%s) - seed_start )) s"

"$bin" sandbox --listen "127.0.0.1:$sport" --db "$work/sandbox.db" >"$work/sandbox.log" 2>&1 &
sandbox_pid=$!
wait_listening "$work/sandbox.log" "$sandbox_pid" sandbox
obol_env "$bin" serve >"$work/obol.log" 2>&1 &
obol_pid=$!
wait_listening "$work/obol.log" "$obol_pid" obol

jar=$work/cookies
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" --data-urlencode "password=$key" "$obol/admin/login")
[ "$code" = 303 ] || { echo "sign-in answered $code" >&2; exit 1; }

# One page: --loads loads after a warm-up; prints median and max in ms.
time_page() { # label path
  local label=$1 path=$2 times=() code t
  code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "$obol$path")
  [ "$code" = 200 ] || { echo "$path answered $code" >&2; exit 1; }
  for _ in $(seq 1 "$loads"); do
    t=$(curl -s -o /dev/null -w '%{time_total}' -b "$jar" "$obol$path")
    times+=("$t")
  done
  python3 - "$label" "$path" "${times[@]}" <<'PY'
import statistics, sys
label, path, *ts = sys.argv[1:]
ms = sorted(float(t) * 1000 for t in ts)
med, top = statistics.median(ms), ms[-1]
print(f"{label:<28} {med:8.1f} {top:8.1f}  {path}{'  slow' if med > 100 else ''}")
PY
}

mid=$((C / 2))
printf '%s: %s payments, %s loads each, %s build\n' "$backend" "$P" "$loads" "$profile"
printf '%-28s %8s %8s  %s\n' page "median" "max ms" path
# The very first load sums the 30 days and keeps the closed days' totals;
# every later one sums today only (and a closed day again once a payment
# of it changed).
first=$(curl -s -o /dev/null -w '%{time_total}' -b "$jar" "$obol/admin")
python3 -c 'import sys; ms = float(sys.argv[1]) * 1000; print(f"{\"overview, first load\":<28} {ms:8.1f} {\"-\":>8}  /admin (sums 30 days once){\"  slow\" if ms > 100 else \"\"}")' "$first"
time_page "overview" "/admin"
time_page "payments" "/admin/payments"
time_page "payments, 2nd page" "/admin/payments?cursor=$(curl -s -b "$jar" "$obol/admin/payments" | python3 -c 'import re,sys,html; m=re.search(r"cursor=([^\"&]+)", sys.stdin.read()); print(html.unescape(m.group(1)) if m else "")')"
time_page "payments, status failed" "/admin/payments?status=failed"
time_page "payments, disputed" "/admin/payments?disputed=yes"
time_page "search payments: e-mail" "/admin/payments?q=member$mid%40example.com"
time_page "search payments: order no" "/admin/payments?q=ORD-BENCH-$mid"
time_page "search payments: amount" "/admin/payments?q=42.42"
time_page "payment" "/admin/payments/pay_bench$(printf '%021d' "$mid")"
time_page "orders" "/admin/orders"
time_page "orders, status shipped" "/admin/orders?status=shipped"
time_page "search orders: e-mail" "/admin/orders?q=member$mid%40example.com"
time_page "search orders: number" "/admin/orders?q=ORD-BENCH-$mid"
time_page "order" "/admin/orders/ord_bench$(printf '%021d' "$mid")"
time_page "customers" "/admin/customers"
time_page "search customers: e-mail" "/admin/customers?q=member$mid%40example.com"
time_page "search customers: name" "/admin/customers?q=Member%20$mid"
time_page "search customers: no one" "/admin/customers?q=Nobody"
time_page "disputes" "/admin/disputes"
time_page "disputes, needs_response" "/admin/disputes?status=needs_response"
time_page "dispute" "/admin/disputes/dsp_bench$(printf '%021d' 2)"
time_page "invoices" "/admin/invoices"
time_page "invoices, status paid" "/admin/invoices?status=paid"
time_page "webhook inbox" "/admin/webhook-events"
time_page "webhook inbox, failed" "/admin/webhook-events?status=failed"
time_page "jobs" "/admin/jobs"
time_page "notifications" "/admin/notifications"
time_page "charge runs" "/admin/charge-runs"
time_page "organisations" "/admin/organizations"
