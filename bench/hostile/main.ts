/**
 * `npm run test:hostile`: the long form of the hostile suite (issue 13). Each part writes its
 * result as JSON into the output directory (default bench/results), which report.ts turns into
 * bench/results/hostile.md. Parts: fuzz (HOSTILE_DATAGRAMS datagrams, default 10 million, at a
 * P2P and at an MP daemon; HOSTILE_PPS paces the sender, default 0: as fast as it goes),
 * control (fast-check over the control protocol, HOSTILE_CONTROL_RUNS), tcp (the TCP attack run),
 * soak (HOSTILE_SOAK_S seconds, default 3600). Needs root.
 *
 *   node dist/bench/hostile/main.js [fuzz] [control] [tcp] [soak] [--out DIR]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlFuzz } from './control-fuzz.js';
import { fuzzRun } from './fuzz.js';
import { RESULTS } from './paths.js';
import { soak } from './soak.js';
import { tcpAttack } from './tcp-attack.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const parts: Record<string, () => Promise<unknown>> = {
  fuzz: async () => {
    const count = env('HOSTILE_DATAGRAMS', 10_000_000);
    const pps = env('HOSTILE_PPS', 0);
    return [await fuzzRun('P2P', count, pps), await fuzzRun('MP', count, pps)];
  },
  control: () => controlFuzz(env('HOSTILE_CONTROL_RUNS', 5000)),
  tcp: () => tcpAttack(env('HOSTILE_TCP_S', 60)),
  soak: () => soak(env('HOSTILE_SOAK_S', 3600)),
};

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args[outAt + 1]! : RESULTS;
const wanted = args.filter((a, i) => !a.startsWith('--') && (outAt < 0 || i !== outAt + 1));
let failed = false;
for (const name of wanted.length > 0 ? wanted : Object.keys(parts)) {
  const part = parts[name];
  if (part === undefined) throw new Error(`unknown part ${name}: use ${Object.keys(parts).join(', ')}`);
  const started = new Date().toISOString();
  let result: unknown;
  try {
    result = await part();
  } catch (error) {
    failed = true;
    result = { error: (error as Error).stack ?? String(error) };
  }
  const file = join(out, `hostile-${name}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ part: name, started, finished: new Date().toISOString(), result }, null, 1)}\n`,
  );
  console.log(`${name}: ${file}${failed ? ' (failed, see error)' : ''}`);
}
process.exitCode = failed ? 1 : 0;
