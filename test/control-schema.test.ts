/**
 * The control protocol's request schema (src/control/schema.ts), without a daemon: every command
 * decodes to its typed request; a missing, mistyped or unknown attribute is refused with EINVAL
 * naming it as the protocol spells it; and no input at all, however confused or deeply nested,
 * gets anything but a typed request or an OvpnError out of it (fast-check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { COMMANDS, type Command, isCommand, kebabCase } from '../src/control/protocol.js';
import { type ControlRequest, decodeRequest, type RequestOf, requestId } from '../src/control/schema.js';
import { OvpnError } from '../src/device/ovpn-interface.js';

const RUNS = 500;

const KEY_A = Buffer.alloc(32, 0xa1);
const KEY_B = Buffer.alloc(32, 0xb2);
const NONCE_A = Buffer.alloc(8, 0x0a);
const NONCE_B = Buffer.alloc(8, 0x0b);
const PACKET = Buffer.from('38deadbeef', 'hex');
const b64 = (bytes: Buffer) => bytes.toString('base64');

type Wire = Record<string, unknown>;

interface Case<C extends Command> {
  /** Every attribute the command takes. Schema-valid only: value rules are the library's. */
  wire: Wire;
  decoded: RequestOf<C>;
  /** The attributes that may not be left out, as paths into `wire`. */
  required: string[][];
}

const PEER_WIRE = {
  id: 1,
  'remote-ipv4': '10.10.1.2',
  'remote-ipv6': 'fd00::2',
  'remote-port': 1194,
  'local-ipv4': '10.10.1.1',
  'local-ipv6': 'fd00::1',
  'local-port': 1195,
  transport: 'udp',
  'vpn-ipv4': '5.5.5.2',
  'vpn-ipv6': 'fc00:5::2',
  'keepalive-interval': 10,
  'keepalive-timeout': 60,
};
const PEER_CONFIG = {
  id: 1,
  remoteIpv4: '10.10.1.2',
  remoteIpv6: 'fd00::2',
  remotePort: 1194,
  localIpv4: '10.10.1.1',
  localIpv6: 'fd00::1',
  localPort: 1195,
  transport: 'udp',
  vpnIpv4: '5.5.5.2',
  vpnIpv6: 'fc00:5::2',
  keepaliveInterval: 10,
  keepaliveTimeout: 60,
} as const;

const KEY_DIRS = ['encrypt-dir', 'decrypt-dir'].flatMap((dir) => [
  ['keyconf', dir],
  ['keyconf', dir, 'cipher-key'],
  ['keyconf', dir, 'nonce-tail'],
]);

const CASES: { [C in Command]: Case<C> } = {
  'iface-get': { wire: {}, decoded: { cmd: 'iface-get' }, required: [] },
  'iface-del': { wire: {}, decoded: { cmd: 'iface-del' }, required: [] },
  'peer-new': {
    wire: { peer: PEER_WIRE },
    decoded: { cmd: 'peer-new', peer: PEER_CONFIG },
    required: [['peer'], ['peer', 'id']],
  },
  // Changing local-port or transport is a conflict with the peer's state: the library's call.
  'peer-set': {
    wire: { peer: PEER_WIRE },
    decoded: { cmd: 'peer-set', peer: PEER_CONFIG },
    required: [['peer'], ['peer', 'id']],
  },
  'peer-get': { wire: { peer: { id: 7 } }, decoded: { cmd: 'peer-get', peer: { id: 7 } }, required: [] },
  'peer-del': {
    wire: { peer: { id: 7 } },
    decoded: { cmd: 'peer-del', peer: { id: 7 } },
    required: [['peer'], ['peer', 'id']],
  },
  'key-new': {
    wire: {
      keyconf: {
        'peer-id': 1,
        slot: 'secondary',
        'key-id': 3,
        'cipher-alg': 'aes-gcm',
        'encrypt-dir': { 'cipher-key': b64(KEY_A), 'nonce-tail': b64(NONCE_A) },
        'decrypt-dir': { 'cipher-key': b64(KEY_B), 'nonce-tail': b64(NONCE_B) },
      },
    },
    decoded: {
      cmd: 'key-new',
      keyconf: {
        peerId: 1,
        slot: 'secondary',
        keyId: 3,
        cipherAlg: 'aes-gcm',
        encryptDir: { cipherKey: KEY_A, nonceTail: NONCE_A },
        decryptDir: { cipherKey: KEY_B, nonceTail: NONCE_B },
      },
    },
    required: [
      ['keyconf'],
      ['keyconf', 'peer-id'],
      ['keyconf', 'slot'],
      ['keyconf', 'key-id'],
      ['keyconf', 'cipher-alg'],
      ...KEY_DIRS,
    ],
  },
  'key-get': {
    wire: { keyconf: { 'peer-id': 1, slot: 'primary' } },
    decoded: { cmd: 'key-get', keyconf: { peerId: 1, slot: 'primary' } },
    required: [['keyconf'], ['keyconf', 'peer-id'], ['keyconf', 'slot']],
  },
  'key-swap': {
    wire: { keyconf: { 'peer-id': 1 } },
    decoded: { cmd: 'key-swap', keyconf: { peerId: 1 } },
    required: [['keyconf'], ['keyconf', 'peer-id']],
  },
  'key-del': {
    wire: { keyconf: { 'peer-id': 1, slot: 'secondary' } },
    decoded: { cmd: 'key-del', keyconf: { peerId: 1, slot: 'secondary' } },
    required: [['keyconf'], ['keyconf', 'peer-id']],
  },
  'route-add': {
    wire: { 'peer-id': 2, prefix: '10.1.0.0/16' },
    decoded: { cmd: 'route-add', peerId: 2, prefix: '10.1.0.0/16' },
    required: [['peer-id'], ['prefix']],
  },
  'route-del': {
    wire: { 'peer-id': 2, prefix: 'fd00::/64' },
    decoded: { cmd: 'route-del', peerId: 2, prefix: 'fd00::/64' },
    required: [['peer-id'], ['prefix']],
  },
  'route-get': { wire: { 'peer-id': 2 }, decoded: { cmd: 'route-get', peerId: 2 }, required: [['peer-id']] },
  'packet-send': {
    wire: { 'peer-id': 2, data: b64(PACKET) },
    decoded: { cmd: 'packet-send', peerId: 2, data: PACKET },
    required: [['peer-id'], ['data']],
  },
  subscribe: { wire: {}, decoded: { cmd: 'subscribe' }, required: [] },
  hello: { wire: { version: 1 }, decoded: { cmd: 'hello', version: 1 }, required: [['version']] },
};

/** A full valid request line's object for `cmd`, fresh each time so tests can mutate it. */
function wireOf(cmd: Command, id = 1): Wire {
  return structuredClone({ id, cmd, ...CASES[cmd].wire });
}

/** The attribute at `path` as the protocol names it in errors (`id`, `encrypt-dir.cipher-key`). */
function fieldOf(path: readonly string[]): string {
  const inNest = path[0] === 'peer' || path[0] === 'keyconf';
  return (inNest && path.length > 1 ? path.slice(1) : path).join('.');
}

/** The attribute set holding `path`, as messages name it. */
function labelOf(path: readonly string[]): string {
  return path.length > 1 ? path[path.length - 2]! : 'request';
}

function isWire(value: unknown): value is Wire {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** Every attribute of a request, nested ones included, as [path, value]. */
function attributes(wire: Wire, at: string[] = []): [string[], unknown][] {
  return Object.entries(wire).flatMap(([name, value]): [string[], unknown][] => {
    const path = [...at, name];
    return [[path, value], ...(isWire(value) ? attributes(value, path) : [])];
  });
}

/** The object at `path` inside `wire` (which must exist). */
function holderOf(wire: Wire, path: readonly string[]): Wire {
  let holder = wire;
  for (const name of path.slice(0, -1)) {
    const next = holder[name];
    assert.ok(isWire(next), `${path.join('/')} is inside an object`);
    holder = next;
  }
  return holder;
}

/**
 * Sets an own property even for names such as __proto__, as JSON.parse does, to a copy: the
 * values come from shared constants that later changes would otherwise edit.
 */
function setOwn(holder: Wire, name: string, value: unknown): void {
  const copy = structuredClone(value);
  Object.defineProperty(holder, name, { value: copy, enumerable: true, writable: true, configurable: true });
}

function decodeOrError(value: unknown): ControlRequest | OvpnError {
  try {
    return decodeRequest(value);
  } catch (error) {
    if (error instanceof OvpnError) return error;
    throw error;
  }
}

/** Asserts the request is refused with EINVAL at `field`, with every fragment in the message. */
function refused(value: unknown, field: string, ...fragments: (string | RegExp)[]): OvpnError {
  const result = decodeOrError(value);
  assert.ok(result instanceof OvpnError, `expected a refusal at ${field}, decoded ${JSON.stringify(result)}`);
  assert.equal(result.code, 'EINVAL', result.message);
  assert.equal(result.field, field, result.message);
  for (const fragment of fragments) {
    if (typeof fragment === 'string')
      assert.ok(result.message.includes(fragment), `"${result.message}" has ${fragment}`);
    else assert.match(result.message, fragment);
  }
  return result;
}

/** The names an "unknown attribute" message offers instead. */
function offered(message: string): string[] {
  const list = /expected one of (.*)$/.exec(message)?.[1];
  assert.ok(list !== undefined, message);
  return list.split(', ').sort();
}

/** A decoded request back on the wire: the protocol's names, bytes as base64. */
function encode(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (!isWire(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([name, item]) => [kebabCase(name), encode(item)]));
}

// ---- valid requests ---------------------------------------------------------------------------

test('every command: a request with all its attributes decodes to its typed request', () => {
  for (const cmd of COMMANDS) {
    assert.deepEqual(decodeRequest(wireOf(cmd)), CASES[cmd].decoded, cmd);
    // The envelope's id is the server's to echo; it is not part of the request.
    const { id: _id, ...withoutId } = wireOf(cmd);
    assert.deepEqual(decodeRequest(withoutId), CASES[cmd].decoded, `${cmd} without id`);
  }
});

test('requests as ovpn-cli sends them decode to the library types', () => {
  assert.deepEqual(
    decodeRequest({
      id: 3,
      cmd: 'peer-new',
      peer: { id: 1, 'local-port': 1, 'remote-ipv4': '10.10.1.2', 'remote-port': 1, 'vpn-ipv4': '5.5.5.2' },
    }),
    {
      cmd: 'peer-new',
      peer: { id: 1, localPort: 1, remoteIpv4: '10.10.1.2', remotePort: 1, vpnIpv4: '5.5.5.2' },
    },
  );
  assert.deepEqual(
    decodeRequest({ cmd: 'peer-new', peer: { id: 4, transport: 'tcp', 'local-port': 1, 'vpn-ipv6': 'fc00::4' } }),
    { cmd: 'peer-new', peer: { id: 4, transport: 'tcp', localPort: 1, vpnIpv6: 'fc00::4' } },
  );
  assert.deepEqual(decodeRequest({ cmd: 'peer-get' }), { cmd: 'peer-get' }, 'dump: no peer');
  assert.deepEqual(decodeRequest({ cmd: 'peer-get', peer: {} }), { cmd: 'peer-get', peer: {} }, 'dump: no id');
  assert.deepEqual(decodeRequest({ cmd: 'key-del', keyconf: { 'peer-id': 1 } }), {
    cmd: 'key-del',
    keyconf: { peerId: 1 },
  });
  const decoded = decodeRequest(wireOf('key-new'));
  assert.ok(decoded.cmd === 'key-new' && Buffer.isBuffer(decoded.keyconf.encryptDir.cipherKey), 'keys are Buffers');
});

test('every cipher name the protocol documents is accepted; transport udp and tcp', () => {
  const names = ['AES-128-GCM', 'AES-192-GCM', 'AES-256-GCM', 'CHACHA20-POLY1305', 'NONE'];
  for (const name of [...names, 'aes-gcm', 'chacha20-poly1305', 'none']) {
    const wire = wireOf('key-new');
    holderOf(wire, ['keyconf', 'cipher-alg'])['cipher-alg'] = name;
    const decoded = decodeRequest(wire);
    assert.ok(decoded.cmd === 'key-new' && decoded.keyconf.cipherAlg === name, name);
  }
  for (const transport of ['udp', 'tcp']) {
    const decoded = decodeRequest({ cmd: 'peer-new', peer: { id: 1, transport } });
    assert.ok(decoded.cmd === 'peer-new' && decoded.peer.transport === transport, transport);
  }
});

test('the id to echo is read from anything, so even a refused request is answered to its id', () => {
  assert.equal(requestId({ id: 7, cmd: 'nonsense' }), 7);
  assert.equal(requestId({ id: '7' }), 0);
  assert.equal(requestId([7]), 0);
  assert.equal(requestId(null), 0);
  refused({ id: '7', cmd: 'subscribe' }, 'id', 'id must be an integer, got "7"');
  refused({ id: 1.5, cmd: 'subscribe' }, 'id', 'id must be an integer, got 1.5');
});

// ---- missing attributes -----------------------------------------------------------------------

test('every command: leaving out a required attribute names it; the others may be left out', () => {
  for (const cmd of COMMANDS) {
    const required = new Set(CASES[cmd].required.map((path) => path.join('/')));
    const paths = attributes(CASES[cmd].wire).map(([path]) => path);
    for (const path of required)
      assert.ok(
        paths.some((p) => p.join('/') === path),
        `${cmd}: ${path} is in the case`,
      );
    for (const path of paths) {
      const wire = wireOf(cmd);
      delete holderOf(wire, path)[path.at(-1)!];
      if (required.has(path.join('/'))) {
        refused(wire, fieldOf(path), `missing ${path.at(-1)} in ${labelOf(path)}: expected `);
      } else {
        assert.equal(decodeOrError(wire) instanceof OvpnError, false, `${cmd}: ${path.join('/')} is optional`);
      }
    }
  }
});

test('missing attributes: the messages say what is expected', () => {
  refused({ cmd: 'route-add', prefix: '10.0.0.0/8' }, 'peer-id', 'missing peer-id in request: expected an integer');
  refused({ cmd: 'peer-new' }, 'peer', 'missing peer in request: expected an object with id, remote-ipv4, ');
  refused({ cmd: 'key-get', keyconf: { 'peer-id': 1 } }, 'slot', 'expected "primary" or "secondary"');
  const keyconf = structuredClone(CASES['key-new'].wire.keyconf) as Wire;
  keyconf['decrypt-dir'] = { 'cipher-key': b64(KEY_B) };
  refused(
    { cmd: 'key-new', keyconf },
    'decrypt-dir.nonce-tail',
    'missing nonce-tail in decrypt-dir: expected a base64 string',
  );
  refused({}, 'cmd', /^missing cmd in request: expected one of iface-get, iface-del, .*subscribe/);
});

// ---- wrong types ------------------------------------------------------------------------------

const BASE64 = new Set(['cipher-key', 'nonce-tail', 'data']);
const ENUMS: Record<string, string> = {
  slot: '"primary" or "secondary"',
  transport: '"udp" or "tcp"',
  'cipher-alg': '"AES-128-GCM", "AES-192-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "NONE", "aes-gcm", ',
};

/** Values of the wrong type (or form) for an attribute, and how the message describes the type. */
function confusions(name: string, value: unknown): { values: unknown[]; expected: string } {
  if (BASE64.has(name))
    return {
      values: [5, null, [], 'not base64!', 'AAA', 'AB==', 'aGVsbG8', 'aGVs bG8=', '-_8=', `${b64(KEY_A)}\n`],
      expected: 'a base64 string (standard alphabet, padded)',
    };
  const members = ENUMS[name];
  if (members !== undefined) return { values: ['third', 'UDP', 'Primary', 1, null, {}], expected: members };
  if (typeof value === 'number') return { values: ['1194x', '1', 1.5, null, true, [], {}], expected: 'an integer' };
  if (typeof value === 'string') return { values: [5, null, false, [], {}], expected: 'a string' };
  return { values: [[], 'x', null, 7, true], expected: 'an object with ' };
}

test('every command: an attribute of the wrong type is refused, naming it and the type expected', () => {
  for (const cmd of COMMANDS) {
    for (const [path, valid] of attributes(CASES[cmd].wire)) {
      const name = path.at(-1)!;
      const { values, expected } = confusions(name, valid);
      for (const value of values) {
        const wire = wireOf(cmd);
        holderOf(wire, path)[name] = value;
        refused(wire, fieldOf(path), `${fieldOf(path)} must be ${expected}`, ', got ');
      }
    }
  }
});

test('wrong types: the messages quote what was sent', () => {
  refused(
    { cmd: 'peer-new', peer: { id: 1, 'remote-port': '1194x' } },
    'remote-port',
    /^remote-port must be an integer, got "1194x"$/,
  );
  refused({ cmd: 'peer-del', peer: { id: 2.5 } }, 'id', 'id must be an integer, got 2.5');
  refused({ cmd: 'peer-set', peer: { id: 1, 'vpn-ipv4': 5 } }, 'vpn-ipv4', 'vpn-ipv4 must be a string, got 5');
  refused({ cmd: 'peer-new', peer: { id: 1, transport: 'sctp' } }, 'transport', /must be "udp" or "tcp", got "sctp"$/);
  refused(
    { cmd: 'key-del', keyconf: { 'peer-id': 1, slot: 2 } },
    'slot',
    /^slot must be "primary" or "secondary", got 2$/,
  );
  refused({ cmd: 'packet-send', 'peer-id': 1, data: 'AAA' }, 'data', /^data must be a base64 string .*, got "AAA"$/);
  refused({ cmd: 'route-get', 'peer-id': null }, 'peer-id', 'peer-id must be an integer, got null');
  refused({ cmd: 'peer-new', peer: { id: 1, 'remote-port': [1194] } }, 'remote-port', 'got an array');
  refused({ cmd: 'peer-new', peer: { id: 1, 'remote-ipv4': { a: 1 } } }, 'remote-ipv4', 'got an object');
  const long = 'x'.repeat(100_000);
  const error = refused({ cmd: 'route-add', 'peer-id': 1, prefix: 7, padding: long }, 'padding');
  assert.ok(error.message.length < 300, `a long name is cut short in the message (${error.message.length})`);
  assert.ok(refused({ cmd: 'route-add', 'peer-id': long }, 'peer-id').message.length < 300, 'and a long value');
});

test('a request, peer or keyconf that is not an object is refused, naming it', () => {
  for (const value of [null, 5, 'peer-new', true, [], [{ cmd: 'subscribe' }]]) {
    refused(value, 'cmd', 'request must be a JSON object, got ');
  }
  for (const value of [null, 5, 'x', true, [], [{ id: 1 }]]) {
    refused({ cmd: 'peer-new', peer: value }, 'peer', 'peer must be an object with id, ');
    refused({ cmd: 'peer-get', peer: value }, 'peer', 'peer must be an object with id, got ');
    refused({ cmd: 'key-swap', keyconf: value }, 'keyconf', 'keyconf must be an object with peer-id, got ');
    const wire = wireOf('key-new');
    holderOf(wire, ['keyconf', 'encrypt-dir'])['encrypt-dir'] = value;
    refused(wire, 'encrypt-dir', 'encrypt-dir must be an object with cipher-key, nonce-tail, got ');
  }
  refused({ cmd: 5 }, 'cmd', /^unknown cmd 5: expected one of iface-get, /);
  refused({ cmd: 'peer_new' }, 'cmd', 'unknown cmd "peer_new": expected one of ', '(see docs/CONTROL.md)');
});

// ---- unknown attributes -----------------------------------------------------------------------

test('every command: an unknown attribute anywhere is refused by name, offering the known ones', () => {
  for (const cmd of COMMANDS) {
    const nests: string[][] = [[], ...attributes(CASES[cmd].wire).flatMap(([path, v]) => (isWire(v) ? [path] : []))];
    for (const at of nests) {
      for (const name of ['bogus', 'remotePort', 'remote_port', '__proto__', 'constructor', 'toString']) {
        const wire = wireOf(cmd);
        const holder = at.length === 0 ? wire : holderOf(wire, [...at, name]);
        const known = Object.keys(holder).sort();
        setOwn(holder, name, 1);
        const path = [...at, name];
        const error = refused(wire, fieldOf(path), `unknown attribute "${name}" in ${labelOf(path)}: expected one of `);
        assert.deepEqual(offered(error.message), known, `${cmd}: the attributes of ${labelOf(path)}`);
      }
    }
  }
});

test('unknown attributes: a misspelling is named, not silently dropped', () => {
  const error = refused(
    { cmd: 'peer-new', peer: { id: 1, 'remote-ipv4': '10.0.0.1', 'remote-prot': 1194 } },
    'remote-prot',
  );
  assert.match(
    error.message,
    /^unknown attribute "remote-prot" in peer: expected one of id, remote-ipv4, remote-ipv6,/,
  );
  refused({ cmd: 'subscribe', peer: {} }, 'peer', 'unknown attribute "peer" in request: expected one of id, cmd');
  refused({ cmd: 'peer-set', peer: { id: 1, 'vpn-rx-bytes': 0 } }, 'vpn-rx-bytes', 'in peer');
  const wire = wireOf('key-new');
  holderOf(wire, ['keyconf', 'decrypt-dir', 'key']).key = b64(KEY_B);
  refused(wire, 'decrypt-dir.key', 'unknown attribute "key" in decrypt-dir: expected one of cipher-key, nonce-tail');
  // An attribute named "" leaves nothing to name: the set that holds it is named.
  refused({ cmd: 'subscribe', '': 1 }, 'cmd', 'unknown attribute "" in request');
  refused({ cmd: 'peer-del', peer: { id: 1, '': 1 } }, 'peer', 'unknown attribute "" in peer');
});

// ---- hostile input ----------------------------------------------------------------------------

test('very deep nesting anywhere is refused by field, without walking into it', () => {
  const depth = 200_000;
  const array = JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
  const object = JSON.parse(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
  refused(array, 'cmd', 'request must be a JSON object, got an array');
  refused(object, 'cmd', 'missing cmd in request');
  refused({ cmd: 'peer-new', peer: array }, 'peer', 'got an array');
  refused({ cmd: 'peer-new', peer: object }, 'a', 'unknown attribute "a" in peer');
  refused({ cmd: 'peer-new', peer: { id: object } }, 'id', 'id must be an integer, got an object');
  refused({ cmd: 'subscribe', deep: object }, 'deep', 'unknown attribute "deep" in request');
  const wire = wireOf('key-new');
  holderOf(wire, ['keyconf', 'encrypt-dir', 'cipher-key'])['cipher-key'] = array;
  refused(wire, 'encrypt-dir.cipher-key', 'got an array');
});

/** Near misses: the valid values of every attribute, each in every other attribute's place. */
const VALID_VALUES = COMMANDS.flatMap((cmd) => attributes(CASES[cmd].wire).map(([, value]) => value));
const NAMES = [...new Set(COMMANDS.flatMap((cmd) => attributes(wireOf(cmd)).map(([path]) => path.at(-1)!)))];
const value = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(...VALID_VALUES),
  fc.constantFrom(...COMMANDS),
  fc.constantFrom('', '1194', 1.5, -1, 2 ** 53, null, [], {}),
);
const change = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('replace', 'delete', 'add'),
  name: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...NAMES, '__proto__', 'constructor')),
  value,
});

/** Holds for any input: a typed request that says exactly what was sent, or EINVAL with a field. */
function decodesOrNamesField(input: unknown): void {
  const result = decodeOrError(input);
  if (result instanceof OvpnError) {
    assert.equal(result.code, 'EINVAL');
    assert.ok(typeof result.field === 'string' && result.field.length > 0, `no field: ${result.message}`);
    assert.ok(result.message.length > 0);
    return;
  }
  assert.ok(isCommand(result.cmd));
  // Nothing ignored, nothing invented: back on the wire, it is the request minus its envelope id.
  assert.ok(isWire(input));
  const { id: _id, ...sent } = input;
  assert.deepEqual(encode(result), sent);
}

test('property: any JSON value, or any JS value, decodes or is refused with a field', () => {
  fc.assert(fc.property(fc.jsonValue(), decodesOrNamesField), { numRuns: RUNS });
  fc.assert(
    fc.property(
      fc.anything({
        withNullPrototype: true,
        withBoxedValues: true,
        withSparseArray: true,
        withTypedArray: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withBigInt: true,
      }),
      (input) => {
        const result = decodeOrError(input);
        if (result instanceof OvpnError) assert.ok(result.field !== undefined && result.field.length > 0);
      },
    ),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('id', 'cmd', ...NAMES), value), fc.constantFrom(...COMMANDS), (d, cmd) =>
      decodesOrNamesField({ ...d, cmd }),
    ),
    { numRuns: RUNS },
  );
});

test('property: every command, with attributes replaced by other types, deleted or added, decodes or names a field', () => {
  fc.assert(
    fc.property(fc.constantFrom(...COMMANDS), fc.array(change, { minLength: 1, maxLength: 4 }), (cmd, changes) => {
      const wire = wireOf(cmd);
      for (const { at, kind, name, value } of changes) {
        const entries = attributes(wire);
        if (kind === 'add') {
          const holders = [wire, ...entries.flatMap(([, v]) => (isWire(v) ? [v] : []))];
          setOwn(holders[at % holders.length]!, name, value);
          continue;
        }
        if (entries.length === 0) continue;
        const [path] = entries[at % entries.length]!;
        const holder = holderOf(wire, path);
        if (kind === 'delete') delete holder[path.at(-1)!];
        else setOwn(holder, path.at(-1)!, value);
      }
      decodesOrNamesField(wire);
    }),
    { numRuns: RUNS * 4 },
  );
});
