/**
 * The vector test reads whatever *.json files $OVPN_VECTORS holds: an extra capture dropped in is
 * tested without code changes, and an empty directory fails rather than passing vacuously.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');
const vectorTest = join(repoRoot, 'dist/test/vectors.test.js');
const shared = process.env.OVPN_VECTORS ? resolve(process.env.OVPN_VECTORS) : resolve(repoRoot, 'test/vectors');

function runVectorTest(dir: string): { status: number | null; tests: number; pass: number } {
  // NODE_TEST_CONTEXT would make the child report to us in the runner's binary protocol.
  const { NODE_TEST_CONTEXT: _runner, ...env } = process.env;
  const result = spawnSync(process.execPath, ['--test', '--test-reporter=tap', vectorTest], {
    env: { ...env, OVPN_VECTORS: dir },
    encoding: 'utf8',
  });
  const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(result.stdout)?.[1] ?? -1);
  return { status: result.status, tests: count('tests'), pass: count('pass') };
}

test('an extra vector file dropped into OVPN_VECTORS is read and tested', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-vectors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = readdirSync(shared).filter((name) => name.endsWith('.json'));
  for (const name of files) copyFileSync(join(shared, name), join(dir, name));
  const before = runVectorTest(dir);
  assert.equal(before.status, 0);

  const doc = JSON.parse(readFileSync(join(shared, files[0]!), 'utf8')) as { vectors: unknown[] };
  writeFileSync(join(dir, 'zz-extra.json'), JSON.stringify({ ...doc, vectors: doc.vectors.slice(0, 2) }));
  const after = runVectorTest(dir);
  assert.equal(after.status, 0);
  // Per vector: an open and a key-context seal on each of the two backends, and a DirectionalKey seal.
  assert.equal(after.tests, before.tests + 2 * 5, 'each extra vector adds its open and seal tests');
  assert.equal(after.pass, after.tests);
});

test('an empty vector directory fails the vector test', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-vectors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const result = runVectorTest(dir);
  assert.notEqual(result.status, 0);
});
