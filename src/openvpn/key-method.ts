/**
 * Key method 2: the first plaintext each side writes into the TLS session. It carries the
 * key-source randoms (the client also a pre-master secret), the options string, user name and
 * password (empty unless auth-user-pass), and the peer-info variables (IV_VER, IV_PROTO,
 * IV_CIPHERS, ...). Strings are a big-endian u16 length that counts a terminating NUL.
 */

export const KEY_METHOD_2 = 2;
export const PRE_MASTER_SIZE = 48;
export const RANDOM_SIZE = 32;

/** IV_PROTO bits (OpenVPN's ssl.h). */
export const IvProto = {
  DATA_V2: 1 << 1,
  REQUEST_PUSH: 1 << 2,
  TLS_KEY_EXPORT: 1 << 3,
  AUTH_PENDING_KW: 1 << 4,
  NCP_P2P: 1 << 5,
  DNS_OPTION: 1 << 6,
  CC_EXIT_NOTIFY: 1 << 7,
  AUTH_FAIL_TEMP: 1 << 8,
  DYN_TLS_CRYPT: 1 << 9,
} as const;

export interface KeySource {
  /** Client only. */
  preMaster?: Buffer;
  random1: Buffer;
  random2: Buffer;
}

export interface KeyMethod2 {
  source: KeySource;
  options: string;
  username: string;
  password: string;
  /** Peer-info text (lines `KEY=value`); empty when the peer sent none. */
  peerInfo: string;
}

export function encodeKeyMethod2(message: KeyMethod2, fromClient: boolean): Buffer {
  const { source } = message;
  const parts: Buffer[] = [Buffer.from([0, 0, 0, 0, KEY_METHOD_2])];
  if (fromClient) parts.push(sized(source.preMaster, PRE_MASTER_SIZE, 'pre-master secret'));
  else if (source.preMaster !== undefined) throw new RangeError('only the client sends a pre-master secret');
  parts.push(sized(source.random1, RANDOM_SIZE, 'random1'), sized(source.random2, RANDOM_SIZE, 'random2'));
  parts.push(
    encodeString(message.options),
    encodeString(message.username),
    encodeString(message.password),
    encodeString(message.peerInfo),
  );
  return Buffer.concat(parts);
}

export function decodeKeyMethod2(data: Buffer, fromClient: boolean): KeyMethod2 {
  let at = 0;
  const take = (n: number, what: string): Buffer => {
    if (at + n > data.length) throw new Error(`key method 2 message too short for its ${what}`);
    const out = Buffer.from(data.subarray(at, at + n));
    at += n;
    return out;
  };
  const readString = (what: string, optional: boolean): string => {
    if (optional && at === data.length) return '';
    const len = take(2, `${what} length`).readUInt16BE(0);
    if (len === 0) return '';
    const bytes = take(len, what);
    const nul = bytes.indexOf(0);
    return bytes.subarray(0, nul < 0 ? bytes.length : nul).toString('utf8');
  };
  take(4, 'leading zero');
  const method = take(1, 'key method')[0]!;
  if ((method & 0x0f) !== KEY_METHOD_2) throw new Error(`key method ${method & 0x0f} received, only 2 is spoken`);
  const source: KeySource = fromClient
    ? {
        preMaster: take(PRE_MASTER_SIZE, 'pre-master'),
        random1: take(RANDOM_SIZE, 'random1'),
        random2: Buffer.alloc(0),
      }
    : { random1: take(RANDOM_SIZE, 'random1'), random2: Buffer.alloc(0) };
  source.random2 = take(RANDOM_SIZE, 'random2');
  const options = readString('options string', false);
  // Older peers end the message after the options; the rest is then empty.
  const username = readString('username', true);
  const password = readString('password', true);
  const peerInfo = readString('peer-info', true);
  return { source, options, username, password, peerInfo };
}

/** The peer-info variables as a map; of a repeated name the first counts, as OpenVPN's lookup finds the first. */
export function parsePeerInfo(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !vars.has(line.slice(0, eq))) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return vars;
}

export function ivProtoOf(peerInfo: Map<string, string>): number {
  const value = Number.parseInt(peerInfo.get('IV_PROTO') ?? '0', 10);
  return Number.isFinite(value) ? value : 0;
}

export interface PeerInfoOptions {
  version: string;
  ciphers: readonly string[];
  ivProto: number;
  /** Extra lines, e.g. IV_PLAT, IV_NCP, IV_MTU. */
  extra?: Record<string, string>;
}

export function buildPeerInfo(options: PeerInfoOptions): string {
  const lines = [`IV_VER=${options.version}`];
  for (const [key, value] of Object.entries(options.extra ?? {})) lines.push(`${key}=${value}`);
  lines.push(`IV_CIPHERS=${options.ciphers.join(':')}`, `IV_PROTO=${options.ivProto}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The first cipher of the server's list that the client also has: OpenVPN's P2P negotiation
 * takes the tls-server's preference so that both ends reach the same answer. Case-insensitive,
 * as OpenVPN compares cipher names.
 */
export function commonCipher(serverCiphers: readonly string[], clientCiphers: readonly string[]): string | undefined {
  const client = new Set(clientCiphers.map((c) => c.toUpperCase()));
  return serverCiphers.find((c) => client.has(c.toUpperCase()));
}

function encodeString(text: string): Buffer {
  if (text.length === 0) return Buffer.from([0, 0]);
  const body = Buffer.from(`${text}\0`, 'utf8');
  if (body.length > 0xffff) throw new RangeError('string too long for key method 2');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([len, body]);
}

function sized(value: Buffer | undefined, size: number, what: string): Buffer {
  if (value === undefined || value.length !== size) throw new RangeError(`${what} must be ${size} bytes`);
  return value;
}
