/**
 * A real openvpn 2.6 against our control plane, between two throw-away network namespaces joined
 * by a veth pair: our end (test/helpers/openvpn-ns.ts, an OvpnInterface with a P2pTlsTunnel) in
 * the first, `openvpn` in the second. Everything started is recorded and `stop()` undoes it in
 * reverse, by pid and by name, whatever happened before: processes (SIGTERM, then SIGKILL),
 * namespaces, the certificate directory.
 *
 * Waits are on lines the processes print; a deadline turns a hang into an error with their logs.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStaticKey } from '../../src/openvpn/static-key.js';
import type { NsConfig } from './openvpn-ns.js';
import { makePki, type Pki } from './pki.js';

const NS_HELPER = fileURLToPath(new URL('./openvpn-ns.js', import.meta.url));
export const OUR_LINK = '10.98.0.1';
export const THEIR_LINK = '10.98.0.2';
export const OUR_VPN = '10.99.0.1';
export const THEIR_VPN = '10.99.0.2';
export const PORT = 1194;
/** The peer-id our server pushes to a pull client. */
export const PUSHED_PEER_ID = 7;

/** A process whose output is kept, with a way to await a line. */
export class Proc {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
  ) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const feed = (d: Buffer) => {
      this.output += d.toString('utf8');
      for (const w of this.waiters.splice(0)) w();
    };
    this.child.stdout!.on('data', feed);
    this.child.stderr!.on('data', feed);
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        for (const w of this.waiters.splice(0)) w();
        resolve(code);
      }),
    );
  }

  /**
   * Resolves with the first line matching (in what was printed from character `from` on);
   * rejects when the process exits first or time runs out.
   */
  waitLine(pattern: RegExp, timeoutMs: number, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const finish = () => clearTimeout(timer);
      const check = () => {
        // Only whole lines: a long one (a RESULT of 64 KiB and more) arrives in several chunks.
        const exited = this.child.exitCode !== null || this.child.signalCode !== null;
        const text = this.output.slice(from);
        const line = (exited ? text : text.slice(0, text.lastIndexOf('\n') + 1))
          .split('\n')
          .find((l) => pattern.test(l));
        if (line !== undefined) {
          finish();
          resolve(line);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish();
          reject(new Error(`${this.name} exited before printing ${pattern}\n${this.tail()}`));
        } else this.waiters.push(check);
      };
      check();
    });
  }

  tail(lines = 30): string {
    return `--- ${this.name} ---\n${this.output.split('\n').slice(-lines).join('\n')}`;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(killer);
  }
}

export interface HarnessOptions {
  ciphers: string[];
  /** openvpn's --data-ciphers. */
  theirCiphers: string[];
  exporter: boolean;
  verb?: number;
  /** Control-channel wrapping with a fresh static key (`openvpn --genkey secret`); tls-auth: openvpn key-direction 1, ours 0. */
  wrap?: 'tls-crypt' | 'tls-auth';
  /**
   * With ourRole 'server': openvpn as a point-to-point tls-client ('p2p', default) or as a pull
   * client (`--client`, 'pull') that gets its address, peer-id and cipher from our PUSH_REPLY.
   * With ourRole 'client': openvpn as a point-to-point tls-server ('p2p') or as a multi-client
   * server (`--server 10.99.0.0 255.255.255.0`, topology subnet, keepalive 10 60: 'server')
   * whose PUSH_REPLY we pull.
   */
  theirMode?: 'p2p' | 'pull' | 'server';
  /** Our role, default 'server'; openvpn takes the other one (tls-client or tls-server). */
  ourRole?: 'server' | 'client';
  /** The transport, default UDP; over TCP openvpn is tcp-client or tcp-server (the other of ours). */
  proto?: 'udp' | 'tcp';
  /** More openvpn arguments, e.g. `--reneg-sec 3`. */
  theirExtra?: string[];
  /** openvpn (as client) presents the expired client certificate (a refusal case). */
  theirCertExpired?: boolean;
  /** openvpn gets a different static key than ours (a refusal case). */
  theirKeyDiffers?: boolean;
}

/**
 * The stem of a test's namespace names: `kind` and a random tag, so runs side by side never
 * collide, after OVPN_TEST_NS_PREFIX when set (one prefix per developer or CI job sharing a host).
 */
export function namespaceStem(kind: string): string {
  return `${process.env.OVPN_TEST_NS_PREFIX ?? ''}${kind}${randomBytes(3).toString('hex')}`;
}

/**
 * What a namespace test makes, recorded as it is made and undone newest first by stop(), safe
 * after any failure and more than once: processes, namespaces (with lo up) and certificates.
 */
export class Scene {
  readonly procs: Proc[] = [];
  private readonly namespaces: string[] = [];
  private certificates: Pki | undefined;

  async stop(): Promise<void> {
    for (const p of this.procs.splice(0).reverse()) await p.stop();
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Already gone: nothing to undo.
      }
    }
    this.certificates?.remove();
    this.certificates = undefined;
  }

  protected addNamespace(ns: string): void {
    execFileSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  protected makeCertificates(): Pki {
    this.certificates = makePki();
    return this.certificates;
  }

  protected spawn(name: string, ns: string, args: string[]): Proc {
    const p = new Proc(name, 'ip', ['netns', 'exec', ns, ...args]);
    this.procs.push(p);
    return p;
  }

  /**
   * iperf3 TCP for `seconds` from `clientNs` to a one-off server on `address` in `serverNs`;
   * returns the bytes the server received.
   */
  async iperf(serverNs: string, clientNs: string, address: string, seconds = 2): Promise<number> {
    const server = this.spawn('iperf3 -s', serverNs, ['iperf3', '-s', '-1', '--forceflush', '-B', address]);
    await server.waitLine(/Server listening/, 5_000);
    const args = ['netns', 'exec', clientNs, 'iperf3', '-c', address, '-t', String(seconds), '-J'];
    const run = JSON.parse(execFileSync('ip', args, { timeout: 30_000, encoding: 'utf8' }));
    await server.stop();
    return run.end.sum_received.bytes as number;
  }

  /** Asks one of our test programs for its counters and what it recorded; it then shuts down. */
  protected async statsOf(proc: Proc): Promise<any> {
    proc.child.stdin!.write('stats\n');
    const line = await proc.waitLine(/^RESULT /, 10_000);
    return JSON.parse(line.slice('RESULT '.length));
  }
}

export class OpenvpnHarness extends Scene {
  readonly ns: [string, string];
  pki: Pki | undefined;
  /** The static key file's text, when wrapping. */
  staticKey: string | undefined;
  ours: Proc | undefined;
  theirs: Proc | undefined;

  constructor() {
    super();
    const stem = namespaceStem('ovp');
    this.ns = [`${stem}a`, `${stem}b`];
  }

  /** setup(), then resolves once both ends report the tunnel up, with our ESTABLISHED json. */
  async start(options: HarnessOptions): Promise<string> {
    await this.setup(options);
    const established = await this.ours!.waitLine(/^(ESTABLISHED|ERROR) /, 20_000);
    // (ERROR may also come from start(), e.g. a refused TCP connection.)
    if (established.startsWith('ERROR')) throw new Error(`our end failed: ${established}\n${this.theirs!.tail()}`);
    // A multi-client server is up from the start; it has a client once it pushed to it.
    await this.theirs!.waitLine(
      options.theirMode === 'server' ? /SENT CONTROL \[client1\]: 'PUSH_REPLY/ : /Initialization Sequence Completed/,
      20_000,
    );
    return established.slice('ESTABLISHED '.length);
  }

  /** Namespaces, link, certificates, our end (until READY), then openvpn started. */
  async setup(options: HarnessOptions): Promise<void> {
    const [a, b] = this.ns;
    for (const ns of this.ns) this.addNamespace(ns);
    execFileSync('ip', ['-n', a, 'link', 'add', 'ovl0', 'type', 'veth', 'peer', 'name', 'ovl1', 'netns', b]);
    execFileSync('ip', ['-n', a, 'addr', 'add', `${OUR_LINK}/24`, 'dev', 'ovl0']);
    execFileSync('ip', ['-n', b, 'addr', 'add', `${THEIR_LINK}/24`, 'dev', 'ovl1']);
    execFileSync('ip', ['-n', a, 'link', 'set', 'ovl0', 'up']);
    execFileSync('ip', ['-n', b, 'link', 'set', 'ovl1', 'up']);
    const pki = this.makeCertificates();
    this.pki = pki;
    const server = (options.ourRole ?? 'server') === 'server';
    const config: NsConfig = {
      role: server ? 'server' : 'client',
      ifname: 'tun0',
      vpnAddress: `${OUR_VPN}/24`,
      localPort: PORT,
      remoteIpv4: THEIR_LINK,
      remotePort: PORT,
      ca: pki.ca,
      cert: server ? pki.serverCert : pki.clientCert,
      key: server ? pki.serverKey : pki.clientKey,
      ciphers: options.ciphers,
      exporter: options.exporter,
      // As openvpn's own configs do: each end insists the other's certificate fits its role.
      remoteCertTls: server ? 'client' : 'server',
    };
    if (options.proto === 'tcp') config.transport = 'tcp';
    const pull = server && options.theirMode === 'pull';
    const mpServer = !server && options.theirMode === 'server';
    if (mpServer) {
      config.pull = true;
      delete config.vpnAddress;
    }
    if (pull) {
      config.push = {
        peerId: PUSHED_PEER_ID,
        options: [
          'topology subnet',
          `route-gateway ${OUR_VPN}`,
          'ping 10',
          'ping-restart 60',
          `ifconfig ${THEIR_VPN} 255.255.255.0`,
        ],
      };
      config.keepalive = [10, 60];
    }
    const wrapArgs: string[] = [];
    if (options.wrap !== undefined) {
      const keyFile = join(pki.dir, 'static.key');
      execFileSync('openvpn', ['--genkey', 'secret', keyFile], { stdio: 'ignore' });
      this.staticKey = readFileSync(keyFile, 'utf8');
      const key = Buffer.from(parseStaticKey(this.staticKey, 'static key')).toString('hex');
      // tls-auth: the tls-server side has key-direction 0, the client 1, as usual.
      config.wrap =
        options.wrap === 'tls-crypt'
          ? { mode: 'tls-crypt', key }
          : { mode: 'tls-auth', key, keyDirection: server ? 0 : 1 };
      const theirFile = join(pki.dir, 'their-static.key');
      if (options.theirKeyDiffers) execFileSync('openvpn', ['--genkey', 'secret', theirFile], { stdio: 'ignore' });
      const file = options.theirKeyDiffers ? theirFile : keyFile;
      wrapArgs.push(
        ...(options.wrap === 'tls-crypt' ? ['--tls-crypt', file] : ['--tls-auth', file, server ? '1' : '0']),
      );
    }
    const configFile = join(pki.dir, 'ours.json');
    writeFileSync(configFile, JSON.stringify(config));
    const startOurs = async () => {
      this.ours = this.spawn('ours', a, [process.execPath, NS_HELPER, configFile]);
      const ready = await this.ours.waitLine(/^(READY|ERROR .*)$/, 10_000);
      if (ready !== 'READY') throw new Error(`our end did not start: ${ready}`);
    };
    // The tls-server goes first, so the client's first reset finds it listening.
    if (server) await startOurs();
    const serverCreds = ['--cert', pki.files.serverCert, '--key', pki.files.serverKey, '--remote-cert-tls', 'client'];
    const role = mpServer
      ? [
          '--server',
          '10.99.0.0',
          '255.255.255.0',
          '--topology',
          'subnet',
          '--keepalive',
          '10',
          '60',
          '--dh',
          'none',
          ...serverCreds,
        ]
      : pull
        ? ['--client', '--cert', pki.files.clientCert, '--key', pki.files.clientKey, '--remote-cert-tls', 'server']
        : server
          ? [
              '--tls-client',
              '--cert',
              options.theirCertExpired ? pki.files.expiredCert : pki.files.clientCert,
              '--key',
              options.theirCertExpired ? pki.files.expiredKey : pki.files.clientKey,
              '--remote-cert-tls',
              'server',
            ]
          : [
              '--tls-server',
              '--dh',
              'none',
              '--cert',
              pki.files.serverCert,
              '--key',
              pki.files.serverKey,
              '--remote-cert-tls',
              'client',
            ];
    this.theirs = this.spawn('openvpn', b, [
      'openvpn',
      '--dev',
      'tun0',
      '--dev-type',
      'tun',
      '--disable-dco',
      '--proto',
      options.proto !== 'tcp' ? 'udp' : server ? 'tcp-client' : 'tcp-server',
      '--local',
      THEIR_LINK,
      '--lport',
      String(PORT),
      ...(mpServer ? [] : ['--remote', OUR_LINK, '--rport', String(PORT)]),
      ...(pull || mpServer ? [] : ['--ifconfig', THEIR_VPN, OUR_VPN]),
      '--ca',
      pki.files.ca,
      ...role,
      '--data-ciphers',
      options.theirCiphers.join(':'),
      ...wrapArgs,
      ...(options.theirExtra ?? []),
      '--verb',
      String(options.verb ?? 3),
    ]);
    if (!server) {
      const listening =
        options.proto === 'tcp'
          ? /Listening for incoming TCP connection/
          : mpServer
            ? /Initialization Sequence Completed/
            : /UDPv4 link remote/;
      await this.theirs.waitLine(listening, 10_000);
      await startOurs();
    }
  }

  /** Runs a command in the openvpn side's namespace. */
  inTheirs(args: string[], timeoutMs = 30_000): string {
    return execFileSync('ip', ['netns', 'exec', this.ns[1], ...args], { timeout: timeoutMs, encoding: 'utf8' });
  }

  /** A background command in our side's namespace (e.g. iperf3 -s), stopped by stop(). */
  spawnInOurs(name: string, args: string[]): Proc {
    return this.spawn(name, this.ns[0], args);
  }

  /** A background command in openvpn's namespace (e.g. a ping flood), stopped by stop(). */
  spawnInTheirs(name: string, args: string[]): Proc {
    return this.spawn(name, this.ns[1], args);
  }

  /** Asks our end for its counters and what it recorded; it then shuts down by itself. */
  results(): Promise<any> {
    return this.statsOf(this.ours!);
  }
}
