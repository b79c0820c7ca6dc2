/**
 * `ovpn-dco --config …` (src/cli/ovpn-dco.ts) against a real `openvpn --config …`, both run
 * from config files written here, in two throw-away namespaces joined by a veth pair
 * (10.96.0.1 ours, 10.96.0.2 theirs). stop() undoes everything newest first, by pid and by
 * name, whatever happened before: processes, namespaces, the certificate directory.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { namespaceStem, type Proc, Scene } from './openvpn-harness.js';
import type { Pki } from './pki.js';

export const OVPN_DCO = fileURLToPath(new URL('../../src/cli/ovpn-dco.js', import.meta.url));
export const OVPN_CLI = fileURLToPath(new URL('../../src/cli/ovpn-cli.js', import.meta.url));
export const OUR_LINK = '10.96.0.1';
export const THEIR_LINK = '10.96.0.2';

export class OvpnDcoHarness extends Scene {
  /** [ours, theirs]. */
  readonly ns: [string, string];
  private pkiMade: Pki | undefined;
  private readonly extraClients: string[] = [];

  /** `prefix` starts the namespace names (after OVPN_TEST_NS_PREFIX, before a random tag). */
  constructor(prefix = 'odc') {
    super();
    const stem = namespaceStem(prefix);
    this.ns = [`${stem}a`, `${stem}b`];
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

  /**
   * One more client namespace, joined to ours by its own veth pair: 10.96.<n>.1 ours, .2 its
   * (n from 1). Returns its name and our address on that link.
   */
  addClient(): { ns: string; server: string } {
    const n = this.extraClients.length + 1;
    const ns = `${this.ns[0].slice(0, -1)}c${n}`;
    this.addNamespace(ns);
    this.extraClients.push(ns);
    execFileSync('ip', [
      '-n',
      this.ns[0],
      'link',
      'add',
      `odcs${n}`,
      'type',
      'veth',
      'peer',
      'name',
      'odcc',
      'netns',
      ns,
    ]);
    execFileSync('ip', ['-n', this.ns[0], 'addr', 'add', `10.96.${n}.1/24`, 'dev', `odcs${n}`]);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `10.96.${n}.2/24`, 'dev', 'odcc']);
    execFileSync('ip', ['-n', this.ns[0], 'link', 'set', `odcs${n}`, 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'odcc', 'up']);
    return { ns, server: `10.96.${n}.1` };
  }

  /** The lines of a multi-client server.conf (10.8.0.0/24, port 1194), before the case's own. */
  serverLines(proto: 'udp' | 'tcp-server' = 'udp', dev = 'tun0'): string[] {
    const { files } = this.pki;
    return [
      'port 1194',
      `proto ${proto}`,
      `dev ${dev}`,
      `ca ${files.ca}`,
      `cert ${files.serverCert}`,
      `key ${files.serverKey}`,
      'dh none',
      'server 10.8.0.0 255.255.255.0',
      'topology subnet',
      'keepalive 10 60',
      // Every test client has the one client certificate: without this, each would replace the last.
      'duplicate-cn',
    ];
  }

  /** The lines of a client.conf for that server at `remote`, before the case's own. */
  clientLines(proto: 'udp' | 'tcp-client' = 'udp', remote = OUR_LINK, dev = 'tun'): string[] {
    const { files } = this.pki;
    return [
      'client',
      `dev ${dev}`,
      `proto ${proto}`,
      `remote ${remote} 1194`,
      'nobind',
      `ca ${files.ca}`,
      `cert ${files.clientCert}`,
      `key ${files.clientKey}`,
      'remote-cert-tls server',
    ];
  }

  /** Writes a config file into the certificate directory; returns its path. */
  writeConfig(name: string, lines: string[]): string {
    const path = join(this.pki.dir, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
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

  /** `openvpn --config <theirs>` in their namespace (or `ns`), once it says it is up. */
  async startTheirs(config: string, ns = this.ns[1]): Promise<Proc> {
    const p = this.spawn(`openvpn in ${ns}`, ns, ['openvpn', '--config', config]);
    await p.waitLine(/Initialization Sequence Completed/, 30_000);
    return p;
  }

  /** Any program in a namespace (0 ours, 1 theirs, or one named), stopped with the rest. */
  run(name: string, side: 0 | 1 | string, args: string[]): Proc {
    return this.spawn(name, typeof side === 'string' ? side : this.ns[side], args);
  }

  /** `ovpn-cli listen_mcast` in our namespace, once it is subscribed. */
  async listen(): Promise<Proc> {
    const p = this.spawn('listen_mcast', this.ns[0], [process.execPath, OVPN_CLI, 'listen_mcast']);
    await p.waitLine(/^listening for notifications on /, 10_000);
    return p;
  }

  /** Runs a command in a namespace: 0 ours, 1 theirs, or one named. */
  exec(side: 0 | 1 | string, args: string[], timeoutMs = 30_000): string {
    const ns = typeof side === 'string' ? side : this.ns[side];
    return execFileSync('ip', ['netns', 'exec', ns, ...args], {
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
