#!/usr/bin/env bash
# End-to-end test of ovpn interfaces in network namespaces, driven only through ovpn-cli.
#
#   tests/netns-test.sh [-t] [-6]           multi-peer (the default)
#   tests/netns-test.sh --p2p [-t] [-6]     point-to-point
#   ... --keep                              leave the namespaces and tunnels up afterwards
#   tests/netns-test.sh --clean             remove what a --keep run left
#
# Multi-peer proves that a server with one tun0 in MP mode carries traffic for five clients
# (peer1..peer5, each behind its own veth, see star_setup in tests/lib.sh): it sends each packet
# to the peer whose VPN address is its destination, and follows the kernel routing table for
# addresses behind a peer (a LAN route via a peer's VPN address), including a route changed
# while it runs, without a restart. A packet for an address no peer has is counted as dropped
# and harms nothing.
#
# Point-to-point proves the tunnel between two namespaces, peer0 and peer1: flood pings over
# IPv4 and IPv6 inside it, packets bigger than the MTU, the peer counters.
#
# -t carries the tunnel over TCP: the server `listen`s (with a peers file), the clients
#    `connect`; without it, UDP (new_multi_peer or new_peer).
# -6 carries the tunnel over IPv6 between the namespaces (fd00:0:0:p::1 <-> ::2).
#
# Environment: ALG=aes|chachapoly|none (default aes); OVPN_CLI overrides the CLI command
# (default: node dist/src/cli/ovpn-cli.js, so build first with `npm run build`); OVPN_NS_PREFIX
# names the namespaces (default peer: peer0, peer1, ...). Needs root. Runs of any of the
# scripts with the same prefix wait for each other; then stale <prefix>N namespaces of a crashed
# (or --keep) run are deleted, and on every exit all it created is removed: interfaces, daemons,
# namespaces, files; with --keep the namespaces stay up, and it prints how to ping through the
# tunnel (ip netns exec peer0 ping 5.5.5.2).
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat >&2 <<EOF
usage: ALG=aes|chachapoly|none $0 [--p2p] [-t] [-6] [--keep]
       $0 --clean
  (default)  multi-peer: peer0 serves peer1..peer5, each over its own veth
  --p2p      point-to-point: peer0 <-> peer1
  -t         tunnel over TCP (server listens, clients connect) instead of UDP
  -6         tunnel over IPv6 between the namespaces instead of IPv4
  --keep     leave the namespaces, interfaces and daemons up afterwards, to try by hand
  --clean    remove what a --keep run left, and nothing else
EOF
}
P2P=0
STAR_FAMILY=4
STAR_TRANSPORT=udp
TEST_KEEP=0
CLEAN=0
for arg in "$@"; do
  case $arg in
    --p2p) P2P=1 ;;
    --keep) TEST_KEEP=1 ;;
    --clean) CLEAN=1 ;;
    -t) STAR_TRANSPORT=tcp ;;
    -6) STAR_FAMILY=6 ;;
    -4) STAR_FAMILY=4 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 1 ;;
  esac
done
if ((CLEAN)); then test_clean "$OVPN_NS_PREFIX"; fi
STAR_ALG=${ALG:-aes}
if ((P2P)); then
  CLIENTS=1 STAR_SERVER=p2p TOPOLOGY=point-to-point
else
  CLIENTS=5 STAR_SERVER=mp TOPOLOGY="multi-peer, 5 clients"
fi
test_begin "netns-test ($TOPOLOGY, ALG=$STAR_ALG, ${STAR_TRANSPORT^^} over IPv$STAR_FAMILY)"

in0() { ip netns exec "$NS0" "$@"; }

# --- point-to-point -----------------------------------------------------------------------------

p2p_checks() {
  local far4=${STAR_TUN4[1]} far6=${STAR_TUN6[1]}
  check "flood ping 2000 packets IPv4 in the tunnel" ping_summary in0 ping -qfc 2000 -w 10 "$far4"
  if [[ $STAR_MODE == P2P ]]; then
    check "flood ping 500 packets IPv6 in the tunnel" ping_summary in0 ping -6 -qfc 500 -w 10 "$far6"
  else
    # A TCP server is multi-peer, and its peer has only an IPv4 VPN address to route by.
    log "${C_DIM}(no IPv6 in the tunnel: the TCP server is multi-peer and its peer has no IPv6 VPN address)${C_0}"
  fi
  check "3000-byte pings (fragmented in the tunnel)" ping_summary in0 ping -c 3 -i 0.2 -s 3000 -w 5 "$far4"
  # peer0 received at least the 2000 flood-ping replies, and sent at least the 2000 requests.
  check "get_peer $OVPN_PEER_ID counters on $NS0" counters_at_least "$NS0" "$OVPN_PEER_ID" 2000
  check "get_peer $OVPN_PEER_ID counters on ${STAR_NS[1]}" counters_at_least "${STAR_NS[1]}" "$OVPN_PEER_ID" 2000
}

# --- multi-peer ---------------------------------------------------------------------------------

LAN=11.11.11.11   # an address behind a client, reached through a kernel route via its VPN address
NOBODY=5.5.5.100  # in the tunnel's subnet, but no peer has it

# peer_count <netns> <n>: get_peer without an id lists n peers.
peer_count() {
  local count
  count=$(ovpn_cli "$1" --json "$OVPN_TUN" get_peer | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).length));')
  echo "$count peers (expected $2)"
  ((count == $2))
}

# sent_to_peer <address> <peer-id>: one ping from the server to the address goes out to that
# peer (its VPN TX packet counter on the server moves). For polling until a route change has
# been picked up.
sent_to_peer() {
  local before after
  before=$(peer_field "$NS0" "$2" vpn-tx-packets)
  in0 ping -c 1 -W 0.3 "$1" >/dev/null 2>&1 || true
  after=$(peer_field "$NS0" "$2" vpn-tx-packets)
  ((after > before))
}

# lan_moved: with the LAN route now via peer 2 (which does not have the address), pings to it
# fail, and they go to peer 2, not peer 1.
lan_moved() {
  local a1 a2 b1 b2 rc=0
  a1=$(peer_field "$NS0" 1 vpn-tx-packets) && a2=$(peer_field "$NS0" 2 vpn-tx-packets) || return 1
  in0 ping -c 3 -i 0.2 -W 1 "$LAN" >/dev/null 2>&1 || rc=$?
  b1=$(peer_field "$NS0" 1 vpn-tx-packets) && b2=$(peer_field "$NS0" 2 vpn-tx-packets) || return 1
  echo "ping exit code $rc; VPN TX packets to peer 1: $a1 -> $b1, to peer 2: $a2 -> $b2"
  ((rc != 0 && b1 == a1 && b2 - a2 >= 3))
}

# no_peer_counted <pid>: pings to an address no peer has fail, count as no-route drops, and the
# daemon (still the one with that pid) keeps serving.
no_peer_counted() {
  local before after pid rc=0
  before=$(iface_field "$NS0" drops.no-route) || return 1
  in0 ping -c 3 -i 0.2 -W 1 "$NOBODY" >/dev/null 2>&1 || rc=$?
  read -r after pid < <(iface_field "$NS0" drops.no-route pid) || return 1
  echo "ping exit code $rc; no-route drops: $before -> $after; daemon pid $pid (was $1)"
  ((rc != 0 && after - before >= 3)) && [[ $pid == "$1" ]]
}

mp_checks() {
  local p pid
  for ((p = 1; p <= CLIENTS; p++)); do
    # Over TCP this proves the listed peers went to the connections in the order they came.
    check "get_peer $p on $NS0 has ${STAR_NS[p]}'s address" field_is "$NS0" "$p" "remote-ipv$STAR_FAMILY" "${STAR_CLI_LINK[p]}"
  done
  for ((p = 1; p <= CLIENTS; p++)); do
    check "ping ${STAR_TUN4[p]} (peer $p) from $NS0" ping_summary in0 ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[p]}"
  done
  for ((p = 1; p <= CLIENTS; p++)); do
    check "ping ${STAR_TUN4[0]} from ${STAR_NS[p]}" ping_summary ip netns exec "${STAR_NS[p]}" ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[0]}"
  done
  check "flood ping 2000 packets from $NS0 to ${STAR_TUN4[3]} (peer 3)" ping_summary in0 ping -qfc 2000 -w 10 "${STAR_TUN4[3]}"
  check "get_peer on $NS0 lists $CLIENTS peers" peer_count "$NS0" "$CLIENTS"
  for ((p = 1; p <= CLIENTS; p++)); do
    # Each direction: 3 pings from the server and 3 from the client, plus the flood for peer 3.
    check "get_peer $p counters on $NS0" counters_at_least "$NS0" "$p" $((p == 3 ? 2006 : 6))
    check "get_peer $p counters on ${STAR_NS[p]}" counters_at_least "${STAR_NS[p]}" "$p" $((p == 3 ? 2006 : 6))
  done

  pid=$(iface_field "$NS0" pid)
  ip -n "${STAR_NS[1]}" addr add "$LAN/32" dev lo
  ip -n "$NS0" route add "$LAN" via "${STAR_TUN4[1]}" dev "$OVPN_TUN"
  check "route $LAN via ${STAR_TUN4[1]} is followed" wait_for 5 "a reply from $LAN" in0 ping -c 1 -W 1 "$LAN"
  check "ping $LAN (behind peer 1) from $NS0" ping_summary in0 ping -c 3 -i 0.2 -w 5 "$LAN"
  ip -n "$NS0" route del "$LAN" via "${STAR_TUN4[1]}" dev "$OVPN_TUN"
  ip -n "$NS0" route add "$LAN" via "${STAR_TUN4[2]}" dev "$OVPN_TUN"
  check "route $LAN moved to via ${STAR_TUN4[2]} is followed" wait_for 5 "pings to $LAN to go to peer 2" sent_to_peer "$LAN" 2
  check "pings to $LAN now go to peer 2, which drops them" lan_moved
  check "ping $NOBODY (no such peer) is counted as no-route, same daemon" no_peer_counted "$pid"
  check "ping ${STAR_TUN4[1]} still works afterwards" ping_summary in0 ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[1]}"
}

step "setting up $TOPOLOGY, $STAR_ALG, ${STAR_TRANSPORT^^} over IPv$STAR_FAMILY"
star_setup "$OVPN_NS_PREFIX" "$CLIENTS"
NS0=${STAR_NS[0]}
TEST_KEEP_HINT="ip netns exec $NS0 ping ${STAR_TUN4[1]}"
pass "tunnels up: $NS0 ${STAR_TUN4[0]} ($STAR_MODE) <-> ${STAR_TUN4[*]:1}"

if ((P2P)); then p2p_checks; else mp_checks; fi
check "get_peer 10 (no such peer) fails" must_fail ovpn_cli "$NS0" "$OVPN_TUN" get_peer 10
test_end
