/**
 * What each control command takes, as a policy per attribute set in the manner of the ovpn
 * kernel module's netlink policies (one per operation: `peer-new-input`, `keyconf-get`, ...):
 * which attributes exist, which are required, and their JSON types. decodeRequest turns a parsed
 * line into a typed ControlRequest or throws OvpnError('EINVAL') naming the attribute at fault.
 *
 * Only shapes and types live here. Whether a value is acceptable (port and id ranges, address
 * families, VPN address rules, key lengths, conflicts with existing peers) is the library's
 * rule (src/device/policy.ts, and the peer table for conflicts), so that in-process users of
 * OvpnInterface get the same checks as the socket.
 */
import type { KeyConfigRequest, KeyDirConfig, KeySlotName, PeerConfig } from '../device/ovpn-interface.js';
import { OvpnError } from '../device/ovpn-interface.js';
import { COMMANDS, type Command, camelCase, isCommand } from './protocol.js';

/** A request as the server acts on it: the attributes of its command, typed, in camelCase. */
export type ControlRequest =
  | { cmd: 'hello'; version: number }
  | { cmd: 'iface-get' }
  | { cmd: 'iface-del' }
  | { cmd: 'peer-new'; peer: PeerConfig }
  | { cmd: 'peer-set'; peer: PeerConfig }
  /** Without a peer id: every peer (dump). */
  | { cmd: 'peer-get'; peer?: { id?: number } }
  | { cmd: 'peer-del'; peer: { id: number } }
  | { cmd: 'key-new'; keyconf: KeyConfigRequest }
  | { cmd: 'key-get'; keyconf: { peerId: number; slot: KeySlotName } }
  | { cmd: 'key-swap'; keyconf: { peerId: number } }
  /** Without a slot: both. */
  | { cmd: 'key-del'; keyconf: { peerId: number; slot?: KeySlotName } }
  | { cmd: 'route-add'; peerId: number; prefix: string }
  | { cmd: 'route-del'; peerId: number; prefix: string }
  | { cmd: 'route-get'; peerId: number }
  | { cmd: 'packet-send'; peerId: number; data: Buffer }
  | { cmd: 'subscribe' };

export type RequestOf<C extends Command> = Extract<ControlRequest, { cmd: C }>;

/** Reads one attribute's JSON value as a T; `field` is the attribute's name in errors. */
interface Decoder<T> {
  /** What a valid value looks like, for messages: "an integer", `"udp" or "tcp"`. */
  readonly expected: string;
  decode(value: unknown, field: string): T;
}

interface RequiredAttr<T> {
  readonly required: true;
  readonly decoder: Decoder<T>;
}

interface OptionalAttr<T> {
  readonly required: false;
  readonly decoder: Decoder<T>;
}

/** `remoteIpv4` → `remote-ipv4`: the protocol's name for a library field. */
type KebabCase<S extends string> = S extends `${infer Head}${infer Rest}`
  ? `${Head extends Lowercase<Head> ? Head : `-${Lowercase<Head>}`}${KebabCase<Rest>}`
  : S;

/**
 * The policy of an attribute set whose decoded form is T: exactly T's fields, spelled as the
 * protocol spells them, each with a decoder of the field's type, required where T requires it.
 * The compiler refuses a policy that misses, adds or mistypes an attribute.
 */
type Policy<T> = {
  readonly [K in keyof T & string as KebabCase<K>]-?: undefined extends T[K]
    ? OptionalAttr<Exclude<T[K], undefined>>
    : RequiredAttr<T[K]>;
};

type AnyPolicy = Readonly<Record<string, RequiredAttr<unknown> | OptionalAttr<unknown>>>;

type JsonObject = Record<string, unknown>;

const required = <T>(decoder: Decoder<T>): RequiredAttr<T> => ({ required: true, decoder });
const optional = <T>(decoder: Decoder<T>): OptionalAttr<T> => ({ required: false, decoder });

function invalid(field: string, message: string): OvpnError {
  return new OvpnError('EINVAL', message, field);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A received value in a message: short, and never walks into it (it may be nested deeply). */
function describe(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (Array.isArray(value)) return 'an array';
  if (isObject(value)) return 'an object';
  return value === undefined ? 'nothing' : String(value);
}

/** A name or string in a message, cut short: the line it came from may be a megabyte. */
function quote(text: string): string {
  const max = 40;
  return text.length <= max ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, max))}...`;
}

/** `"a", "b" or "c"` */
function alternatives(values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length < 2 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** A decoder for values that pass `accepts` unchanged. */
function primitive<T>(expected: string, accepts: (value: unknown) => value is T): Decoder<T> {
  return {
    expected,
    decode(value, field) {
      if (!accepts(value)) throw invalid(field, `${field} must be ${expected}, got ${describe(value)}`);
      return value;
    },
  };
}

const integer = primitive('an integer', (value): value is number => Number.isInteger(value));

const string = primitive('a string', (value): value is string => typeof value === 'string');

/**
 * Bytes as standard, padded base64: what every encoder writes. Buffer.from would quietly skip
 * anything else (a typo, base64url, a lost character) and hand the library other bytes, so a
 * string is taken only if it is exactly the encoding of the bytes it decodes to.
 */
const base64: Decoder<Buffer> = {
  expected: 'a base64 string (standard alphabet, padded)',
  decode(value, field) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'base64') : null;
    if (bytes === null || bytes.toString('base64') !== value)
      throw invalid(field, `${field} must be ${base64.expected}, got ${describe(value)}`);
    return bytes;
  },
};

/** One of a set of strings. `members` is a record so that the compiler checks it lists all of T. */
function oneOf<T extends string>(members: Record<T, true>): Decoder<T> {
  const names = Object.keys(members);
  const isMember = (value: unknown): value is T => typeof value === 'string' && Object.hasOwn(members, value);
  return primitive(alternatives(names), isMember);
}

function literal<T extends string>(name: T): Decoder<T> {
  return primitive(JSON.stringify(name), (value): value is T => value === name);
}

interface NestOptions {
  /**
   * How the attributes inside are named in errors: `bare` (`id`, `peer-id`), as clients have
   * always seen those of the request, `peer` and `keyconf`, or `dotted` under the nest
   * (`encrypt-dir.cipher-key`), where a bare `cipher-key` would not say which direction.
   */
  naming: 'bare' | 'dotted';
  /** The set's name in messages, when it is not the field (the request itself). */
  label?: string;
  /** Attributes allowed here that the caller reads itself (the request's `id`). */
  passThrough?: readonly string[];
}

/**
 * An attribute set: a JSON object whose members the policy lists. Anything else is refused by
 * name rather than ignored, so a misspelt optional attribute cannot silently go missing.
 */
function nest<T>(policy: Policy<T>, options: NestOptions = { naming: 'bare' }): Decoder<T> {
  const attrs: AnyPolicy = policy;
  const names = [...(options.passThrough ?? []), ...Object.keys(attrs)];
  const expected = `an object with ${names.join(', ')}`;
  return {
    expected,
    decode(value, field) {
      const label = options.label ?? field;
      if (!isObject(value)) throw invalid(field, `${label} must be ${expected}, got ${describe(value)}`);
      const inner = (name: string) => (options.naming === 'bare' ? name : `${field}.${name}`);
      for (const name of Object.keys(value)) {
        if (names.includes(name)) continue;
        // An attribute named "" would leave nothing to name: the set holding it is named instead.
        throw invalid(
          name === '' ? field : inner(name),
          `unknown attribute ${quote(name)} in ${label}: expected one of ${names.join(', ')}`,
        );
      }
      const decoded: JsonObject = {};
      for (const [name, attr] of Object.entries(attrs)) {
        if (!Object.hasOwn(value, name)) {
          if (attr.required)
            throw invalid(inner(name), `missing ${name} in ${label}: expected ${attr.decoder.expected}`);
          continue;
        }
        decoded[camelCase(name)] = attr.decoder.decode(value[name], inner(name));
      }
      // The one place a runtime table meets its static type: Policy<T> holds exactly the fields
      // of T (by their protocol names) with decoders of their types, so `decoded` is a T.
      return decoded as T;
    },
  };
}

// ---- the attribute sets -----------------------------------------------------------------------

const SLOT = oneOf<KeySlotName>({ primary: true, secondary: true });

const TRANSPORT = oneOf<NonNullable<PeerConfig['transport']>>({ udp: true, tcp: true });

const CIPHER_ALG = oneOf<KeyConfigRequest['cipherAlg']>({
  'AES-128-GCM': true,
  'AES-192-GCM': true,
  'AES-256-GCM': true,
  'CHACHA20-POLY1305': true,
  NONE: true,
  'aes-gcm': true,
  'chacha20-poly1305': true,
  none: true,
});

/**
 * The netlink `peer` set. peer-set takes it whole too: changing local-port or transport is a
 * conflict with the peer's state, which the library refuses with the way out.
 */
const PEER = nest<PeerConfig>({
  id: required(integer),
  'remote-ipv4': optional(string),
  'remote-ipv6': optional(string),
  'remote-port': optional(integer),
  'local-ipv4': optional(string),
  'local-ipv6': optional(string),
  'local-port': optional(integer),
  transport: optional(TRANSPORT),
  'vpn-ipv4': optional(string),
  'vpn-ipv6': optional(string),
  'keepalive-interval': optional(integer),
  'keepalive-timeout': optional(integer),
});

const KEY_DIR = nest<KeyDirConfig>(
  { 'cipher-key': required(base64), 'nonce-tail': required(base64) },
  { naming: 'dotted' },
);

const KEYCONF_NEW = nest<KeyConfigRequest>({
  'peer-id': required(integer),
  slot: required(SLOT),
  'key-id': required(integer),
  'cipher-alg': required(CIPHER_ALG),
  'encrypt-dir': required(KEY_DIR),
  'decrypt-dir': required(KEY_DIR),
});

/** A request's `cmd`: its policy was picked by it, so it holds this one name. */
function command<C extends Command>(name: C): RequiredAttr<C> {
  return required(literal(name));
}

/** The request itself: `cmd` and its attributes; `id` is the envelope's, echoed by the server. */
function request<C extends Command>(policy: Policy<RequestOf<C>>): Decoder<RequestOf<C>> {
  return nest<RequestOf<C>>(policy, { naming: 'bare', label: 'request', passThrough: ['id'] });
}

const REQUESTS: { readonly [C in Command]: Decoder<RequestOf<C>> } = {
  hello: request({ cmd: command('hello'), version: required(integer) }),
  'iface-get': request({ cmd: command('iface-get') }),
  'iface-del': request({ cmd: command('iface-del') }),
  'peer-new': request({ cmd: command('peer-new'), peer: required(PEER) }),
  'peer-set': request({ cmd: command('peer-set'), peer: required(PEER) }),
  'peer-get': request({
    cmd: command('peer-get'),
    peer: optional(nest<{ id?: number }>({ id: optional(integer) })),
  }),
  'peer-del': request({
    cmd: command('peer-del'),
    peer: required(nest<{ id: number }>({ id: required(integer) })),
  }),
  'key-new': request({ cmd: command('key-new'), keyconf: required(KEYCONF_NEW) }),
  'key-get': request({
    cmd: command('key-get'),
    keyconf: required(
      nest<{ peerId: number; slot: KeySlotName }>({ 'peer-id': required(integer), slot: required(SLOT) }),
    ),
  }),
  'key-swap': request({
    cmd: command('key-swap'),
    keyconf: required(nest<{ peerId: number }>({ 'peer-id': required(integer) })),
  }),
  'key-del': request({
    cmd: command('key-del'),
    keyconf: required(
      nest<{ peerId: number; slot?: KeySlotName }>({ 'peer-id': required(integer), slot: optional(SLOT) }),
    ),
  }),
  'route-add': request({ cmd: command('route-add'), 'peer-id': required(integer), prefix: required(string) }),
  'route-del': request({ cmd: command('route-del'), 'peer-id': required(integer), prefix: required(string) }),
  'route-get': request({ cmd: command('route-get'), 'peer-id': required(integer) }),
  'packet-send': request({ cmd: command('packet-send'), 'peer-id': required(integer), data: required(base64) }),
  subscribe: request({ cmd: command('subscribe') }),
};

/**
 * A parsed request line as a typed request of its command. Throws OvpnError EINVAL with `field`
 * naming the attribute at fault (`cmd` when the request as a whole is not one).
 */
export function decodeRequest(value: unknown): ControlRequest {
  if (!isObject(value)) throw invalid('cmd', `request must be a JSON object, got ${describe(value)}`);
  const cmd = Object.hasOwn(value, 'cmd') ? value.cmd : undefined;
  if (!isCommand(cmd)) {
    const problem = cmd === undefined ? 'missing cmd in request' : `unknown cmd ${describe(cmd)}`;
    throw invalid('cmd', `${problem}: expected one of ${COMMANDS.join(', ')} (see docs/CONTROL.md)`);
  }
  // The envelope's id is checked too, so a client sending a string id hears why.
  if (Object.hasOwn(value, 'id')) integer.decode(value.id, 'id');
  return REQUESTS[cmd].decode(value, 'cmd');
}

/** The id to echo in the reply, even to a request that is refused. */
export function requestId(value: unknown): number {
  return isObject(value) && typeof value.id === 'number' ? value.id : 0;
}
