#!/usr/bin/env bash
# Idle ping through ours and through OpenVPN 2.6, side by side in one run: where an idle packet's
# time goes (issue 14, item 4). Two tunnels, each between its own pair of namespaces, both
# AES-256-GCM over UDP in point-to-point mode; each is warmed with a flood ping, then trains of
# pings 10 ms apart alternate between them. For each train: the median RTT, and the CPU time the
# two daemons of that tunnel spent on it (their main threads, from /proc/<pid>/schedstat, in ns),
# per packet crossing one daemon ("traversal": a ping is four).
#
#   bash bench/idle-rtt.sh              # as root; writes bench/results/idle-rtt.md
#   IDLE_TRAINS=6 IDLE_PINGS=300        # trains per tunnel, pings per train
#
# Needs openvpn, ping and a build (npm run build). Namespaces: irtt-o0/1 (ours), irtt-v0/1
# (OpenVPN); removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/lib.sh
source "$ROOT/tests/lib.sh"

TRAINS=${IDLE_TRAINS:-6}
PINGS=${IDLE_PINGS:-300}
OUT=${IDLE_OUT:-$ROOT/bench/results/idle-rtt.md}
FIX=$ROOT/test/fixtures/openvpn
OV=(irtt-v0 irtt-v1)
OVPN_PIDS=()

cleanup() {
  local pid
  for pid in "${OVPN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  netns_teardown irtt-o0 irtt-o1 "${OV[@]}"
}
trap cleanup EXIT

# ours: the library's own star setup (lib.sh), point to point, AES
STAR_ALG=aes STAR_SERVER=p2p star_setup irtt-o 1 >/dev/null

# OpenVPN: point-to-point TLS mode with the test fixtures' certificates, as bench:tunnel runs it
netns_create "${OV[@]}" >/dev/null
ip -n "${OV[0]}" link add v0 type veth peer name v1 netns "${OV[1]}"
ip -n "${OV[0]}" addr add 10.10.1.1/24 dev v0
ip -n "${OV[1]}" addr add 10.10.1.2/24 dev v1
ip -n "${OV[0]}" link set v0 up
ip -n "${OV[1]}" link set v1 up
common=(--dev tun --proto udp --port 1195 --data-ciphers AES-256-GCM --dh none --ca "$FIX/ca.crt"
  --tls-auth "$FIX/ta.key" --keepalive 10 60 --verb 1 --disable-dco --txqueuelen 100)
for i in 0 1; do
  if ((i == 0)); then
    side=(--tls-server --local 10.10.1.1 --remote 10.10.1.2 --ifconfig 5.5.5.1 5.5.5.2 --cert "$FIX/server.crt"
      --key "$FIX/server.key" --key-direction 0 --remote-cert-tls client)
  else
    side=(--tls-client --local 10.10.1.2 --remote 10.10.1.1 --ifconfig 5.5.5.2 5.5.5.1 --cert "$FIX/client.crt"
      --key "$FIX/client.key" --key-direction 1 --remote-cert-tls server)
  fi
  ip netns exec "${OV[i]}" openvpn "${common[@]}" "${side[@]}" >/dev/null 2>&1 &
  OVPN_PIDS+=($!)
done
wait_for 20 "the OpenVPN tunnel" ip netns exec "${OV[0]}" ping -c 1 -W 1 5.5.5.2 >/dev/null

pids_of() { ip netns pids "$1"; }
cpu_ns() { # main-thread CPU ns of every process in the given namespaces
  local ns pid sum=0
  for ns in "$@"; do for pid in $(pids_of "$ns"); do sum=$((sum + $(cut -d' ' -f1 "/proc/$pid/schedstat"))); done; done
  echo "$sum"
}
median_rtt() {
  ip netns exec "$1" ping -n -c "$PINGS" -i 0.01 5.5.5.2 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n |
    awk '{a[NR]=$1} END{print a[int(NR/2)+1]}'
}
train() { # <label> <ns0> <ns1>: prints "rtt_ms cpu_us_per_traversal"
  local before after rtt
  before=$(cpu_ns "$2" "$3")
  rtt=$(median_rtt "$2")
  after=$(cpu_ns "$2" "$3")
  echo "$rtt $(((after - before) / (PINGS * 4) / 1000))"
}

for ns in irtt-o0 "${OV[0]}"; do ip netns exec "$ns" ping -f -c 20000 -q 5.5.5.2 >/dev/null; done
rows=()
for ((t = 1; t <= TRAINS; t++)); do
  read -r ours_rtt ours_cpu < <(train ours irtt-o0 irtt-o1)
  read -r ovpn_rtt ovpn_cpu < <(train openvpn "${OV[@]}")
  rows+=("| $t | $ours_rtt | $ovpn_rtt | $(awk -v a="$ours_rtt" -v b="$ovpn_rtt" 'BEGIN{printf "%.2f", a/b}') | $ours_cpu | $ovpn_cpu |")
  echo "train $t: ours $ours_rtt ms, ${ours_cpu} µs/traversal; openvpn $ovpn_rtt ms, ${ovpn_cpu} µs/traversal"
done

{
  echo '# Idle ping: ours against OpenVPN 2.6, same run'
  echo
  echo "$(date -u +%FT%TZ) · $(nproc) cores · load average $(cut -d' ' -f1 /proc/loadavg) at the end · $(node --version)"
  echo
  echo "\`bash bench/idle-rtt.sh\`: $TRAINS alternating trains of $PINGS pings 10 ms apart per tunnel after a flood-ping"
  echo 'warm-up; both AES-256-GCM, UDP, point to point. CPU is both daemons'"'"' main threads (schedstat) over the train,'
  echo 'per packet crossing one daemon (a ping crosses four times).'
  echo
  echo '| train | ours median RTT (ms) | OpenVPN median RTT (ms) | ratio | ours CPU µs / traversal | OpenVPN CPU µs / traversal |'
  echo '|--:|--:|--:|--:|--:|--:|'
  printf '%s\n' "${rows[@]}"
  echo
} >"$OUT.tmp"
# The analysis below the marker is kept when the file is regenerated.
if [[ -f $OUT ]] && grep -q '<!-- analysis' "$OUT"; then sed -n '/<!-- analysis/,$p' "$OUT" >>"$OUT.tmp"; fi
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
