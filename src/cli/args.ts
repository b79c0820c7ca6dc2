/**
 * ovpn-cli's arguments, checked and converted before anything is created: each command names
 * its parameters once (`peer-id`, `[vpnaddr]`), and the same name appears in the usage and in
 * every error about it. Files (keys, peers) are read and checked here too.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import type { CipherAlg } from '../core/cipher.js';
import { decodeKeyFile, KEY_FILE_SIZE, type KeyDirection, keysFromFile } from '../core/key-file.js';

/** A wrong call: the message names the argument and says what it must be. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const CIPHERS: Record<string, CipherAlg> = {
  aes: 'AES-256-GCM',
  chachapoly: 'CHACHA20-POLY1305',
  none: 'NONE',
};

/** What a key file holds and how to make one, for the errors about one. */
export const KEY_FILE_CONTENT = `a key file holds base64 of at least ${KEY_FILE_SIZE} bytes (two 32-byte keys and an 8-byte nonce tail); make one with: ovpn-cli genkey FILE`;

/** Key and peer files are small: more than this is a wrong path (a device, a log), not a key. */
const MAX_INPUT_FILE = 1 << 20;

/** Reads a small text file, refusing one larger than MAX_INPUT_FILE without reading it all. */
function readSmallFile(path: string, field: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new UsageError(`${field} ${path}: ${reason}`, field);
  }
  try {
    const buf = Buffer.alloc(MAX_INPUT_FILE + 1);
    let size = 0;
    for (let n = 1; n > 0 && size < buf.length; size += n) n = readSync(fd, buf, size, buf.length - size, null);
    if (size > MAX_INPUT_FILE)
      throw new UsageError(`${field} ${path} is larger than ${MAX_INPUT_FILE} bytes: is it the right file?`, field);
    return buf.toString('utf8', 0, size);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${field} ${path}: ${(error as Error).message}`, field);
  } finally {
    closeSync(fd);
  }
}

/** One line of a peers file: its words, and where it is for errors. */
export interface PeersLine {
  words: string[];
  where: string;
}

/** Non-empty, non-comment lines of a peers file, split into words. */
export function readPeersFile(path: string, field: string): PeersLine[] {
  return readSmallFile(path, field)
    .split('\n')
    .map((line, i) => ({ words: line.trim().split(/\s+/), where: `${path} line ${i + 1}` }))
    .filter(({ words }) => words[0] !== '' && !words[0]!.startsWith('#'));
}

/** The two directions of a key file, base64 for key-new's encrypt-dir and decrypt-dir. */
export function readKeyFile(path: string, field: string, cipher: CipherAlg, direction: KeyDirection) {
  let raw: Buffer;
  try {
    raw = decodeKeyFile(readSmallFile(path, field), `${field} ${path}`);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n  (${KEY_FILE_CONTENT})`, field);
  }
  const keys = keysFromFile(raw, cipher, direction);
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  return {
    'encrypt-dir': { 'cipher-key': b64(keys.encrypt.key), 'nonce-tail': b64(keys.encrypt.nonceTail) },
    'decrypt-dir': { 'cipher-key': b64(keys.decrypt.key), 'nonce-tail': b64(keys.decrypt.nonceTail) },
  };
}

/** `name` or `[name]` (optional): a parameter as usage shows it. */
function bare(param: string): string {
  return param.replace(/^\[(.*)\]$/, '$1');
}

export function paramSyntax(param: string): string {
  return param.startsWith('[') ? param : `<${param}>`;
}

/** The values of one call, by parameter name, with converters that name the parameter in errors. */
export class Args {
  private readonly values = new Map<string, string>();

  constructor(params: readonly string[], values: readonly string[]) {
    const required = params.filter((p) => !p.startsWith('['));
    if (values.length < required.length) {
      const missing = params.slice(values.length).filter((p) => !p.startsWith('['));
      throw new UsageError(`missing ${missing.map(paramSyntax).join(' ')}`, missing[0]);
    }
    if (values.length > params.length)
      throw new UsageError(`unexpected argument ${JSON.stringify(values[params.length])}`);
    params.forEach((param, i) => {
      if (values[i] !== undefined) this.values.set(bare(param), values[i]!);
    });
    this.names = new Set(params.map(bare));
  }

  private readonly names: Set<string>;

  has(name: string): boolean {
    return this.values.has(this.known(name));
  }

  str(name: string): string {
    const value = this.values.get(this.known(name));
    if (value === undefined) throw new UsageError(`missing <${name}>`, name);
    return value;
  }

  int(name: string, max = 0xffffffff): number {
    return wholeNumber(this.str(name), name, max);
  }

  peerId(name = 'peer-id'): number {
    return this.int(name, MAX_PEER_ID);
  }

  port(name: string): number {
    return this.int(name, 65535);
  }

  /** An IP address as the attribute of its family: { 'remote-ipv4': '10.0.0.1' } for prefix 'remote'. */
  ip(name: string, prefix: string): Record<string, string> {
    return ipAttr(this.str(name), name, prefix);
  }

  slot(name = 'slot'): 'primary' | 'secondary' {
    const value = this.str(name);
    if (value === '1') return 'primary';
    if (value === '2') return 'secondary';
    throw new UsageError(`${name} must be 1 (primary) or 2 (secondary), got ${JSON.stringify(value)}`, name);
  }

  cipher(name = 'cipher'): CipherAlg {
    const value = this.str(name);
    const cipher = CIPHERS[value];
    if (cipher === undefined)
      throw new UsageError(`${name} must be ${Object.keys(CIPHERS).join(', ')}, got ${JSON.stringify(value)}`, name);
    return cipher;
  }

  keyDir(name = 'key-dir'): KeyDirection {
    const value = this.str(name);
    if (value !== '0' && value !== '1')
      throw new UsageError(`${name} must be 0 (server side) or 1 (client side), got ${JSON.stringify(value)}`, name);
    return Number(value) as KeyDirection;
  }

  /** A parameter the command did not declare is a bug in the command table, not a user error. */
  private known(name: string): string {
    if (!this.names.has(name)) throw new Error(`ovpn-cli: no parameter ${name} in this command`);
    return name;
  }
}

/** An address in the attribute of its family; `field` names it in the error. */
export function ipAttr(address: string, field: string, prefix: string): Record<string, string> {
  const family = isIP(address);
  if (family === 0)
    throw new UsageError(`${field} must be an IPv4 or IPv6 address, got ${JSON.stringify(address)}`, field);
  return { [`${prefix}-ipv${family}`]: address };
}

export const MAX_PEER_ID = 0xffffff;

/** A whole number from 0 to max; `field` names it in the error. */
export function wholeNumber(value: string, field: string, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) > max)
    throw new UsageError(`${field} must be a whole number from 0 to ${max}, got ${JSON.stringify(value)}`, field);
  return Number(value);
}

/** Runs the checks of one line of a file: their errors say which line. */
export function atLine<T>(line: PeersLine, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${line.where}: ${error.message}`, error.field);
    throw error;
  }
}
