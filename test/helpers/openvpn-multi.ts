/**
 * Our multi-client server (test/helpers/openvpn-server-ns.ts) in one throw-away namespace and
 * N real `openvpn --client` processes, each in its own namespace joined to the server's by a
 * veth pair (10.97.<i>.1 <-> 10.97.<i>.2). stop() undoes everything newest first, by pid and by
 * name, whatever happened before.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStaticKey } from '../../src/openvpn/static-key.js';
import { namespaceStem, type Proc, Scene } from './openvpn-harness.js';
import type { ServerNsConfig } from './openvpn-server-ns.js';
import type { Pki } from './pki.js';

const SERVER_HELPER = fileURLToPath(new URL('./openvpn-server-ns.js', import.meta.url));

export class MultiClientHarness extends Scene {
  readonly serverNs: string;
  readonly clientNs: string[];
  server: Proc | undefined;
  clients: Proc[] = [];
  pki: Pki | undefined;

  constructor(readonly count: number) {
    super();
    const stem = namespaceStem('ovm');
    this.serverNs = `${stem}s`;
    this.clientNs = Array.from({ length: count }, (_, i) => `${stem}c${i}`);
  }

  /** Everything up to the point where every client printed "Initialization Sequence Completed". */
  async start(ciphers: string[]): Promise<void> {
    for (const ns of [this.serverNs, ...this.clientNs]) this.addNamespace(ns);
    for (const [i, ns] of this.clientNs.entries()) {
      const s = this.serverNs;
      execFileSync('ip', ['-n', s, 'link', 'add', `ovs${i}`, 'type', 'veth', 'peer', 'name', 'ovc', 'netns', ns]);
      execFileSync('ip', ['-n', s, 'addr', 'add', `10.97.${i}.1/24`, 'dev', `ovs${i}`]);
      execFileSync('ip', ['-n', ns, 'addr', 'add', `10.97.${i}.2/24`, 'dev', 'ovc']);
      execFileSync('ip', ['-n', s, 'link', 'set', `ovs${i}`, 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'ovc', 'up']);
    }
    const pki = this.makeCertificates();
    this.pki = pki;
    const keyFile = join(pki.dir, 'tls-crypt.key');
    execFileSync('openvpn', ['--genkey', 'secret', keyFile], { stdio: 'ignore' });
    const config: ServerNsConfig = {
      ca: pki.ca,
      cert: pki.serverCert,
      key: pki.serverKey,
      ciphers,
      tlsCrypt: Buffer.from(parseStaticKey(readFileSync(keyFile, 'utf8'), keyFile)).toString('hex'),
    };
    const configFile = join(pki.dir, 'server.json');
    writeFileSync(configFile, JSON.stringify(config));
    this.server = this.spawn('our server', this.serverNs, [process.execPath, SERVER_HELPER, configFile]);
    await this.server.waitLine(/^READY$/, 10_000);
    this.clients = this.clientNs.map((ns, i) =>
      this.spawn(`openvpn client ${i}`, ns, [
        'openvpn',
        '--client',
        '--dev',
        'tun0',
        '--dev-type',
        'tun',
        '--disable-dco',
        '--proto',
        'udp',
        '--remote',
        `10.97.${i}.1`,
        '1194',
        '--nobind',
        '--ca',
        pki.files.ca,
        '--cert',
        pki.files.clientCert,
        '--key',
        pki.files.clientKey,
        '--remote-cert-tls',
        'server',
        '--tls-crypt',
        keyFile,
        '--explicit-exit-notify',
        '1',
        '--data-ciphers',
        ciphers.join(':'),
        '--verb',
        '3',
      ]),
    );
    await Promise.all(this.clients.map((c) => c.waitLine(/Initialization Sequence Completed/, 30_000)));
  }

  /** Runs a command in client i's namespace. */
  inClient(i: number, args: string[], timeoutMs = 30_000): string {
    return execFileSync('ip', ['netns', 'exec', this.clientNs[i]!, ...args], { timeout: timeoutMs, encoding: 'utf8' });
  }

  spawnInServer(name: string, args: string[]): Proc {
    return this.spawn(name, this.serverNs, args);
  }

  results(): Promise<any> {
    return this.statsOf(this.server!);
  }
}
