#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts what it
# needs (PostgreSQL, jq, Chromium, a Python venv and Node packages for the
# Stripe SDK conformance suite and the browser tests), then runs every test
# and exits non-zero on any failure. Screenshots of the payment page's
# states land in target/browser-screenshots/.
#   ./scripts/test.sh
# Environment: POSTGRES_TEST_URL (default postgres://postgres:postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export POSTGRES_TEST_URL=${POSTGRES_TEST_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
step() { printf '\n==> %s\n' "$*"; }

# --- system packages --------------------------------------------------------
need=()
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs npm)
# Headless Chromium for the payment-page tests (driven by playwright-core).
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
fi

# --- PostgreSQL ---------------------------------------------------------------
pg_ready() { PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_ready; then
  if [ "$(id -u)" = 0 ]; then
    step "starting PostgreSQL"
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$version" ] || { echo "no PostgreSQL cluster found" >&2; exit 1; }
    pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
    for _ in $(seq 1 30); do su postgres -c "psql -Atqc 'select 1'" >/dev/null 2>&1 && break; sleep 1; done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
  fi
  pg_ready || { echo "PostgreSQL is not reachable at $POSTGRES_TEST_URL" >&2; exit 1; }
fi
# Databases left behind by earlier runs (each test makes its own).
PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "select datname from pg_database where datname like 'obol_test_%'" |
  while read -r db; do PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -qc "drop database if exists $db" >/dev/null; done

# --- Python venv and Node packages (the conformance suite; some Rust tests use
#     Stripe's Node signer and the standardwebhooks verifier too) ---------------
step "conformance dependencies"
conformance/run.sh --setup

# --- Rust tests (unit, storage on both backends, end-to-end) -------------------
step "cargo test"
cargo build --workspace --bins --quiet
# Every response the end-to-end tests get from obol is checked against its
# OpenAPI document (tests/it/openapi_check.rs) and tallied here.
export OPENAPI_CHECK_TALLY="$root/target/openapi-tally.txt"
rm -f "$OPENAPI_CHECK_TALLY"
cargo test --workspace --quiet 2>&1 | tee target/cargo-test.log
grep -q "test result: FAILED" target/cargo-test.log && exit 1

# The whole-club charge run (10,000 members, e-mails through a real SMTP
# server) wants the machine to itself: ignored above, run alone here.
step "charge run of 10,000 members"
cargo test -p obol --test it --quiet -- --ignored --nocapture charge_run_scale 2>&1 | tee target/cargo-test-scale.log
grep -q "test result: FAILED" target/cargo-test-scale.log && exit 1
grep -q "test result: ok. 1 passed" target/cargo-test-scale.log || { echo "the 10,000-member run did not run" >&2; exit 1; }
cat target/cargo-test-scale.log >> target/cargo-test.log

step "OpenAPI: responses checked against the document"
target/debug/obol openapi | jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' | sort > target/openapi-operations.txt
ops_total=$(wc -l < target/openapi-operations.txt)
responses=$(grep -vc '^WEBHOOK' "$OPENAPI_CHECK_TALLY" || true)
notifications=$(grep -c '^WEBHOOK' "$OPENAPI_CHECK_TALLY" || true)
ops_seen=$(awk '{print $1, $2}' "$OPENAPI_CHECK_TALLY" | sort -u | comm -12 - target/openapi-operations.txt | wc -l)
pairs=$(grep -v '^WEBHOOK' "$OPENAPI_CHECK_TALLY" | sort -u | wc -l)
echo "validated $responses responses ($pairs distinct operation/status pairs; $ops_seen of $ops_total operations) and $notifications notifications against openapi.json"
[ "$responses" -gt 0 ] || { echo "no response was validated" >&2; exit 1; }

# --- Stripe SDK conformance suite against the sandbox ---------------------------
if [ -x conformance/run.sh ]; then
  step "Stripe SDK conformance suite"
  OBOL_SANDBOX_BIN="$root/target/debug/obol sandbox" conformance/run.sh 2>&1 | tee target/conformance.log
fi

# --- the README's quickstart, run as written -------------------------------------
step "README quickstart"
scripts/quickstart-check.sh "$root/target/debug/obol"

# One closing count over every runner above.
rust=$(grep -o '[0-9]* passed' target/cargo-test.log | awk '{s+=$1} END {print s+0}')
python=$(grep -o 'python: [0-9]* passed' target/conformance.log 2>/dev/null | awk '{print $2}')
node=$(grep -o '# pass [0-9]*' target/conformance.log 2>/dev/null | awk '{print $3}')
total=$((rust + ${python:-0} + ${node:-0} + 1))
step "all tests passed (rust $rust, python ${python:-0}, node ${node:-0}, quickstart 1)"
echo "total: $total passed, 0 failed"
