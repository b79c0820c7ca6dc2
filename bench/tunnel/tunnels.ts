/**
 * The tunnels under test, all set up side by side between the same two namespaces (each on its
 * own device, UDP port and inner subnet) so that every round can measure them back to back under
 * the same machine state:
 *
 *   ours          dist/ of this repository, configured with ovpn-cli like scripts/demo.sh
 *   OpenVPN 2.6   Debian's openvpn, userspace (--disable-dco), point-to-point TLS mode with a
 *                 throwaway CA made here, from a tls-server and a tls-client config file
 *   ovpn-dco      our whole stack (src/cli/ovpn-dco.ts: TLS control channel and data channel)
 *                 run from the very same two config files as the OpenVPN row
 *   wireguard-go  Debian's wireguard-go, configured with wg
 *
 * Every tunnel uses the same inner MTU, 1428 (our default: room for a 1400-byte UDP payload,
 * and every implementation's packet still fits a 1500-byte veth over IPv4).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINK, NS } from './netns.js';
import {
  type Background,
  background,
  cmdline,
  killPid,
  netnsPids,
  onCleanup,
  out,
  run,
  runSync,
  waitFor,
} from './sys.js';

export type Impl = 'ours' | 'ovpn-dco' | 'openvpn' | 'wireguard-go';
export type Cipher = 'AES-256-GCM' | 'CHACHA20-POLY1305';

export const MTU = 1428;

/** Repository root of the running bench (dist/bench/tunnel/x.js → ../../..). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
export const OVPN_CLI = join(REPO_ROOT, 'dist/src/cli/ovpn-cli.js');
const OVPN_DCO = join(REPO_ROOT, 'dist/src/cli/ovpn-dco.js');
const KEY_FILE = join(REPO_ROOT, 'tests/data64.key');

export interface Tunnel {
  /** Stable id used in JSON: ours-aes, ours-chacha, openvpn-aes, openvpn-chacha, wireguard-go. */
  readonly id: string;
  readonly impl: Impl;
  readonly cipher: Cipher;
  readonly label: string;
  /** Id of the OpenVPN tunnel this one is compared with. */
  readonly baseline: string;
  /** Inner addresses in namespace a and b. */
  readonly addr: readonly [string, string];
  /** The tunnel device in namespace a and b. */
  readonly devs: readonly [string, string];
  /** The UDP port the tunnel's packets use at both ends. */
  readonly port: number;
  /** The processes doing the tunnel's work, one per namespace. */
  pids: number[];
  /** What the implementation itself reports about the cipher in use (log line or get_key). */
  confirmed: string;
  /** Stops the tunnel (synchronous; safe to call twice). */
  stop(): void;
}

interface Common {
  id: string;
  impl: Impl;
  cipher: Cipher;
  label: string;
  baseline: string;
  subnet: number;
}

function inner(subnet: number): [string, string] {
  return [`10.20${subnet}.0.1`, `10.20${subnet}.0.2`];
}

// ---- ours ---------------------------------------------------------------------------------

const OURS_ALG: Record<Cipher, string> = { 'AES-256-GCM': 'aes', 'CHACHA20-POLY1305': 'chachapoly' };

function cli(ns: string, args: string[]): Promise<string> {
  return out(process.execPath, [OVPN_CLI, ...args], { ns });
}

/** The daemon that owns `dev` in `ns`: the process whose command line names it. */
export function oursDaemonPid(ns: string, dev: string): number | null {
  for (const pid of netnsPids(ns)) {
    const argv = cmdline(pid);
    const i = argv.indexOf('--ifname');
    if (i >= 0 && argv[i + 1] === dev && argv.some((a) => a.endsWith('daemon/main.js'))) return pid;
  }
  return null;
}

const DAEMON = join(REPO_ROOT, 'dist/src/daemon/main.js');

export interface OursOptions {
  /**
   * Node flags for the daemons (e.g. --cpu-prof, which Node 20 refuses in NODE_OPTIONS). With
   * them the daemon is started here, with the arguments ovpn-cli's startDaemon would give it, and
   * new_peer then finds the interface already there; without them ovpn-cli starts it as usual.
   */
  nodeFlags?: string[];
  /** Working directory of daemons started here: V8 drops isolate-*.log files there under --perf-basic-prof. */
  cwd?: string;
}

/** Starts the daemon of `dev` in `ns` directly and waits for its "ready". */
async function launchDaemon(ns: string, dev: string, nodeFlags: string[], cwd?: string): Promise<Background> {
  const d = background(process.execPath, [...nodeFlags, DAEMON, '--ifname', dev, '--mode', 'P2P'], {
    ns,
    ...(cwd ? { cwd } : {}),
  });
  await waitFor(
    `the daemon of ${dev} in ${ns}`,
    () => {
      if (d.child.exitCode !== null) throw new Error(`daemon exited: ${d.output()}`);
      return d.output().includes('ready\n');
    },
    10_000,
  );
  return d;
}

export async function startOurs(c: Common, dev: string, port: number, opts: OursOptions = {}): Promise<Tunnel> {
  const addr = inner(c.subnet);
  const peerId = 1;
  const pids: number[] = [];
  const t: Tunnel = {
    ...c,
    addr,
    devs: [dev, dev],
    port,
    pids,
    confirmed: '',
    stop() {
      for (const ns of NS) {
        runSync(process.execPath, [OVPN_CLI, 'del_iface', dev], ns);
      }
      for (const pid of pids) killPid(pid, 'SIGTERM');
    },
  };
  onCleanup(c.id, () => t.stop());
  for (const i of [0, 1] as const) {
    const other = (1 - i) as 0 | 1;
    const ns = NS[i];
    if (opts.nodeFlags) await launchDaemon(ns, dev, opts.nodeFlags, opts.cwd);
    await cli(ns, [dev, 'new_peer', String(port), String(peerId), LINK[other], String(port), addr[other]]);
    await waitFor(
      `${dev} in ${ns}`,
      async () => (await run('ip', ['-n', ns, 'link', 'show', dev], { allowFail: true })).code === 0,
      5000,
    );
    await run('ip', ['-n', ns, 'link', 'set', dev, 'mtu', String(MTU)]);
    await run('ip', ['-n', ns, 'addr', 'add', `${addr[i]}/24`, 'dev', dev]);
    await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await cli(ns, [dev, 'new_key', String(peerId), OURS_ALG[c.cipher], String(i), KEY_FILE]);
    const pid = oursDaemonPid(ns, dev);
    if (pid === null) throw new Error(`ours: no daemon found for ${dev} in ${ns}`);
    pids.push(pid);
  }
  const key = await cli(NS[0], ['get_key', dev, String(peerId), '1']);
  t.confirmed = key.match(/Cipher: *(.*)/)?.[1]?.trim() ?? key.trim();
  return t;
}

// ---- OpenVPN ------------------------------------------------------------------------------

/** A throwaway CA with one server and one client certificate (EC P-256, valid two days). */
export async function makePki(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const f = (name: string) => join(dir, name);
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=ovpn-dco bench CA',
  ]);
  for (const [name, eku] of [
    ['server', 'serverAuth'],
    ['client', 'clientAuth'],
  ] as const) {
    writeFileSync(f(`${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=${eku}\n`);
    await run('openssl', [
      'req',
      ...ec,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
      '-subj',
      `/CN=bench-${name}`,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.crt`),
    ]);
  }
}

/**
 * The two config files of a point-to-point TLS tunnel, as an OpenVPN user writes them: namespace
 * a is the tls-server, b the tls-client. Returns their paths, [a, b].
 */
function writeP2pConfigs(c: Common, dev: string, port: number, pki: string): [string, string] {
  const addr = inner(c.subnet);
  const paths = [0, 1].map((i) => join(pki, `${c.id}-${i === 0 ? 'tls-server' : 'tls-client'}.conf`));
  for (const i of [0, 1] as const) {
    const other = (1 - i) as 0 | 1;
    const role =
      i === 0
        ? ['tls-server', 'dh none', `cert ${join(pki, 'server.crt')}`, `key ${join(pki, 'server.key')}`]
        : ['tls-client', `cert ${join(pki, 'client.crt')}`, `key ${join(pki, 'client.key')}`];
    const lines = [
      `dev ${dev}`,
      'dev-type tun',
      'disable-dco',
      'proto udp',
      `local ${LINK[i]}`,
      `remote ${LINK[other]}`,
      `port ${port}`,
      `ifconfig ${addr[i]} ${addr[other]}`,
      `tun-mtu ${MTU}`,
      'mssfix 0',
      `data-ciphers ${c.cipher}`,
      `data-ciphers-fallback ${c.cipher}`,
      `ca ${join(pki, 'ca.crt')}`,
      ...role,
      `remote-cert-tls ${i === 0 ? 'client' : 'server'}`,
      'verb 3',
      'mute-replay-warnings',
    ];
    writeFileSync(paths[i]!, `${lines.join('\n')}\n`);
  }
  return paths as [string, string];
}

/** What each program prints once its data channel has keys, and the lines that name the cipher. */
const READY: Record<'openvpn' | 'ovpn-dco', { done: RegExp; cipher: RegExp }> = {
  openvpn: {
    done: /Initialization Sequence Completed/,
    cipher: /Data Channel: cipher|Outgoing Data Channel|peer-id|Data Channel MTU/i,
  },
  'ovpn-dco': { done: /key 0 up, /, cipher: /key 0 up, / },
};

/** OpenVPN (impl 'openvpn') or our whole stack (impl 'ovpn-dco') on both ends, from the same config files. */
export async function startP2pTls(c: Common, dev: string, port: number, pki: string): Promise<Tunnel> {
  const program = c.impl === 'ovpn-dco' ? 'ovpn-dco' : 'openvpn';
  const configs = writeP2pConfigs(c, dev, port, pki);
  const procs: Background[] = [];
  const t: Tunnel = {
    ...c,
    addr: inner(c.subnet),
    devs: [dev, dev],
    port,
    pids: [],
    confirmed: '',
    stop() {
      for (const p of procs) killPid(p.pid, 'SIGTERM');
    },
  };
  onCleanup(c.id, () => t.stop());
  for (const i of [0, 1] as const) {
    const p =
      program === 'openvpn'
        ? background('openvpn', ['--config', configs[i]], { ns: NS[i] })
        : background(process.execPath, [OVPN_DCO, '--config', configs[i]], { ns: NS[i] });
    procs.push(p);
    t.pids.push(p.pid);
  }
  const { done, cipher } = READY[program];
  const tail = (p: Background) => p.output().split('\n').slice(-15).join('\n');
  await Promise.all(
    procs.map((p, i) =>
      waitFor(
        `${program} (${c.id}) in ${NS[i]} to print ${done}`,
        () => {
          if (p.child.exitCode !== null) throw new Error(`${program} exited early:\n${tail(p)}`);
          return done.test(p.output());
        },
        30_000,
        100,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n--- ${program} log (${NS[i]}) ---\n${tail(p)}`);
      }),
    ),
  );
  t.confirmed = procs[0]!
    .output()
    .split('\n')
    .filter((l) => cipher.test(l))
    .map((l) => l.replace(/^\S+ \S+ /, '').trim())
    .join(' | ');
  return t;
}

// ---- wireguard-go -------------------------------------------------------------------------

const WG_RUN_DIR = '/var/run/wireguard';

export async function startWireguard(
  c: Common,
  devs: readonly [string, string],
  port: number,
  keyDir: string,
): Promise<Tunnel> {
  const addr = inner(c.subnet);
  const procs: Background[] = [];
  const t: Tunnel = {
    ...c,
    addr,
    devs,
    port,
    pids: [],
    confirmed: 'ChaCha20-Poly1305 (the WireGuard protocol has no other cipher)',
    stop() {
      for (const [i, dev] of devs.entries()) runSync('ip', ['-n', NS[i]!, 'link', 'del', dev]);
      for (const p of procs) killPid(p.pid, 'SIGTERM');
      // The UAPI sockets live in the filesystem, shared by all namespaces: remove ours if left.
      for (const dev of devs) rmSync(join(WG_RUN_DIR, `${dev}.sock`), { force: true });
    },
  };
  onCleanup(c.id, () => t.stop());
  const keys: { priv: string; pub: string }[] = [];
  for (const i of [0, 1]) {
    const priv = (await out('wg', ['genkey'])).trim();
    const pub = (await out('wg', ['pubkey'], { input: `${priv}\n` })).trim();
    writeFileSync(join(keyDir, `wg${i}.key`), `${priv}\n`, { mode: 0o600 });
    keys.push({ priv, pub });
  }
  const env = { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' };
  for (const i of [0, 1] as const) {
    const dev = devs[i];
    if (existsSync(join(WG_RUN_DIR, `${dev}.sock`))) rmSync(join(WG_RUN_DIR, `${dev}.sock`), { force: true });
    const p = background('wireguard-go', ['-f', dev], { ns: NS[i], env });
    procs.push(p);
    t.pids.push(p.pid);
    await waitFor(
      `wireguard-go ${dev} in ${NS[i]}`,
      () => {
        if (p.child.exitCode !== null) throw new Error(`wireguard-go exited early: ${p.output()}`);
        return existsSync(join(WG_RUN_DIR, `${dev}.sock`));
      },
      10_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${p.output()}`);
    });
  }
  for (const i of [0, 1] as const) {
    const other = (1 - i) as 0 | 1;
    const ns = NS[i];
    const dev = devs[i];
    await run(
      'wg',
      [
        'set',
        dev,
        'private-key',
        join(keyDir, `wg${i}.key`),
        'listen-port',
        String(port),
        'peer',
        keys[other]!.pub,
        'allowed-ips',
        `${addr[other]}/32`,
        'endpoint',
        `${LINK[other]}:${port}`,
      ],
      { ns },
    );
    await run('ip', ['-n', ns, 'link', 'set', dev, 'mtu', String(MTU)]);
    await run('ip', ['-n', ns, 'addr', 'add', `${addr[i]}/24`, 'dev', dev]);
    await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
  return t;
}

// ---- the set ------------------------------------------------------------------------------

export interface TunnelPlan {
  id: string;
  start: (dir: string) => Promise<Tunnel>;
}

/** The six tunnels of a run. `dir` is the run's temporary directory (PKI, keys). */
export function plans(): TunnelPlan[] {
  const common = (id: string, impl: Impl, cipher: Cipher, label: string, baseline: string, subnet: number): Common => ({
    id,
    impl,
    cipher,
    label,
    baseline,
    subnet,
  });
  return [
    {
      id: 'ours-aes',
      start: () =>
        startOurs(common('ours-aes', 'ours', 'AES-256-GCM', 'ours AES-256-GCM', 'openvpn-aes', 1), 'obt-oaes', 11001),
    },
    {
      id: 'ours-chacha',
      start: () =>
        startOurs(
          common('ours-chacha', 'ours', 'CHACHA20-POLY1305', 'ours CHACHA20-POLY1305', 'openvpn-chacha', 2),
          'obt-ochacha',
          11002,
        ),
    },
    {
      id: 'openvpn-aes',
      start: (dir) =>
        startP2pTls(
          common('openvpn-aes', 'openvpn', 'AES-256-GCM', 'OpenVPN AES-256-GCM', 'openvpn-aes', 3),
          'obt-vaes',
          11003,
          dir,
        ),
    },
    {
      id: 'openvpn-chacha',
      start: (dir) =>
        startP2pTls(
          common('openvpn-chacha', 'openvpn', 'CHACHA20-POLY1305', 'OpenVPN CHACHA20-POLY1305', 'openvpn-chacha', 4),
          'obt-vchacha',
          11004,
          dir,
        ),
    },
    {
      id: 'ovpn-dco-aes',
      start: (dir) =>
        startP2pTls(
          common('ovpn-dco-aes', 'ovpn-dco', 'AES-256-GCM', 'ovpn-dco --config AES-256-GCM', 'openvpn-aes', 6),
          'obt-daes',
          11006,
          dir,
        ),
    },
    {
      id: 'wireguard-go',
      start: (dir) =>
        startWireguard(
          common('wireguard-go', 'wireguard-go', 'CHACHA20-POLY1305', 'wireguard-go', 'openvpn-aes', 5),
          ['obt-wg-a', 'obt-wg-b'],
          11005,
          dir,
        ),
    },
  ];
}

/** Reads a small text file, or '' if it is missing. */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
