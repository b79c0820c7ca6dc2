/**
 * Process plumbing for the tunnel benchmark: running commands (in a network namespace or not),
 * long-running children tracked by pid, and a cleanup list that runs exactly once on any way
 * out (normal end, error, Ctrl-C, SIGTERM).
 *
 * Cleanup is synchronous (spawnSync) so it can run from a signal handler or an 'exit' listener.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(
      `command failed (${code === null ? 'killed' : `exit ${code}`}): ${command}\n${(stderr || stdout).trim().split('\n').slice(-8).join('\n')}`,
    );
  }
}

export interface RunOptions {
  /** Network namespace to run in (through `ip netns exec`). */
  ns?: string;
  /** Working directory (default: ours). */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this many ms (default 60 s). */
  timeoutMs?: number;
  /** Resolve even when the exit code is not 0. */
  allowFail?: boolean;
  input?: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function argv(cmd: string, args: readonly string[], ns?: string): [string, string[]] {
  return ns === undefined ? [cmd, [...args]] : ['ip', ['netns', 'exec', ns, cmd, ...args]];
}

function quote(parts: readonly string[]): string {
  return parts.map((p) => (/^[\w./:=@%+,-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Runs a command to completion and collects its output. Rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const [file, fileArgs] = argv(cmd, args, opts.ns);
  const text = quote([file, ...fileArgs]);
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    track(child, text);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) {
      // A command that exits without reading its stdin makes this write fail with EPIPE: not an error here.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0 || opts.allowFail) resolve({ code, stdout, stderr });
      else reject(new CommandError(text, code, stdout, stderr));
    });
  });
}

/** run() for short commands whose output is all that matters. */
export async function out(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<string> {
  return (await run(cmd, args, opts)).stdout;
}

/** A long-running child we started: its pid is killed by cleanup if it is still alive. */
export interface Background {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly text: string;
  /** Everything it printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the exit code once it has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Map<number, string>();

function track(child: ChildProcess, text: string): void {
  const pid = child.pid;
  if (pid === undefined) return;
  live.set(pid, text);
  child.once('exit', () => live.delete(pid));
}

export function background(
  cmd: string,
  args: readonly string[] = [],
  opts: Omit<RunOptions, 'timeoutMs' | 'allowFail' | 'input'> = {},
): Background {
  const [file, fileArgs] = argv(cmd, args, opts.ns);
  const text = quote([file, ...fileArgs]);
  const child = spawn(file, fileArgs, {
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  if (child.pid === undefined) throw new Error(`could not start ${text}`);
  track(child, text);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null));
    child.once('exit', (code) => resolve(code));
  });
  const pid = child.pid;
  return {
    child,
    pid,
    text,
    output: () => output,
    exited,
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns true; throws after `limitMs` naming `what`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  limitMs = 10_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${limitMs / 1000}s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** CPU time (user + system, all threads) a process has used so far, in seconds; null if gone. */
export function cpuSeconds(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after comm start at field 3 (state); utime is field 14, stime field 15.
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  return ticks / clockTicks();
}

let ticksPerSecond: number | undefined;
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksPerSecond = Number(r.stdout.trim()) || 100;
  }
  return ticksPerSecond;
}

/** Pids of the processes running in a network namespace. */
export function netnsPids(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Whether a process still runs. A zombie does not: our own children stay zombies while cleanup
 * blocks the event loop (nothing reaps them), and waiting for those to vanish would never end.
 */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

// ---- cleanup ------------------------------------------------------------------------------

const cleanups: { what: string; fn: () => void }[] = [];
let cleaned = false;

/** Registers a synchronous cleanup step; steps run last-registered first. */
export function onCleanup(what: string, fn: () => void): void {
  cleanups.push({ what, fn });
}

/** Runs every cleanup step once, then kills any child of ours still alive (by pid). */
export function cleanupNow(): void {
  if (cleaned) return;
  cleaned = true;
  for (const { what, fn } of cleanups.reverse()) {
    try {
      fn();
    } catch (error) {
      process.stderr.write(`cleanup (${what}) failed: ${(error as Error).message}\n`);
    }
  }
  for (const pid of live.keys()) killPid(pid, 'SIGKILL');
  live.clear();
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** Blocks for ms (cleanup only: it must stay synchronous). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs cleanup on exit, on SIGINT/SIGTERM/SIGHUP (then exits 130/143/129) and on a crash. */
export function installCleanupHandlers(): void {
  process.on('exit', cleanupNow);
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [signal, code] of Object.entries(codes)) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: cleaning up\n`);
      cleanupNow();
      process.exit(code);
    });
  }
}

/** Synchronous command for cleanup paths; never throws. */
export function runSync(
  cmd: string,
  args: readonly string[],
  ns?: string,
  timeoutMs = 10_000,
): { code: number | null; stdout: string } {
  const [file, fileArgs] = argv(cmd, args, ns);
  const r = spawnSync(file, fileArgs, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout ?? '' };
}

export function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a harness's main: cleans up what it started, whether it succeeded or not, then exits. */
export function runMain(what: string, main: () => Promise<void>): void {
  main()
    .then(() => {
      cleanupNow();
      process.exit(0);
    })
    .catch((error: unknown) => {
      process.stderr.write(`${what} failed: ${(error as Error).stack ?? String(error)}\n`);
      cleanupNow();
      process.exit(1);
    });
}
