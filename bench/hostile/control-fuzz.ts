/**
 * fast-check over the control protocol against a live daemon: for every command, requests
 * truncated anywhere, with one attribute (at any depth) replaced by a value of another JSON
 * type, with a required attribute left out, or with an unknown one added; and random JSON. Each
 * must be answered with an error whose `field` names the attribute at fault, and the daemon
 * must still answer `iface-get` with the same pid afterwards.
 */
import fc from 'fast-check';
import { COMMANDS } from '../../src/control/protocol.js';
import { ControlLine, type Reply } from './control-line.js';
import { alive, World } from './world.js';

const B64_32 = Buffer.alloc(32, 7).toString('base64');
const B64_8 = Buffer.alloc(8, 9).toString('base64');
const DIR = { 'cipher-key': B64_32, 'nonce-tail': B64_8 };

/** A schema-valid request per command (the values need not pass the library's rules). */
const TEMPLATES: Record<string, Record<string, unknown>> = {
  'iface-get': {},
  'iface-del': {},
  'peer-new': {
    peer: {
      id: 9,
      'remote-ipv4': '10.77.0.9',
      'remote-port': 1194,
      'local-port': 1194,
      transport: 'udp',
      'vpn-ipv4': '5.5.7.9',
      'keepalive-interval': 10,
      'keepalive-timeout': 60,
    },
  },
  'peer-set': { peer: { id: 9, 'remote-port': 1195 } },
  'peer-get': { peer: { id: 1 } },
  'peer-del': { peer: { id: 9 } },
  'key-new': {
    keyconf: {
      'peer-id': 9,
      slot: 'primary',
      'key-id': 0,
      'cipher-alg': 'AES-256-GCM',
      'encrypt-dir': DIR,
      'decrypt-dir': DIR,
    },
  },
  'key-get': { keyconf: { 'peer-id': 1, slot: 'primary' } },
  'key-swap': { keyconf: { 'peer-id': 9 } },
  'key-del': { keyconf: { 'peer-id': 9, slot: 'secondary' } },
  'route-add': { 'peer-id': 9, prefix: '10.9.0.0/16' },
  'route-del': { 'peer-id': 9, prefix: '10.9.0.0/16' },
  'route-get': { 'peer-id': 1 },
  'packet-send': { 'peer-id': 9, data: Buffer.from([0x38, 1, 2, 3]).toString('base64') },
  subscribe: {},
};

/** Optional attributes: leaving them out is not an error. */
const OPTIONAL = new Set([
  'remote-ipv4',
  'remote-port',
  'local-port',
  'transport',
  'vpn-ipv4',
  'keepalive-interval',
  'keepalive-timeout',
  'slot:key-del',
  'peer:peer-get',
  'id:peer-get',
]);

type Json = unknown;

/** Paths to every attribute of a request, with the field name an error must carry. */
function paths(value: Record<string, unknown>, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [k, v] of Object.entries(value)) {
    out.push([...prefix, k]);
    if (v !== null && typeof v === 'object' && !Array.isArray(v))
      out.push(...paths(v as Record<string, unknown>, [...prefix, k]));
  }
  return out;
}

function typeOf(v: Json): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function withAt(
  root: Record<string, unknown>,
  path: string[],
  change: (o: Record<string, unknown>, k: string) => void,
) {
  const copy = structuredClone(root);
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  change(o, path[path.length - 1]!);
  return copy;
}

/** Whether `field` names the attribute at `path` (leaf name, or a dotted path ending in it). */
function names(field: string | undefined, path: string[]): boolean {
  const leaf = path[path.length - 1]!;
  return field === leaf || field === path.join('.') || (field?.endsWith(`.${leaf}`) ?? false);
}

export interface ControlFuzzResult {
  runs: number;
  requests: number;
  byMutation: Record<string, number>;
  /** Truncated lines answered without `field` (see check). */
  withoutField: number;
  failures: string[];
  alive: boolean;
  pidSame: boolean;
}

const OTHER_TYPES: Json[] = [null, true, 3.5, -1, 'x', [], [1], {}, { a: 1 }];

export async function controlFuzz(runs: number): Promise<ControlFuzzResult> {
  const world = await World.create('MP');
  const line = await ControlLine.open(world.server.socketPath);
  const byMutation: Record<string, number> = {};
  const failures: string[] = [];
  let requests = 0;
  let withoutField = 0;
  const check = (mutation: string, text: string, reply: Reply, path: string[] | null) => {
    requests++;
    byMutation[mutation] = (byMutation[mutation] ?? 0) + 1;
    // docs/CONTROL.md promises `cmd` for a line that is not a request object, and the daemon
    // names it since the hostile runs; an answer without `field` is still counted and reported.
    if (mutation === 'truncated' && reply.ok === false && reply.error?.field === undefined) {
      withoutField++;
      return true;
    }
    const bad =
      reply.ok !== false ||
      typeof reply.error?.message !== 'string' ||
      typeof reply.error.field !== 'string' ||
      (path !== null && !names(reply.error.field, path));
    if (bad && failures.length < 20) failures.push(`${mutation}: ${text} -> ${JSON.stringify(reply)}`);
    return !bad;
  };
  try {
    const commands = fc.constantFrom(...COMMANDS);
    const send = async (mutation: string, request: Record<string, unknown>, path: string[] | null) => {
      const text = JSON.stringify(request);
      return check(mutation, text, await line.raw(text), path);
    };
    const property = fc.asyncProperty(
      commands,
      fc.nat(),
      fc.constantFrom(...OTHER_TYPES),
      fc.constantFrom('truncate', 'type', 'missing', 'unknown', 'random'),
      fc.jsonValue(),
      async (cmd, pick, other, mutation, random) => {
        const request = { id: 1, cmd, ...TEMPLATES[cmd] };
        const attrs = paths(request).filter((p) => p[0] !== 'id' && !(p.length === 1 && p[0] === 'cmd'));
        if (mutation === 'truncate') {
          const text = JSON.stringify(request);
          const cut = text.slice(0, 1 + (pick % (text.length - 1)));
          return check('truncated', cut, await line.raw(cut), ['cmd']);
        }
        if (mutation === 'random') {
          // Random JSON, as a request or as its attributes: never a valid iface-del.
          const body = typeof random === 'object' && random !== null && !Array.isArray(random) ? random : { x: random };
          return send('random', { ...body, cmd, junk: random }, null);
        }
        if (mutation === 'unknown' || attrs.length === 0)
          return send('unknown', { ...request, 'bogus-attr': other }, ['bogus-attr']);
        const path = attrs[pick % attrs.length]!;
        if (mutation === 'missing') {
          const key = path[path.length - 1]!;
          if (OPTIONAL.has(key) || OPTIONAL.has(`${key}:${cmd}`)) return true;
          return send(
            'missing',
            withAt(request, path, (o, k) => delete o[k]),
            path,
          );
        }
        const current = path.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], request);
        if (typeOf(other) === typeOf(current) || (typeof current === 'number' && other === -1)) return true;
        return send(
          `type`,
          withAt(request, path, (o, k) => (o[k] = other)),
          path,
        );
      },
    );
    await fc.assert(property, { numRuns: runs });
  } catch (error) {
    failures.push(String((error as Error).message).slice(0, 2000));
  }
  let pidSame = false;
  try {
    const info = await line.ok('iface-get');
    pidSame = info.pid === world.server.pid;
  } catch {
    pidSame = false;
  }
  const result = { runs, requests, byMutation, withoutField, failures, alive: alive(world.server.pid), pidSame };
  line.close();
  await world.teardown();
  return result;
}
