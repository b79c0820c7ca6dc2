# shellcheck shell=bash
# What the idle-ping benchmarks (bench/idle-rtt.sh, bench/idle-floor.sh) share: a tunnel's
# transport link, the OpenVPN 2.6 reference tunnel, and how a train is measured and written.
# Sourcing it sources tests/lib.sh too; it defines functions and runs nothing.

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

# Every process these helpers started, for idle_cleanup (killed by pid).
IDLE_PIDS=()

# idle_begin <name>: a fresh TEST_TMP (mktemp, named after the benchmark) and the traps that run
# idle_cleanup on every exit.
idle_begin() {
  TEST_TMP=$(mktemp -d -t "$1.XXXXXX")
  trap idle_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# idle_cleanup: kills the processes these helpers started, removes every namespace the script
# created (CREATED_NS, recorded by tests/lib.sh) with the processes in them, and TEST_TMP.
idle_cleanup() {
  local pid
  trap - EXIT
  for pid in "${IDLE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  netns_teardown "${CREATED_NS[@]}"
  [[ -z ${TEST_TMP:-} ]] || rm -rf -- "$TEST_TMP"
}

# veth_link <ns0> <ns1>: the transport link every tunnel runs over, 10.10.1.1 - 10.10.1.2.
veth_link() {
  ip -n "$1" link add v0 type veth peer name v1 netns "$2"
  ip -n "$1" addr add 10.10.1.1/24 dev v0
  ip -n "$2" addr add 10.10.1.2/24 dev v1
  ip -n "$1" link set v0 up
  ip -n "$2" link set v1 up
}

# openvpn_p2p <ns0> <ns1>: OpenVPN 2.6 between two fresh namespaces, point-to-point TLS mode
# with the test fixtures' certificates, AES-256-GCM on UDP port 1195, as bench:tunnel runs it;
# returns once a ping crosses it.
openvpn_p2p() {
  local fix=$OVPN_ROOT/test/fixtures/openvpn ns=("$1" "$2") i side common
  veth_link "$1" "$2"
  common=(--dev tun --proto udp --port 1195 --data-ciphers AES-256-GCM --dh none --ca "$fix/ca.crt"
    --tls-auth "$fix/ta.key" --keepalive 10 60 --verb 1 --disable-dco --txqueuelen 100)
  for i in 0 1; do
    if ((i == 0)); then
      side=(--tls-server --local 10.10.1.1 --remote 10.10.1.2 --ifconfig 5.5.5.1 5.5.5.2 --cert "$fix/server.crt"
        --key "$fix/server.key" --key-direction 0 --remote-cert-tls client)
    else
      side=(--tls-client --local 10.10.1.2 --remote 10.10.1.1 --ifconfig 5.5.5.2 5.5.5.1 --cert "$fix/client.crt"
        --key "$fix/client.key" --key-direction 1 --remote-cert-tls server)
    fi
    ip netns exec "${ns[i]}" openvpn "${common[@]}" "${side[@]}" >/dev/null 2>&1 &
    IDLE_PIDS+=($!)
  done
  wait_for 20 "the OpenVPN tunnel" ip netns exec "$1" ping -c 1 -W 1 5.5.5.2 >/dev/null
}

# cpu_ns <main|all> <netns...>: CPU ns so far of every process in the namespaces, their main
# threads only or all their threads.
cpu_ns() {
  local which=$1 ns pid f sum=0
  shift
  for ns in "$@"; do
    for pid in $(ip netns pids "$ns"); do
      if [[ $which == main ]]; then
        sum=$((sum + $(cut -d' ' -f1 "/proc/$pid/schedstat")))
      else
        for f in "/proc/$pid/task/"*/schedstat; do sum=$((sum + $(cut -d' ' -f1 "$f" 2>/dev/null || echo 0))); done
      fi
    done
  done
  echo "$sum"
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END{print a[int(NR/2)+1]}'; }

# median_rtt <netns> <pings>: median RTT in ms of pings 10 ms apart from the namespace to 5.5.5.2.
median_rtt() { ip netns exec "$1" ping -n -c "$2" -i 0.01 5.5.5.2 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | median; }

# train <main|all> <pings> <ns0> <ns1>: prints "rtt_ms cpu_us_per_traversal" for one train of
# pings from ns0, with the CPU of the processes in both namespaces per packet crossing one of
# them (a ping crosses four times).
train() {
  local before after rtt
  before=$(cpu_ns "$1" "$3" "$4")
  rtt=$(median_rtt "$3" "$2")
  after=$(cpu_ns "$1" "$3" "$4")
  echo "$rtt $(((after - before) / ($2 * 4) / 1000))"
}

# write_results <file>: stdin becomes the file; the analysis below its `<!-- analysis` marker,
# when the file had one, is kept.
write_results() {
  cat >"$1.tmp"
  if [[ -f $1 ]] && grep -q '<!-- analysis' "$1"; then sed -n '/<!-- analysis/,$p' "$1" >>"$1.tmp"; fi
  mv "$1.tmp" "$1"
  echo "wrote $1"
}
