/**
 * The forwarders of bench/idle-floor.sh: TUN tun0 <-> one UDP socket, no crypto, no protocol.
 * They are floors under idle RTT, not tunnels: whatever a real data channel adds comes on top.
 *
 *   node dist/bench/idle-floor/forward.js <mode> <local IPv4> <remote IPv4> <port> [addon]
 *
 * Every mode opens its fds through our edge classes (the same TUN and socket setup as the
 * daemon's, UDP GSO/GRO off as an idle packet never uses them); they differ in what runs per
 * packet:
 *   c-in-node      the floor addon (bench/idle-floor/floor.c) polls both fds on Node's loop and
 *                  forwards in C without entering JavaScript;
 *   js-entry       the same, entering JavaScript once per packet between the read and the send;
 *   js-entry+call  as js-entry, and the JavaScript makes one N-API call without buffers;
 *   our-edges      JavaScript on our edges: TUN readable -> tun.read(batch) -> udp.send(batch,
 *                  endpoints); UDP readable -> udp.recv -> tun.write: our per-packet native calls.
 */
import { createRequire } from 'node:module';
import { MAX_BATCH, newBatch, resetOffsets } from '../../src/core/batch.js';
import { newEndpoints, writeEndpoint } from '../../src/core/endpoint.js';
import { TunDevice } from '../../src/edge/tun.js';
import { UdpBind } from '../../src/edge/udp.js';

interface FloorAddon {
  start(tunFd: number, udpFd: number, remote: string, port: number, callback: (() => void) | null): void;
  touch(): number;
}

const MODES = ['c-in-node', 'js-entry', 'js-entry+call', 'our-edges'] as const;
type Mode = (typeof MODES)[number];

function usage(problem: string): never {
  console.error(`forward: ${problem}`);
  console.error(`usage: forward.js <${MODES.join('|')}> <local IPv4> <remote IPv4> <port> [addon .node path]`);
  process.exit(2);
}

const [modeArg, local, remote, portArg, addonPath] = process.argv.slice(2);
if (!MODES.includes(modeArg as Mode)) usage(`mode must be one of ${MODES.join(', ')}, got ${modeArg}`);
const mode = modeArg as Mode;
if (!local || !remote) usage('the local and remote IPv4 addresses are missing');
const port = Number(portArg);
if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`port must be 1..65535, got ${portArg}`);
if (mode !== 'our-edges' && !addonPath) usage(`mode ${mode} needs the path of the built floor addon`);

const tun = TunDevice.open('tun0');
const udp = UdpBind.open({ family: 4, address: local, port, gso: false, gro: false });

if (mode === 'our-edges') {
  const to = newEndpoints(MAX_BATCH);
  for (let i = 0; i < MAX_BATCH; i++) writeEndpoint(to, i, { address: remote, port });
  const from = newEndpoints(MAX_BATCH);
  const up = newBatch();
  const down = newBatch();
  tun.onReadable(() => {
    resetOffsets(up);
    if (tun.read(up) > 0) udp.send(up, to);
  });
  udp.onReadable(() => {
    resetOffsets(down);
    if (udp.recv(down, from) > 0) tun.write(down);
  });
} else {
  const addon = createRequire(import.meta.url)(addonPath!) as FloorAddon;
  // The edges keep their fds to themselves; the addon polls and uses them in their place.
  const fd = (edge: TunDevice | UdpBind) => (edge as unknown as { checkFd(): number }).checkFd();
  let packets = 0;
  const callbacks: Record<Mode, (() => void) | null> = {
    'c-in-node': null,
    'js-entry': () => {
      packets++;
    },
    'js-entry+call': () => {
      packets += addon.touch();
    },
    'our-edges': null,
  };
  addon.start(fd(tun), fd(udp), remote, port, callbacks[mode]);
  // Keeps the counter observable so the callbacks cannot be optimised into nothing.
  process.on('SIGUSR2', () => console.log(`${mode}: ${packets}`));
}
console.log(`${mode}: forwarding tun0 <-> ${local}:${port} -> ${remote}:${port}`);
