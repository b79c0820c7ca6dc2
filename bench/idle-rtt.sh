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
# shellcheck source=bench/idle-lib.sh
source "$ROOT/bench/idle-lib.sh" # and tests/lib.sh

TRAINS=${IDLE_TRAINS:-6}
PINGS=${IDLE_PINGS:-300}
OUT=${IDLE_OUT:-$ROOT/bench/results/idle-rtt.md}
OV=(irtt-v0 irtt-v1)

idle_begin idle-rtt

# ours: the library's own star setup (lib.sh), point to point, AES
STAR_ALG=aes STAR_SERVER=p2p star_setup irtt-o 1 >/dev/null

# OpenVPN 2.6, point to point (bench/idle-lib.sh)
netns_create "${OV[@]}" >/dev/null
openvpn_p2p "${OV[@]}"

for ns in irtt-o0 "${OV[0]}"; do ip netns exec "$ns" ping -f -c 20000 -q 5.5.5.2 >/dev/null; done
rows=()
for ((t = 1; t <= TRAINS; t++)); do
  read -r ours_rtt ours_cpu < <(train main "$PINGS" irtt-o0 irtt-o1)
  read -r ovpn_rtt ovpn_cpu < <(train main "$PINGS" "${OV[@]}")
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
} | write_results "$OUT"
