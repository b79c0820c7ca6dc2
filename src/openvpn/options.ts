/**
 * An `OpenVpnConfig` (config.ts) mapped onto what the protocol core takes: the options of an
 * `OpenvpnServer` (role `server`, on an MP interface) or of a `P2pTlsTunnel` (point-to-point TLS
 * mode, or a pull client; the first `remote` in them, all in `connect` for reconnect.ts), plus
 * the TUN's addresses and routes to configure. Everything
 * the config asks for that the core cannot do yet is an error naming the directive, never
 * dropped silently; what only changes process behaviour we do not have becomes a note.
 */
import { isIPv4 } from 'node:net';
import { formatIp, parseIp } from '../core/ip.js';
import { addV6, type OpenVpnConfig, OpenVpnConfigError, where } from './config.js';
import type { P2pTlsOptions } from './p2p-tunnel.js';
import { netmaskToPrefix, type PushedConfig } from './pushed.js';
import type { ServerOptions } from './server.js';
import { type ControlWrap, TlsAuth, type TlsAuthDigest, TlsCrypt } from './tls-wrap.js';

/** Options without the interface, which the caller creates (its mode is `mode`). */
export type EngineOptions =
  | { kind: 'server'; mode: 'MP'; options: Omit<ServerOptions, 'iface'> }
  | { kind: 'p2p'; mode: 'P2P'; options: Omit<P2pTlsOptions, 'iface'> };

/** One `remote` to try, resolved to an IPv4 address, with the transport it is reached by. */
export interface PlannedRemote {
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
}

/** How a point-to-point or pull client session is (re)started: OpenVPN's connection list and retry rules. */
export interface ConnectPlan {
  /** In the order to try them (`remote` lines); the engine options hold the first. */
  remotes: PlannedRemote[];
  /** connect-retry: seconds between attempts, and the cap once backing off. */
  retrySeconds: number;
  retryMaxSeconds: number;
  /** connect-retry-max: rounds through the remotes before giving up; null: never. */
  rounds: number | null;
  /** server-poll-timeout: seconds a remote has to complete the handshake before the next is tried. */
  pollTimeout: number;
  /** explicit-exit-notify: seconds to wait for the goodbye to be acknowledged on exit; 0: not sent. */
  exitNotify: number;
  /** tls-auth/tls-crypt: a fresh context for each new session (each has its own packet-ids). */
  newWrap?: () => ControlWrap;
}

export interface EnginePlan {
  engine: EngineOptions;
  /** `ip addr add` arguments for the TUN (before the device name), or null for a pull client (it is pushed). */
  address: string[] | null;
  /** A server's IPv6 address (`ip -6 addr add`): what `server-ipv6` expands to; null otherwise. */
  address6: string[] | null;
  /**
   * Not a server: the config's own addresses and routes for the TUN (`ifconfig`, `ifconfig-ipv6`,
   * `route`, `route-ipv6`); a pull client adds what the server pushes.
   */
  tun?: Omit<PushedConfig, 'other'>;
  /** Not a server: the remotes and the rules for trying them again. */
  connect?: ConnectPlan;
  /** Remarks for the log: settings taken with a different effect than OpenVPN's. */
  notes: string[];
}

/** The options the server pushes itself (server.ts), so the config's copies would repeat them. */
const PUSHED_BY_SERVER = /^(topology|route-gateway|ping|ping-restart)(\s|$)/;

/** Where a directive was given (file:line), or the files read when it came from a default or a helper. */
function origin(config: OpenVpnConfig, name: string): string {
  const at = config.seen.get(name);
  if (at !== undefined) return where(at);
  return config.configFiles.length === 0 ? 'command line' : config.configFiles.join(', ');
}

/** The directive that chose a role, for errors about it. */
const ROLE_DIRECTIVE = {
  server: 'server',
  client: 'client',
  'p2p-tls-server': 'tls-server',
  'p2p-tls-client': 'tls-client',
};

export function planEngine(config: OpenVpnConfig): EnginePlan {
  /** `directive` starts with the name the config gave it (the key of `seen`), then what it said. */
  const unsupported = (directive: string, why: string): never => {
    const location = origin(config, directive.split(' ')[0]!);
    throw new OpenVpnConfigError(`${location}: ${directive}: ${why} (not supported by this engine yet)`);
  };
  const notes: string[] = [];
  const isServer = config.role === 'server';
  if (isServer && config.routes.length > 0) unsupported('route', 'routes on the TUN');
  if (isServer && config.routesIpv6.length > 0) unsupported('route-ipv6', 'routes on the TUN');
  if (config.status !== null && config.role !== 'server') unsupported('status', 'a status file outside server mode');
  if (config.tlsAuth !== null && config.tlsCrypt !== null) unsupported('tls-crypt with tls-auth', 'both wrappings');
  const local = config.transport.local === '0.0.0.0' ? null : config.transport.local;
  if (local !== null && (isServer || !isIPv4(local)))
    unsupported(
      'local',
      isServer ? 'binding one local address (every address is bound)' : 'a local name or IPv6 address',
    );

  const server = config.role === 'server' || config.role === 'p2p-tls-server';
  const tlsAuth = config.tlsAuth;
  const tlsCrypt = config.tlsCrypt;
  const wrap = (): ControlWrap | undefined => {
    if (tlsCrypt !== null) return new TlsCrypt(Buffer.from(tlsCrypt.key.bytes), server);
    if (tlsAuth !== null)
      return new TlsAuth(Buffer.from(tlsAuth.key.bytes), tlsAuth.direction ?? undefined, config.auth as TlsAuthDigest);
    return undefined;
  };
  if (tlsAuth !== null && !['SHA1', 'SHA256', 'SHA384', 'SHA512'].includes(config.auth))
    unsupported(`auth ${config.auth}`, 'tls-auth digests other than SHA1/256/384/512');

  const common = {
    tls: { ca: config.tls.ca.text, cert: config.tls.cert.text, key: config.tls.key.text },
    ciphers: config.dataCiphers,
    ...(config.dataCiphersFallback === null ? {} : { fallbackCipher: config.dataCiphersFallback }),
    ...(config.remoteCertTls === null ? {} : { remoteCertTls: config.remoteCertTls }),
    ...(config.verifyX509Name === null ? {} : { verifyX509Name: config.verifyX509Name }),
    // Node's TLS refuses anything below 1.2 already: only a higher minimum changes something.
    ...(config.tlsVersionMin === '1.3' ? { tlsVersionMin: '1.3' as const } : {}),
    ...(config.tlsCipher === null ? {} : { tlsCipher: config.tlsCipher }),
    ...(config.tlsCiphersuites === null ? {} : { tlsCiphersuites: config.tlsCiphersuites }),
  };

  if (config.role === 'server') {
    const pool = config.server?.pool;
    if (config.server === null || config.ifconfig === null)
      return unsupported('mode server', 'a server without `server NET MASK`');
    if (pool === null || pool === undefined) return unsupported('nopool', 'a server without a pool');
    if (config.transport.lport === null) unsupported('nobind', 'a server without a port');
    let addresses = ipv4Range(pool.start, pool.end, config.maxClients);
    let ipv6: ServerOptions['ipv6'];
    if (config.serverIpv6 !== null && config.ifconfigIpv6 !== null) {
      const { poolStart, prefixLen } = config.serverIpv6;
      // OpenVPN's pool is as large as the smaller of the two; a /112 or longer starts at +2.
      if (prefixLen >= 112) addresses = addresses.slice(0, 2 ** (128 - prefixLen) - 2);
      const start = parseIp(poolStart)!.bytes;
      ipv6 = {
        gateway: config.ifconfigIpv6.local,
        prefixLength: prefixLen,
        pool: addresses.map((_, i) => formatIp(addV6(start, i))),
      };
    }
    // A server keeps the pushed ping-restart for its own side too (OpenVPN doubles it).
    const pingRestart = config.keepalive?.timeout ?? config.pingRestart;
    return {
      engine: {
        kind: 'server',
        mode: 'MP',
        options: {
          ...common,
          localPort: config.transport.lport ?? 1194,
          transport: config.transport.proto === 'udp' ? 'udp' : 'tcp',
          gateway: config.ifconfig.local,
          prefixLength: config.server.prefixLen,
          pool: addresses,
          ...(ipv6 === undefined ? {} : { ipv6 }),
          ...(config.renegSec > 0 ? { renegotiateSeconds: config.renegSec } : {}),
          ...(config.renegSecMin === null ? {} : { renegotiateSecondsMin: config.renegSecMin }),
          ping: config.ping,
          pingRestart,
          duplicateCn: config.duplicateCn,
          push: config.push.filter((p) => !PUSHED_BY_SERVER.test(p)),
          ...(tlsAuth === null && tlsCrypt === null ? {} : { wrap: () => wrap()! }),
        },
      },
      address: [`${config.ifconfig.local}/${config.server.prefixLen}`],
      address6: tunAddress6(config),
      notes,
    };
  }

  const remote = config.remotes[0];
  if (remote === undefined)
    return unsupported(`${ROLE_DIRECTIVE[config.role]} without remote`, 'waiting for a peer from anywhere');
  if (config.remoteRandom) notes.push('remote-random: the remotes are tried in the order given');
  const remotes = config.remotes.map((r): PlannedRemote => {
    if (!isIPv4(r.host)) unsupported(`remote ${r.host}`, 'a remote that is not an IPv4 address');
    if (r.proto === 'tcp-server' && config.role !== 'p2p-tls-server')
      unsupported('proto tcp-server', 'a TLS client listening for TCP');
    if (r.proto === 'tcp-client' && config.role === 'p2p-tls-server')
      unsupported('proto tcp-client', 'a TLS server connecting over TCP');
    return { host: r.host, port: r.port, transport: r.proto === 'udp' ? 'udp' : 'tcp' };
  });
  const transport = remotes[0]!.transport;
  // nobind: any free port; ours has to be named, so pick one in the ephemeral range.
  const localPort = config.transport.lport ?? 49152 + Math.floor(Math.random() * 16384);
  let address: string[] | null = null;
  const tun: Omit<PushedConfig, 'other'> = {
    routes: config.routes.map((r) => ({
      network: r.network,
      netmask: r.netmask,
      ...(r.gateway === null || r.gateway === 'vpn_gateway' ? {} : { gateway: r.gateway }),
      ...(r.metric === null ? {} : { metric: r.metric }),
    })),
    routesIpv6: config.routesIpv6.map((r) => ({
      prefix: `${r.network}/${r.prefixLen}`,
      ...(r.gateway === null ? {} : { gateway: r.gateway }),
      ...(r.metric === null ? {} : { metric: r.metric }),
    })),
    topology: config.topology,
  };
  if (config.ifconfigIpv6 !== null)
    tun.ifconfigIpv6 = { local: config.ifconfigIpv6.local, prefixLength: config.ifconfigIpv6.prefixLen };
  if (config.pull) {
    if (config.ifconfig !== null) unsupported('ifconfig with pull', 'a pull client with its own address');
  } else {
    const ifc = config.ifconfig;
    if (ifc === null) return unsupported(ROLE_DIRECTIVE[config.role], 'point-to-point TLS mode without `ifconfig`');
    const prefixLength = ifc.netmask === null ? undefined : netmaskToPrefix(ifc.netmask);
    address = prefixLength !== undefined ? [`${ifc.local}/${prefixLength}`] : ['local', ifc.local, 'peer', ifc.remote!];
    tun.ifconfig =
      prefixLength !== undefined ? { local: ifc.local, prefixLength } : { local: ifc.local, remote: ifc.remote! };
  }
  if (local !== null && transport === 'tcp') unsupported('local', 'a local address for a TCP connection');
  const connect: ConnectPlan = {
    ...(tlsAuth === null && tlsCrypt === null ? {} : { newWrap: () => wrap()! }),
    remotes,
    retrySeconds: config.connectRetry.seconds,
    retryMaxSeconds: config.connectRetry.max,
    rounds: config.connectRetryMax,
    pollTimeout: config.serverPollTimeout,
    exitNotify: config.explicitExitNotify,
  };
  return {
    engine: {
      kind: 'p2p',
      mode: 'P2P',
      options: {
        ...common,
        role: server ? 'server' : 'client',
        ...(config.pull ? { pull: true } : {}),
        localPort,
        ...(local === null ? {} : { localIpv4: local }),
        remoteIpv4: remote.host,
        remotePort: remote.port,
        transport,
        ...(config.ping > 0 ? { keepaliveInterval: config.ping } : {}),
        ...(config.pingRestart > 0 ? { keepaliveTimeout: config.pingRestart } : {}),
        ...(config.renegSec > 0 ? { renegotiateSeconds: config.renegSec } : {}),
        ...(tlsAuth === null && tlsCrypt === null ? {} : { wrap: wrap()! }),
      },
    },
    address,
    address6: null,
    tun,
    connect,
    notes,
  };
}

/** `ifconfig-ipv6 LOCAL/BITS REMOTE` (or server-ipv6's): OpenVPN puts LOCAL/BITS on the TUN. */
function tunAddress6(config: OpenVpnConfig): string[] | null {
  const ifc = config.ifconfigIpv6;
  if (ifc === null) return null;
  return [`${ifc.local}/${ifc.prefixLen}`];
}

/** The IPv4 addresses from start to end inclusive, at most `limit` of them. */
function ipv4Range(start: string, end: string, limit: number): string[] {
  const out: string[] = [];
  const last = ipv4Number(end);
  for (let n = ipv4Number(start); n <= last && out.length < limit; n++)
    out.push([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'));
  return out;
}

/** A dotted IPv4 address (checked by the parser) as an unsigned 32-bit number. */
function ipv4Number(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
