/**
 * Data-channel crypto cost: nanoseconds per packet to seal and to open, through our batch form
 * (sealBatch / openBatch over a PacketBatch of 128 packets) next to bare node:crypto doing the
 * same AEAD on the same buffers in the same run.
 *
 *   bare seal: createCipheriv + setAAD + update + final + getAuthTag
 *   bare open: createDecipheriv + setAAD + setAuthTag + update + final
 *
 * Both sides use the same KeyObject, the same 96-bit nonce construction and the same 8-byte AAD.
 * Only the seal/open calls are timed: resetting a batch, installing a fresh receive key at the
 * start of each sample (so the replay window accepts the pre-sealed packet-ids again) and copying
 * pre-sealed packets into the batch are not.
 * Ours and bare are interleaved batch by batch (alternating which goes first), so each sample
 * holds both under the same machine state; a sample scores its median batch, ns figures are
 * medians of REPEATS samples after a warm-up, and ours/bare is the median of per-sample ratios.
 *
 * Run: npm run bench:crypto  (writes bench/results/crypto.json and bench/results/crypto.md)
 */
import {
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform, release, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AAD_SIZE,
  CIPHER_ALGS,
  type CipherAlg,
  cipherInfo,
  DATA_V2_HEADER_SIZE,
  type DropCounters,
  HEADROOM,
  type KeyConfig,
  KeyContext,
  KeySlot,
  KeySlots,
  newBatch,
  newDropCounters,
  openBatch,
  type PacketBatch,
  sealBatch,
  TAG_SIZE,
  totalDrops,
} from '../src/core/index.js';

const BATCH = 128;
const SIZES = [64, 1400] as const;
/** Batches per sample: 150 × 128 = 19,200 packets for ours and as many for bare. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 150);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 9);
const WARMUP = 2;
const PEER_ID = 0x000102;
const KEY_ID = 1;
/** Buffer capacity per packet: enough for the largest size plus headroom and tag. */
const CAPACITY = HEADROOM + 2048;

interface Fixture {
  alg: CipherAlg;
  size: number;
  config: KeyConfig;
  keyObject: KeyObject | null;
  nonceTail: Buffer;
  batch: PacketBatch;
  /** ROUNDS batches of BATCH packets sealed once (packet-ids 1..ROUNDS*BATCH), as they arrive off the wire. */
  sealed: Buffer[][];
  sender: KeyContext;
  slots: KeySlots;
  drops: DropCounters;
  nonce: Buffer;
  nodeName: CipherGCMTypes;
  overhead: number;
  /** Next packet-id the bare sealer puts in its nonce. */
  barePacketId: number;
}

function makeFixture(alg: CipherAlg, size: number): Fixture {
  const info = cipherInfo(alg);
  const key = randomBytes(info.keySize);
  const nonceTail = randomBytes(info.nonceTailSize);
  const material = { key, nonceTail };
  const config: KeyConfig = { keyId: KEY_ID, cipher: alg, encrypt: material, decrypt: material };
  const batch = newBatch(BATCH, CAPACITY);
  for (const buf of batch.bufs) randomBytes(size).copy(buf, HEADROOM);

  // The packets every open sample replays, sealed once by our own code with one fresh key, so a
  // fresh receive key installed at the start of a sample accepts all of them in order.
  const store = newBatch(BATCH, CAPACITY);
  const presealer = new KeyContext(config);
  const drops = newDropCounters();
  const sealed: Buffer[][] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < BATCH; i++) store.bufs[i]!.set(randomBytes(size), HEADROOM);
    store.offsets.fill(HEADROOM);
    store.sizes.fill(size);
    store.count = BATCH;
    if (sealBatch(store, presealer, PEER_ID, drops) !== BATCH) throw new Error('pre-seal dropped packets');
    const round: Buffer[] = [];
    for (let i = 0; i < BATCH; i++) {
      const offset = store.offsets[i]!;
      round.push(Buffer.from(store.bufs[i]!.subarray(offset, offset + store.sizes[i]!)));
    }
    sealed.push(round);
  }

  const nonce = Buffer.alloc(12);
  nonceTail.copy(nonce, 4);
  return {
    alg,
    size,
    config,
    keyObject: info.nodeName === null ? null : createSecretKey(key),
    nonceTail,
    batch,
    sealed,
    sender: new KeyContext(config),
    slots: new KeySlots(),
    drops: newDropCounters(),
    nonce,
    // Both AEAD families take the same calls; NONE never reaches node:crypto.
    nodeName: (info.nodeName ?? 'aes-128-gcm') as CipherGCMTypes,
    overhead: info.overhead,
    barePacketId: 1,
  };
}

/** Puts round r's pre-sealed packets into the batch at HEADROOM, as a UDP read would (not timed). */
function loadSealed(f: Fixture, r: number): void {
  const { batch } = f;
  const sealed = f.sealed[r]!;
  for (let i = 0; i < BATCH; i++) {
    const packet = sealed[i]!;
    packet.copy(batch.bufs[i]!, HEADROOM);
    batch.offsets[i] = HEADROOM;
    batch.sizes[i] = packet.length;
  }
  batch.count = BATCH;
}

/** Plaintext of `size` at HEADROOM in every slot, as a TUN read would leave it (not timed). */
function loadPlain(f: Fixture): void {
  const { batch } = f;
  batch.offsets.fill(HEADROOM);
  batch.sizes.fill(f.size);
  batch.count = BATCH;
}

const now = process.hrtime.bigint;
const AEAD_OPTIONS = { authTagLength: TAG_SIZE };
let sink = 0;

/** One round of ours: seal a batch of BATCH plaintexts with sealBatch. Returns ns spent in it. */
function sealOursRound(f: Fixture, _r: number): bigint {
  loadPlain(f);
  const t0 = now();
  const kept = sealBatch(f.batch, f.sender, PEER_ID, f.drops);
  const elapsed = now() - t0;
  if (kept !== BATCH) throw new Error(`sealBatch kept ${kept}/${BATCH}`);
  return elapsed;
}

/** One round of bare node:crypto sealing the same plaintexts, nonce and AAD layout. */
function sealBareRound(f: Fixture, _r: number): bigint {
  loadPlain(f);
  const { bufs } = f.batch;
  const { nonce, size, nodeName: name } = f;
  const key = f.keyObject!;
  const start = HEADROOM - f.overhead;
  const t0 = now();
  for (let i = 0; i < BATCH; i++) {
    const buf = bufs[i]!;
    nonce.writeUInt32BE(f.barePacketId++, 0);
    const cipher = createCipheriv(name, key, nonce, AEAD_OPTIONS);
    cipher.setAAD(buf.subarray(start, start + AAD_SIZE));
    const ciphertext = cipher.update(buf.subarray(HEADROOM, HEADROOM + size));
    cipher.final();
    const tag = cipher.getAuthTag();
    sink += ciphertext.length + tag.length;
  }
  return now() - t0;
}

/** One round of ours: openBatch over round r's pre-sealed packets. */
function openOursRound(f: Fixture, r: number): bigint {
  loadSealed(f, r);
  if (r === 0) f.slots.install(KeySlot.Primary, f.config); // fresh replay window for the sample
  const t0 = now();
  const kept = openBatch(f.batch, f.slots, f.drops);
  const elapsed = now() - t0;
  if (kept !== BATCH)
    throw new Error(`openBatch kept ${kept}/${BATCH}: ${JSON.stringify(f.drops)} (${totalDrops(f.drops)})`);
  return elapsed;
}

/** One round of bare node:crypto opening the same pre-sealed packets. */
function openBareRound(f: Fixture, r: number): bigint {
  loadSealed(f, r);
  const { bufs, sizes } = f.batch;
  const { nonce, nodeName: name } = f;
  const key = f.keyObject!;
  const body = HEADROOM + AAD_SIZE + TAG_SIZE;
  const t0 = now();
  for (let i = 0; i < BATCH; i++) {
    const buf = bufs[i]!;
    nonce.writeUInt32BE(buf.readUInt32BE(HEADROOM + DATA_V2_HEADER_SIZE), 0);
    const decipher = createDecipheriv(name, key, nonce, AEAD_OPTIONS);
    decipher.setAAD(buf.subarray(HEADROOM, HEADROOM + AAD_SIZE));
    decipher.setAuthTag(buf.subarray(HEADROOM + AAD_SIZE, body));
    const plaintext = decipher.update(buf.subarray(body, HEADROOM + sizes[i]!));
    decipher.final(); // throws if the tag does not verify: the bench would stop
    sink += plaintext.length;
  }
  return now() - t0;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Figure {
  /** Median ns per packet over the samples. */
  ours: number;
  bare: number | null;
  /** Median over samples of (ours / bare) within the same sample: drift cancels pairwise. */
  ratio: number | null;
  oursSamples: number[];
  bareSamples: number[];
}

interface Row {
  cipher: CipherAlg;
  size: number;
  seal: Figure;
  open: Figure;
}

type Round = (f: Fixture, r: number) => bigint;

/**
 * One sample: ROUNDS rounds, each running ours and bare back to back on the same batch
 * (alternating which goes first), so both see the same machine state. Returns ns per packet
 * of the median round for each: a burst from another process (or a GC pause, whose garbage
 * both sides make alike) that lands on one round does not bias one side.
 */
function sample(f: Fixture, ours: Round, bare: Round | null): [number, number | null] {
  const oursNs: number[] = [];
  const bareNs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (bare === null) {
      oursNs.push(Number(ours(f, r)));
    } else if (r % 2 === 0) {
      oursNs.push(Number(ours(f, r)));
      bareNs.push(Number(bare(f, r)));
    } else {
      bareNs.push(Number(bare(f, r)));
      oursNs.push(Number(ours(f, r)));
    }
  }
  return [median(oursNs) / BATCH, bare === null ? null : median(bareNs) / BATCH];
}

function figure(oursSamples: number[], bareSamples: number[]): Figure {
  const hasBare = bareSamples.length > 0;
  return {
    ours: median(oursSamples),
    bare: hasBare ? median(bareSamples) : null,
    ratio: hasBare ? median(oursSamples.map((o, i) => o / bareSamples[i]!)) : null,
    oursSamples,
    bareSamples,
  };
}

function measure(alg: CipherAlg, size: number): Row {
  const f = makeFixture(alg, size);
  const hasBare = f.keyObject !== null;
  const seal = { ours: [] as number[], bare: [] as number[] };
  const open = { ours: [] as number[], bare: [] as number[] };
  for (let rep = -WARMUP; rep < REPEATS; rep++) {
    const [sealOurs, sealBare] = sample(f, sealOursRound, hasBare ? sealBareRound : null);
    const [openOurs, openBare] = sample(f, openOursRound, hasBare ? openBareRound : null);
    if (rep < 0) continue;
    seal.ours.push(sealOurs);
    open.ours.push(openOurs);
    if (sealBare !== null) seal.bare.push(sealBare);
    if (openBare !== null) open.bare.push(openBare);
  }
  return { cipher: alg, size, seal: figure(seal.ours, seal.bare), open: figure(open.ours, open.bare) };
}

function fmtNs(value: number | null): string {
  return value === null ? '—' : value.toFixed(0);
}

function fmtRatio(value: number | null): string {
  if (value === null) return '—';
  const pct = (value - 1) * 100;
  return `${value.toFixed(3)} (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%)`;
}

function table(rows: Row[]): string {
  const header = [
    'cipher',
    'bytes',
    'seal ours ns',
    'seal bare ns',
    'seal ours/bare',
    'open ours ns',
    'open bare ns',
    'open ours/bare',
  ];
  const body = rows.map((r) => [
    r.cipher,
    String(r.size),
    fmtNs(r.seal.ours),
    fmtNs(r.seal.bare),
    fmtRatio(r.seal.ratio),
    fmtNs(r.open.ours),
    fmtNs(r.open.bare),
    fmtRatio(r.open.ratio),
  ]);
  const lines = [header, header.map(() => '---'), ...body];
  const widths = header.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  return lines
    .map((l, li) =>
      li === 1
        ? `|${widths.map((w, c) => (c < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`
        : `| ${l.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`,
    )
    .join('\n');
}

function main(): void {
  const started = Date.now();
  const rows: Row[] = [];
  for (const alg of CIPHER_ALGS) {
    for (const size of SIZES) {
      const row = measure(alg, size);
      rows.push(row);
      process.stderr.write(
        `${alg} ${size}B: seal ${fmtNs(row.seal.ours)} vs ${fmtNs(row.seal.bare)} ns, open ${fmtNs(row.open.ours)} vs ${fmtNs(row.open.bare)} ns\n`,
      );
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const cpu = cpus()[0]?.model.trim() ?? 'unknown';
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    cpu,
    cores: cpus().length,
    arch: arch(),
    platform: `${platform()} ${release()}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    date: new Date().toISOString(),
  };
  const method = {
    batch: BATCH,
    roundsPerSample: ROUNDS,
    packetsPerSample: ROUNDS * BATCH,
    repeats: REPEATS,
    warmupSamples: WARMUP,
    statistic:
      'ns per packet: per sample, the median round (batch) / BATCH; reported: median over samples. ratio: median over samples of per-sample ours/bare',
    interleave: 'ours and bare alternate batch by batch within every sample, swapping who goes first',
    ours: 'sealBatch / openBatch over a PacketBatch (KeyContext, KeySlots, replay window, in-place copy-back)',
    bare: 'createCipheriv+setAAD+update+final+getAuthTag / createDecipheriv+setAAD+setAuthTag+update+final, same KeyObject',
    untimed: 'batch reset, fresh receive KeyContext per open sample, copy of pre-sealed packets into the batch',
  };
  const text = table(rows);
  const big = rows.filter((r) => r.size === 1400 && r.seal.ratio !== null);
  const worst = Math.max(...big.flatMap((r) => [r.seal.ratio!, r.open.ratio!]));
  const verdict = `worst ours/bare at 1400 bytes: ${fmtRatio(worst)} — target ≤ 1.10 ${worst <= 1.1 ? 'met' : 'NOT met'}`;

  process.stdout.write(`\n${text}\n\n${verdict}\n(${machine.cpu}, node ${machine.node}, ${seconds.toFixed(1)} s)\n`);

  const here = dirname(fileURLToPath(import.meta.url));
  const outDir = resolve(here, '../../bench/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(resolve(outDir, 'crypto.json'), `${JSON.stringify({ machine, method, seconds, rows }, null, 2)}\n`);
  const md = [
    '# Data-channel crypto: ns per packet',
    '',
    `Measured ${machine.date} on ${machine.cpu} (${machine.cores} cores, ${machine.arch}), node ${machine.node}, OpenSSL ${machine.openssl}.`,
    '',
    `*Ours* is \`sealBatch\` / \`openBatch\` over a batch of ${BATCH} packets (KeyContext, replay window, in-place write-back);`,
    '*bare* is node:crypto alone doing the same AEAD on the same buffers with the same KeyObject, nonce and 8-byte AAD',
    '(`createCipheriv`+`setAAD`+`update`+`final`+`getAuthTag`; `createDecipheriv`+`setAAD`+`setAuthTag`+`update`+`final`).',
    `Ours and bare alternate batch by batch. A sample is ${ROUNDS} batches of each and scores its median batch (robust to bursts`,
    `from other processes on a shared machine); ns are medians of ${REPEATS} samples after ${WARMUP} warm-up samples, and ours/bare`,
    'is the median of the per-sample ratios.',
    'NONE has no AEAD, so no bare figure.',
    '',
    text,
    '',
    `${verdict}.`,
    '',
    'Reproduce: `npm run bench:crypto` (raw samples in `crypto.json`).',
    '',
  ].join('\n');
  writeFileSync(resolve(outDir, 'crypto.md'), md);
  if (sink === 42) process.stdout.write('\n');
}

main();
