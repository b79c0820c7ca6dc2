/**
 * Our multi-client server inside a network namespace, for test/openvpn-e2e.test.ts: an MP
 * OvpnInterface (real TUN, 10.99.0.1/24, forwarding on so clients reach each other through it)
 * and an OpenvpnServer on UDP 1194 handing out 10.99.0.2 and up. Prints `READY`, then
 * `CONNECTED <json>` / `DISCONNECTED <json>` per client, `ERROR <message>`; a line `stats` on
 * stdin prints `RESULT <json>` (every peer's counters), tears down and exits.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { OvpnInterface } from '../../src/device/ovpn-interface.js';
import { OpenvpnServer } from '../../src/openvpn/server.js';
import { TlsCrypt } from '../../src/openvpn/tls-wrap.js';

export interface ServerNsConfig {
  ca: string;
  cert: string;
  key: string;
  ciphers: string[];
  /** tls-crypt static key, hex. */
  tlsCrypt?: string;
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ServerNsConfig;
const run = (...args: string[]) => execFileSync(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
const say = (line: string) => process.stdout.write(`${line}\n`);

run('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
const iface = OvpnInterface.create({ name: 'tun0', mode: 'MP' });
run('ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'tun0');
run('ip', 'link', 'set', 'tun0', 'up');
const wrapKey = config.tlsCrypt === undefined ? undefined : Buffer.from(config.tlsCrypt, 'hex');
const server = new OpenvpnServer({
  iface,
  localPort: 1194,
  gateway: '10.99.0.1',
  prefixLength: 24,
  pool: Array.from({ length: 8 }, (_, i) => `10.99.0.${i + 2}`),
  ping: 10,
  pingRestart: 60,
  tls: { ca: config.ca, cert: config.cert, key: config.key },
  ciphers: config.ciphers,
  remoteCertTls: 'client',
  ...(wrapKey === undefined ? {} : { wrap: () => new TlsCrypt(wrapKey, true) }),
});
server.on('connected', ({ established, ...info }) => say(`CONNECTED ${JSON.stringify(info)}`));
server.on('disconnected', (info) => say(`DISCONNECTED ${JSON.stringify(info)}`));
server.on('refused', (info) => say(`REFUSED ${JSON.stringify(info)}`));
void server.start().then(() => say('READY'));

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  say(`RESULT ${JSON.stringify({ peers: iface.getPeers(), clients: server.clients() })}`);
  server.close();
  iface.destroy();
  process.stdin.destroy();
});
