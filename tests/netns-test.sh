#!/usr/bin/env bash
# End-to-end test of the ovpn interface between two network namespaces.
#
#   tests/netns-test.sh [-6]
#
# peer0 and peer1 are joined by a veth (10.10.1.1/24 <-> 10.10.1.2/24, or with -6
# fd00:0:0:1::1/64 <-> ::2 so the tunnel runs over IPv6). Each gets tun0, created with the CLI's
# seed syntax, with 5.5.5.x/24 and fc00:5::x/64 inside the tunnel. Then traffic goes through it
# and the peer counters are checked.
#
# Environment: ALG=aes|chachapoly|none (default aes); OVPN_CLI overrides the CLI command
# (default: node dist/src/cli/ovpn-cli.js, so build first with `npx tsc -p tsconfig.json`).
# Needs root. Deletes stale peer0/peer1 namespaces of an earlier run, and on every exit removes
# all it created: interfaces, daemons, namespaces.
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { echo "usage: ALG=aes|chachapoly|none $0 [-6]" >&2; }
FAMILY=4
for arg in "$@"; do
  case $arg in
    -6) FAMILY=6 ;;
    -4) FAMILY=4 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 1 ;;
  esac
done
ALG=${ALG:-aes}
case $ALG in aes | chachapoly | none) ;; *) fail "ALG must be aes, chachapoly or none, got $ALG"; exit 1 ;; esac
NS0=peer0 NS1=peer1
NAME="netns-test (ALG=$ALG, tunnel over IPv$FAMILY)"
FAILURES=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  ((rc == 0)) || pair_dump_logs "$NS0" "$NS1" >&2
  pair_teardown "$NS0" "$NS1"
  local ns
  for ns in "$NS0" "$NS1"; do
    if netns_exists "$ns"; then
      fail "namespace $ns is still there after cleanup"
      rc=1
    fi
  done
  if ((rc == 0)); then pass "$NAME"; else fail "$NAME (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
report_errors
trap 'exit 130' INT
trap 'exit 143' TERM

if ((EUID != 0)); then
  fail "$NAME needs root (network namespaces, TUN devices)"
  exit 1
fi
if [[ -z ${OVPN_CLI:-} && ! -f $OVPN_ROOT/dist/src/cli/ovpn-cli.js ]]; then
  fail "dist/src/cli/ovpn-cli.js is missing: build first with npx tsc -p tsconfig.json"
  exit 1
fi

# check <description> <command...>: runs one check, prints PASS or FAIL with its output.
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

ping_summary() { "$@" | grep -E 'packets transmitted|rtt'; }

# counters_nonzero <netns> <min>: the peer's VPN RX and LINK TX packet counters are >= min > 0.
counters_nonzero() {
  local ns=$1 min=$2 json rx tx
  json=$(peer_stats_json "$ns")
  read -r rx tx < <(json_field vpn-rx-packets link-tx-packets <<<"$json")
  echo "VPN RX packets: $rx, LINK TX packets: $tx (expected >= $min)"
  [[ $rx =~ ^[0-9]+$ && $tx =~ ^[0-9]+$ ]] && ((rx >= min && tx >= min && rx > 0 && tx > 0))
}

# must_fail <command...>: succeeds when the command runs and exits non-zero.
must_fail() {
  local rc=0
  "$@" || rc=$?
  echo "exit code $rc"
  ((rc != 0 && rc != 126 && rc != 127))
}

step "setting up $NS0 <-> $NS1, $ALG, tunnel over IPv$FAMILY"
pair_setup "$NS0" "$NS1" "$ALG" "$FAMILY"
pass "tunnel up: ${PAIR_TUN4[0]} <-> ${PAIR_TUN4[1]} over ${PAIR_LINK[0]} <-> ${PAIR_LINK[1]}"

check "flood ping 2000 packets IPv4 in the tunnel" \
  ping_summary ip netns exec "$NS0" ping -qfc 2000 -w 5 "${PAIR_TUN4[1]}"
check "flood ping 500 packets IPv6 in the tunnel" \
  ping_summary ip netns exec "$NS0" ping -6 -qfc 500 -w 5 "${PAIR_TUN6[1]}"
check "3000-byte pings (fragmented in the tunnel)" \
  ping_summary ip netns exec "$NS0" ping -c 3 -s 3000 -w 5 "${PAIR_TUN4[1]}"
# peer0 received at least the 2000 flood-ping replies, and sent at least the 2000 requests.
check "get_peer $OVPN_PEER_ID counters on $NS0" counters_nonzero "$NS0" 2000
check "get_peer $OVPN_PEER_ID counters on $NS1" counters_nonzero "$NS1" 2000
check "get_peer 10 (no such peer) fails" must_fail ovpn_cli "$NS0" "$OVPN_TUN" get_peer 10

if ((FAILURES > 0)); then
  fail "$FAILURES check(s) failed"
  exit 1
fi
