# shellcheck shell=bash disable=SC2034  # colour and STAR_* variables are used by the scripts that source this
# Shared helpers for the end-to-end scripts (tests/netns-test.sh, float-test.sh,
# multihome-test.sh) and scripts/demo.sh: network namespaces joined by veths, an ovpn tun0 in
# each, tunnels between them, and the checks the tests make. Source it from bash; it only
# defines functions and variables and runs nothing.
#
# Everything is created inside the namespaces (the veths are born there), so deleting the
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
# The test scripts' namespaces are <prefix>0, <prefix>1, ...; another prefix lets a run go
# alongside one with the default names.
OVPN_NS_PREFIX=${OVPN_NS_PREFIX:-peer}

# Every namespace netns_create made, for the teardown.
CREATED_NS=()

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
# netns_named <prefix>: the namespaces called <prefix><number>, i.e. ours by name.
netns_named() { ip netns list | awk '{print $1}' | grep -E -- "^$1[0-9]+\$" || true; }

# The control directory of a namespace's daemons (see src/control/paths.ts).
netns_control_dir() {
  local ino
  ino=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 1
  printf '%s/netns-%s\n' "$OVPN_RUN_DIR" "$ino"
}

# netns_create <netns...>: creates the namespaces with lo up, records them in CREATED_NS (before
# creating, so a teardown after a half-done setup still finds them) and prints the
# "namespaces: <name> = netns-<inode>, ..." line the node:test wrapper uses to look for
# processes left behind.
netns_create() {
  local ns line=""
  CREATED_NS+=("$@")
  for ns in "$@"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    line+="${line:+, }$ns = netns-$(stat -L -c %i "/run/netns/$ns")"
  done
  log "namespaces: $line"
}

# netns_teardown <netns...>: deletes the interfaces, stops every process left in the namespaces
# (by pid), removes their control directories and deletes the namespaces. Safe to call on
# namespaces that do not exist or are half set up; never fails.
netns_teardown() {
  local ns pid dir
  for ns in "$@"; do
    netns_exists "$ns" || continue
    if ip -n "$ns" link show "$OVPN_TUN" >/dev/null 2>&1; then
      timeout 5 ip netns exec "$ns" "${OVPN_CLI_CMD[@]}" del_iface "$OVPN_TUN" >/dev/null 2>&1 || true
    fi
    # Whatever still runs in there (a daemon that did not exit, listen_mcast, iperf3...): TERM, then KILL.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    if ! wait_for 5 "processes in $ns to exit" netns_has_no_pids "$ns" 2>/dev/null; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      wait_for 2 "processes in $ns to die" netns_has_no_pids "$ns" || true
    fi
    if dir=$(netns_control_dir "$ns"); then rm -rf -- "$dir"; fi
    ip netns del "$ns" 2>/dev/null || true
  done
}

# dump_daemon_logs <netns...>: prints the daemons' logs, for diagnosing a failure.
dump_daemon_logs() {
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

# ---------------------------------------------------------------------------------------------
# The test scripts' frame: test_begin installs the cleanup, check runs one check, test_end
# fails the script when a check failed.

# no_args_but_help <args...>: for scripts configured only by the environment (ALG): -h prints
# the usage and exits 0, any other argument prints it and exits 1.
no_args_but_help() {
  case ${1:-} in
    "") ;;
    -h | --help) echo "usage: ALG=aes|chachapoly|none $0" >&2; exit 0 ;;
    *) echo "usage: ALG=aes|chachapoly|none $0" >&2; exit 1 ;;
  esac
}

# test_begin <name>: sets TEST_NAME, FAILURES and TEST_TMP (a fresh directory for peers files
# and notification logs), makes sure we run as root on a built tree, installs the cleanup that
# tears everything down on every exit, and takes the lock of OVPN_NS_PREFIX.
test_begin() {
  TEST_NAME=$1
  TEST_TMP=""
  TEST_KEEP=${TEST_KEEP:-0}
  FAILURES=0
  trap test_cleanup EXIT
  report_errors
  trap 'exit 130' INT
  trap 'exit 143' TERM
  need_root "$TEST_NAME"
  if [[ -z ${OVPN_CLI:-} && ! -f $OVPN_ROOT/dist/src/cli/ovpn-cli.js ]]; then
    fail "dist/src/cli/ovpn-cli.js is missing: build first with npm run build"
    exit 1
  fi
  test_lock "$OVPN_NS_PREFIX"
  TEST_TMP=$(mktemp -d -t ovpn-dco-test.XXXXXX)
}

need_root() {
  if ((EUID != 0)); then
    fail "$1 needs root (network namespaces, TUN devices)"
    exit 1
  fi
}

# test_clean <prefix>: removes what a --keep run left (namespaces <prefix>N, their interfaces
# and daemons), under the prefix's lock, and exits.
test_clean() {
  need_root "$0 --clean"
  test_lock "$1"
  local kept
  kept=$(netns_named "$1" | sort | paste -sd ' ')
  # shellcheck disable=SC2086  # one namespace name per word
  netns_teardown $kept
  pass "removed ${kept:-nothing (no $1N namespace)}"
  exit 0
}

# test_lock <prefix>: one run at a time per namespace prefix, from any checkout: a second run
# waits instead of deleting the first one's namespaces as stale leftovers. The lock goes with
# the script's file descriptor on exit: the daemons, spawned by node, do not inherit it, and
# the processes that do (CLI, ping) are gone by then.
test_lock() {
  local file=/run/lock/ovpn-dco-test-$1.lock
  exec {TEST_LOCK_FD}>>"$file"
  if ! flock -n "$TEST_LOCK_FD"; then
    log "waiting for another run using the $1N namespaces to finish ($file)"
    if ! flock -w 120 "$TEST_LOCK_FD"; then
      fail "another run still holds $file after 120 s"
      exit 1
    fi
  fi
}

# The EXIT trap: prints the daemons' logs after a failure, removes every namespace, process and
# file the test made, and fails the test if any of them is still there.
test_cleanup() {
  local rc=$? ns
  trap - EXIT INT TERM ERR
  ((rc == 0)) || dump_daemon_logs "${CREATED_NS[@]}" >&2
  if ((TEST_KEEP)); then
    # --keep: the namespaces, interfaces and daemons stay up to be tried by hand.
    log "kept ${CREATED_NS[*]} up; try: ${TEST_KEEP_HINT:-ip netns exec ${CREATED_NS[0]:-?} bash}"
    log "tear down with: $0 --clean (or any later run)"
  else
    netns_teardown "${CREATED_NS[@]}"
  fi
  [[ -z $TEST_TMP ]] || rm -rf -- "$TEST_TMP"
  for ns in "${CREATED_NS[@]}"; do
    if ((!TEST_KEEP)) && netns_exists "$ns"; then
      fail "namespace $ns is still there after cleanup"
      rc=1
    fi
  done
  if [[ -n $TEST_TMP && -e $TEST_TMP ]]; then
    fail "$TEST_TMP is still there after cleanup"
    rc=1
  fi
  if ((rc == 0)); then pass "$TEST_NAME"; else fail "$TEST_NAME (exit $rc)"; fi
  exit "$rc"
}

# check <description> <command...>: runs one check, prints PASS or FAIL with its output, and
# counts failures (the script carries on, so one run shows every broken check).
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$what"
    [[ -z $out ]] || printf '%s\n' "$out" | sed "s/^/     ${C_DIM}/; s/\$/${C_0}/"
  else
    fail "$what"
    printf '%s\n' "$out" | sed 's/^/     /' >&2
    FAILURES=$((FAILURES + 1))
  fi
}

# test_end: fails the script when a check failed.
test_end() {
  if ((FAILURES > 0)); then
    fail "$FAILURES check(s) failed"
    exit 1
  fi
}

# must_fail <command...>: succeeds when the command runs and exits non-zero.
must_fail() {
  local rc=0
  "$@" || rc=$?
  echo "exit code $rc"
  ((rc != 0 && rc != 126 && rc != 127))
}

# ping_summary <command...>: runs a ping, shows only its summary lines, keeps its exit status.
ping_summary() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  grep -E 'packets transmitted|rtt' <<<"$out" || printf '%s\n' "$out"
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Reading the interfaces' state.

# json_field <field...>: reads one JSON object on stdin, prints the named fields space-separated;
# a field may be a dotted path (drops.no-route).
json_field() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const o = JSON.parse(s);
      const get = (path) => path.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);
      console.log(process.argv.slice(1).map((k) => String(get(k))).join(" "));
    });' "$@"
}

# peer_json <netns> [peer-id]: get_peer of one peer (default the tunnel's peer 1), as JSON.
peer_json() { ovpn_cli "$1" --json "$OVPN_TUN" get_peer "${2:-$OVPN_PEER_ID}"; }
# peer_field <netns> <peer-id> <field...>: fields of get_peer, space-separated.
peer_field() {
  local ns=$1 id=$2
  shift 2
  peer_json "$ns" "$id" | json_field "$@"
}
# peer_stats_json <netns>: get_peer of the tunnel's peer, as JSON (the demo's name for it).
peer_stats_json() { peer_json "$1"; }

# iface_field <netns> <field...>: fields of the daemon's iface-get reply (pid, drops.no-route...).
iface_field() {
  local ns=$1
  shift
  ovpn_cli "$ns" --json iface_get "$OVPN_TUN" | json_field "$@"
}

# counters_at_least <netns> <peer-id> <min>: the peer's VPN RX and LINK TX packet counters are
# both at least <min> (> 0).
counters_at_least() {
  local ns=$1 id=$2 min=$3 rx tx
  read -r rx tx < <(peer_field "$ns" "$id" vpn-rx-packets link-tx-packets) || return 1
  echo "peer $id: VPN RX packets: $rx, LINK TX packets: $tx (expected >= $min)"
  [[ $rx =~ ^[0-9]+$ && $tx =~ ^[0-9]+$ ]] && ((rx >= min && tx >= min && rx > 0 && tx > 0))
}

# field_is <netns> <peer-id> <field> <expected>: one get_peer field has the expected value.
field_is() {
  local value
  value=$(peer_field "$1" "$2" "$3") || return 1
  echo "peer $2: $3 $value (expected $4)"
  [[ $value == "$4" ]]
}

# ---------------------------------------------------------------------------------------------
# The topology: a star. <prefix>0 is the server; each client <prefix>p (p = 1..N) is joined to
# it by its own veth, called veth<p> at both ends:
#
#   routed (default)  server 10.10.p.1/24 on veth<p>, client 10.10.p.2/24
#                     (with STAR_FAMILY=6: fd00:0:0:p::1/64 and fd00:0:0:p::2/64)
#   bridge            the server's veth ends are ports of a bridge br0 that holds all its
#                     addresses, 10.10.0.1 .. 10.10.0.N/16; client p has 10.10.p.2/16 and
#                     talks to 10.10.0.p, so the server is multihomed on one link
#
# Inside the tunnel the server is 5.5.5.1/24 and client p is 5.5.5.(p+1)/24 (and fc00:5::x/64).
# Every client's tun0 is point-to-point with one peer, id p; the server's holds peer p for each
# client, keyed with direction 0 (the clients use 1).
#
# Options, as variables (defaults first):
#   STAR_ALG=aes|chachapoly|none
#   STAR_TRANSPORT=udp|tcp   udp: the server's peers come from new_multi_peer (or new_peer
#                            with STAR_SERVER=p2p), clients use new_peer; tcp: the server
#                            `listen`s with a peers file, clients `connect` one after another
#   STAR_SERVER=mp|p2p       p2p: (UDP, one client) the server's tun0 is point-to-point too
#   STAR_FAMILY=4|6          the family of the veth links, i.e. of the transport
#   STAR_LAN=routed|bridge
# Peers files are written to TEST_TMP. Sets for the caller: STAR_NS[i], STAR_TUN4[i],
# STAR_TUN6[i] (i = 0 is the server), STAR_SRV_LINK[p] / STAR_CLI_LINK[p] (the transport
# addresses client p talks to / from), STAR_MODE (the server's mode, P2P or MP).

# star_setup <prefix> <clients>
star_setup() {
  local prefix=$1 n=$2 i
  STAR_ALG=${STAR_ALG:-aes} STAR_TRANSPORT=${STAR_TRANSPORT:-udp} STAR_SERVER=${STAR_SERVER:-mp}
  STAR_FAMILY=${STAR_FAMILY:-4} STAR_LAN=${STAR_LAN:-routed}
  star_validate "$n" || return 1
  STAR_NS=() STAR_TUN4=() STAR_TUN6=() STAR_SRV_LINK=() STAR_CLI_LINK=()
  for ((i = 0; i <= n; i++)); do
    STAR_NS[i]=$prefix$i
    STAR_TUN4[i]=5.5.5.$((i + 1))
    STAR_TUN6[i]=fc00:5::$((i + 1))
  done
  STAR_MODE=MP
  [[ $STAR_SERVER == mp || $STAR_TRANSPORT == tcp ]] || STAR_MODE=P2P

  # shellcheck disable=SC2046  # one namespace name per word
  netns_teardown $(netns_named "$prefix") # leftovers of a crashed run: ours by name
  netns_create "${STAR_NS[@]}"
  star_links "$n"
  star_server
  for ((i = 1; i <= n; i++)); do star_client "$i"; done
  for ((i = 0; i <= n; i++)); do
    wait_for 5 "IPv6 addresses in ${STAR_NS[i]} to settle" netns_v6_settled "${STAR_NS[i]}"
  done
}

star_validate() {
  local n=$1
  case $STAR_ALG in aes | chachapoly | none) ;; *) fail "ALG must be aes, chachapoly or none, got $STAR_ALG"; return 1 ;; esac
  case $STAR_TRANSPORT in udp | tcp) ;; *) fail "transport must be udp or tcp, got $STAR_TRANSPORT"; return 1 ;; esac
  case $STAR_FAMILY in 4 | 6) ;; *) fail "address family must be 4 or 6, got $STAR_FAMILY"; return 1 ;; esac
  case $STAR_LAN in routed | bridge) ;; *) fail "STAR_LAN must be routed or bridge, got $STAR_LAN"; return 1 ;; esac
  case $STAR_SERVER in mp | p2p) ;; *) fail "STAR_SERVER must be mp or p2p, got $STAR_SERVER"; return 1 ;; esac
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 250)); then
    fail "the number of clients must be 1..250, got $n"
    return 1
  fi
  if [[ $STAR_SERVER == p2p ]] && ((n != 1)); then
    fail "a point-to-point server has exactly one client, not $n"
    return 1
  fi
  if [[ $STAR_LAN == bridge && $STAR_FAMILY == 6 ]]; then
    fail "the bridged (multihome) topology is IPv4 only"
    return 1
  fi
}

# star_links <clients>: the veths, their addresses, and a working link to every client.
star_links() {
  local n=$1 srv=${STAR_NS[0]} p cli plen nodad=()
  if [[ $STAR_LAN == bridge ]]; then
    ip -n "$srv" link add br0 type bridge
    ip -n "$srv" link set br0 up
  fi
  [[ $STAR_FAMILY == 4 ]] || nodad=(nodad)
  for ((p = 1; p <= n; p++)); do
    cli=${STAR_NS[p]}
    case $STAR_LAN$STAR_FAMILY in
      routed4) STAR_SRV_LINK[p]=10.10.$p.1 STAR_CLI_LINK[p]=10.10.$p.2 plen=24 ;;
      routed6) STAR_SRV_LINK[p]=fd00:0:0:$p::1 STAR_CLI_LINK[p]=fd00:0:0:$p::2 plen=64 ;;
      bridge4) STAR_SRV_LINK[p]=10.10.0.$p STAR_CLI_LINK[p]=10.10.$p.2 plen=16 ;;
    esac
    ip -n "$srv" link add "veth$p" type veth peer name "veth$p" netns "$cli"
    if [[ $STAR_LAN == bridge ]]; then
      ip -n "$srv" addr add "${STAR_SRV_LINK[p]}/$plen" dev br0
      ip -n "$srv" link set "veth$p" master br0
    else
      ip -n "$srv" addr add "${STAR_SRV_LINK[p]}/$plen" dev "veth$p" "${nodad[@]}"
    fi
    ip -n "$srv" link set "veth$p" up
    ip -n "$cli" addr add "${STAR_CLI_LINK[p]}/$plen" dev "veth$p" "${nodad[@]}"
    ip -n "$cli" link set "veth$p" up
  done
  for ((p = 1; p <= n; p++)); do
    wait_for 5 "the link ${STAR_NS[p]} -> ${STAR_SRV_LINK[p]} to come up" \
      ip netns exec "${STAR_NS[p]}" ping -c 1 -W 1 "${STAR_SRV_LINK[p]}"
  done
}

# star_tun_up <netns> <index>: tun0's tunnel addresses, once the CLI has created it.
star_tun_up() {
  local ns=$1 i=$2
  wait_for 5 "$OVPN_TUN in $ns" ip -n "$ns" link show "$OVPN_TUN"
  ip -n "$ns" addr add "${STAR_TUN4[i]}/24" dev "$OVPN_TUN"
  ip -n "$ns" -6 addr add "${STAR_TUN6[i]}/64" dev "$OVPN_TUN" nodad
  ip -n "$ns" link set "$OVPN_TUN" up
}

# star_server: the server's tun0 and its peers (UDP), or its TCP listener. Peer p's keys are
# installed here for UDP, and by star_client once its TCP connection is accepted.
star_server() {
  local srv=${STAR_NS[0]} n=$((${#STAR_NS[@]} - 1)) p file
  if [[ $STAR_TRANSPORT == tcp ]]; then
    file=$TEST_TMP/tcp_peers.txt
    for ((p = 1; p <= n; p++)); do echo "$p ${STAR_TUN4[p]}"; done >"$file"
    ovpn_cli "$srv" "$OVPN_TUN" listen "$OVPN_PORT" "$file"
  elif [[ $STAR_MODE == P2P ]]; then
    ovpn_cli "$srv" "$OVPN_TUN" new_peer "$OVPN_PORT" 1 "${STAR_CLI_LINK[1]}" "$OVPN_PORT" "${STAR_TUN4[1]}"
  else
    file=$TEST_TMP/udp_peers.txt
    for ((p = 1; p <= n; p++)); do echo "$p ${STAR_CLI_LINK[p]} $OVPN_PORT ${STAR_TUN4[p]}"; done >"$file"
    ovpn_cli "$srv" "$OVPN_TUN" new_multi_peer "$OVPN_PORT" "$file"
  fi
  star_tun_up "$srv" 0
  if [[ $STAR_TRANSPORT == udp ]]; then
    for ((p = 1; p <= n; p++)); do ovpn_cli "$srv" "$OVPN_TUN" new_key "$p" "$STAR_ALG" 0 "$OVPN_KEY_FILE"; done
  fi
}

# star_client <p>: client p's tun0 with its one peer (id p, the server), and its key. Over TCP
# the clients connect one at a time: the server hands its listed peers to accepted connections
# in order, so client p must be accepted (peer p exists on the server) before p+1 connects.
star_client() {
  local p=$1 srv=${STAR_NS[0]} cli=${STAR_NS[$1]}
  if [[ $STAR_TRANSPORT == tcp ]]; then
    ovpn_cli "$cli" "$OVPN_TUN" connect "$p" "${STAR_SRV_LINK[p]}" "$OVPN_PORT" "${STAR_TUN4[0]}"
    wait_for 5 "peer $p on $srv (the server accepting ${STAR_NS[p]}'s connection)" \
      ovpn_cli "$srv" "$OVPN_TUN" get_peer "$p"
    ovpn_cli "$srv" "$OVPN_TUN" new_key "$p" "$STAR_ALG" 0 "$OVPN_KEY_FILE"
  else
    ovpn_cli "$cli" "$OVPN_TUN" new_peer "$OVPN_PORT" "$p" "${STAR_SRV_LINK[p]}" "$OVPN_PORT" "${STAR_TUN4[0]}"
  fi
  star_tun_up "$cli" "$p"
  ovpn_cli "$cli" "$OVPN_TUN" new_key "$p" "$STAR_ALG" 1 "$OVPN_KEY_FILE"
}
