#!/usr/bin/env bash
# End-to-end test of peer float: a client that changes its transport address keeps its tunnel.
#
#   tests/float-test.sh
#
# The multi-peer topology of tests/netns-test.sh over UDP (peer0 serves peer1..peer5, see
# star_setup in tests/lib.sh). Once every tunnel carries traffic, each client p moves its veth
# address from 10.10.p.2 to 10.10.p.3. Proves that the server follows each moved client after
# its first authenticated packet from the new address: pings from the client keep working, the
# server's get_peer shows remote-ipv4 10.10.p.3, and listen_mcast on the server reports a
# peer-float-ntf for the peer with its new address.
#
# Environment: ALG=aes|chachapoly|none (default aes); OVPN_CLI overrides the CLI command;
# OVPN_NS_PREFIX names the namespaces (default peer: peer0, peer1, ...).
# Needs root. Removes everything it created on every exit.
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

no_args_but_help "$@"
STAR_ALG=${ALG:-aes}
CLIENTS=5
test_begin "float-test (multi-peer, $CLIENTS clients, ALG=$STAR_ALG, UDP)"

in0() { ip netns exec "$NS0" "$@"; }
moved() { echo "10.10.$1.3"; }

# mcast_subscribed: listen_mcast is subscribed when a stray control-channel packet (opcode 7,
# P_CONTROL_HARD_RESET_CLIENT_V2), sent from peer1 to the server's port, comes back as a
# packet-ntf. A probe rather than a sleep: the CLI prints nothing when it is ready in --json mode.
mcast_subscribed() {
  # shellcheck disable=SC2016  # $0 and $1 are the inner shell's
  ip netns exec "${STAR_NS[1]}" bash -c 'printf "\x38probe" >"/dev/udp/$0/$1"' "${STAR_SRV_LINK[1]}" "$OVPN_PORT"
  grep -q '"packet-ntf"' "$NTF_LOG"
}

# float_reported <peer-id> <address>: listen_mcast printed a peer-float-ntf for the peer with
# its new remote address.
float_reported() {
  # shellcheck disable=SC2016  # ${...} is JavaScript
  node -e '
    const [file, id, address] = process.argv.slice(1);
    const lines = require("fs").readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "");
    const floats = lines.map((l) => JSON.parse(l)).filter((n) => n.ntf === "peer-float-ntf");
    const mine = floats.filter((n) => String(n.peer?.id ?? n["peer-id"]) === id);
    console.log(`${floats.length} peer-float-ntf in all, for peer ${id}: ${mine.map((n) => JSON.stringify(n)).join(" ") || "none"}`);
    process.exit(mine.some((n) => JSON.stringify(n).includes(`"${address}"`)) ? 0 : 1);' "$NTF_LOG" "$1" "$2"
}

# float_seen <peer-id> <address>: waits for float_reported, then shows what it found.
float_seen() {
  wait_for 5 "a peer-float-ntf for peer $1" float_reported "$1" "$2" || true
  float_reported "$1" "$2"
}

step "setting up multi-peer, $CLIENTS clients, $STAR_ALG, UDP"
star_setup "$OVPN_NS_PREFIX" "$CLIENTS"
NS0=${STAR_NS[0]}
pass "tunnels up: $NS0 ${STAR_TUN4[0]} ($STAR_MODE) <-> ${STAR_TUN4[*]:1}"

for ((p = 1; p <= CLIENTS; p++)); do
  check "ping ${STAR_TUN4[p]} (peer $p) from $NS0" ping_summary in0 ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[p]}"
done

NTF_LOG=$TEST_TMP/notifications.json
ovpn_cli "$NS0" listen_mcast --json >"$NTF_LOG" 2>"$TEST_TMP/listen_mcast.err" &
wait_for 5 "listen_mcast on $NS0 to subscribe" mcast_subscribed
pass "listen_mcast --json on $NS0 is subscribed"

for ((p = 1; p <= CLIENTS; p++)); do
  step "${STAR_NS[p]} moves from ${STAR_CLI_LINK[p]} to $(moved "$p")"
  ip -n "${STAR_NS[p]}" addr del "${STAR_CLI_LINK[p]}/24" dev "veth$p"
  ip -n "${STAR_NS[p]}" addr add "$(moved "$p")/24" dev "veth$p"
  check "ping ${STAR_TUN4[0]} from ${STAR_NS[p]} after the move" ping_summary ip netns exec "${STAR_NS[p]}" ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[0]}"
  check "flood ping 500 packets from ${STAR_NS[p]}" ping_summary ip netns exec "${STAR_NS[p]}" ping -qfc 500 -w 5 "${STAR_TUN4[0]}"
  check "get_peer $p on $NS0 shows remote-ipv4 $(moved "$p")" field_is "$NS0" "$p" remote-ipv4 "$(moved "$p")"
  check "listen_mcast reported peer-float-ntf for peer $p" float_seen "$p" "$(moved "$p")"
done
for ((p = 1; p <= CLIENTS; p++)); do
  check "ping ${STAR_TUN4[p]} (peer $p, moved) from $NS0" ping_summary in0 ping -c 3 -i 0.2 -w 5 "${STAR_TUN4[p]}"
done
test_end
