/**
 * OpenVPN 2.6 configuration: the command line (`--config FILE`, any directive as `--name args`)
 * and config files, read into one typed, checked `OpenVpnConfig` for the session layer.
 *
 * The reading rules are OpenVPN 2.6.14's (options.c, helper.c), taken as facts:
 * - A line is split as parse_line() does: `#` or `;` where a parameter would start begins a
 *   comment; "double" quotes take backslash escapes, 'single' quotes take everything literally;
 *   outside single quotes a backslash may only escape `\`, `"` or white space. A leading `--`
 *   on a directive name is dropped, so files may use the command line's spelling.
 * - A line holding only `<tag>` starts an inline block: every following line up to the one whose
 *   text (after leading white space) starts with `</tag>` is the directive's single parameter.
 * - Directives apply in order; a later one overrides an earlier one, so `--port 1195` after
 *   `--config f` wins over f's `port`. `config FILE` reads FILE at that point (10 levels at most).
 * - Relative paths are relative to the working directory, not to the config file. `cd DIR`
 *   changes that directory while the options are read (OpenVPN calls chdir() right there), and
 *   key, certificate and status files are opened only after all options are read, so they are
 *   relative to the directory of the last `cd`, wherever they appear.
 * - Helper directives expand after reading, as helper.c does: `client` is `pull` + `tls-client`;
 *   `server NET MASK` makes a server with the first address, a pool and pushed route-gateway and
 *   topology; `server-ipv6` likewise; `keepalive A B` becomes `ping A` + `ping-restart B` (a
 *   server: `ping-restart 2B`, and pushes `ping A` and `ping-restart B`).
 *
 * Where we differ, on purpose: numbers must be numbers (OpenVPN's atoi() reads "1o" as 1), and
 * whatever would make OpenVPN 2.6 turn data channel offload off is an error, since we are the
 * offload and there is no other data channel to fall back to (dco.c, README.dco.md's
 * "Limitations by design"): a tap or null device, a server without `topology subnet`,
 * compression, ciphers ovpn-dco does not carry. Directives that only
 * concern process behaviour we have no use for are accepted with a note; anything else unknown
 * is an error naming the file and line.
 */
import { createPrivateKey, getCiphers, getHashes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatIp, parseIp } from '../core/ip.js';
import { MAX_PEER_ID } from '../core/wire.js';
import { parseStaticKey } from './static-key.js';

// ---------------------------------------------------------------------------------------------
// The result
// ---------------------------------------------------------------------------------------------

/**
 * - `server`: `server` / `mode server`, many clients, addresses from the pool (multi-peer).
 * - `client`: `client` (or `pull` with `tls-client`): connects, takes what the server pushes.
 * - `p2p-tls-server` / `p2p-tls-client`: OpenVPN's point-to-point TLS mode (`tls-server` or
 *   `tls-client` without `server`/`pull`): one peer, addresses from `ifconfig`, no push.
 */
export type OpenVpnRole = 'server' | 'client' | 'p2p-tls-server' | 'p2p-tls-client';
/** `udp`, `udp4`, `udp6` are all `udp` (the family says which); `tcp` is resolved by role. */
export type TransportProto = 'udp' | 'tcp-server' | 'tcp-client';
/** `udp4`/`tcp4-*`: IPv4 only; `udp6`/`tcp6-*`: IPv6 only; plain names: either (dual stack). */
export type AddressFamily = 'any' | 'ipv4' | 'ipv6';
export type Topology = 'net30' | 'p2p' | 'subnet';

/** One `remote HOST [PORT [PROTO]]`, with the defaults OpenVPN fills in (`port`/`rport`, `proto`). */
export interface Remote {
  host: string;
  port: number;
  proto: TransportProto;
  family: AddressFamily;
}

export interface Transport {
  proto: TransportProto;
  family: AddressFamily;
  /** Local port to bind, or null when not bound (`nobind`; a client's or TCP client's default). */
  lport: number | null;
  /** `local ADDR`: the address to bind, or null for any. */
  local: string | null;
}

/** A PEM text and where it came from: an absolute path, or `inline <tag>`. */
export interface Pem {
  text: string;
  source: string;
}

/** The 256 bytes of an OpenVPN static key file (static-key.ts) and where they came from. */
export interface StaticKey {
  bytes: Uint8Array;
  source: string;
}

export interface TlsMaterial {
  /** CA certificate(s) that peer certificates must chain to. */
  ca: Pem;
  cert: Pem;
  /** Private key of `cert` (unencrypted). */
  key: Pem;
  /** DH parameters (tls-server only); null for `dh none` (ECDHE only) and on clients. */
  dh: Pem | null;
}

export interface ServerPool {
  /** `server NET MASK`: 10.8.0.0, 255.255.255.0, 24. */
  network: string;
  netmask: string;
  prefixLen: number;
  /** Addresses handed to clients (`server` with topology subnet: .2 to broadcast - 1); null with `nopool`. */
  pool: { start: string; end: string } | null;
}

export interface ServerPoolIpv6 {
  network: string;
  prefixLen: number;
  /** First address handed to clients: network + 0x1000 (+2 for a /112 or longer), as OpenVPN does. */
  poolStart: string;
}

/** Our TUN's IPv4 address: with topology subnet, a netmask; otherwise the peer's address. */
export interface Ifconfig {
  local: string;
  netmask: string | null;
  remote: string | null;
}

export interface IfconfigIpv6 {
  local: string;
  prefixLen: number;
  remote: string;
}

/** `route NETWORK [NETMASK [GATEWAY [METRIC]]]`, as written (names and vpn_gateway etc. allowed). */
export interface Route {
  network: string;
  netmask: string;
  gateway: string | null;
  metric: number | null;
}

/** `route-ipv6 NETWORK/BITS [GATEWAY [METRIC]]`; the gateway as written (null: the VPN's). */
export interface RouteIpv6 {
  network: string;
  prefixLen: number;
  gateway: string | null;
  metric: number | null;
}

export interface OpenVpnConfig {
  role: OpenVpnRole;
  /** `pull`: take options pushed by the server (true for `client`). */
  pull: boolean;
  /** `dev tun` or `dev tun0`; `fixed` when the name has a digit (else the kernel numbers it, as OpenVPN lets it). */
  dev: { name: string; fixed: boolean };
  /** `tun-mtu`: the TUN's MTU (default 1500). */
  tunMtu: number;
  /** `txqueuelen`: the TUN's transmit queue length (default 100, OpenVPN's on Linux). */
  txqueuelen: number;
  topology: Topology;
  transport: Transport;
  /** In the order given; tried in turn by a client. Empty on a server. */
  remotes: Remote[];
  /** `remote-random`: try the remotes in random order. */
  remoteRandom: boolean;
  /** `connect-retry SECONDS [MAX]`: the pause between attempts (default 1) and its cap once backing off (default 300). */
  connectRetry: { seconds: number; max: number };
  /** `connect-retry-max N`: give up after N rounds through the remotes; null: never (the default). */
  connectRetryMax: number | null;
  /** `server-poll-timeout SECONDS`: how long one remote may take to answer before the next is tried (default 120). */
  serverPollTimeout: number;
  server: ServerPool | null;
  serverIpv6: ServerPoolIpv6 | null;
  /** From `ifconfig`, or what `server` expands to. */
  ifconfig: Ifconfig | null;
  ifconfigIpv6: IfconfigIpv6 | null;
  tls: TlsMaterial;
  /** `tls-auth`: HMAC key and `key-direction` (null: bidirectional, both ends use the same halves). */
  tlsAuth: { key: StaticKey; direction: 0 | 1 | null } | null;
  /** `tls-crypt` (v1). */
  tlsCrypt: { key: StaticKey } | null;
  /** Negotiable data-channel ciphers in preference order, OpenVPN's spelling (AES-256-GCM, CHACHA20-POLY1305). */
  dataCiphers: string[];
  /**
   * Cipher to use with a peer that cannot negotiate: `data-ciphers-fallback`, or in p2p modes
   * `cipher` (OpenVPN's rule); null: such a peer is refused.
   */
  dataCiphersFallback: string | null;
  /** `cipher` as configured (OpenVPN ignores it for negotiation unless it is the fallback). */
  cipher: string | null;
  /** HMAC digest of `tls-auth` (`auth`, default SHA1), OpenVPN's spelling (SHA256). */
  auth: string;
  /** `keepalive INTERVAL TIMEOUT` as written; `ping`/`pingRestart` and `push` hold what it expanded to. */
  keepalive: { interval: number; timeout: number } | null;
  /** Seconds between pings when nothing else is sent; 0: off. */
  ping: number;
  /** Seconds without a packet from the peer before restarting (a client) or dropping it (a server); 0: off. */
  pingRestart: number;
  /** `reneg-sec MAX [MIN]`: renegotiate the data channel key every MAX seconds (0: never; default 3600). */
  renegSec: number;
  renegSecMin: number | null;
  /**
   * Options pushed to clients, one string per option as `push "…"` gave it (quotes removed), in
   * order, then what helpers add (`tun-ipv6`, `route-gateway`, `topology`, `ping`, `ping-restart`).
   * The session adds `ifconfig`, `peer-id` and `cipher` per client.
   */
  push: string[];
  routes: Route[];
  routesIpv6: RouteIpv6[];
  /** Default 1024. */
  maxClients: number;
  duplicateCn: boolean;
  clientToClient: boolean;
  /** `remote-cert-tls`: the peer certificate must carry the TLS Web Server/Client Authentication EKU. */
  remoteCertTls: 'server' | 'client' | null;
  verifyX509Name: { name: string; type: 'subject' | 'name' | 'name-prefix' } | null;
  /** Lowest TLS version (default 1.2, as OpenVPN 2.6). */
  tlsVersionMin: '1.0' | '1.1' | '1.2' | '1.3';
  /** `tls-cipher` (TLS 1.2 cipher list, OpenSSL syntax) and `tls-ciphersuites` (TLS 1.3). */
  tlsCipher: string | null;
  tlsCiphersuites: string | null;
  /** `explicit-exit-notify [N]`: 0 off; N (default 1) tries (a server: tell clients to reconnect). */
  explicitExitNotify: number;
  /** `status FILE [SECONDS]`, the path absolute; default interval 60; `status-version` 1 to 3 (default 1). */
  status: { path: string; interval: number; version: 1 | 2 | 3 } | null;
  /** Default 1. */
  verb: number;
  /** The working directory after every `cd`: where relative paths were resolved (the session may chdir there). */
  cwd: string;
  /** Config files read, as given, in order. */
  configFiles: string[];
  /** One line per directive accepted without effect, or other remark, with file:line. */
  notes: string[];
  /** Where each directive was last given, by name: for errors about a setting found later (options.ts). */
  seen: ReadonlyMap<string, At>;
}

export class OpenVpnConfigError extends Error {
  override name = 'OpenVpnConfigError';
}

export interface ConfigIo {
  /** Reads a file's text (default: fs.readFileSync utf8); paths given are absolute. */
  readFile?: (path: string) => string;
  /** Working directory for relative paths (default: process.cwd()). */
  cwd?: string;
}

// ---------------------------------------------------------------------------------------------
// Locations and directives
// ---------------------------------------------------------------------------------------------

/** Where a directive came from: a file (as named) and line, or the command line (file null). */
export interface At {
  file: string | null;
  line: number;
}

export const where = (at: At): string => (at.file === null ? 'command line' : `${at.file}:${at.line}`);
/** A directive's name as the user spelled it there. */
const shown = (at: At, name: string): string => (at.file === null ? `--${name}` : name);

function fail(at: At, message: string): never {
  throw new OpenVpnConfigError(`${where(at)}: ${message}`);
}

interface Directive {
  name: string;
  args: string[];
  /** Set for `<tag>…</tag>`: the block's text is args[0]. */
  inline: boolean;
  at: At;
}

// ---------------------------------------------------------------------------------------------
// Tokenizing
// ---------------------------------------------------------------------------------------------

/** C isspace() plus the end of the string, as parse_line's space(). */
const isSpace = (c: string): boolean => c === '\0' || c === ' ' || (c >= '\t' && c <= '\r');

/**
 * One line's parameters, split as OpenVPN's parse_line() does; [] for blank and comment lines.
 * A client splits each pushed option with the same rules (apply_push_options), so the session
 * can use this on the options of a PUSH_REPLY.
 */
export function splitLine(line: string, at: At = { file: null, line: 1 }): string[] {
  const params: string[] = [];
  let state: 'initial' | 'unquoted' | 'double' | 'single' = 'initial';
  let backslash = false;
  let param = '';
  // fgets() keeps the newline, and parse_line() reads up to the terminating NUL: both matter after a backslash.
  for (const c of `${line}\n\0`) {
    if (!backslash && c === '\\' && state !== 'single') {
      backslash = true;
      continue;
    }
    let out: string | null = null;
    let done = false;
    if (state === 'initial') {
      if (!isSpace(c)) {
        // A comment starts only where a parameter would, even after a backslash (as OpenVPN).
        if (c === '#' || c === ';') break;
        if (!backslash && c === '"') state = 'double';
        else if (!backslash && c === "'") state = 'single';
        else {
          out = c;
          state = 'unquoted';
        }
      }
    } else if (state === 'unquoted') {
      if (!backslash && isSpace(c)) done = true;
      else out = c;
    } else if (state === 'double') {
      if (!backslash && c === '"') done = true;
      else out = c;
    } else if (c === "'") done = true;
    else out = c;
    if (done) {
      params.push(param);
      param = '';
      state = 'initial';
    }
    if (backslash && out !== null && !(out === '\\' || out === '"' || isSpace(out))) {
      fail(
        at,
        `bad backslash before ${JSON.stringify(out)}: a backslash escapes only \\, " or a space (write \\\\ for one)`,
      );
    }
    backslash = false;
    if (out !== null && out !== '\0') param += out;
  }
  if (state === 'double') fail(at, 'no closing quotation (")');
  if (state === 'single') fail(at, "no closing single quotation (')");
  return params;
}

/** A file's directives, inline blocks included. */
function directivesOf(text: string, file: string): Directive[] {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  const directives: Directive[] = [];
  for (let i = 0; i < lines.length; i++) {
    const at = { file, line: i + 1 };
    const params = splitLine(lines[i]!, at);
    if (params.length === 0) continue;
    let name = params[0]!;
    if (name.length >= 3 && name.startsWith('--')) name = name.slice(2);
    if (params.length === 1 && name.length > 2 && name.startsWith('<') && name.endsWith('>')) {
      const tag = name.slice(1, -1);
      const close = `</${tag}>`;
      const end = lines.findIndex((line, j) => j > i && line.trimStart().startsWith(close));
      if (end < 0) fail(at, `<${tag}> has no closing ${close}`);
      const body = lines.slice(i + 1, end).map((line) => `${line}\n`);
      directives.push({ name: tag, args: [body.join('')], inline: true, at });
      i = end;
      continue;
    }
    directives.push({ name, args: params.slice(1), inline: false, at });
  }
  return directives;
}

/** The command line's directives: `--name args…`, or a lone config file name. */
function directivesOfArgv(argv: string[]): Directive[] {
  const at: At = { file: null, line: 1 };
  if (argv.length === 0) fail(at, 'nothing to do: expected --config FILE or --directive arguments');
  if (argv.length === 1 && !argv[0]!.startsWith('--')) return [{ name: 'config', args: [argv[0]!], inline: false, at }];
  const directives: Directive[] = [];
  for (let i = 0; i < argv.length; ) {
    const name = argv[i]!;
    if (!name.startsWith('--')) fail(at, `"${name}" is not a directive: expected --name followed by its arguments`);
    let end = i + 1;
    while (end < argv.length && !argv[end]!.startsWith('--')) end++;
    directives.push({ name: name.slice(2), args: argv.slice(i + 1, end), inline: false, at });
    i = end;
  }
  return directives;
}

// ---------------------------------------------------------------------------------------------
// What the directives set, before the helpers expand and the checks run
// ---------------------------------------------------------------------------------------------

type ProtoName = TransportProto | 'tcp';

interface FileRef {
  /** Path as given, or the inline block's text. */
  value: string;
  inline: boolean;
  at: At;
}

/**
 * Result fields that finish() works out from the whole draft, so nothing holds them while reading:
 * the role, the transport and TLS material, the fallback cipher.
 */
type Derived = 'role' | 'transport' | 'tls' | 'tlsAuth' | 'tlsCrypt' | 'dataCiphersFallback';
/** Result fields read in a rawer form than the result gives them: Draft declares its own. */
type ReadRaw = 'dev' | 'remotes' | 'server' | 'serverIpv6' | 'ifconfig' | 'dataCiphers' | 'cipher' | 'status';

/**
 * What the directives set. The other result fields are read in their final form, so they are
 * declared (and documented) once, in OpenVpnConfig; a field added there must be set here too, or
 * be listed as Derived or ReadRaw. `push`, `ping` and `pingRestart` may still change when finish()
 * expands `server` and `keepalive`.
 */
interface Draft extends Omit<OpenVpnConfig, Derived | ReadRaw> {
  io: Required<ConfigIo>;
  depth: number;
  /** Filled while reading, so writable here. */
  seen: Map<string, At>;
  ignoreUnknown: Set<string>;
  mode: 'p2p' | 'server';
  client: boolean;
  tlsServer: boolean;
  tlsClient: boolean;
  dev: string | null;
  devType: string | null;
  proto: ProtoName;
  family: AddressFamily;
  port: number;
  lport: number;
  lportDefined: boolean;
  local: string | null;
  nobind: boolean;
  remotes: { host: string; port: number | null; proto: ProtoName | null; family: AddressFamily | null }[];
  server: { network: number; netmask: number; nopool: boolean } | null;
  serverIpv6: { network: Uint8Array; prefixLen: number } | null;
  ifconfig: [string, string] | null;
  files: Partial<Record<'ca' | 'cert' | 'key' | 'dh' | 'tls-auth' | 'tls-crypt', FileRef>>;
  keyDirection: 0 | 1 | null;
  dataCiphers: { name: string; optional: boolean }[] | null;
  cipher: { name: string; at: At } | null;
  ncpFallback: boolean;
  poolPersist: boolean;
  status: { path: string; interval: number } | null;
  statusVersion: 1 | 2 | 3;
}

function newDraft(io: ConfigIo): Draft {
  const cwd = io.cwd ?? process.cwd();
  return {
    io: { readFile: io.readFile ?? ((path) => readFileSync(path, 'utf8')), cwd },
    cwd,
    configFiles: [],
    depth: 0,
    notes: [],
    seen: new Map(),
    ignoreUnknown: new Set(),
    mode: 'p2p',
    client: false,
    pull: false,
    tlsServer: false,
    tlsClient: false,
    dev: null,
    devType: null,
    tunMtu: 1500,
    txqueuelen: 100,
    topology: 'net30',
    proto: 'udp',
    family: 'any',
    port: 1194,
    lport: 1194,
    lportDefined: false,
    local: null,
    nobind: false,
    remotes: [],
    remoteRandom: false,
    connectRetry: { seconds: 1, max: 300 },
    connectRetryMax: null,
    serverPollTimeout: 120,
    server: null,
    serverIpv6: null,
    ifconfig: null,
    ifconfigIpv6: null,
    files: {},
    keyDirection: null,
    dataCiphers: null,
    cipher: null,
    ncpFallback: false,
    auth: 'SHA1',
    keepalive: null,
    ping: 0,
    pingRestart: 0,
    renegSec: 3600,
    renegSecMin: null,
    push: [],
    routes: [],
    routesIpv6: [],
    maxClients: 1024,
    duplicateCn: false,
    clientToClient: false,
    poolPersist: false,
    remoteCertTls: null,
    verifyX509Name: null,
    tlsVersionMin: '1.2',
    tlsCipher: null,
    tlsCiphersuites: null,
    explicitExitNotify: 0,
    status: null,
    statusVersion: 1,
    verb: 1,
  };
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

function integer(d: Directive, text: string, min: number, max: number, what: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    fail(d.at, `"${shown(d.at, d.name)}" expects ${what} (${min} to ${max}), got "${text}"`);
  }
  return value;
}

const seconds = (d: Directive, text: string): number => integer(d, text, 0, 0x7fffffff, 'a number of seconds');
const portOf = (d: Directive, text: string): number => integer(d, text, 1, 65535, 'a port number');

function oneOf<T extends string>(d: Directive, text: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  fail(d.at, `"${shown(d.at, d.name)}" expects ${choices.map((c) => `"${c}"`).join(', ')}, got "${text}"`);
}

function ipv4(d: Directive, text: string, what: string): number {
  const ip = parseIp(text);
  if (ip?.family !== 4) fail(d.at, `"${shown(d.at, d.name)}" expects ${what} as an IPv4 address, got "${text}"`);
  return ((ip.bytes[0]! << 24) | (ip.bytes[1]! << 16) | (ip.bytes[2]! << 8) | ip.bytes[3]!) >>> 0;
}

const formatV4 = (n: number): string => formatIp(Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255));

/** `ADDR/BITS` with BITS 64..124, the range OpenVPN allows for ifconfig-ipv6 and server-ipv6. */
function ipv6Prefix(d: Directive, text: string): { bytes: Uint8Array; prefixLen: number } {
  const [address = '', bits, extra] = text.split('/');
  const ip = parseIp(address);
  if (ip?.family !== 6 || extra !== undefined) {
    fail(d.at, `"${shown(d.at, d.name)}" expects an IPv6 address/bits, got "${text}"`);
  }
  const prefixLen = bits === undefined ? 128 : /^\d+$/.test(bits) ? Number(bits) : Number.NaN;
  if (!(prefixLen >= 64 && prefixLen <= 124)) {
    fail(d.at, `"${shown(d.at, d.name)}": the prefix length must be 64 to 124, got "${text}"`);
  }
  return { bytes: ip.bytes, prefixLen };
}

/** An IPv6 address plus a small number, carrying across bytes. */
export function addV6(bytes: Uint8Array, n: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  let carry = n;
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const sum = out[i]! + carry;
    out[i] = sum & 255;
    carry = Math.floor(sum / 256);
  }
  return out;
}

/** `udp`, `udp4`, `tcp6-client`, … as in OpenVPN's proto_names table. */
function protoOf(text: string): { proto: ProtoName; family: AddressFamily } | null {
  const m = /^(udp|tcp)([46]?)(-server|-client)?$/.exec(text);
  if (m === null || (m[1] === 'udp' && m[3] !== undefined)) return null;
  const family = m[2] === '4' ? 'ipv4' : m[2] === '6' ? 'ipv6' : 'any';
  return { proto: `${m[1]}${m[3] ?? ''}` as ProtoName, family };
}

/** The data-channel ciphers ovpn-dco carries (dco_linux.c); OpenVPN turns DCO off for any other. */
const DCO_CIPHERS = ['AES-128-GCM', 'AES-192-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305'];
/** OpenVPN 2.6's default `data-ciphers` (when ChaCha20 is available). */
const DEFAULT_DATA_CIPHERS = ['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305'];

/** OpenVPN's spelling of a cipher name (it normalises case), or null if OpenSSL knows no such cipher. */
function cipherName(text: string): string | null {
  if (text.toLowerCase() === 'none') return 'none';
  return getCiphers().includes(text.toLowerCase()) ? text.toUpperCase() : null;
}

// ---------------------------------------------------------------------------------------------
// The directives
// ---------------------------------------------------------------------------------------------

/**
 * A directive: how it is written, which gives its parameter counts (words after the name;
 * `[optional]` ones at the end, `…` for any number), and what it does.
 */
interface Spec {
  usage: string;
  min: number;
  max: number;
  apply(draft: Draft, d: Directive): void;
}

/** Directives that may be inline `<name>` blocks (OpenVPN's OPT_P_INLINE among ours). */
const INLINE = new Set(['ca', 'cert', 'key', 'dh', 'tls-auth', 'tls-crypt']);

function specs(table: Record<string, Spec['apply']>): Record<string, Spec> {
  return Object.fromEntries(
    Object.entries(table).map(([usage, apply]) => {
      const [name, ...words] = usage.split(' ');
      const min = words.filter((word) => !word.startsWith('[') && !word.includes('…')).length;
      const max = words.some((word) => word.includes('…')) ? 15 : words.length;
      return [name!, { usage, min, max, apply }];
    }),
  );
}

type Flag =
  | 'client'
  | 'pull'
  | 'tlsServer'
  | 'tlsClient'
  | 'nobind'
  | 'remoteRandom'
  | 'duplicateCn'
  | 'clientToClient';

const flag =
  (key: Flag): Spec['apply'] =>
  (draft) => {
    draft[key] = true;
  };

const fileRef =
  (key: keyof Draft['files']): Spec['apply'] =>
  (draft, d) => {
    draft.files[key] = { value: d.args[0]!, inline: d.inline, at: d.at };
  };

function keyDirection(d: Directive, text: string): 0 | 1 {
  if (text === '0' || text === '1') return Number(text) as 0 | 1;
  fail(d.at, `"${shown(d.at, d.name)}": key direction must be 0 or 1, got "${text}"`);
}

const COMPRESSION =
  'is not supported: ovpn-dco carries no compression framing (OpenVPN 2.6 turns DCO off for it); remove it on both ends';

const refuseCompression: Spec['apply'] = (_, d) => {
  if (d.name === 'allow-compression' && d.args[0] === 'no') return;
  fail(d.at, `"${[shown(d.at, d.name), ...d.args].join(' ')}" ${COMPRESSION}`);
};

function readConfigFile(draft: Draft, d: Directive): void {
  if (draft.depth >= 10) fail(d.at, `config files nested more than 10 deep: does ${d.args[0]} include itself?`);
  const path = resolve(draft.cwd, d.args[0]!);
  let text: string;
  try {
    text = draft.io.readFile(path);
  } catch (error) {
    fail(d.at, `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  draft.configFiles.push(d.args[0]!);
  draft.depth++;
  for (const inner of directivesOf(text, d.args[0]!)) apply(draft, inner);
  draft.depth--;
}

function setCipher(draft: Draft, d: Directive): void {
  const name = cipherName(d.args[0]!);
  if (name === null) fail(d.at, `"${shown(d.at, d.name)}": unknown cipher "${d.args[0]}"`);
  draft.cipher = { name, at: d.at };
}

const SPECS = specs({
  'config FILE': readConfigFile,
  'cd DIR': (draft, d) => {
    draft.cwd = resolve(draft.cwd, d.args[0]!);
  },
  'mode p2p|server': (draft, d) => {
    draft.mode = oneOf(d, d.args[0]!, ['p2p', 'server'] as const);
  },
  client: flag('client'),
  pull: flag('pull'),
  'tls-server': flag('tlsServer'),
  'tls-client': flag('tlsClient'),
  'dev tun|tunN': (draft, d) => {
    draft.dev = d.args[0]!;
  },
  'dev-type tun': (draft, d) => {
    draft.devType = oneOf(d, d.args[0]!, ['tun', 'tap', 'null'] as const);
  },
  'tun-mtu MTU': (draft, d) => {
    draft.tunMtu = integer(d, d.args[0]!, 68, 65535, 'an MTU');
  },
  'txqueuelen LENGTH': (draft, d) => {
    draft.txqueuelen = integer(d, d.args[0]!, 1, 0xffffffff, 'a queue length');
  },
  'mssfix [BYTES] [mtu]': (draft, d) => {
    // OpenVPN clamps TCP MSS in its own data channel; ovpn-dco (and we) do not, so only "off" is honest.
    if (d.args[0] !== '0') note(draft, d, 'not applied: ovpn-dco does not clamp the TCP MSS; set tun-mtu instead');
  },
  'topology net30|p2p|subnet': (draft, d) => {
    draft.topology = oneOf(d, d.args[0]!, ['net30', 'p2p', 'subnet'] as const);
  },
  'proto udp|udp4|udp6|tcp-server|tcp-client': (draft, d) => {
    const parsed = protoOf(d.args[0]!);
    if (parsed === null) {
      fail(d.at, `bad protocol "${d.args[0]}": expected udp, tcp, tcp-server or tcp-client, optionally with 4 or 6`);
    }
    draft.proto = parsed.proto;
    draft.family = parsed.family;
  },
  'port PORT': (draft, d) => {
    draft.port = draft.lport = portOf(d, d.args[0]!);
  },
  'lport PORT': (draft, d) => {
    draft.lport = portOf(d, d.args[0]!);
    draft.lportDefined = true;
  },
  'rport PORT': (draft, d) => {
    draft.port = portOf(d, d.args[0]!);
  },
  'local ADDRESS': (draft, d) => {
    draft.local = d.args[0]!;
  },
  nobind: flag('nobind'),
  'remote HOST [PORT] [PROTO]': (draft, d) => {
    const [host, port, proto] = d.args as [string, string?, string?];
    const parsed = proto === undefined ? null : protoOf(proto);
    if (proto !== undefined && parsed === null) {
      fail(d.at, `"${shown(d.at, d.name)}": bad protocol "${proto}" for host ${host}`);
    }
    draft.remotes.push({
      host,
      port: port === undefined ? null : portOf(d, port),
      proto: parsed?.proto ?? null,
      family: parsed?.family ?? null,
    });
  },
  'remote-random': flag('remoteRandom'),
  'connect-retry SECONDS [MAX]': (draft, d) => {
    const first = seconds(d, d.args[0]!);
    // As OpenVPN: the cap is never below the first pause.
    const max = d.args[1] === undefined ? draft.connectRetry.max : seconds(d, d.args[1]);
    draft.connectRetry = { seconds: first, max: Math.max(first, max) };
  },
  'connect-retry-max N': (draft, d) => {
    draft.connectRetryMax = integer(d, d.args[0]!, 1, 0x7fffffff, 'a number of rounds');
  },
  'server-poll-timeout SECONDS': (draft, d) => {
    draft.serverPollTimeout = integer(d, d.args[0]!, 1, 0x7fffffff, 'a number of seconds');
  },
  'server NETWORK NETMASK [nopool]': (draft, d) => {
    const network = ipv4(d, d.args[0]!, 'the network');
    const netmask = ipv4(d, d.args[1]!, 'the netmask');
    if (d.args[2] !== undefined && d.args[2] !== 'nopool') {
      fail(d.at, `"${shown(d.at, d.name)}": "${d.args[2]}" is not a recognized flag: expected "nopool"`);
    }
    draft.server = { network, netmask, nopool: d.args[2] !== undefined };
  },
  'server-ipv6 NETWORK/BITS': (draft, d) => {
    const { bytes, prefixLen } = ipv6Prefix(d, d.args[0]!);
    draft.serverIpv6 = { network: bytes, prefixLen };
  },
  'ifconfig LOCAL REMOTE|NETMASK': (draft, d) => {
    ipv4(d, d.args[0]!, 'the local address');
    ipv4(d, d.args[1]!, 'the remote address or netmask');
    draft.ifconfig = [d.args[0]!, d.args[1]!];
  },
  'ifconfig-ipv6 LOCAL/BITS REMOTE': (draft, d) => {
    const { bytes, prefixLen } = ipv6Prefix(d, d.args[0]!);
    const remote = parseIp(d.args[1]!);
    if (remote?.family !== 6) {
      fail(d.at, `"${shown(d.at, d.name)}" expects the remote as an IPv6 address, got "${d.args[1]}"`);
    }
    draft.ifconfigIpv6 = { local: formatIp(bytes), prefixLen, remote: formatIp(remote.bytes) };
  },
  'ca FILE': fileRef('ca'),
  'cert FILE': fileRef('cert'),
  'key FILE': fileRef('key'),
  'dh FILE|none': fileRef('dh'),
  'tls-auth FILE [DIRECTION]': (draft, d) => {
    fileRef('tls-auth')(draft, d);
    // An inline block takes its direction from key-direction (OpenVPN ignores a second parameter there).
    if (!d.inline && d.args[1] !== undefined) draft.keyDirection = keyDirection(d, d.args[1]);
  },
  'key-direction 0|1': (draft, d) => {
    draft.keyDirection = keyDirection(d, d.args[0]!);
  },
  'tls-crypt FILE': fileRef('tls-crypt'),
  'data-ciphers CIPHER[:CIPHER]': (draft, d) => {
    draft.dataCiphers = d.args[0]!.split(':').map((token) => {
      const optional = token.startsWith('?');
      const name = cipherName(optional ? token.slice(1) : token);
      if (name === null) fail(d.at, `"${shown(d.at, d.name)}": unknown cipher "${token}"`);
      return { name, optional };
    });
  },
  // Both set OpenVPN's one ciphername; data-ciphers-fallback also makes it the fallback.
  'data-ciphers-fallback CIPHER': (draft, d) => {
    setCipher(draft, d);
    draft.ncpFallback = true;
  },
  'cipher CIPHER': setCipher,
  'auth DIGEST': (draft, d) => {
    if (!getHashes().includes(d.args[0]!.toLowerCase())) {
      fail(d.at, `"${shown(d.at, d.name)}": unknown digest "${d.args[0]}": expected e.g. SHA256`);
    }
    draft.auth = d.args[0]!.toUpperCase();
  },
  'keepalive INTERVAL TIMEOUT': (draft, d) => {
    draft.keepalive = { interval: seconds(d, d.args[0]!), timeout: seconds(d, d.args[1]!) };
  },
  'ping SECONDS': (draft, d) => {
    draft.ping = seconds(d, d.args[0]!);
  },
  'ping-restart SECONDS': (draft, d) => {
    draft.pingRestart = seconds(d, d.args[0]!);
  },
  'reneg-sec MAX [MIN]': (draft, d) => {
    draft.renegSec = seconds(d, d.args[0]!);
    draft.renegSecMin = d.args[1] === undefined ? null : seconds(d, d.args[1]);
  },
  'push "OPTION"': (draft, d) => {
    if (d.args[0]!.includes(',')) fail(d.at, `"${shown(d.at, d.name)}": a pushed option cannot contain a comma`);
    draft.push.push(d.args[0]!);
  },
  'route NETWORK [NETMASK] [GATEWAY] [METRIC]': (draft, d) => {
    const [network, netmask = '255.255.255.255', gateway, metric] = d.args as [string, string?, string?, string?];
    ipv4(d, netmask, 'the netmask');
    draft.routes.push({
      network,
      netmask,
      gateway: gateway ?? null,
      metric: metric === undefined ? null : integer(d, metric, 0, 0x7fffffff, 'a metric'),
    });
  },
  'route-ipv6 NETWORK/BITS [GATEWAY] [METRIC]': (draft, d) => {
    const [network = '', bits = '128', extra] = d.args[0]!.split('/');
    const ip = parseIp(network);
    const prefixLen = /^\d+$/.test(bits) ? Number(bits) : Number.NaN;
    if (ip?.family !== 6 || extra !== undefined || !(prefixLen <= 128)) {
      fail(d.at, `"${shown(d.at, d.name)}" expects an IPv6 network/bits, got "${d.args[0]}"`);
    }
    const gateway = d.args[1] === undefined ? null : parseIp(d.args[1]);
    if (gateway !== null && gateway.family !== 6) {
      fail(d.at, `"${shown(d.at, d.name)}" expects the gateway as an IPv6 address, got "${d.args[1]}"`);
    }
    draft.routesIpv6.push({
      network: formatIp(ip.bytes),
      prefixLen,
      gateway: gateway === null ? null : formatIp(gateway.bytes),
      metric: d.args[2] === undefined ? null : integer(d, d.args[2], 0, 0x7fffffff, 'a metric'),
    });
  },
  'max-clients N': (draft, d) => {
    draft.maxClients = integer(d, d.args[0]!, 1, MAX_PEER_ID - 1, 'a number of clients');
  },
  'duplicate-cn': flag('duplicateCn'),
  'client-to-client': flag('clientToClient'),
  'remote-cert-tls server|client': (draft, d) => {
    draft.remoteCertTls = oneOf(d, d.args[0]!, ['server', 'client'] as const);
  },
  'verify-x509-name NAME [subject|name|name-prefix]': (draft, d) => {
    if (d.args[0] === '') fail(d.at, `"${shown(d.at, d.name)}" expects a non-empty name`);
    const type = d.args[1] === undefined ? 'subject' : oneOf(d, d.args[1], ['subject', 'name', 'name-prefix'] as const);
    draft.verifyX509Name = { name: d.args[0]!, type };
  },
  'tls-version-min 1.0|1.1|1.2|1.3 [or-highest]': (draft, d) => {
    const version = (['1.0', '1.1', '1.2', '1.3'] as const).find((v) => v === d.args[0]);
    if (version !== undefined) draft.tlsVersionMin = version;
    else if (d.args[1] === 'or-highest') draft.tlsVersionMin = '1.3';
    else fail(d.at, `"${shown(d.at, d.name)}": unknown version "${d.args[0]}": expected 1.0, 1.1, 1.2 or 1.3`);
  },
  'tls-cipher LIST': (draft, d) => {
    draft.tlsCipher = d.args[0]!;
  },
  'tls-ciphersuites LIST': (draft, d) => {
    draft.tlsCiphersuites = d.args[0]!;
  },
  'explicit-exit-notify [N]': (draft, d) => {
    draft.explicitExitNotify = d.args[0] === undefined ? 1 : integer(d, d.args[0], 0, 0x7fffffff, 'a count');
  },
  'status FILE [SECONDS]': (draft, d) => {
    draft.status = { path: d.args[0]!, interval: d.args[1] === undefined ? 60 : seconds(d, d.args[1]) };
  },
  'status-version 1|2|3': (draft, d) => {
    draft.statusVersion = integer(d, d.args[0]!, 1, 3, 'a status file format') as 1 | 2 | 3;
  },
  'verb LEVEL': (draft, d) => {
    draft.verb = integer(d, d.args[0]!, 0, 11, 'a verbosity');
  },
  'ifconfig-pool-persist FILE [SECONDS]': (draft, d) => {
    draft.poolPersist = true;
    note(draft, d, 'accepted, no effect: client addresses are not kept across restarts');
  },
  'ignore-unknown-option NAME…': (draft, d) => {
    for (const name of d.args) draft.ignoreUnknown.add(name);
  },
  'setenv NAME [VALUE…]': (draft, d) => {
    if (d.args[0] !== 'opt') {
      note(draft, d, 'accepted, no effect: environment for scripts, and we run none');
      return;
    }
    if (d.args.length < 2) fail(d.at, `"${shown(d.at, 'setenv')} opt" expects a directive`);
    // `setenv opt X …` is X, except that an unknown X is only a note (OpenVPN's rule).
    apply(draft, { ...d, name: d.args[1]!, args: d.args.slice(2) }, true);
  },
  'allow-compression no': refuseCompression,
  'comp-lzo [yes|no|adaptive]': refuseCompression,
  'compress [ALGORITHM]': refuseCompression,
});

// OpenVPN 2.6 still reads 2.4's name for data-ciphers.
SPECS['ncp-ciphers'] = {
  ...SPECS['data-ciphers']!,
  apply(draft, d) {
    note(draft, d, 'read as data-ciphers (renamed in OpenVPN 2.5)');
    SPECS['data-ciphers']!.apply(draft, d);
  },
};

/** Directives accepted without effect: only process behaviour, which our engine has no use for. */
const NOTED = specs(
  Object.fromEntries(
    Object.entries({
      'persist-key': 'keys are read once, at start',
      'persist-tun': 'the TUN device lives as long as the process',
      'resolv-retry SECONDS|infinite': 'name resolution is retried by the session',
      'user NAME': 'privileges are not dropped (the engine needs CAP_NET_ADMIN)',
      'group NAME': 'privileges are not dropped (the engine needs CAP_NET_ADMIN)',
      'mute N': 'repeated messages are not muted',
      'mute-replay-warnings': 'replayed packets are counted, not logged',
      'auth-nocache': 'no password is ever cached',
      float: 'peers float anyway: authenticated packets from a new address move the peer',
      'log FILE': 'messages go to standard output',
      'log-append FILE': 'messages go to standard output',
      'script-security LEVEL': 'no scripts are run',
      'disable-dco': 'we are the data channel offload',
      'daemon [NAME]': 'runs in the foreground (let systemd or the shell put it in the background)',
      'writepid FILE': 'no pid file is written',
    }).map(([usage, why]): [string, Spec['apply']] => [
      usage,
      (draft, d) => note(draft, d, `accepted, no effect: ${why}`),
    ]),
  ),
);

function note(draft: Draft, d: Directive, why: string): void {
  draft.notes.push(`${where(d.at)}: ${shown(d.at, d.name)}: ${why}`);
}

function arity(min: number, max: number): string {
  const count = min === max ? `${min}` : `${min} to ${max}`;
  if (max === 0) return 'no parameters';
  return `${count} parameter${max === 1 ? '' : 's'}`;
}

function apply(draft: Draft, d: Directive, fromSetenvOpt = false): void {
  const spec = Object.hasOwn(SPECS, d.name) ? SPECS[d.name] : Object.hasOwn(NOTED, d.name) ? NOTED[d.name] : undefined;
  if (spec === undefined) {
    if (fromSetenvOpt || draft.ignoreUnknown.has(d.name)) {
      note(draft, d, `unknown, ignored (${fromSetenvOpt ? 'setenv opt' : 'ignore-unknown-option'})`);
      return;
    }
    fail(d.at, `unknown directive "${shown(d.at, d.name)}"`);
  }
  if (d.inline && !INLINE.has(d.name)) fail(d.at, `"${d.name}" cannot be an inline <${d.name}> block`);
  if (d.args.length < spec.min || d.args.length > spec.max) {
    const hint = d.name === 'push' ? '; quote the pushed option: push "route 10.9.0.0 255.255.255.0"' : '';
    fail(
      d.at,
      `"${shown(d.at, d.name)}" expects ${arity(spec.min, spec.max)} (${spec.usage}), got ${d.args.length}${hint}`,
    );
  }
  draft.seen.set(d.name, d.at);
  spec.apply(draft, d);
}

// ---------------------------------------------------------------------------------------------
// Helpers' expansion, checks, files
// ---------------------------------------------------------------------------------------------

/**
 * Where to point a message about a directive's value: where the first of `names` was last given;
 * for something missing, the first config file (or the command line).
 */
function locate(draft: Draft, ...names: string[]): string {
  for (const name of names) {
    const at = draft.seen.get(name);
    if (at !== undefined) return where(at);
  }
  return draft.configFiles[0] ?? 'command line';
}

function failAt(draft: Draft, names: string[], message: string): never {
  throw new OpenVpnConfigError(`${locate(draft, ...names)}: ${message}`);
}

function readText(draft: Draft, ref: FileRef, what: string): { text: string; source: string } {
  if (ref.inline) return { text: ref.value, source: `inline <${what}>` };
  const path = resolve(draft.cwd, ref.value);
  try {
    return { text: draft.io.readFile(path), source: path };
  } catch (error) {
    fail(ref.at, `${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function readPem(draft: Draft, name: 'ca' | 'cert' | 'key' | 'dh'): Pem | null {
  const ref = draft.files[name];
  if (ref === undefined) return null;
  const { text, source } = readText(draft, ref, name);
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const check = (ok: boolean, expected: string) => {
    if (!ok) fail(ref.at, `${name}: ${source} holds no ${expected}`);
  };
  try {
    if (name === 'ca' || name === 'cert') {
      const certs = blocks.filter((m) => m[1] === 'CERTIFICATE');
      check(certs.length > 0, 'PEM certificate');
      for (const cert of name === 'ca' ? certs : certs.slice(0, 1)) new X509Certificate(cert[0]);
    } else if (name === 'key') {
      const key = blocks.find((m) => m[1]!.endsWith('PRIVATE KEY'));
      check(key !== undefined, 'PEM private key');
      if (key![1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(key![0])) {
        fail(ref.at, `key: ${source} is encrypted: a passphrase prompt (askpass) is not supported`);
      }
      createPrivateKey(key![0]);
    } else {
      check(
        blocks.some((m) => m[1] === 'DH PARAMETERS'),
        'PEM DH parameters',
      );
    }
  } catch (error) {
    if (error instanceof OpenVpnConfigError) throw error;
    fail(ref.at, `${name}: ${source} is not valid: ${(error as Error).message}`);
  }
  return { text, source };
}

function readKey(draft: Draft, name: 'tls-auth' | 'tls-crypt'): StaticKey | null {
  const ref = draft.files[name];
  if (ref === undefined) return null;
  const { text, source } = readText(draft, ref, name);
  try {
    return { bytes: parseStaticKey(text, source), source };
  } catch (error) {
    fail(ref.at, `${name}: ${(error as Error).message}`);
  }
}

function resolveRole(draft: Draft): OpenVpnRole {
  if (draft.client && (draft.server !== null || draft.serverIpv6 !== null)) {
    failAt(draft, ['server', 'server-ipv6'], '"server" and "client" cannot be used together');
  }
  if (draft.server !== null || draft.serverIpv6 !== null) {
    draft.mode = 'server';
    draft.tlsServer = true;
  }
  if (draft.client) {
    draft.pull = true;
    draft.tlsClient = true;
  }
  if (draft.tlsServer && draft.tlsClient) {
    failAt(draft, ['tls-client', 'client', 'tls-server'], 'specify only one of tls-server, tls-client (or client)');
  }
  if (!draft.tlsServer && !draft.tlsClient) {
    failAt(
      draft,
      [],
      'no TLS role: expected client, server, tls-server or tls-client (static-key mode is not supported)',
    );
  }
  if (draft.mode === 'server') {
    if (draft.pull) failAt(draft, ['pull', 'client'], '"pull" cannot be used in server mode');
    if (!draft.tlsServer) failAt(draft, ['mode'], '"mode server" requires tls-server');
    if (draft.server === null && draft.serverIpv6 === null) {
      failAt(draft, ['mode'], '"mode server" is supported only through "server NETWORK NETMASK" (no ifconfig-pool)');
    }
    if (draft.topology !== 'subnet') {
      failAt(
        draft,
        ['server', 'server-ipv6', 'mode'],
        `topology ${draft.topology} is not supported: ovpn-dco serves "topology subnet" only (OpenVPN 2.6 turns DCO off otherwise)`,
      );
    }
    return 'server';
  }
  if (draft.pull) {
    if (!draft.tlsClient) failAt(draft, ['pull'], '"pull" needs tls-client');
    return 'client';
  }
  return draft.tlsServer ? 'p2p-tls-server' : 'p2p-tls-client';
}

function resolveDev(draft: Draft): { name: string; fixed: boolean } {
  if (draft.dev === null) failAt(draft, [], 'no "dev": expected dev tun (or tunN)');
  const type = draft.devType ?? ['tun', 'tap', 'null'].find((prefix) => draft.dev!.startsWith(prefix));
  if (type === undefined) {
    failAt(draft, ['dev'], `"dev ${draft.dev}": the name does not tell the device type: add "dev-type tun"`);
  }
  if (type !== 'tun') {
    failAt(
      draft,
      ['dev-type', 'dev'],
      `"dev ${draft.dev}" is not a tun device: ovpn-dco carries IP packets only (OpenVPN 2.6 turns DCO off otherwise)`,
    );
  }
  return { name: draft.dev, fixed: /\d/.test(draft.dev) };
}

function resolveProto(draft: Draft, role: OpenVpnRole, proto: ProtoName): TransportProto {
  if (proto !== 'tcp') return proto;
  if (role === 'server') return 'tcp-server';
  if (role === 'client') return 'tcp-client';
  return failAt(
    draft,
    ['proto', 'remote'],
    '"proto tcp" is ambiguous in this context: specify tcp-server or tcp-client',
  );
}

/** helper.c's `server NET MASK` for dev tun, topology subnet (resolveRole refuses the others). */
function expandServer(draft: Draft, push: string[]): { pool: ServerPool; ifconfig: Ifconfig } | null {
  const server = draft.server;
  if (server === null) return null;
  const bits = 32 - Math.log2(2 ** 32 - server.netmask);
  const invalid = (message: string) => failAt(draft, ['server'], `"server": ${message}`);
  if (!Number.isInteger(bits) || (server.network & server.netmask) >>> 0 !== server.network) {
    invalid('network/netmask combination is invalid');
  }
  if (bits < 16) invalid('netmask allows for too many host addresses (subnet must be 255.255.0.0 (/16) or higher)');
  if (bits > 29) invalid('with dev tun the subnet must be 255.255.255.248 (/29) or lower');
  const broadcast = (server.network | ~server.netmask) >>> 0;
  const netmask = formatV4(server.netmask);
  push.push(`route-gateway ${formatV4(server.network + 1)}`, 'topology subnet');
  return {
    pool: {
      network: formatV4(server.network),
      netmask,
      prefixLen: bits,
      pool: server.nopool ? null : { start: formatV4(server.network + 2), end: formatV4(broadcast - 1) },
    },
    ifconfig: { local: formatV4(server.network + 1), netmask, remote: null },
  };
}

function expandServerIpv6(draft: Draft, push: string[]): { pool: ServerPoolIpv6; ifconfig: IfconfigIpv6 } | null {
  const server = draft.serverIpv6;
  if (server === null) return null;
  if (draft.server?.nopool) failAt(draft, ['server'], '"server-ipv6" is incompatible with the "nopool" option');
  push.push('tun-ipv6');
  return {
    pool: {
      network: formatIp(server.network),
      prefixLen: server.prefixLen,
      poolStart: formatIp(addV6(server.network, server.prefixLen < 112 ? 0x1000 : 2)),
    },
    ifconfig: {
      local: formatIp(addV6(server.network, 1)),
      prefixLen: server.prefixLen,
      remote: formatIp(addV6(server.network, 2)),
    },
  };
}

/** helper_keepalive: checks, then ping / ping-restart (and the server's pushes). */
function expandKeepalive(draft: Draft, role: OpenVpnRole, push: string[]): void {
  const keepalive = draft.keepalive;
  if (keepalive === null) return;
  const at = ['keepalive'];
  if (keepalive.interval <= 0 || keepalive.timeout <= 0) failAt(draft, at, '"keepalive" parameters must be > 0');
  if (keepalive.interval * 2 > keepalive.timeout) {
    failAt(
      draft,
      at,
      `"keepalive": the timeout (${keepalive.timeout}) must be at least twice the interval (${keepalive.interval}); 10 60 is recommended`,
    );
  }
  if (draft.ping !== 0 || draft.pingRestart !== 0) {
    failAt(draft, at, '"keepalive" conflicts with "ping" and "ping-restart": it sets both');
  }
  draft.ping = keepalive.interval;
  draft.pingRestart = role === 'server' ? keepalive.timeout * 2 : keepalive.timeout;
  if (role === 'server') push.push(`ping ${keepalive.interval}`, `ping-restart ${keepalive.timeout}`);
}

function resolveCiphers(draft: Draft, role: OpenVpnRole): { list: string[]; fallback: string | null } {
  const at = locate(draft, 'data-ciphers');
  const list = (draft.dataCiphers ?? DEFAULT_DATA_CIPHERS.map((name) => ({ name, optional: false })))
    .filter(({ name, optional }) => {
      if (DCO_CIPHERS.includes(name)) return true;
      const why = `${name} is not carried by ovpn-dco (it carries ${DCO_CIPHERS.join(', ')})`;
      if (!optional)
        failAt(draft, ['data-ciphers'], `"data-ciphers": ${why}; remove it or mark it optional (?${name})`);
      draft.notes.push(`${at}: data-ciphers: optional ${why}: left out`);
      return false;
    })
    .map(({ name }) => name);
  if (list.length === 0) failAt(draft, ['data-ciphers'], '"data-ciphers": no cipher left that ovpn-dco carries');
  // In p2p modes `cipher` is the fallback for a peer that cannot negotiate (options_postprocess_cipher).
  const cipher = draft.cipher;
  const fallback = cipher !== null && (draft.ncpFallback || role.startsWith('p2p')) ? cipher.name : null;
  if (cipher !== null && fallback !== null && !DCO_CIPHERS.includes(fallback)) {
    fail(
      cipher.at,
      `fallback cipher ${fallback} is not supported: ovpn-dco carries ${DCO_CIPHERS.join(', ')} (OpenVPN 2.6 turns DCO off for others)`,
    );
  }
  if (cipher !== null && fallback === null && !list.includes(cipher.name)) {
    draft.notes.push(
      `${where(cipher.at)}: cipher ${cipher.name} is not in data-ciphers: ignored for negotiation, as OpenVPN 2.6 does`,
    );
  }
  return { list, fallback };
}

function checkTransport(draft: Draft, role: OpenVpnRole, transport: Transport, remotes: Remote[]): void {
  if (role === 'server') {
    if (transport.proto === 'tcp-client') failAt(draft, ['proto'], 'a server takes proto udp or tcp-server');
    if (remotes.length > 0) failAt(draft, ['remote'], '"remote" cannot be used in server mode');
    if (draft.nobind) failAt(draft, ['nobind'], '"nobind" cannot be used in server mode');
  } else {
    for (const name of ['client-to-client', 'duplicate-cn', 'ifconfig-pool-persist']) {
      if (draft.seen.has(name)) failAt(draft, [name], `"${name}" requires server mode ("server NETWORK NETMASK")`);
    }
  }
  if (draft.nobind && draft.local !== null) failAt(draft, ['local'], '"local" and "nobind" cannot be used together');
  if (draft.nobind && draft.lportDefined) failAt(draft, ['lport'], '"lport" and "nobind" cannot be used together');
  if (draft.nobind && remotes.length === 0) failAt(draft, ['nobind'], '"nobind" makes sense only with "remote"');
  if (remotes.length === 0 && transport.proto === 'tcp-client') {
    failAt(draft, ['proto'], '"remote" is required with tcp-client');
  }
  if (transport.proto === 'tcp-server' && remotes.length > 1) {
    failAt(draft, ['remote'], 'tcp-server allows at most one "remote"');
  }
}

function resolveTransport(draft: Draft, role: OpenVpnRole): { transport: Transport; remotes: Remote[] } {
  const proto = resolveProto(draft, role, draft.proto);
  const remotes = draft.remotes.map((r) => ({
    host: r.host,
    port: r.port ?? draft.port,
    proto: resolveProto(draft, role, r.proto ?? draft.proto),
    family: r.family ?? draft.family,
  }));
  // A client binds no local port unless told to (options_postprocess_mutate_ce).
  const needBind = draft.local !== null || draft.lportDefined;
  const bind = !draft.nobind && (needBind || !(proto === 'tcp-client' || draft.pull));
  const transport: Transport = { proto, family: draft.family, lport: bind ? draft.lport : null, local: draft.local };
  checkTransport(draft, role, transport, remotes);
  if (draft.explicitExitNotify > 0 && [transport, ...remotes].every((t) => t.proto !== 'udp')) {
    draft.notes.push(
      `${locate(draft, 'explicit-exit-notify')}: explicit-exit-notify: ignored over TCP, as OpenVPN does`,
    );
    draft.explicitExitNotify = 0;
  }
  return { transport, remotes };
}

function readTls(draft: Draft, role: OpenVpnRole): Pick<OpenVpnConfig, 'tls' | 'tlsAuth' | 'tlsCrypt'> {
  const tlsServer = role === 'server' || role === 'p2p-tls-server';
  const ca = readPem(draft, 'ca');
  if (ca === null) failAt(draft, [], 'no "ca": the CA certificate that peer certificates must chain to is required');
  const cert = readPem(draft, 'cert');
  const key = readPem(draft, 'key');
  if (cert === null || key === null) {
    failAt(
      draft,
      ['cert', 'key'],
      'both "cert" and "key" are required (username/password authentication is not supported)',
    );
  }
  let dh: Pem | null = null;
  const dhRef = draft.files.dh;
  if (tlsServer) {
    if (dhRef === undefined) failAt(draft, [], 'no "dh": a TLS server needs "dh FILE" or "dh none" (ECDHE only)');
    if (dhRef.inline || dhRef.value !== 'none') dh = readPem(draft, 'dh');
  } else if (dhRef !== undefined) {
    draft.notes.push(`${where(dhRef.at)}: dh: ignored by a TLS client`);
  }
  if (draft.files['tls-auth'] !== undefined && draft.files['tls-crypt'] !== undefined) {
    failAt(draft, ['tls-crypt'], '"tls-auth" and "tls-crypt" are mutually exclusive');
  }
  const tlsAuthKey = readKey(draft, 'tls-auth');
  const tlsCryptKey = readKey(draft, 'tls-crypt');
  return {
    tls: { ca, cert, key, dh },
    tlsAuth: tlsAuthKey === null ? null : { key: tlsAuthKey, direction: draft.keyDirection },
    tlsCrypt: tlsCryptKey === null ? null : { key: tlsCryptKey },
  };
}

function finish(draft: Draft): OpenVpnConfig {
  const role = resolveRole(draft);
  const dev = resolveDev(draft);
  const push = [...draft.push];
  // The same order as helper.c: server-ipv6, server, then keepalive.
  const v6 = expandServerIpv6(draft, push);
  const v4 = expandServer(draft, push);
  expandKeepalive(draft, role, push);
  const ciphers = resolveCiphers(draft, role);

  const { transport, remotes } = resolveTransport(draft, role);
  const tls = readTls(draft, role);

  const ifconfig: Ifconfig | null =
    v4?.ifconfig ??
    (draft.ifconfig === null
      ? null
      : draft.topology === 'subnet'
        ? { local: draft.ifconfig[0], netmask: draft.ifconfig[1], remote: null }
        : { local: draft.ifconfig[0], netmask: null, remote: draft.ifconfig[1] });

  return {
    role,
    pull: draft.pull,
    dev,
    tunMtu: draft.tunMtu,
    txqueuelen: draft.txqueuelen,
    topology: draft.topology,
    transport,
    remotes,
    remoteRandom: draft.remoteRandom,
    connectRetry: draft.connectRetry,
    connectRetryMax: draft.connectRetryMax,
    serverPollTimeout: draft.serverPollTimeout,
    server: v4?.pool ?? null,
    serverIpv6: v6?.pool ?? null,
    ifconfig,
    ifconfigIpv6: v6?.ifconfig ?? draft.ifconfigIpv6,
    ...tls,
    dataCiphers: ciphers.list,
    dataCiphersFallback: ciphers.fallback,
    cipher: draft.cipher?.name ?? null,
    auth: draft.auth,
    keepalive: draft.keepalive,
    ping: draft.ping,
    pingRestart: draft.pingRestart,
    renegSec: draft.renegSec,
    renegSecMin: draft.renegSecMin,
    push,
    routes: draft.routes,
    routesIpv6: draft.routesIpv6,
    maxClients: draft.maxClients,
    duplicateCn: draft.duplicateCn,
    clientToClient: draft.clientToClient,
    remoteCertTls: draft.remoteCertTls,
    verifyX509Name: draft.verifyX509Name,
    tlsVersionMin: draft.tlsVersionMin,
    tlsCipher: draft.tlsCipher,
    tlsCiphersuites: draft.tlsCiphersuites,
    explicitExitNotify: draft.explicitExitNotify,
    status:
      draft.status === null
        ? null
        : {
            path: resolve(draft.cwd, draft.status.path),
            interval: draft.status.interval,
            version: draft.statusVersion,
          },
    verb: draft.verb,
    cwd: draft.cwd,
    configFiles: draft.configFiles,
    notes: draft.notes,
    seen: draft.seen,
  };
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/**
 * Reads an OpenVPN command line (without the program name): `--config server.conf --port 1195`,
 * or a lone config file name. Throws OpenVpnConfigError naming the file and line (or `command
 * line`) and what was expected; key and certificate files are read and checked too.
 */
export function parseOpenVpnArgs(argv: string[], io: ConfigIo = {}): OpenVpnConfig {
  const draft = newDraft(io);
  for (const d of directivesOfArgv(argv)) apply(draft, d);
  return finish(draft);
}

/** A human-readable summary, one setting per line, for logging at start (`verb` 4 and up in OpenVPN). */
export function describeOpenVpnConfig(config: OpenVpnConfig): string {
  const lines: string[] = [];
  const add = (label: string, value: unknown) => {
    if (value !== null && value !== undefined && value !== '') lines.push(`${label.padEnd(20)} ${String(value)}`);
  };
  const t = config.transport;
  add('role', config.role);
  add('config', config.configFiles.join(', '));
  add('dev', `${config.dev.name} (topology ${config.topology}, mtu ${config.tunMtu})`);
  add('transport', `${t.proto}${t.family === 'any' ? '' : ` ${t.family}`}`);
  add('bind', t.lport === null ? 'none' : `${t.local ?? '*'}:${t.lport}`);
  for (const r of config.remotes)
    add('remote', `${r.host} ${r.port} ${r.proto}${r.family === 'any' ? '' : ` ${r.family}`}`);
  if (config.remotes.length > 0) {
    const { seconds, max } = config.connectRetry;
    const rounds = config.connectRetryMax === null ? '' : `, ${config.connectRetryMax} rounds`;
    add('connect-retry', `${seconds} s up to ${max} s${rounds}, server-poll-timeout ${config.serverPollTimeout} s`);
  }
  if (config.server) {
    const pool = config.server.pool;
    add(
      'server',
      `${config.server.network}/${config.server.prefixLen}${pool ? ` pool ${pool.start}-${pool.end}` : ' nopool'}`,
    );
  }
  if (config.serverIpv6)
    add(
      'server-ipv6',
      `${config.serverIpv6.network}/${config.serverIpv6.prefixLen} pool from ${config.serverIpv6.poolStart}`,
    );
  if (config.ifconfig) add('ifconfig', `${config.ifconfig.local} ${config.ifconfig.netmask ?? config.ifconfig.remote}`);
  if (config.ifconfigIpv6)
    add('ifconfig-ipv6', `${config.ifconfigIpv6.local}/${config.ifconfigIpv6.prefixLen} ${config.ifconfigIpv6.remote}`);
  add('ca', config.tls.ca.source);
  add('cert', config.tls.cert.source);
  add('key', config.tls.key.source);
  add('dh', config.tls.dh?.source ?? (config.role === 'server' || config.role === 'p2p-tls-server' ? 'none' : null));
  if (config.tlsAuth)
    add('tls-auth', `${config.tlsAuth.key.source} direction ${config.tlsAuth.direction ?? 'bidirectional'}`);
  if (config.tlsCrypt) add('tls-crypt', config.tlsCrypt.key.source);
  add('data-ciphers', config.dataCiphers.join(':'));
  add('fallback cipher', config.dataCiphersFallback);
  add('auth', config.auth);
  add('tls-version-min', config.tlsVersionMin);
  add('ping', `${config.ping} restart ${config.pingRestart}`);
  add('reneg-sec', config.renegSec);
  for (const p of config.push) add('push', p);
  for (const r of config.routes) {
    add('route', [r.network, r.netmask, r.gateway, r.metric].filter((v) => v !== null).join(' '));
  }
  for (const r of config.routesIpv6) {
    add('route-ipv6', [`${r.network}/${r.prefixLen}`, r.gateway, r.metric].filter((v) => v !== null).join(' '));
  }
  if (config.role === 'server') {
    add('max-clients', config.maxClients);
    add('client-to-client', config.clientToClient);
    add('duplicate-cn', config.duplicateCn);
  }
  add('remote-cert-tls', config.remoteCertTls);
  if (config.verifyX509Name) add('verify-x509-name', `${config.verifyX509Name.name} ${config.verifyX509Name.type}`);
  add('explicit-exit-notify', config.explicitExitNotify);
  if (config.status) {
    add('status', `${config.status.path} every ${config.status.interval}s, version ${config.status.version}`);
  }
  add('verb', config.verb);
  for (const n of config.notes) add('note', n);
  return lines.join('\n');
}
