/**
 * The benchmark's two network namespaces, joined by a veth. Names are the benchmark's own
 * (tests use peer0..peer5 and bt0/bt1, the demo demo0/demo1), so it never touches theirs, and a
 * leftover pair from a crashed run is recognised by name and removed first.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { alive, killPid, netnsPids, onCleanup, run, runSync, sleepSync, waitFor } from './sys.js';

/** BENCH_NS_PREFIX lets two benchmarks run side by side (default 'obt'). */
const PREFIX = process.env.BENCH_NS_PREFIX ?? 'obt';
export const NS = [`${PREFIX}-a`, `${PREFIX}-b`] as const;
export const VETH = [`${PREFIX}v-a`, `${PREFIX}v-b`] as const;
/** Addresses of the veth ends: the tunnels run over these. */
export const LINK = ['10.10.1.1', '10.10.1.2'] as const;

const OVPN_RUN_DIR = process.env.OVPN_DCO_RUN_DIR ?? '/run/ovpn-dco';

function netnsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

/** Our daemons' control directory for a namespace (see src/control/paths.ts). */
export function controlDir(ns: string): string | null {
  try {
    return join(OVPN_RUN_DIR, `netns-${statSync(`/run/netns/${ns}`).ino}`);
  } catch {
    return null;
  }
}

/**
 * Stops everything still running in our namespaces (TERM, then KILL, by pid), removes our
 * daemons' control directories and deletes the namespaces. Synchronous and never throws.
 */
export function teardownNamespaces(): void {
  for (const ns of NS) {
    if (!netnsExists(ns)) continue;
    const pids = netnsPids(ns);
    for (const pid of pids) killPid(pid, 'SIGTERM');
    for (let i = 0; i < 50 && pids.some(alive); i++) sleepSync(50);
    for (const pid of pids) if (alive(pid)) killPid(pid, 'SIGKILL');
    for (let i = 0; i < 20 && netnsPids(ns).some(alive); i++) sleepSync(100);
    const dir = controlDir(ns);
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    runSync('ip', ['netns', 'del', ns]);
  }
}

export async function setupNamespaces(): Promise<void> {
  teardownNamespaces(); // leftovers of a crashed run: ours by name
  onCleanup('namespaces', teardownNamespaces);
  for (const ns of NS) await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', NS[0], 'link', 'add', VETH[0], 'type', 'veth', 'peer', 'name', VETH[1], 'netns', NS[1]]);
  for (const i of [0, 1] as const) {
    await run('ip', ['-n', NS[i], 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', NS[i], 'addr', 'add', `${LINK[i]}/24`, 'dev', VETH[i]]);
    await run('ip', ['-n', NS[i], 'link', 'set', VETH[i], 'up']);
  }
  await waitFor(
    'the veth to come up',
    async () => (await run('ping', ['-c', '1', '-W', '1', LINK[1]], { ns: NS[0], allowFail: true })).code === 0,
  );
}
