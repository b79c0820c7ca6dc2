/**
 * Our end of a tunnel with a real openvpn, run inside a network namespace by
 * test/openvpn-e2e.test.ts: an OvpnInterface (P2P, real TUN) and a P2pTlsTunnel in the role the
 * config file given as argument says. It prints `READY`, then `ESTABLISHED <json>` once the data
 * channel has its first key (or `ERROR <message>`), `ACTIVE <key-id>` when a renegotiated key
 * takes over, `DROPPED <n>` when a packet fails tls-auth or
 * tls-crypt; a line `stats` on stdin makes it print
 * `RESULT <json>` (the peer's counters, the control packets seen both ways, the TLS key log and
 * the derived keys), tear everything down and exit: the test reads the counters the traffic
 * moved, and the capture script turns the rest into vectors.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { OvpnInterface } from '../../src/device/ovpn-interface.js';
import { P2pTlsTunnel } from '../../src/openvpn/p2p-tunnel.js';
import { parsePushed } from '../../src/openvpn/pushed.js';
import type { Role } from '../../src/openvpn/session.js';
import { TlsAuth, TlsCrypt } from '../../src/openvpn/tls-wrap.js';

export interface NsConfig {
  role: Role;
  ifname: string;
  /** Our tunnel address; absent for a pull client, which takes the pushed one. */
  vpnAddress?: string;
  transport?: 'udp' | 'tcp';
  remoteCertTls?: 'server' | 'client';
  /** Client only: pull our address, peer-id and cipher from an OpenVPN server. */
  pull?: boolean;
  localPort: number;
  remoteIpv4: string;
  remotePort: number;
  ca: string;
  cert: string;
  key: string;
  ciphers: string[];
  exporter: boolean;
  /** Server for pull clients: the peer-id and options it pushes. */
  push?: { peerId: number; options: string[] };
  /** The data channel's keepalive (interval, timeout in seconds), as the pushed ping settings say. */
  keepalive?: [number, number];
  /** Control-channel wrapping: the static key as hex; tls-auth with our key-direction. */
  wrap?: { mode: 'tls-crypt' | 'tls-auth'; key: string; keyDirection?: 0 | 1 };
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as NsConfig;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
const say = (line: string) => process.stdout.write(`${line}\n`);

const iface = OvpnInterface.create({ name: config.ifname, mode: 'P2P' });
if (config.vpnAddress !== undefined) ip('addr', 'add', config.vpnAddress, 'dev', config.ifname);
ip('link', 'set', config.ifname, 'up');
const packets: { direction: 'in' | 'out'; hex: string }[] = [];
const keylog: string[] = [];
let keys: Record<string, string> = {};
const wrapKey = config.wrap === undefined ? undefined : Buffer.from(config.wrap.key, 'hex');
const wrap =
  config.wrap === undefined || wrapKey === undefined
    ? undefined
    : config.wrap.mode === 'tls-crypt'
      ? new TlsCrypt(wrapKey, config.role === 'server')
      : new TlsAuth(wrapKey, config.wrap.keyDirection);
const tunnel = new P2pTlsTunnel({
  ...(wrap === undefined ? {} : { wrap }),
  ...(config.push === undefined ? {} : { push: config.push }),
  ...(config.pull === true ? { pull: true } : {}),
  ...(config.transport === undefined ? {} : { transport: config.transport }),
  ...(config.remoteCertTls === undefined ? {} : { remoteCertTls: config.remoteCertTls }),
  ...(config.keepalive === undefined
    ? {}
    : { keepaliveInterval: config.keepalive[0], keepaliveTimeout: config.keepalive[1] }),
  role: config.role,
  iface,
  localPort: config.localPort,
  remoteIpv4: config.remoteIpv4,
  remotePort: config.remotePort,
  tls: { ca: config.ca, cert: config.cert, key: config.key },
  ciphers: config.ciphers,
  exporter: config.exporter,
  trace: (direction, packet) => {
    packets.push({ direction, hex: packet.toString('hex') });
    if (direction === 'in') queueMicrotask(reportDrops);
  },
  keylog: (line) => keylog.push(line.toString('utf8').trim()),
});
let peerId: number | undefined;
const keyIds: number[] = [];
let dropsSeen = 0;
/** Runs after each received packet was handled: a refused one is announced, for tests to await. */
function reportDrops(): void {
  const { unauthenticated } = tunnel.session.stats;
  if (unauthenticated === dropsSeen) return;
  dropsSeen = unauthenticated;
  say(`DROPPED ${dropsSeen}`);
}
tunnel.on('established', (e) => {
  keyIds.push(e.keyId);
  if (e.keyId !== 0) return;
  peerId = tunnel.dataPeerId;
  let address: string | undefined;
  const ifconfig = e.pushed === undefined ? undefined : parsePushed(e.pushed).ifconfig;
  if (ifconfig !== undefined) {
    address = ifconfig.local;
    if (ifconfig.prefixLength !== undefined)
      ip('addr', 'add', `${ifconfig.local}/${ifconfig.prefixLength}`, 'dev', config.ifname);
    else ip('addr', 'add', ifconfig.local, 'peer', ifconfig.remote!, 'dev', config.ifname);
  }
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  keys = {
    encryptKey: hex(e.keys.encryptDir.cipherKey),
    encryptNonceTail: hex(e.keys.encryptDir.nonceTail),
    decryptKey: hex(e.keys.decryptDir.cipherKey),
    decryptNonceTail: hex(e.keys.decryptDir.nonceTail),
  };
  say(
    `ESTABLISHED ${JSON.stringify({ peerId: e.peerId, cipher: e.cipher, keyMethod: e.keyMethod, commonName: e.commonName, ivProto: e.peerInfo.get('IV_PROTO'), ivVer: e.peerInfo.get('IV_VER'), pushed: e.pushed, address })}`,
  );
});
tunnel.on('error', (error) => say(`ERROR ${error.message}`));
tunnel.session.on('pushed', (reply) => say(`PUSHED ${reply}`));
tunnel.session.on('active', (keyId) => say(`ACTIVE ${keyId}`));
tunnel.start().then(
  () => say('READY'),
  (error: Error) => say(`ERROR ${error.message}`),
);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  const peer = peerId === undefined ? null : iface.getPeer(peerId);
  const { session } = tunnel;
  const result = {
    peer,
    session: session.stats,
    reliable: session.reliableStats,
    sessionId: session.sessionId.toString('hex'),
    remoteSessionId: session.remoteSessionId?.toString('hex'),
    keys,
    keyIds,
    packets,
    keylog,
  };
  say(`RESULT ${JSON.stringify(result)}`);
  tunnel.close();
  iface.destroy();
  process.stdin.destroy();
});
