#!/usr/bin/env bash
# The floor under idle ping (issue 14): how much of an idle packet's time is Node's event loop,
# entering JavaScript, N-API calls, our edges' native calls, and the data channel itself. Six
# tunnels, each between its own pair of namespaces over a veth (10.10.1.1 - 10.10.1.2), tun0
# 5.5.5.1 - 5.5.5.2, in one run:
#   openvpn        OpenVPN 2.6, AES-256-GCM, UDP, point to point (the reference)
#   ours           our daemon, AES-256-GCM, UDP, point to point (tests/lib.sh star_setup)
#   c-in-node      plain forwarder: C polled by Node's loop, never entering JavaScript
#   js-entry       plain forwarder: as c-in-node, entering JavaScript once per packet
#   js-entry+call  plain forwarder: as js-entry, plus one N-API call from that JavaScript
#   our-edges      plain forwarder: JavaScript on our TUN and UDP edges (read, send, recv, write)
# The last four encrypt nothing and speak no protocol: they are floors, not competitors
# (bench/idle-floor/forward.ts, bench/idle-floor/floor.c). Each tunnel is warmed with a flood
# ping, then trains of pings 10 ms apart alternate between the tunnels. Per train: the median
# RTT, and the CPU time of every thread of every process in the tunnel's two namespaces
# (/proc/<pid>/task/*/schedstat) per packet crossing one of them ("traversal": a ping is four).
#
#   bash bench/idle-floor.sh            # as root; writes bench/results/idle-floor.md
#   FLOOR_TRAINS=4 FLOOR_PINGS=400      # trains per tunnel, pings per train
#   FLOOR_PM_QOS=1                      # hold /dev/cpu_dma_latency at 0 during the trains: idle CPUs
#                                       # poll instead of halting (what tuned's latency-performance
#                                       # profile does), so a packet does not pay a CPU's wakeup
#
# Needs openvpn, ping and a build (npm run build). The floor addon is built here with node-gyp
# into bench/idle-floor/build; without it the three addon rows are skipped. Namespaces are
# flr<pid>-<letter><0|1>, removed on exit with every process in them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/idle-lib.sh
source "$ROOT/bench/idle-lib.sh" # and tests/lib.sh

TRAINS=${FLOOR_TRAINS:-4}
PINGS=${FLOOR_PINGS:-400}
OUT=${FLOOR_OUT:-$ROOT/bench/results/idle-floor.md}
ADDON_DIR=$ROOT/bench/idle-floor
ADDON=$ADDON_DIR/build/Release/floor.node
FORWARD=$ROOT/dist/bench/idle-floor/forward.js
NS=flr$$
PM_QOS=${FLOOR_PM_QOS:-0}
[[ $PM_QOS == 0 || $PM_QOS == 1 ]] || { echo "FLOOR_PM_QOS must be 0 or 1, got '$PM_QOS'" >&2; exit 1; }
TUNNELS=(openvpn ours c-in-node js-entry js-entry+call our-edges)
declare -A PAIR=([openvpn]=$NS-v [ours]=$NS-o [c-in-node]=$NS-c [js-entry]=$NS-j [js-entry+call]=$NS-k
  [our-edges]=$NS-e)
declare -A SKIP=() RTT=() CPU=()

for n in "$TRAINS" "$PINGS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { fail "FLOOR_TRAINS and FLOOR_PINGS must be positive integers, got '$n'"; exit 1; }
done
need_root "$0"
if [[ ! -f $FORWARD || ! -f $ROOT/dist/src/cli/ovpn-cli.js ]]; then
  fail "dist/ is missing or stale: build first with npm run build"
  exit 1
fi
command -v openvpn >/dev/null || { fail "openvpn (2.6) is not installed"; exit 1; }

idle_begin idle-floor

# node-gyp as npm itself runs it for the project's addon: the one npm set for this script
# (npm run), else the one bundled with the global npm, else any on PATH.
node_gyp() {
  local g
  for g in "${npm_config_node_gyp:-}" "$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"; do
    if [[ -n $g && -f $g ]]; then
      echo "node $g"
      return
    fi
  done
  command -v node-gyp
}

# The Node headers without a download: npm's nodedir setting, else the running node's own
# prefix when it ships them (include/node/node_api.h); empty lets node-gyp fetch them.
node_headers() {
  local d=${npm_config_nodedir:-}
  [[ -n $d ]] || d=$(npm config get nodedir 2>/dev/null || true)
  [[ $d != undefined && $d != null ]] || d=
  if [[ -z $d ]]; then
    d=$(dirname "$(dirname "$(command -v node)")")
    [[ -f $d/include/node/node_api.h ]] || d=
  fi
  echo "$d"
}

# build_addon: (re)builds bench/idle-floor/build/Release/floor.node when it is missing or older
# than its sources; on failure says why and returns 1.
build_addon() {
  local gyp dir log=$TEST_TMP/node-gyp.log
  if [[ -f $ADDON && $ADDON -nt $ADDON_DIR/floor.c && $ADDON -nt $ADDON_DIR/binding.gyp ]]; then return; fi
  if ! gyp=$(node_gyp); then
    echo "no node-gyp: neither npm's bundled one nor one on PATH"
    return 1
  fi
  dir=$(node_headers)
  # shellcheck disable=SC2086  # "node <path>" or a path: split on purpose
  if ! $gyp rebuild -C "$ADDON_DIR" ${dir:+"--nodedir=$dir"} >"$log" 2>&1; then
    echo "node-gyp rebuild failed (headers: ${dir:-downloaded}); its last lines:"
    tail -n 15 "$log"
    return 1
  fi
}

# floor_up <mode> <pair prefix>: a forwarder of that mode in each namespace of the pair.
floor_up() {
  local mode=$1 p=$2 i addr=(10.10.1.1 10.10.1.2) log
  netns_create "${p}0" "${p}1" >/dev/null
  veth_link "${p}0" "${p}1"
  for i in 0 1; do
    log=$TEST_TMP/$mode-$i.log
    ip netns exec "$p$i" node "$FORWARD" "$mode" "${addr[i]}" "${addr[1 - i]}" 1194 "$ADDON" >"$log" 2>&1 &
    IDLE_PIDS+=($!)
    if ! wait_for 10 "tun0 of the $mode forwarder in $p$i" ip -n "$p$i" link show tun0; then
      cat "$log" >&2
      return 1
    fi
    ip -n "$p$i" addr add "5.5.5.$((i + 1))/24" dev tun0
    ip -n "$p$i" link set tun0 up
  done
  wait_for 10 "a ping through the $mode forwarder" ip netns exec "${p}0" ping -c 1 -W 1 5.5.5.2
}

step "setting up: openvpn, ours, then the floors"
netns_create "$NS-v0" "$NS-v1" >/dev/null
openvpn_p2p "$NS-v0" "$NS-v1"
STAR_ALG=aes STAR_SERVER=p2p star_setup "$NS-o" 1 >/dev/null
if ! why=$(build_addon); then
  for mode in c-in-node js-entry js-entry+call; do SKIP[$mode]="the floor addon could not be built: ${why%%$'\n'*}"; done
  fail "skipping c-in-node, js-entry, js-entry+call: $why"
fi
for mode in c-in-node js-entry js-entry+call our-edges; do
  [[ -n ${SKIP[$mode]:-} ]] || floor_up "$mode" "${PAIR[$mode]}"
done

step "warming up: ping -f -c 20000 through each tunnel"
for label in "${TUNNELS[@]}"; do
  [[ -n ${SKIP[$label]:-} ]] || ip netns exec "${PAIR[$label]}0" ping -f -c 20000 -q 5.5.5.2 >/dev/null
done

step "$TRAINS trains of $PINGS pings 10 ms apart per tunnel, alternating"
if [[ $PM_QOS == 1 ]]; then
  # The request lasts while the fd is open: this shell holds it until it exits.
  exec 9>/dev/cpu_dma_latency
  printf '\0\0\0\0' >&9
fi
for ((t = 1; t <= TRAINS; t++)); do
  line="train $t:"
  for label in "${TUNNELS[@]}"; do
    [[ -z ${SKIP[$label]:-} ]] || continue
    read -r "RTT[$t,$label]" "CPU[$t,$label]" < <(train all "$PINGS" "${PAIR[$label]}0" "${PAIR[$label]}1")
    line+=" $label ${RTT[$t,$label]} ms ${CPU[$t,$label]} µs;"
  done
  log "$line"
done

# row <name> <assoc> <key prefix>: one table row, a cell per tunnel from assoc[prefix+tunnel]
# ("skipped" for a skipped tunnel).
row() {
  local -n from=$2
  local label cells=""
  for label in "${TUNNELS[@]}"; do
    if [[ -n ${SKIP[$label]:-} ]]; then cells+=" skipped |"; else cells+=" ${from[$3$label]} |"; fi
  done
  echo "| $1 |$cells"
}
# table <RTT|CPU>: a row per train, then the medians and their ratios to openvpn's.
table() {
  local -n values=$1
  local t label
  local -A med=() ratio=()
  echo "| train |$(printf ' %s |' "${TUNNELS[@]}")"
  echo "|--$(printf '|--:%.0s' "${TUNNELS[@]}")|"
  for ((t = 1; t <= TRAINS; t++)); do row "$t" values "$t,"; done
  for label in "${TUNNELS[@]}"; do
    [[ -z ${SKIP[$label]:-} ]] || continue
    med[$label]=$(for ((t = 1; t <= TRAINS; t++)); do echo "${values[$t,$label]}"; done | median)
  done
  for label in "${!med[@]}"; do
    # shellcheck disable=SC2034  # read through row's nameref
    ratio[$label]=$(awk -v a="${med[$label]}" -v b="${med[openvpn]}" 'BEGIN{printf "%.2fx", a/b}')
  done
  row '**median**' med ''
  row 'ratio to openvpn' ratio ''
}

{
  echo '# Idle ping: its floors under Node, against OpenVPN 2.6 and ours, same run'
  echo
  echo "$(date -u +%FT%TZ) · $(nproc) cores · load average $(cut -d' ' -f1 /proc/loadavg) at the end · $(node --version)"
  echo
  [[ $PM_QOS != 1 ]] || echo '**FLOOR_PM_QOS=1: /dev/cpu_dma_latency held at 0 during the trains (idle CPUs poll, no halt).**'
  [[ $PM_QOS != 1 ]] || echo
  echo "\`bash bench/idle-floor.sh\`: $TRAINS alternating trains of $PINGS pings 10 ms apart per tunnel after a flood-ping"
  cat <<'EOF'
warm-up (`ping -f -c 20000`). **openvpn** and **ours** are AES-256-GCM data channels, UDP, point to point.
**c-in-node, js-entry, js-entry+call and our-edges are plain TUN <-> UDP forwarders with no encryption and no
protocol: floors, not competitors.** c-in-node: C polled by Node's loop, no JavaScript; js-entry: plus one
entry into JavaScript per packet; js-entry+call: plus one N-API call from it; our-edges: JavaScript on our TUN
and UDP edges (`tun.read` -> `udp.send`, `udp.recv` -> `tun.write`).
EOF
  for label in "${TUNNELS[@]}"; do [[ -z ${SKIP[$label]:-} ]] || echo "Skipped $label: ${SKIP[$label]}."; done
  echo
  echo '## Median RTT per train (ms)'
  echo
  table RTT
  echo
  echo '## CPU µs per traversal'
  echo
  echo 'Every thread of every process in the tunnel'"'"'s two namespaces over the train, per packet crossing one'
  echo 'of them (a ping crosses four times).'
  echo
  table CPU
  echo
} | write_results "$OUT"
