/**
 * The control protocol: newline-delimited JSON over the interface's unix socket, mirroring the
 * netlink family (see docs/CONTROL.md). Attribute names are the netlink ones in kebab-case
 * (`remote-ipv4`, `keepalive-interval`, `vpn-rx-bytes`); the library API uses the same names in
 * camelCase, so conversion is mechanical.
 */

/**
 * The protocol's version. A client sends it first (`hello`); a daemon that speaks another one
 * refuses with EPROTO, so a CLI from one installation and a daemon from another say so instead of
 * misreading each other. Raise it when a request or reply changes meaning.
 */
export const PROTOCOL_VERSION = 1;

export const COMMANDS = [
  'iface-get',
  'iface-del',
  'peer-new',
  'peer-set',
  'peer-get',
  'peer-del',
  'key-new',
  'key-get',
  'key-swap',
  'key-del',
  'route-add',
  'route-del',
  'route-get',
  'packet-send',
  'subscribe',
  'hello',
] as const;
export type Command = (typeof COMMANDS)[number];

export type NotificationName =
  | 'peer-del-ntf'
  | 'key-swap-ntf'
  | 'peer-float-ntf'
  | 'packet-ntf'
  | 'iface-del-ntf'
  | 'warning-ntf';

export interface ErrorBody {
  code: string;
  message: string;
  field?: string;
}

export type Response = { id: number; ok: true; [attr: string]: unknown } | { id: number; ok: false; error: ErrorBody };

export interface Notification {
  ntf: NotificationName;
  ifname: string;
  /** When the daemon sent it: ISO 8601, UTC, milliseconds. */
  time?: string;
  [attr: string]: unknown;
}

export function isCommand(value: unknown): value is Command {
  return typeof value === 'string' && (COMMANDS as readonly string[]).includes(value);
}

export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Renames the keys of a plain object (recursively) with `rename`; arrays and values pass. */
export function renameKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((item) => renameKeys(item, rename));
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[rename(key)] = renameKeys(item, rename);
  return out;
}

/** Splits a byte stream into lines; returns the complete ones and keeps the rest. */
export class LineSplitter {
  private rest = '';

  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    return lines.filter((line) => line.trim().length > 0);
  }
}

/** A line longer than this is refused: nothing legitimate comes close. */
export const MAX_LINE = 1 << 20;
