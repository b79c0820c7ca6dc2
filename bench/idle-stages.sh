#!/usr/bin/env bash
# Where an idle packet's CPU goes inside our daemons (issue 14): one point-to-point AES tunnel
# whose two daemons run with the stage preload (bench/idle-stages/preload.ts), warmed with a
# flood ping, then one train of pings 10 ms apart. For each data-path stage: calls during the
# train and CPU µs per call, with and without its wrapped callees, both daemons together.
#
#   bash bench/idle-stages.sh           # as root; writes bench/results/idle-stages.md
#   STAGES_PINGS=500                    # pings in the train
#
# Needs ping and a build (npm run build). Namespaces ist<pid>-0/1, removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/idle-lib.sh
source "$ROOT/bench/idle-lib.sh" # and tests/lib.sh

PINGS=${STAGES_PINGS:-500}
OUT=${STAGES_OUT:-$ROOT/bench/results/idle-stages.md}
PRELOAD=$ROOT/dist/bench/idle-stages/preload.js
NS=ist$$-
[[ $PINGS =~ ^[1-9][0-9]*$ ]] || { fail "STAGES_PINGS must be a positive integer, got '$PINGS'"; exit 1; }
need_root "$0"
[[ -f $PRELOAD ]] || { fail "dist/ is missing or stale: build first with npm run build"; exit 1; }

idle_begin idle-stages

step "a tunnel whose daemons run with the stage preload"
mkdir -p "$TEST_TMP/stages"
OVPN_DAEMON_NODE_FLAGS="--import $PRELOAD" OVPN_IDLE_STAGES_DIR=$TEST_TMP/stages STAR_ALG=aes STAR_SERVER=p2p \
  star_setup "$NS" 1 >/dev/null
step "warming up: ping -f -c 20000"
ip netns exec "${NS}0" ping -f -c 20000 -q 5.5.5.2 >/dev/null

# snapshot <dir>: the daemons' totals as they are now (they are written every 200 ms).
snapshot() {
  sleep 0.5
  mkdir -p "$1"
  cp "$TEST_TMP/stages/"*.json "$1/"
}
snapshot "$TEST_TMP/before"
before=$(cpu_ns main "${NS}0" "${NS}1")
step "one train of $PINGS pings 10 ms apart"
rtt=$(median_rtt "${NS}0" "$PINGS")
after=$(cpu_ns main "${NS}0" "${NS}1")
snapshot "$TEST_TMP/after"
cpu=$(((after - before) / (PINGS * 4) / 1000))
log "median RTT $rtt ms, $cpu µs of main-thread CPU per traversal"

{
  echo '# Where an idle packet'"'"'s CPU goes in our daemons'
  echo
  echo "$(date -u +%FT%TZ) · $(nproc) cores · load average $(cut -d' ' -f1 /proc/loadavg) at the end · $(node --version)"
  echo
  echo "\`bash bench/idle-stages.sh\`: one point-to-point AES-256-GCM tunnel over UDP, both daemons run with"
  echo "\`bench/idle-stages/preload.ts\`; after a flood-ping warm-up, one train of $PINGS pings 10 ms apart."
  echo "Median RTT $rtt ms; main-thread CPU $cpu µs per traversal (schedstat; a ping crosses each daemon twice)."
  echo
  node - "$TEST_TMP/before" "$TEST_TMP/after" "$PINGS" <<'JS'
const { readdirSync, readFileSync } = require('node:fs');
const [before, after, pings] = process.argv.slice(2);
const sum = (dir) => {
  const all = {};
  for (const f of readdirSync(dir)) {
    for (const [k, v] of Object.entries(JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')))) {
      const s = (all[k] ??= { calls: 0, total: 0, self: 0 });
      s.calls += v.calls; s.total += v.total; s.self += v.self;
    }
  }
  return all;
};
const a = sum(before), b = sum(after);
const cal = b['calibration: empty wrapped call'];
console.log('Per call, both daemons together (each ping: one transmit and one receive per daemon). "self"');
console.log('leaves out the wrapped callees listed below it; every wrapped call also pays the wrapper itself,');
console.log(`about ${(cal.total / cal.calls).toFixed(2)} µs hot (an empty method wrapped the same way), more when cold.`);
console.log('');
console.log('| stage | calls | CPU µs per call | self µs per call |');
console.log('|:--|--:|--:|--:|');
for (const [k, v] of Object.entries(b)) {
  if (k.startsWith('calibration')) continue;
  const calls = v.calls - (a[k]?.calls ?? 0);
  if (calls === 0) { console.log(`| ${k} | 0 | | |`); continue; }
  const per = (x) => ((x - (a[k]?.[x === v.total ? 'total' : 'self'] ?? 0)) / calls).toFixed(1);
  console.log(`| ${k} | ${calls} | ${per(v.total)} | ${per(v.self)} |`);
}
console.log(`\n${pings} pings: ${2 * pings} transmit and ${2 * pings} receive wakeups expected over the two daemons.`);
JS
  echo
} | write_results "$OUT"
