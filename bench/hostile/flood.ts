/**
 * The sender, run inside the attacker's network namespace (`ip netns exec NS node flood.js
 * FILE COUNT`): sends COUNT datagrams from the pool in FILE (JSON: target, port, datagrams as
 * base64) round and round, 128 per sendmmsg through the shim, at full speed or at `pps`.
 * COUNT 0 sends the pool's primes once. Prints `RESULT {sent, errors, seconds}`.
 */
import { readFileSync } from 'node:fs';
import { newBatch, pushPacket, resetOffsets } from '../../src/core/batch.js';
import { newEndpoints, writeEndpoint } from '../../src/core/endpoint.js';
import { UdpBind } from '../../src/edge/udp.js';

export interface FloodFile {
  target: string;
  port: number;
  primes: string[];
  datagrams: string[];
  /** Datagrams per second; 0: as fast as the socket takes them. */
  pps: number;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function flood(file: FloodFile, count: number): Promise<{ sent: number; errors: number; seconds: number }> {
  const pool = (count === 0 ? file.primes : file.datagrams).map((b) => Buffer.from(b, 'base64'));
  const total = count === 0 ? pool.length : count;
  const bind = UdpBind.open({ family: 4, address: '0.0.0.0', port: 0, gso: false, gro: false });
  const BATCH = 128;
  const batch = newBatch(BATCH, 2048);
  const endpoints = newEndpoints(BATCH);
  for (let i = 0; i < BATCH; i++) writeEndpoint(endpoints, i, { address: file.target, port: file.port });
  let next = 0;
  let sent = 0;
  let errors = 0;
  const start = performance.now();
  while (sent + errors < total) {
    batch.count = 0;
    resetOffsets(batch);
    const n = Math.min(BATCH, total - sent - errors);
    for (let i = 0; i < n; i++) pushPacket(batch, pool[(next + i) % pool.length]!);
    const done = bind.send(batch, endpoints);
    for (let i = 0; i < done; i++) if (batch.sizes[i]! < 0) errors++;
    sent += done;
    next = (next + done) % pool.length;
    if (done < n) await turn();
    if (file.pps > 0) {
      const due = ((sent + errors) / file.pps) * 1000 - (performance.now() - start);
      if (due > 1) await sleep(due);
    }
  }
  bind.close();
  return { sent: sent - errors, errors, seconds: (performance.now() - start) / 1000 };
}

const [path, count] = process.argv.slice(2);
const result = await flood(JSON.parse(readFileSync(path!, 'utf8')) as FloodFile, Number(count ?? 0));
console.log(`RESULT ${JSON.stringify(result)}`);
