#!/usr/bin/env bash
# The demo behind `npm run demo`: two network namespaces, demo0 and demo1, joined by a veth;
# an ovpn tun0 in each with an AES-256-GCM tunnel between them; traffic through the tunnel
# (a flood ping and, when iperf3 is installed, a 3-second TCP run); then the per-peer
# statistics from both sides and a summary. Everything is torn down on exit.
#
# Needs root. Environment: OVPN_CLI overrides the CLI command (default: node dist/src/cli/ovpn-cli.js,
# built by `npm run build`); DEMO_PINGS sets the number of flood-ping packets (default 5000).
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

NS0=demo0 NS1=demo1
PINGS=${DEMO_PINGS:-5000}
STAR_ALG=aes STAR_SERVER=p2p
OK=1

cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  ((rc == 0)) || dump_daemon_logs "$NS0" "$NS1" >&2
  step "tearing down"
  netns_teardown "$NS0" "$NS1"
  log "   namespaces $NS0 and $NS1, their interfaces and daemons are gone"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
report_errors

if ((EUID != 0)); then
  fail "the demo needs root (it creates network namespaces and TUN devices): try sudo npm run demo"
  exit 1
fi
if [[ -z ${OVPN_CLI:-} && ! -f $OVPN_ROOT/dist/src/cli/ovpn-cli.js ]]; then
  fail "dist/src/cli/ovpn-cli.js is missing: run npm run build first (npm run demo does both)"
  exit 1
fi

cat <<EOF
${C_B}ovpn-dco (userspace) demo${C_0}

   ${NS0}                                                 ${NS1}
   tun0  5.5.5.1   ===== AES-256-GCM, UDP port $OVPN_PORT =====   tun0  5.5.5.2
   veth1 10.10.1.1 ------------- veth ------------------ veth1 10.10.1.2

EOF

step "setting up the namespaces, the veth and the tunnel"
star_setup demo 1
pass "tunnel up ($(ovpn_cli "$NS0" get_key "$OVPN_TUN" "$OVPN_PEER_ID" 1 | sed -n 's/.*Cipher: //p'))"
echo

step "flood ping: $PINGS packets from $NS0 to ${STAR_TUN4[1]} through the tunnel"
ping_rc=0
ping_out=$(ip netns exec "$NS0" ping -q -f -c "$PINGS" -w 20 "${STAR_TUN4[1]}" 2>&1) || ping_rc=$?
printf '%s\n' "$ping_out" | grep -E 'packets transmitted|rtt' | sed 's/^/   /'
read -r sent received loss ping_ms < <(printf '%s\n' "$ping_out" |
  sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*, \([0-9.]*\)% packet loss, time \([0-9]*\)ms.*/\1 \2 \3 \4/p') || true
rtt_avg=$(printf '%s\n' "$ping_out" | sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
if ((ping_rc == 0)); then pass "flood ping"; else fail "flood ping (exit $ping_rc)"; OK=0; fi
echo

throughput=""
iperf_listening() { ip netns exec "$NS1" ss -Hltn "sport = :5201" | grep -q .; }
if command -v iperf3 >/dev/null; then
  step "iperf3: 3 seconds of TCP from $NS0 to $NS1 through the tunnel"
  ip netns exec "$NS1" iperf3 --server --one-off --bind "${STAR_TUN4[1]}" >/dev/null 2>&1 &
  wait_for 5 "the iperf3 server" iperf_listening
  if iperf_json=$(ip netns exec "$NS0" iperf3 --client "${STAR_TUN4[1]}" --time 3 --json 2>&1); then
    read -r throughput retransmits < <(node -e '
      const { end } = JSON.parse(require("fs").readFileSync(0, "utf8"));
      console.log((end.sum_received.bits_per_second / 1e6).toFixed(1), end.sum_sent.retransmits ?? 0);' <<<"$iperf_json") || true
    pass "iperf3: $throughput Mbit/s received, $retransmits retransmits"
  else
    fail "iperf3 client failed"
    printf '%s\n' "$iperf_json" | tail -n 5 | sed 's/^/   /'
    OK=0
  fi
  echo
else
  log "${C_DIM}(iperf3 is not installed: no throughput run; apt-get install iperf3 to add one)${C_0}"
  echo
fi

step "per-peer statistics (ovpn-cli tun0 get_peer $OVPN_PEER_ID)"
for ns in "$NS0" "$NS1"; do
  log "   ${C_B}$ns${C_0}"
  ovpn_cli "$ns" "$OVPN_TUN" get_peer "$OVPN_PEER_ID" | sed 's/^/   /'
done
echo

# Summary. Overhead per packet: what the tunnel adds to each packet on the link (DATA_V2 header,
# packet id, AEAD tag), from demo0's transmit counters.
read -r vpn_tx_bytes link_tx_bytes link_tx_packets vpn_rx_packets < <(peer_stats_json "$NS0" |
  json_field vpn-tx-bytes link-tx-bytes link-tx-packets vpn-rx-packets)
overhead=$(((link_tx_bytes - vpn_tx_bytes) / (link_tx_packets > 0 ? link_tx_packets : 1)))
step "summary"
printf '   %-28s %s\n' "cipher" "AES-256-GCM"
printf '   %-28s %s sent, %s received, %s%% loss in %s ms\n' "flood ping" "${sent:-?}" "${received:-?}" "${loss:-?}" "${ping_ms:-?}"
[[ -z ${rtt_avg:-} ]] || printf '   %-28s %s ms\n' "average round trip" "$rtt_avg"
if [[ -n ${ping_ms:-} && ${ping_ms:-0} -gt 0 ]]; then
  printf '   %-28s %s\n' "ping replies per second" "$((received * 1000 / ping_ms))"
fi
if [[ -n $throughput ]]; then
  printf '   %-28s %s Mbit/s\n' "TCP throughput (iperf3)" "$throughput"
else
  printf '   %-28s %s\n' "TCP throughput (iperf3)" "not measured (no iperf3)"
fi
printf '   %-28s %s packets out, %s packets in\n' "$NS0 tunnel counters" "$link_tx_packets" "$vpn_rx_packets"
printf '   %-28s %s bytes per packet\n' "tunnel overhead on the link" "$overhead"
echo
if ((OK)); then pass "demo complete"; else
  fail "demo finished with errors (see above)"
  exit 1
fi
