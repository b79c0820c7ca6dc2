#!/usr/bin/env bash
# End-to-end test of a multihomed server: replies leave from the address the client sent to.
#
#   tests/multihome-test.sh
#
# peer0's veth ends are ports of one bridge, br0, which holds all the server's addresses,
# 10.10.0.1 .. 10.10.0.5/16; client p (10.10.p.2/16) sends its tunnel to 10.10.0.p (star_setup
# with STAR_LAN=bridge in tests/lib.sh). Without care the kernel would answer every client from
# br0's primary address. Proves that the server learns, per peer, the local address a client's
# packets arrived on and sends from it: get_peer on the server shows local-ipv4 10.10.0.p for
# peer p, and each client still has remote-ipv4 10.10.0.p (a reply from another address would
# have made the client float to it). Pings both ways work throughout.
#
# Environment: ALG=aes|chachapoly|none (default aes); OVPN_CLI overrides the CLI command;
# OVPN_NS_PREFIX names the namespaces (default peer: peer0, peer1, ...).
# Needs root. Removes everything it created on every exit.
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

no_args_but_help "$@"
STAR_ALG=${ALG:-aes}
STAR_LAN=bridge
CLIENTS=5
test_begin "multihome-test (multi-peer, $CLIENTS clients on one bridge, ALG=$STAR_ALG, UDP)"

# same_path <p>: the server sends to peer p from the address p sent to, and p, having received
# from the server, still talks to that address.
same_path() {
  local received
  field_is "$NS0" "$1" local-ipv4 "${STAR_SRV_LINK[$1]}" && field_is "${STAR_NS[$1]}" "$1" remote-ipv4 "${STAR_SRV_LINK[$1]}" || return 1
  received=$(peer_field "${STAR_NS[$1]}" "$1" link-rx-packets) || return 1
  echo "${STAR_NS[$1]} received $received packets from the server (expected > 0)"
  ((received > 0))
}

step "setting up multi-peer, $CLIENTS clients, server addresses on br0, $STAR_ALG, UDP"
star_setup "$OVPN_NS_PREFIX" "$CLIENTS"
NS0=${STAR_NS[0]}
pass "tunnels up: $NS0 ${STAR_TUN4[0]} ($STAR_MODE, ${STAR_SRV_LINK[*]:1}) <-> ${STAR_TUN4[*]:1}"

# The clients speak first: the server learns each one's path from its first packet.
for ((p = 1; p <= CLIENTS; p++)); do
  check "ping ${STAR_TUN4[0]} from ${STAR_NS[p]} (to ${STAR_SRV_LINK[p]})" ping_summary ip netns exec "${STAR_NS[p]}" ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[0]}"
done
for ((p = 1; p <= CLIENTS; p++)); do
  check "replies to ${STAR_NS[p]} leave from ${STAR_SRV_LINK[p]}" same_path "$p"
done
for ((p = 1; p <= CLIENTS; p++)); do
  check "ping ${STAR_TUN4[p]} (peer $p) from $NS0" ping_summary ip netns exec "$NS0" ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[p]}"
  check "flood ping 500 packets from ${STAR_NS[p]}" ping_summary ip netns exec "${STAR_NS[p]}" ping -qfc 500 -w 5 "${STAR_TUN4[0]}"
  check "still from ${STAR_SRV_LINK[p]} to ${STAR_NS[p]} after traffic both ways" same_path "$p"
  check "get_peer $p counters on $NS0" counters_at_least "$NS0" "$p" 506
done
test_end
