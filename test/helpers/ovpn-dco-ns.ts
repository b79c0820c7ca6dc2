/**
 * `ovpn-dco --config …` (src/cli/ovpn-dco.ts) against a real `openvpn --config …`, both run
 * from config files written here, in two throw-away namespaces joined by a veth pair
 * (10.96.0.1 ours, 10.96.0.2 theirs). stop() undoes everything newest first, by pid and by
 * name, whatever happened before: processes, namespaces, the certificate directory.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Proc, Scene } from './openvpn-harness.js';
import type { Pki } from './pki.js';

export const OVPN_DCO = fileURLToPath(new URL('../../src/cli/ovpn-dco.js', import.meta.url));
export const OVPN_CLI = fileURLToPath(new URL('../../src/cli/ovpn-cli.js', import.meta.url));
export const OUR_LINK = '10.96.0.1';
export const THEIR_LINK = '10.96.0.2';

export class OvpnDcoHarness extends Scene {
  /** [ours, theirs]. */
  readonly ns: [string, string];
  private pkiMade: Pki | undefined;

  /** `prefix` starts the namespace names (with a random tag), so parallel runs keep apart. */
  constructor(prefix = 'odc') {
    super();
    const tag = randomBytes(3).toString('hex');
    this.ns = [`${prefix}${tag}a`, `${prefix}${tag}b`];
  }

  get pki(): Pki {
    if (this.pkiMade === undefined) throw new Error('setup() first');
    return this.pkiMade;
  }

  /** Certificates, namespaces and the veth pair; everything made is recorded for stop() as it is made. */
  setup(): void {
    this.pkiMade = this.makeCertificates();
    for (const ns of this.ns) this.addNamespace(ns);
    const [a, b] = this.ns;
    execFileSync('ip', ['-n', a, 'link', 'add', 'odc0', 'type', 'veth', 'peer', 'name', 'odc1', 'netns', b]);
    execFileSync('ip', ['-n', a, 'addr', 'add', `${OUR_LINK}/24`, 'dev', 'odc0']);
    execFileSync('ip', ['-n', b, 'addr', 'add', `${THEIR_LINK}/24`, 'dev', 'odc1']);
    execFileSync('ip', ['-n', a, 'link', 'set', 'odc0', 'up']);
    execFileSync('ip', ['-n', b, 'link', 'set', 'odc1', 'up']);
  }

  /** Writes a config file into the certificate directory; returns its path. */
  writeConfig(name: string, lines: string[]): string {
    const path = join(this.pki.dir, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  /**
   * A `server.conf` as OpenVPN's sample has it (UDP 1194, a 10.8.0.0/24 pool with topology subnet,
   * the server certificate), for ovpn-dco or openvpn, with `extra` lines after; returns its path.
   */
  writeServerConfig(dev: string, extra: string[]): string {
    const { files } = this.pki;
    return this.writeConfig('server.conf', [
      'port 1194',
      'proto udp',
      `dev ${dev}`,
      `ca ${files.ca}`,
      `cert ${files.serverCert}`,
      `key ${files.serverKey}`,
      'dh none',
      'server 10.8.0.0 255.255.255.0',
      'topology subnet',
      ...extra,
    ]);
  }

  /** A fresh static key file (tls-auth, tls-crypt) made by openvpn itself; returns its path. */
  newStaticKey(name: string): string {
    const path = join(this.pki.dir, name);
    execFileSync('openvpn', ['--genkey', 'secret', path], { stdio: 'ignore' });
    return path;
  }

  /** `ovpn-dco --config <ours>` in our namespace, once it says it is up. */
  async startOurs(config: string): Promise<Proc> {
    const p = this.spawn('ovpn-dco', this.ns[0], [process.execPath, OVPN_DCO, '--config', config]);
    await p.waitLine(/Initialization Sequence Completed/, 15_000);
    return p;
  }

  /** `openvpn --config <theirs>` in their namespace, once it says it is up. */
  async startTheirs(config: string): Promise<Proc> {
    const p = this.spawn('openvpn', this.ns[1], ['openvpn', '--config', config]);
    await p.waitLine(/Initialization Sequence Completed/, 30_000);
    return p;
  }

  /** `ovpn-cli listen_mcast` in our namespace, once it is subscribed. */
  async listen(): Promise<Proc> {
    const p = this.spawn('listen_mcast', this.ns[0], [process.execPath, OVPN_CLI, 'listen_mcast']);
    await p.waitLine(/^listening for notifications on /, 10_000);
    return p;
  }

  /** Runs a command in a namespace: 0 ours, 1 theirs. */
  exec(side: 0 | 1, args: string[], timeoutMs = 30_000): string {
    return execFileSync('ip', ['netns', 'exec', this.ns[side], ...args], {
      timeout: timeoutMs,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** `ovpn-cli <ifname> get_peer [id]` in our namespace, as a map of its `label: value` lines (one peer). */
  getPeer(ifname: string, peerId?: number): Map<string, string> {
    const id = peerId === undefined ? [] : [String(peerId)];
    const text = this.exec(0, [process.execPath, OVPN_CLI, ifname, 'get_peer', ...id]);
    const fields = new Map<string, string>();
    for (const match of text.matchAll(/^\s*([^:\n]+): (.*)$/gm)) fields.set(match[1]!.trim(), match[2]!.trim());
    return fields;
  }
}
