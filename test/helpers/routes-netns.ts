/**
 * Runs one watchSystemRoutes scenario for test/system-routes.test.ts *inside a private network
 * namespace* (the test starts it under `unshare --net`: Node cannot switch namespaces itself).
 * It changes routes with `ip`, awaits the onChange that shows each change (bounded by a timeout,
 * never by sleeping), and reports what it saw as the last stdout line `RESULT <json>`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { formatIp } from '../../src/core/ip.js';
import { watchSystemRoutes } from '../../src/edge/system-routes.js';
import type { SystemRoute } from '../../src/peer/peer-router.js';

const WAIT_MS = 5000;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

// Watchdog only: turns a hang into a readable failure, and kills whatever the watcher left
// running so no `ip monitor` outlives the test in a namespace nobody will touch again.
setTimeout(() => {
  console.error(`routes-netns: scenario timed out; children left: ${childPids().join(' ') || 'none'}`);
  for (const pid of childPids()) process.kill(pid, 'SIGKILL');
  process.exit(3);
}, 20_000).unref();

const show = (routes: SystemRoute[]) =>
  routes.map((r) => `${formatIp(r.dst)}/${r.prefixLen}${r.gateway === null ? '' : ` via ${formatIp(r.gateway)}`}`);

/** Pids of this process's children, from /proc (field 4 of stat is the parent pid). */
function childPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
      } catch {
        return false; // exited while we looked
      }
    })
    .map(Number);
}

/** Resolves once none of `pids` exists any more (each is our child, so libuv reaps it). */
async function gone(pids: number[]): Promise<number[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const left = pids.filter((pid) => existsSync(`/proc/${pid}`));
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function setupTun(name: string) {
  ip('link', 'set', 'lo', 'up');
  ip('tuntap', 'add', 'dev', name, 'mode', 'tun');
  ip('link', 'set', name, 'up');
  ip('addr', 'add', '10.8.0.1/24', 'dev', name);
  ip('-6', 'addr', 'add', 'fd00::1/64', 'dev', name, 'nodad');
}

/** A watcher whose changes can be awaited one predicate at a time. */
function watch(ifname: string) {
  const seen: string[][] = [];
  const errors: string[] = [];
  let waiter: ((routes: string[]) => void) | undefined;
  let errorWaiter: (() => void) | undefined;
  const handle = watchSystemRoutes(
    ifname,
    (routes) => {
      seen.push(show(routes));
      waiter?.(show(routes));
    },
    (e) => {
      errors.push(e.message);
      errorWaiter?.();
    },
  );
  /** Runs `act`, then resolves once onError was called (or rejects after WAIT_MS). */
  const failing = (act: () => void) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no error within ${WAIT_MS} ms`)), WAIT_MS);
      errorWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
      act();
    });
  /** Runs `act`, then resolves with the first list delivered after it that satisfies `want`. */
  const after = (act: () => void, want: (routes: string[]) => boolean) =>
    new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching change within ${WAIT_MS} ms; seen ${JSON.stringify(seen)}`)),
        WAIT_MS,
      );
      waiter = (routes) => {
        if (!want(routes)) return;
        clearTimeout(timer);
        waiter = undefined;
        resolve(routes);
      };
      act();
    });
  return { handle, seen, errors, after, failing };
}

async function scenarioFollow() {
  setupTun('rt0');
  // Not unicast, or not via rt0: none of these may show up.
  ip('route', 'add', 'local', '15.0.0.1', 'dev', 'rt0', 'table', 'main');
  ip('route', 'add', 'broadcast', '10.8.0.77', 'dev', 'rt0', 'table', 'main');
  ip('-6', 'route', 'add', 'multicast', 'ff05::/16', 'dev', 'rt0', 'table', 'main');
  ip('route', 'add', '9.9.0.0/16', 'dev', 'lo');
  ip('route', 'add', '14.0.0.0/8', 'dev', 'rt0', 'table', '100');
  ip('route', 'add', 'default', 'via', '10.8.0.5', 'dev', 'rt0');

  const w = watch('rt0');
  await w.handle.ready;
  const initial = w.seen.slice();
  const childrenWhileOpen = childPids();

  const added = await w.after(
    () => ip('route', 'add', '11.11.11.11', 'via', '10.8.0.2', 'dev', 'rt0'),
    (r) => r.includes('11.11.11.11/32 via 10.8.0.2'),
  );
  const added6 = await w.after(
    () => ip('-6', 'route', 'add', '2001:db8::/32', 'via', 'fd00::2', 'dev', 'rt0'),
    (r) => r.includes('2001:db8::/32 via fd00::2'),
  );
  const callsBefore = w.seen.length;
  // An unrelated change (another device) and then one of ours: exactly one more callback.
  const afterUnrelated = await w.after(
    () => {
      ip('route', 'add', '9.8.0.0/16', 'dev', 'lo');
      ip('route', 'add', '12.0.0.0/8', 'dev', 'rt0', 'metric', '7');
    },
    (r) => r.includes('12.0.0.0/8'),
  );
  const callsForTwoChanges = w.seen.length - callsBefore;
  const deleted = await w.after(
    () => ip('route', 'del', '11.11.11.11', 'via', '10.8.0.2', 'dev', 'rt0'),
    (r) => !r.includes('11.11.11.11/32 via 10.8.0.2'),
  );

  w.handle.close();
  w.handle.close(); // idempotent
  const leftAfterClose = await gone(childrenWhileOpen);
  return {
    initial,
    added,
    added6,
    afterUnrelated,
    callsForTwoChanges,
    deleted,
    childrenWhileOpen: childrenWhileOpen.length,
    leftAfterClose,
    errors: w.errors,
  };
}

async function scenarioErrors() {
  const missing = watch('nope0');
  let readyError = 'ready resolved';
  await missing.handle.ready.catch((e: Error) => (readyError = e.message));
  missing.handle.close();

  setupTun('rt1');
  const w = watch('rt1');
  await w.handle.ready;
  const children = childPids();
  await w.failing(() => ip('link', 'del', 'rt1'));
  w.handle.close();
  const leftAfterClose = await gone(children);
  return {
    readyError,
    missingErrors: missing.errors,
    missingSeen: missing.seen,
    deletedErrors: w.errors,
    leftAfterClose,
  };
}

const scenarios: Record<string, () => Promise<unknown>> = { follow: scenarioFollow, errors: scenarioErrors };
const run = scenarios[process.argv[2] ?? ''];
if (run === undefined) {
  console.error(`unknown scenario ${process.argv[2]}`);
  process.exit(2);
}
console.log(`RESULT ${JSON.stringify(await run())}`);
