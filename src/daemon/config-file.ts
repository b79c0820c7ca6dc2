/**
 * An interface described in a file, applied by the daemon at start (`--config-file`), so that a
 * service manager restarting the daemon brings back the same tunnel: mode and MTU, addresses and
 * kernel routes on the TUN, and peers with their keys (read from ovpn-cli key files) and attached
 * routes. JSON, with the control protocol's attribute names (docs/CONTROL.md), and checked by the
 * same schema as the control socket's requests, so one rule says what a peer may be:
 *
 *     { "mode": "P2P", "mtu": 1420, "addresses": ["5.5.5.1/24"],
 *       "peers": [{ "id": 1, "remote-ipv4": "10.10.1.2", "remote-port": 1, "local-port": 1,
 *                   "vpn-ipv4": "5.5.5.2",
 *                   "keys": [{ "key-file": "tun0.key", "direction": 0, "cipher-alg": "AES-256-GCM" }],
 *                   "routes": ["10.1.0.0/16"] }],
 *       "routes": [{ "prefix": "192.168.7.0/24", "via": "5.5.5.2" }] }
 *
 * Everything is checked, and every key file read, before the interface is created.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { decodeRequest, type RequestOf } from '../control/schema.js';
import { CIPHER_ALGS, isCipherAlg } from '../core/cipher.js';
import { parseKeyFile } from '../core/key-file.js';
import type { Log } from '../core/log.js';
import type { InterfaceMode, OvpnInterface, PeerConfig } from '../device/ovpn-interface.js';

export interface KernelRoute {
  prefix: string;
  via?: string;
}

export interface InterfaceConfig {
  mode?: InterfaceMode;
  mtu?: number;
  addresses: string[];
  peers: { peer: PeerConfig; keys: RequestOf<'key-new'>['keyconf'][]; routes: string[] }[];
  routes: KernelRoute[];
}

type Json = Record<string, unknown>;

/** An error in the file: names the file and the place in it (`peers[0].keys[1].direction`). */
class ConfigError extends Error {
  constructor(source: string, field: string, message: string) {
    super(`${source}: ${field}: ${message}`);
    this.name = 'ConfigError';
  }
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Refuses attributes the stanza does not have, by name. */
function onlyKnown(source: string, where: string, value: Json, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key))
      throw new ConfigError(source, where, `unknown attribute "${key}": expected one of ${known.join(', ')}`);
  }
}

function list(source: string, field: string, value: unknown): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(source, field, 'must be an array');
  return value;
}

function strings(source: string, field: string, value: unknown): string[] {
  return list(source, field, value).map((item, i) => {
    if (typeof item !== 'string') throw new ConfigError(source, `${field}[${i}]`, 'must be a string');
    return item;
  });
}

/** Runs a control-protocol decode; its error names the attribute, ours adds where in the file. */
function decoded<T>(source: string, where: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw new ConfigError(source, where, (error as Error).message);
  }
}

const PEER_EXTRAS = ['keys', 'routes'];
const KEY_ATTRS = ['key-file', 'direction', 'cipher-alg', 'slot', 'key-id'];

function keyOf(source: string, where: string, peerId: number, value: unknown, dir: string) {
  if (!isObject(value)) throw new ConfigError(source, where, 'must be an object');
  onlyKnown(source, where, value, KEY_ATTRS);
  const { 'key-file': file, direction, 'cipher-alg': cipher } = value;
  if (typeof file !== 'string') throw new ConfigError(source, `${where}.key-file`, 'must be a key file path');
  if (direction !== 0 && direction !== 1)
    throw new ConfigError(source, `${where}.direction`, 'must be 0 or 1 (the other end uses the other one)');
  if (typeof cipher !== 'string' || !isCipherAlg(cipher))
    throw new ConfigError(source, `${where}.cipher-alg`, `must be one of ${CIPHER_ALGS.join(', ')}`);
  const path = resolve(dir, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(source, `${where}.key-file`, `cannot read ${path}: ${(error as Error).message}`);
  }
  const keys = decoded(source, `${where}.key-file`, () => parseKeyFile(text, cipher, direction, path));
  const dirOf = (k: { key: Uint8Array; nonceTail: Uint8Array }) => ({
    'cipher-key': Buffer.from(k.key).toString('base64'),
    'nonce-tail': Buffer.from(k.nonceTail).toString('base64'),
  });
  const keyconf = {
    'peer-id': peerId,
    slot: value.slot ?? 'primary',
    'key-id': value['key-id'] ?? 0,
    'cipher-alg': cipher,
    'encrypt-dir': dirOf(keys.encrypt),
    'decrypt-dir': dirOf(keys.decrypt),
  };
  const request = decoded(source, where, () => decodeRequest({ cmd: 'key-new', keyconf }));
  return (request as RequestOf<'key-new'>).keyconf;
}

/** Reads and checks `path`; throws an error naming the file and the attribute at fault. */
export function readInterfaceConfig(path: string): InterfaceConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(path, 'file', `cannot read it as JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new ConfigError(path, 'file', 'must hold one JSON object');
  onlyKnown(path, 'file', parsed, ['mode', 'mtu', 'addresses', 'peers', 'routes']);
  const { mode, mtu } = parsed;
  if (mode !== undefined && mode !== 'P2P' && mode !== 'MP')
    throw new ConfigError(path, 'mode', 'must be "P2P" or "MP"');
  if (mtu !== undefined && !Number.isInteger(mtu)) throw new ConfigError(path, 'mtu', 'must be an integer');
  const dir = dirname(path);
  const peers = list(path, 'peers', parsed.peers).map((value, i) => {
    const where = `peers[${i}]`;
    if (!isObject(value)) throw new ConfigError(path, where, 'must be an object');
    const attrs = Object.fromEntries(Object.entries(value).filter(([k]) => !PEER_EXTRAS.includes(k)));
    const peer = (decoded(path, where, () => decodeRequest({ cmd: 'peer-new', peer: attrs })) as RequestOf<'peer-new'>)
      .peer;
    const keys = list(path, `${where}.keys`, value.keys).map((k, j) =>
      keyOf(path, `${where}.keys[${j}]`, peer.id, k, dir),
    );
    return { peer, keys, routes: strings(path, `${where}.routes`, value.routes) };
  });
  const routes = list(path, 'routes', parsed.routes).map((value, i) => {
    const where = `routes[${i}]`;
    if (!isObject(value)) throw new ConfigError(path, where, 'must be an object: {"prefix": ..., "via": ...}');
    onlyKnown(path, where, value, ['prefix', 'via']);
    if (typeof value.prefix !== 'string') throw new ConfigError(path, `${where}.prefix`, 'must be a string');
    if (value.via !== undefined && typeof value.via !== 'string')
      throw new ConfigError(path, `${where}.via`, 'must be a string');
    return { prefix: value.prefix, ...(value.via === undefined ? {} : { via: value.via as string }) };
  });
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(mtu === undefined ? {} : { mtu: mtu as number }),
    addresses: strings(path, 'addresses', parsed.addresses),
    peers,
    routes,
  };
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Brings the interface to what the file says: addresses and link up, peers and keys, routes. */
export async function applyInterfaceConfig(iface: OvpnInterface, config: InterfaceConfig, log: Log): Promise<void> {
  for (const address of config.addresses) ip('addr', 'add', address, 'dev', iface.name);
  ip('link', 'set', iface.name, 'up');
  for (const { peer, keys, routes } of config.peers) {
    if (peer.transport === 'tcp') await iface.newTcpPeer(peer);
    else iface.newPeer(peer);
    for (const keyconf of keys) iface.newKey(keyconf);
    for (const prefix of routes) iface.addRoute(peer.id, prefix);
    log.info('peer from config file', { peer: peer.id, keys: keys.length, routes: routes.length });
  }
  for (const route of config.routes) {
    ip('route', 'add', route.prefix, ...(route.via === undefined ? [] : ['via', route.via]), 'dev', iface.name);
  }
}
