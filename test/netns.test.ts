/**
 * End to end through real network namespaces: runs tests/netns-test.sh (two namespaces, a veth,
 * an ovpn tun0 in each, flood pings through the tunnel, counter checks) once per cipher and once
 * with the tunnel carried over IPv6. The variants run one after another because they share the
 * namespace names peer0/peer1. After each, nothing of it may remain: no namespace and no process
 * (daemon or otherwise) in the namespaces it created.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const SCRIPT = resolve(ROOT, 'tests/netns-test.sh');
const NAMESPACES = ['peer0', 'peer1'];
const TIMEOUT_MS = 90_000;
const NOT_ROOT = process.getuid?.() === 0 ? false : 'needs root to create network namespaces and TUN devices';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runScript(args: string[], alg: string): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [SCRIPT, ...args], { cwd: ROOT, env: { ...process.env, ALG: alg }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // SIGTERM, not SIGKILL: the script's trap still tears everything down.
    const timer = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS);
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, output });
    });
  });
}

function namedNamespaces(): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return list.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

function namespaceInode(link: string): string | undefined {
  return /^net:\[(\d+)\]$/.exec(link)?.[1];
}

/** Inodes of the namespaces the script reported creating ("namespaces: peer0 = netns-N, ..."). */
function createdNamespaces(output: string): string[] {
  const line = output.split('\n').find((l) => l.startsWith('namespaces: '));
  return line === undefined ? [] : [...line.matchAll(/netns-(\d+)/g)].map((m) => m[1]!);
}

/**
 * Processes still living in one of the given network namespaces (by inode) that are ours:
 * anything of ovpn (daemon or CLI), ping or iperf3. A namespace whose inode belongs to a named
 * namespace now is another test's (inodes are reused), so it is left out.
 */
function leftoverProcesses(inodes: string[]): string[] {
  const named = new Set<string>();
  for (const name of existsSync('/run/netns') ? readdirSync('/run/netns') : []) {
    try {
      named.add(String(statSync(`/run/netns/${name}`).ino));
    } catch {
      // deleted meanwhile
    }
  }
  const wanted = new Set(inodes.filter((inode) => !named.has(inode)));
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const inode = namespaceInode(readlinkSync(`/proc/${pid}/ns/net`));
      if (inode === undefined || !wanted.has(inode)) continue;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (/ovpn|daemon\/main\.js|ping|iperf3/.test(cmdline)) found.push(`pid ${pid} in netns-${inode}: ${cmdline}`);
    } catch {
      // the process exited while we looked
    }
  }
  return found;
}

const VARIANTS: { name: string; alg: string; args: string[] }[] = [
  { name: 'AES-256-GCM over IPv4', alg: 'aes', args: [] },
  { name: 'ChaCha20-Poly1305 over IPv4', alg: 'chachapoly', args: [] },
  { name: 'no cipher over IPv4', alg: 'none', args: [] },
  { name: 'AES-256-GCM over IPv6', alg: 'aes', args: ['-6'] },
];

test('tests/netns-test.sh: a tunnel between two network namespaces', { skip: NOT_ROOT, concurrency: 1, timeout: VARIANTS.length * (TIMEOUT_MS + 10_000) }, async (t) => {
  for (const variant of VARIANTS) {
    await t.test(`${variant.name} (ALG=${variant.alg} ${['bash', 'tests/netns-test.sh', ...variant.args].join(' ')})`, async () => {
      const run = await runScript(variant.args, variant.alg);
      const shown = `\n----- output of netns-test.sh -----\n${run.output}-----`;
      assert.equal(run.signal, null, `netns-test.sh was killed by ${String(run.signal)} (timeout ${TIMEOUT_MS} ms?)${shown}`);
      assert.equal(run.code, 0, `netns-test.sh exited with ${String(run.code)}${shown}`);
      assert.match(run.output, /^PASS netns-test/m, `no final PASS line${shown}`);

      const stale = namedNamespaces().filter((name) => NAMESPACES.includes(name));
      assert.deepEqual(stale, [], `namespaces left behind: ${stale.join(', ')}`);
      const inodes = createdNamespaces(run.output);
      assert.equal(inodes.length, 2, `the script did not report the namespaces it created${shown}`);
      assert.deepEqual(leftoverProcesses(inodes), [], 'processes left behind in the deleted namespaces');
    });
  }
});
