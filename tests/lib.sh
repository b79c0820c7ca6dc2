# shellcheck shell=bash disable=SC2034  # colour variables are used by the scripts that source this
# Shared helpers for tests/netns-test.sh and scripts/demo.sh: two network namespaces joined by a
# veth, an ovpn tun0 in each, and a tunnel between them. Source it from bash; it only defines
# functions and variables and runs nothing.
#
# Everything is created inside the two namespaces (the veth is born there), so deleting the
# namespaces and the processes in them removes every trace; nothing touches the host's network.

# The repository root, whatever the caller's working directory.
OVPN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OVPN_KEY_FILE=${OVPN_KEY_FILE:-$OVPN_ROOT/tests/data64.key}
# The CLI command; may be a command line with arguments (word-split on spaces).
read -r -a OVPN_CLI_CMD <<<"${OVPN_CLI:-node $OVPN_ROOT/dist/src/cli/ovpn-cli.js}"
OVPN_RUN_DIR=${OVPN_DCO_RUN_DIR:-/run/ovpn-dco}

OVPN_PORT=1
OVPN_PEER_ID=1
OVPN_TUN=tun0

if [[ -t 1 ]]; then
  C_OK=$'\e[32m' C_BAD=$'\e[31m' C_DIM=$'\e[2m' C_B=$'\e[1m' C_0=$'\e[0m'
else
  C_OK='' C_BAD='' C_DIM='' C_B='' C_0=''
fi

log() { printf '%s\n' "$*"; }
step() { printf '%s==>%s %s\n' "$C_B" "$C_0" "$*"; }
pass() { printf '%sPASS%s %s\n' "$C_OK" "$C_0" "$*"; }
fail() { printf '%sFAIL%s %s\n' "$C_BAD" "$C_0" "$*" >&2; }

# report_errors: with `set -e`, says which command stopped the script and where it was called
# from (also inside functions).
report_errors() {
  set -E
  trap 'on_error $? "$BASH_COMMAND"' ERR
}
on_error() {
  local rc=$1 cmd=$2 i where=""
  for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
    where+=" in ${FUNCNAME[$i]} (called at ${BASH_SOURCE[$i + 1]##*/}:${BASH_LINENO[$i]})"
  done
  fail "command failed (exit $rc): $cmd$where"
}

# ovpn_cli <netns> <args...>: the CLI inside a namespace.
ovpn_cli() {
  local ns=$1
  shift
  ip netns exec "$ns" "${OVPN_CLI_CMD[@]}" "$@"
}

# wait_for <seconds> <what> <command...>: polls the command until it succeeds, at most <seconds>.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.05
  done
}

netns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }
netns_has_no_pids() { [[ -z "$(ip netns pids "$1" 2>/dev/null)" ]]; }
# No IPv6 address still tentative (duplicate address detection) in the namespace.
netns_v6_settled() { [[ -z "$(ip -n "$1" -6 addr show tentative 2>/dev/null)" ]]; }

# The control directory of a namespace's daemons (see src/control/paths.ts).
netns_control_dir() {
  local ino
  ino=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 1
  printf '%s/netns-%s\n' "$OVPN_RUN_DIR" "$ino"
}

# pair_teardown <netns...>: deletes the interfaces, stops every process left in the namespaces
# (by pid), removes their control directories and deletes the namespaces. Safe to call on
# namespaces that do not exist or are half set up; never fails.
pair_teardown() {
  local ns pid dir
  for ns in "$@"; do
    netns_exists "$ns" || continue
    if ip -n "$ns" link show "$OVPN_TUN" >/dev/null 2>&1; then
      timeout 5 ip netns exec "$ns" "${OVPN_CLI_CMD[@]}" del_iface "$OVPN_TUN" >/dev/null 2>&1 || true
    fi
    # Whatever still runs in there (a daemon that did not exit, iperf3...): TERM, then KILL.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    if ! wait_for 5 "processes in $ns to exit" netns_has_no_pids "$ns" 2>/dev/null; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      wait_for 2 "processes in $ns to die" netns_has_no_pids "$ns" || true
    fi
    if dir=$(netns_control_dir "$ns"); then rm -rf -- "$dir"; fi
    ip netns del "$ns" 2>/dev/null || true
  done
}

# pair_dump_logs <netns...>: prints the daemons' logs, for diagnosing a failure.
pair_dump_logs() {
  local ns dir f
  for ns in "$@"; do
    dir=$(netns_control_dir "$ns") || continue
    for f in "$dir"/*.log; do
      [[ -f $f ]] || continue
      log "--- daemon log $ns:${f##*/} ---"
      tail -n 30 "$f"
    done
  done
}

# pair_setup <ns0> <ns1> <alg> <4|6>: builds the two namespaces, the veth between them
# (carrying the tunnel over IPv4 or IPv6), an ovpn tun0 in each created with the seed syntax,
# and installs the key (direction 0 on ns0, 1 on ns1). Sets PAIR_NS, PAIR_LINK, PAIR_TUN4,
# PAIR_TUN6 (arrays indexed 0/1) for the caller.
pair_setup() {
  local ns0=$1 ns1=$2 alg=$3 family=$4
  PAIR_NS=("$ns0" "$ns1")
  PAIR_TUN4=(5.5.5.1 5.5.5.2)
  PAIR_TUN6=(fc00:5::1 fc00:5::2)
  local plen nodad=()
  case $family in
    4) PAIR_LINK=(10.10.1.1 10.10.1.2) plen=24 ;;
    6) PAIR_LINK=(fd00:0:0:1::1 fd00:0:0:1::2) plen=64 nodad=(nodad) ;;
    *) fail "address family must be 4 or 6, got $family"; return 1 ;;
  esac

  pair_teardown "$ns0" "$ns1" # leftovers of a crashed run: ours by name
  ip netns add "$ns0"
  ip netns add "$ns1"
  log "namespaces: $ns0 = netns-$(stat -L -c %i "/run/netns/$ns0"), $ns1 = netns-$(stat -L -c %i "/run/netns/$ns1")"
  ip -n "$ns0" link add veth0 type veth peer name veth1 netns "$ns1"

  local i ns
  for i in 0 1; do
    ns=${PAIR_NS[$i]}
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "${PAIR_LINK[$i]}/$plen" dev "veth$i" "${nodad[@]}"
    ip -n "$ns" link set "veth$i" up
  done
  wait_for 5 "the veth to come up" ip netns exec "$ns0" ping -c 1 -W 1 "${PAIR_LINK[1]}"

  for i in 0 1; do
    ns=${PAIR_NS[$i]}
    local other=$((1 - i))
    ovpn_cli "$ns" "$OVPN_TUN" new_peer "$OVPN_PORT" "$OVPN_PEER_ID" "${PAIR_LINK[$other]}" "$OVPN_PORT" "${PAIR_TUN4[$other]}"
    wait_for 5 "$OVPN_TUN in $ns" ip -n "$ns" link show "$OVPN_TUN"
    ip -n "$ns" addr add "${PAIR_TUN4[$i]}/24" dev "$OVPN_TUN"
    ip -n "$ns" -6 addr add "${PAIR_TUN6[$i]}/64" dev "$OVPN_TUN" nodad
    ip -n "$ns" link set "$OVPN_TUN" up
    ovpn_cli "$ns" "$OVPN_TUN" new_key "$OVPN_PEER_ID" "$alg" "$i" "$OVPN_KEY_FILE"
  done
  for ns in "$ns0" "$ns1"; do
    wait_for 5 "IPv6 addresses in $ns to settle" netns_v6_settled "$ns"
  done
}

# peer_stats_json <netns>: get_peer of the tunnel's peer, as JSON.
peer_stats_json() { ovpn_cli "$1" --json "$OVPN_TUN" get_peer "$OVPN_PEER_ID"; }

# json_field <field...>: reads one JSON object on stdin, prints the named fields space-separated.
json_field() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const o = JSON.parse(s);
      console.log(process.argv.slice(1).map((k) => String(o[k])).join(" "));
    });' "$@"
}
