/**
 * The value rules of peer and key configuration, in the role of the kernel module's netlink
 * attribute policy: ranges, address families, which attributes go together. The control
 * protocol has already checked shapes and types (control/schema.ts); library callers get the
 * same messages. Each check throws an OvpnError naming the field; none of them needs state (the
 * interface checks ids and addresses against its peer table).
 */
import { isIP } from 'node:net';
import { MAX_PACKET } from '../core/batch.js';
import { type CipherAlg, isCipherAlg } from '../core/cipher.js';
import type { EndpointInit } from '../core/endpoint.js';
import { type IpBytes, type Prefix, parseIp, parsePrefix } from '../core/ip.js';
import { KeySlot } from '../core/key-slots.js';
import { MAX_KEY_ID, MAX_PEER_ID } from '../core/wire.js';
import { vpnAddressProblem } from '../peer/vpn-address.js';
import { type CipherName, type KeyConfigRequest, type KeyDirConfig, OvpnError, type PeerConfig } from './api.js';

function checkInteger(value: number, min: number, max: number, field: string, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new OvpnError('EINVAL', `${field} must be ${what}, got ${String(value)}`, field);
  }
  return value;
}

export function checkPeerId(id: number, field = 'id'): number {
  return checkInteger(id, 0, MAX_PEER_ID, field, `an integer from 0 to ${MAX_PEER_ID}`);
}

/** A control packet handed to us to send, untouched. */
export function checkPacket(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array) || data.length === 0 || data.length > MAX_PACKET) {
    throw new OvpnError('EINVAL', `packet must be 1 to ${MAX_PACKET} bytes`, 'data');
  }
  return data;
}

export function checkPort(port: number, field: string): number {
  return checkInteger(port, 0, 65535, field, 'a port number from 0 to 65535');
}

function checkSeconds(value: number, field: string): number {
  return checkInteger(value, 0, 0xffffffff, field, 'a whole number of seconds (0 turns it off)');
}

function checkKeyId(keyId: number): number {
  return checkInteger(keyId, 0, MAX_KEY_ID, 'key-id', `an integer from 0 to ${MAX_KEY_ID}`);
}

function checkIp(address: string, family: 4 | 6, field: string): string {
  if (typeof address !== 'string' || isIP(address) !== family) {
    throw new OvpnError('EINVAL', `${field} must be an IPv${family} address, got ${JSON.stringify(address)}`, field);
  }
  return address;
}

/** Keepalive interval and timeout come together. */
export function checkKeepalive(config: PeerConfig): void {
  if ((config.keepaliveInterval === undefined) !== (config.keepaliveTimeout === undefined)) {
    throw new OvpnError('EINVAL', 'keepalive interval and timeout are required together', 'keepalive-interval');
  }
  if (config.keepaliveInterval !== undefined) checkSeconds(config.keepaliveInterval, 'keepalive-interval');
  if (config.keepaliveTimeout !== undefined) checkSeconds(config.keepaliveTimeout, 'keepalive-timeout');
}

export interface VpnAddress extends IpBytes {
  field: 'vpn-ipv4' | 'vpn-ipv6';
  text: string;
}

/** The peer's VPN addresses that are set, each refused where the upstream module refuses it. */
export function vpnAddressesOf(config: PeerConfig): VpnAddress[] {
  const out: VpnAddress[] = [];
  for (const [field, text, family] of [
    ['vpn-ipv4', config.vpnIpv4, 4],
    ['vpn-ipv6', config.vpnIpv6, 6],
  ] as const) {
    if (text === undefined) continue;
    checkIp(text, family, field);
    const problem = vpnAddressProblem(text, family);
    if (problem !== null) {
      throw new OvpnError(
        'EINVAL',
        `${field} ${text} ${problem}: give the peer's own address inside the tunnel`,
        field,
      );
    }
    out.push({ field, text, family, bytes: parseIp(text)!.bytes });
  }
  return out;
}

/** The remote transport address of a peer config, or null when it has none. */
/** newPeer adds UDP peers only. */
export function checkUdpTransport(config: PeerConfig): void {
  if (config.transport === undefined || config.transport === 'udp') return;
  const got = JSON.stringify(config.transport);
  throw new OvpnError('EINVAL', `newPeer adds UDP peers, got transport ${got}: use newTcpPeer for TCP`, 'transport');
}

/** A UDP peer's local port and remote address: both required. */
export function udpPath(config: PeerConfig): { localPort: number; remote: EndpointInit & { family: 4 | 6 } } {
  const localPort = checkPort(config.localPort ?? Number.NaN, 'local-port');
  const remote = remoteOf(config);
  if (remote === null) {
    const message = 'missing remote IP address for UDP socket: set remote-ipv4 or remote-ipv6 and remote-port';
    throw new OvpnError('EINVAL', message, 'remote-ipv4');
  }
  return { localPort, remote };
}

/** The port a TCP peer without a remote address accepts its connection on: one must be named. */
export function listeningPort(config: PeerConfig): number {
  const port = checkPort(config.localPort ?? Number.NaN, 'local-port');
  if (port === 0) {
    const message = 'a listening TCP peer needs local-port, the port to accept its connection on';
    throw new OvpnError('EINVAL', message, 'local-port');
  }
  return port;
}

export function remoteOf(config: PeerConfig): (EndpointInit & { family: 4 | 6 }) | null {
  if (config.remoteIpv4 !== undefined && config.remoteIpv6 !== undefined) {
    throw new OvpnError('EINVAL', 'cannot specify both remote IPv4 or IPv6 address', 'remote-ipv4');
  }
  const family = config.remoteIpv4 !== undefined ? 4 : 6;
  const address = family === 4 ? config.remoteIpv4 : config.remoteIpv6;
  if (address === undefined) {
    if (config.remotePort !== undefined) {
      throw new OvpnError('EINVAL', 'cannot specify remote port without IP address', 'remote-port');
    }
    return null;
  }
  checkIp(address, family, `remote-ipv${family}`);
  if (config.remotePort === undefined) {
    throw new OvpnError('EINVAL', 'cannot specify remote IP address without port', 'remote-port');
  }
  const port = checkInteger(config.remotePort, 1, 65535, 'remote-port', 'a port number from 1 to 65535');
  const local = family === 4 ? config.localIpv4 : config.localIpv6;
  const otherLocal = family === 4 ? config.localIpv6 : config.localIpv4;
  if (otherLocal !== undefined) {
    throw new OvpnError('EINVAL', 'mismatching local and remote address families', `local-ipv${family === 4 ? 6 : 4}`);
  }
  if (local === undefined) return { family, address, port };
  checkIp(local, family, `local-ipv${family}`);
  return { family, address, port, local };
}

export function slotOf(name: string): KeySlot {
  if (name === 'primary') return KeySlot.Primary;
  if (name === 'secondary') return KeySlot.Secondary;
  throw new OvpnError('EINVAL', `slot must be "primary" or "secondary", got ${JSON.stringify(name)}`, 'slot');
}

function resolveCipher(name: CipherName, keyLength: number): CipherAlg {
  if (isCipherAlg(name)) return name;
  if (name === 'none') return 'NONE';
  if (name === 'chacha20-poly1305') return 'CHACHA20-POLY1305';
  if (name === 'aes-gcm') {
    const alg = ({ 16: 'AES-128-GCM', 24: 'AES-192-GCM', 32: 'AES-256-GCM' } as const)[keyLength as 16 | 24 | 32];
    if (alg !== undefined) return alg;
    throw new OvpnError('EINVAL', `aes-gcm needs a 16, 24 or 32-byte key, got ${keyLength} bytes`, 'encrypt-dir');
  }
  const names =
    'aes-gcm, chacha20-poly1305, none, or one of AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305, NONE';
  throw new OvpnError('EINVAL', `unsupported cipher ${JSON.stringify(name)}: use ${names}`, 'cipher-alg');
}

/** A key request's slot, key-id, cipher and both directions, checked. */
export function checkKeyRequest(request: KeyConfigRequest): {
  slot: KeySlot;
  cipher: CipherAlg;
  encrypt: { key: Uint8Array; nonceTail: Uint8Array };
  decrypt: { key: Uint8Array; nonceTail: Uint8Array };
} {
  const slot = slotOf(request.slot);
  checkKeyId(request.keyId);
  const cipher = resolveCipher(request.cipherAlg, request.encryptDir?.cipherKey?.length ?? 0);
  const direction = (field: string, config: KeyDirConfig | undefined) => {
    if (config?.cipherKey === undefined || config.nonceTail === undefined) {
      throw new OvpnError('EINVAL', `${field} needs cipher-key and nonce-tail`, field);
    }
    return { key: config.cipherKey, nonceTail: config.nonceTail };
  };
  return {
    slot,
    cipher,
    encrypt: direction('encrypt-dir', request.encryptDir),
    decrypt: direction('decrypt-dir', request.decryptDir),
  };
}

export function checkPrefix(prefix: string): Prefix {
  const parsed = typeof prefix === 'string' ? parsePrefix(prefix) : null;
  if (parsed === null) {
    const got = JSON.stringify(prefix);
    throw new OvpnError(
      'EINVAL',
      `prefix must be an address or address/length such as 10.1.0.0/16 or fd00::/64, got ${got}`,
      'prefix',
    );
  }
  return parsed;
}
