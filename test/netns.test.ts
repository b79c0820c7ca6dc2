/**
 * End to end through real network namespaces, one script run after another (they share the
 * namespace names peer0..peer5):
 *
 *   tests/netns-test.sh        multi-peer (five clients: routing by VPN address and by the
 *                              kernel's routes) over UDP for each AEAD and over TCP; and
 *                              point-to-point (--p2p) for every cipher, over IPv6, over TCP
 *   tests/float-test.sh        clients changing address keep their tunnels, with a notification
 *   tests/multihome-test.sh    a server with several addresses answers from the one used
 *   tests/netns-test.sh --keep then --clean: the tunnel stays up to be tried by hand, then goes
 *
 * After each, nothing of it may remain: no namespace and no process (daemon or otherwise) in
 * the namespaces it created.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
/** The scripts' namespace names: <prefix>0 (server) .. <prefix>5; OVPN_NS_PREFIX passes through. */
const NAMESPACES = [0, 1, 2, 3, 4, 5].map((i) => `${process.env.OVPN_NS_PREFIX ?? 'peer'}${i}`);
const TIMEOUT_MS = 90_000;
const NOT_ROOT = process.getuid?.() === 0 ? false : 'needs root to create network namespaces and TUN devices';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runScript(script: string, args: string[], alg = 'aes'): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [resolve(ROOT, 'tests', script), ...args], {
      cwd: ROOT,
      env: { ...process.env, ALG: alg },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let shown = 0;
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      // Progress while a script runs for a minute: its steps and verdicts, as they come.
      const end = output.lastIndexOf('\n') + 1;
      for (const line of output.slice(shown, end).split('\n')) {
        if (/^(==>|PASS|FAIL)/.test(line)) process.stderr.write(`    [${[script, ...args].join(' ')}] ${line}\n`);
      }
      shown = Math.max(shown, end);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
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

interface Variant {
  name: string;
  script: 'netns-test.sh' | 'float-test.sh' | 'multihome-test.sh';
  alg: string;
  args: string[];
  /** How many namespaces the script creates: the server and its clients. */
  namespaces: number;
}

const VARIANTS: Variant[] = [
  { name: 'multi-peer, AES-256-GCM over UDP', script: 'netns-test.sh', alg: 'aes', args: [], namespaces: 6 },
  {
    name: 'multi-peer, ChaCha20-Poly1305 over UDP',
    script: 'netns-test.sh',
    alg: 'chachapoly',
    args: [],
    namespaces: 6,
  },
  { name: 'multi-peer, AES-256-GCM over TCP', script: 'netns-test.sh', alg: 'aes', args: ['-t'], namespaces: 6 },
  {
    name: 'point-to-point, AES-256-GCM over UDP/IPv4',
    script: 'netns-test.sh',
    alg: 'aes',
    args: ['--p2p'],
    namespaces: 2,
  },
  {
    name: 'point-to-point, no cipher over UDP/IPv4',
    script: 'netns-test.sh',
    alg: 'none',
    args: ['--p2p'],
    namespaces: 2,
  },
  {
    name: 'point-to-point, AES-256-GCM over UDP/IPv6',
    script: 'netns-test.sh',
    alg: 'aes',
    args: ['--p2p', '-6'],
    namespaces: 2,
  },
  {
    name: 'point-to-point, AES-256-GCM over TCP/IPv4',
    script: 'netns-test.sh',
    alg: 'aes',
    args: ['--p2p', '-t'],
    namespaces: 2,
  },
  { name: 'float: five clients change address', script: 'float-test.sh', alg: 'aes', args: [], namespaces: 6 },
  {
    name: 'multihome: one server, five addresses on a bridge',
    script: 'multihome-test.sh',
    alg: 'aes',
    args: [],
    namespaces: 6,
  },
];

test('tests/*-test.sh: tunnels between network namespaces', {
  skip: NOT_ROOT,
  concurrency: 1,
  timeout: VARIANTS.length * (TIMEOUT_MS + 10_000),
}, async (t) => {
  for (const variant of VARIANTS) {
    const command = ['bash', `tests/${variant.script}`, ...variant.args].join(' ');
    await t.test(`${variant.name} (ALG=${variant.alg} ${command})`, async () => {
      const run = await runScript(variant.script, variant.args, variant.alg);
      const shown = `\n----- output of ${command} -----\n${run.output}-----`;
      assert.equal(
        run.signal,
        null,
        `${variant.script} was killed by ${String(run.signal)} (timeout ${TIMEOUT_MS} ms?)${shown}`,
      );
      assert.equal(run.code, 0, `${variant.script} exited with ${String(run.code)}${shown}`);
      assert.match(
        run.output,
        new RegExp(`^PASS ${variant.script.replace(/\.sh$/, '')} `, 'm'),
        `no final PASS line${shown}`,
      );

      const stale = namedNamespaces().filter((name) => NAMESPACES.includes(name));
      assert.deepEqual(stale, [], `namespaces left behind: ${stale.join(', ')}`);
      const inodes = createdNamespaces(run.output);
      assert.equal(
        inodes.length,
        variant.namespaces,
        `the script did not report the ${variant.namespaces} namespaces it created${shown}`,
      );
      assert.deepEqual(leftoverProcesses(inodes), [], 'processes left behind in the deleted namespaces');
    });
  }
});

test('tests/netns-test.sh --keep leaves peer0/peer1 up with the ping to try; --clean removes them', {
  skip: NOT_ROOT,
  timeout: 2 * TIMEOUT_MS,
}, async () => {
  const [ns0, ns1] = NAMESPACES;
  const kept = await runScript('netns-test.sh', ['--p2p', '--keep']);
  let inodes: string[] = [];
  try {
    assert.equal(kept.code, 0, kept.output);
    assert.match(kept.output, new RegExp(`try: ip netns exec ${ns0} ping 5\\.5\\.5\\.2\n`));
    assert.match(kept.output, /tear down with: .*netns-test\.sh --clean/);
    const names = namedNamespaces();
    assert.ok(names.includes(ns0!) && names.includes(ns1!), `kept namespaces: ${names.join(', ')}`);
    inodes = createdNamespaces(kept.output);
    const ping = spawnSync('ip', ['netns', 'exec', ns0!, 'ping', '-c', '1', '-W', '2', '5.5.5.2'], {
      encoding: 'utf8',
    });
    assert.equal(ping.status, 0, `the printed ping works: ${ping.stdout}${ping.stderr}`);
  } finally {
    const clean = await runScript('netns-test.sh', ['--clean']);
    assert.equal(clean.code, 0, clean.output);
    assert.match(clean.output, new RegExp(`^PASS removed ${ns0} ${ns1}$`, 'm'));
  }
  const stale = namedNamespaces().filter((name) => NAMESPACES.includes(name));
  assert.deepEqual(stale, [], `namespaces left behind by --clean: ${stale.join(', ')}`);
  assert.deepEqual(leftoverProcesses(inodes), [], 'daemons left behind by --clean');
});
