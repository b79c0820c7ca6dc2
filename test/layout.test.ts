/**
 * The folder layout is the architecture (docs/ARCHITECTURE.md): layers import only from layers
 * below them, core/ and peer/ stay free of the OS, and no module imports itself back through
 * others. Read from the TypeScript sources, so a new import that breaks a rule fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** What each layer may import from, besides itself. */
const ALLOWED: Record<string, string[]> = {
  core: [],
  edge: ['core'],
  peer: ['core'],
  device: ['core', 'edge', 'peer'],
  control: ['core', 'edge', 'peer', 'device'],
  openvpn: ['core', 'edge', 'peer', 'device', 'control'],
  daemon: ['core', 'edge', 'peer', 'device', 'control', 'openvpn'],
  cli: ['core', 'edge', 'peer', 'device', 'control', 'openvpn'],
  '.': ['core', 'edge', 'peer', 'device', 'control', 'openvpn'],
};

/** Node modules that reach the OS: not for the pure layers (node:net's address parsers excepted). */
const OS_MODULES = /^node:(child_process|fs|fs\/promises|net|dgram|os|dns|tls|http|https)$/;
const ADDRESS_PARSERS = /^import \{ (isIP|isIPv4|isIPv6)(, (isIP|isIPv4|isIPv6))* \} from 'node:net';$/m;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Module specifiers of every import and re-export, type-only ones included. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms)].map((m) => m[1]!);
}

const layerOf = (file: string): string => {
  const parts = relative(SRC, file).split('/');
  return parts.length === 1 ? '.' : parts[0]!;
};

const files = sources(SRC);
const graph = new Map<string, string[]>(
  files.map((file) => [
    file,
    importsOf(file)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts')),
  ]),
);

test('layout: every layer imports only from the layers below it', () => {
  const wrong: string[] = [];
  for (const [file, deps] of graph) {
    const from = layerOf(file);
    for (const dep of deps) {
      const to = layerOf(dep);
      if (to !== from && !ALLOWED[from]!.includes(to)) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, dep)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('layout: core/ and peer/ use nothing of the OS', () => {
  const wrong = files
    .filter((file) => ['core', 'peer'].includes(layerOf(file)))
    .flatMap((file) => {
      const parsersOnly = ADDRESS_PARSERS.test(readFileSync(file, 'utf8'));
      return importsOf(file)
        .filter((spec) => OS_MODULES.test(spec) && !(spec === 'node:net' && parsersOnly))
        .map((spec) => `${relative(SRC, file)}: ${spec}`);
    });
  assert.deepEqual(wrong, []);
});

test('layout: no import circle in src/', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]): void => {
    state.set(file, 'open');
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...path, file, dep].map((f) => relative(SRC, f)).join(' -> '));
      else if (!state.has(dep)) visit(dep, [...path, file]);
    }
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file, []);
  assert.deepEqual(cycles, []);
});
