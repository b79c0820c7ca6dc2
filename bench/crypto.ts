/**
 * Data-channel crypto cost: nanoseconds per packet to seal and to open, through our batch form
 * (sealBatch / openBatch over a PacketBatch of 128 packets) on each AEAD backend, next to bare
 * node:crypto doing the same AEAD on the same buffers in the same run, and next to
 * `openssl speed -evp` at the same sizes as the physical limit of this machine.
 *
 *   node:   our batch form on the node:crypto backend (a cipher object per packet)
 *   native: our batch form on the native backend (per-key EVP contexts, one call per run)
 *   bare seal: createCipheriv + setAAD + update + final + getAuthTag
 *   bare open: createDecipheriv + setAAD + setAuthTag + update + final
 *   openssl: `openssl speed -evp <cipher> [-decrypt] -bytes <size>`, seconds of CPU per block
 *   EVP floor: bench/evp-floor.c, the native backend's per-packet EVP sequence in a C loop (no
 *     N-API, no JavaScript), built here when cc and OpenSSL's headers and libcrypto are present
 *
 * All three in-process forms use the same key, the same 96-bit nonce construction and the same
 * 8-byte AAD. Only the seal/open calls are timed: resetting a batch, installing a fresh receive
 * key at the start of each sample (so the replay window accepts the pre-sealed packet-ids again)
 * and copying pre-sealed packets into the batch are not.
 * The three are interleaved batch by batch (rotating which goes first), so each sample holds
 * all of them under the same machine state; a sample scores its median batch, ns figures are
 * medians of REPEATS samples after a warm-up, and ratios are medians of per-sample ratios.
 * openssl speed runs after them, one process per cipher, size and direction.
 *
 * Run: npm run bench:crypto  (writes bench/results/crypto.json and bench/results/crypto.md)
 */

import { execFileSync } from 'node:child_process';
import {
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform, release, tmpdir, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AAD_SIZE,
  type AeadBackend,
  CIPHER_ALGS,
  type CipherAlg,
  type CryptoBackendName,
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
import { aeadBackend } from '../src/edge/aead.js';
import { native } from '../src/edge/native.js';

const BATCH = 128;
const SIZES = [64, 1400] as const;
/** Batches per sample: 150 × 128 = 19,200 packets for each form. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 150);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 9);
const WARMUP = 2;
/** CPU seconds per openssl speed run (one per cipher, size and direction). */
const OPENSSL_SECONDS = Number(process.env.BENCH_OPENSSL_SECONDS ?? 2);
const PEER_ID = 0x000102;
const KEY_ID = 1;
/** Buffer capacity per packet: enough for the largest size plus headroom and tag. */
const CAPACITY = HEADROOM + 2048;
/** Target of issue 14: native batch at 1400 bytes within this factor of openssl speed. */
const OPENSSL_TARGET = 1.3;

const BACKENDS: readonly CryptoBackendName[] = ['node', 'native'];
type Form = CryptoBackendName | 'bare';

interface Fixture {
  alg: CipherAlg;
  size: number;
  config: KeyConfig;
  keyObject: KeyObject | null;
  batch: PacketBatch;
  /** ROUNDS batches of BATCH packets sealed once (packet-ids 1..ROUNDS*BATCH), as they arrive off the wire. */
  sealed: Buffer[][];
  senders: Record<CryptoBackendName, KeyContext>;
  slots: Record<CryptoBackendName, KeySlots>;
  backends: Record<CryptoBackendName, AeadBackend>;
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
  const backends = { node: aeadBackend('node'), native: aeadBackend('native') };
  return {
    alg,
    size,
    config,
    keyObject: info.nodeName === null ? null : createSecretKey(key),
    batch,
    sealed,
    senders: {
      node: new KeyContext(config, undefined, backends.node),
      native: new KeyContext(config, undefined, backends.native),
    },
    slots: { node: new KeySlots(), native: new KeySlots() },
    backends,
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

/** One round of ours on `backend`: seal a batch of BATCH plaintexts with sealBatch. Returns ns spent in it. */
function sealOurs(f: Fixture, backend: CryptoBackendName): bigint {
  loadPlain(f);
  const t0 = now();
  const kept = sealBatch(f.batch, f.senders[backend], PEER_ID, f.drops);
  const elapsed = now() - t0;
  if (kept !== BATCH) throw new Error(`sealBatch kept ${kept}/${BATCH}`);
  return elapsed;
}

/** One round of bare node:crypto sealing the same plaintexts, nonce and AAD layout. */
function sealBare(f: Fixture): bigint {
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

/** One round of ours on `backend`: openBatch over round r's pre-sealed packets. */
function openOurs(f: Fixture, backend: CryptoBackendName, r: number): bigint {
  loadSealed(f, r);
  const slots = f.slots[backend];
  if (r === 0) slots.install(KeySlot.Primary, f.config, f.backends[backend]); // fresh replay window for the sample
  const t0 = now();
  const kept = openBatch(f.batch, slots, f.drops);
  const elapsed = now() - t0;
  if (kept !== BATCH)
    throw new Error(`openBatch kept ${kept}/${BATCH}: ${JSON.stringify(f.drops)} (${totalDrops(f.drops)})`);
  return elapsed;
}

/** One round of bare node:crypto opening the same pre-sealed packets. */
function openBare(f: Fixture, r: number): bigint {
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
  /** Median ns per packet over the samples, per form (bare null for NONE). */
  node: number;
  native: number;
  bare: number | null;
  /** Medians over samples of per-sample ratios: drift cancels pairwise. */
  nodeOverBare: number | null;
  nativeOverBare: number | null;
  nativeOverNode: number;
  /** openssl speed's ns per block at this size and direction (AEADs only). */
  openssl: number | null;
  nativeOverOpenssl: number | null;
  /** bench/evp-floor.c's ns per packet (null when it could not be built). */
  floor: number | null;
  nativeOverFloor: number | null;
  samples: Record<Form, number[]>;
}

interface Row {
  cipher: CipherAlg;
  size: number;
  seal: Figure;
  open: Figure;
}

type Round = (f: Fixture, form: Form, r: number) => bigint;

const sealRound: Round = (f, form) => (form === 'bare' ? sealBare(f) : sealOurs(f, form));
const openRound: Round = (f, form, r) => (form === 'bare' ? openBare(f, r) : openOurs(f, form, r));

/**
 * One sample: ROUNDS rounds, each running every form back to back on the same batch (rotating
 * which goes first), so all see the same machine state. Returns ns per packet of the median
 * round for each: a burst from another process (or a GC pause) that lands on one round does not
 * bias one form.
 */
function sample(f: Fixture, round: Round, forms: readonly Form[]): Record<Form, number> {
  const ns: Record<Form, number[]> = { node: [], native: [], bare: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < forms.length; k++) {
      const form = forms[(r + k) % forms.length]!;
      ns[form].push(Number(round(f, form, r)));
    }
  }
  const out: Record<Form, number> = { node: NaN, native: NaN, bare: NaN };
  for (const form of forms) out[form] = median(ns[form]) / BATCH;
  return out;
}

function ratioOf(samples: Record<Form, number[]>, a: Form, b: Form): number | null {
  if (samples[a].length === 0 || samples[b].length === 0) return null;
  return median(samples[a].map((x, i) => x / samples[b][i]!));
}

function figure(samples: Record<Form, number[]>, openssl: number | null, floor: number | null): Figure {
  const native = median(samples.native);
  return {
    node: median(samples.node),
    native,
    bare: samples.bare.length > 0 ? median(samples.bare) : null,
    nodeOverBare: ratioOf(samples, 'node', 'bare'),
    nativeOverBare: ratioOf(samples, 'native', 'bare'),
    nativeOverNode: ratioOf(samples, 'native', 'node')!,
    openssl,
    nativeOverOpenssl: openssl === null ? null : native / openssl,
    floor,
    nativeOverFloor: floor === null ? null : native / floor,
    samples,
  };
}

function measure(alg: CipherAlg, size: number, openssl: OpensslFigures, floor: OpensslFigures): Row {
  const f = makeFixture(alg, size);
  const forms: Form[] = f.keyObject === null ? [...BACKENDS] : [...BACKENDS, 'bare'];
  const seal: Record<Form, number[]> = { node: [], native: [], bare: [] };
  const open: Record<Form, number[]> = { node: [], native: [], bare: [] };
  for (let rep = -WARMUP; rep < REPEATS; rep++) {
    const s = sample(f, sealRound, forms);
    const o = sample(f, openRound, forms);
    if (rep < 0) continue;
    for (const form of forms) {
      seal[form].push(s[form]);
      open[form].push(o[form]);
    }
  }
  const ssl = openssl.get(`${alg}/${size}`);
  const evp = floor.get(`${alg}/${size}`);
  return {
    cipher: alg,
    size,
    seal: figure(seal, ssl?.seal ?? null, evp?.seal ?? null),
    open: figure(open, ssl?.open ?? null, evp?.open ?? null),
  };
}

type OpensslFigures = Map<string, { seal: number; open: number }>;

/** The openssl CLI's EVP names, for the ciphers it can run. */
const OPENSSL_NAMES: Partial<Record<CipherAlg, string>> = {
  'AES-128-GCM': 'aes-128-gcm',
  'AES-192-GCM': 'aes-192-gcm',
  'AES-256-GCM': 'aes-256-gcm',
  'CHACHA20-POLY1305': 'chacha20-poly1305',
};

/** ns per block from one `openssl speed -mr` run: its "+F:<n>:<alg>:<bytes per second>" line. */
function opensslSpeed(name: string, size: number, decrypt: boolean): number {
  const args = ['speed', '-mr', '-seconds', String(OPENSSL_SECONDS), '-bytes', String(size), '-evp', name];
  if (decrypt) args.splice(1, 0, '-decrypt');
  const out = execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const line = out.split('\n').find((l) => l.startsWith('+F:'));
  const bytesPerSecond = Number(line?.split(':')[3]);
  if (!(bytesPerSecond > 0)) throw new Error(`openssl speed printed no +F line:\n${out}`);
  return (size / bytesPerSecond) * 1e9;
}

/** openssl's version, installing it first when missing (Debian: apt-get, as root). */
function opensslVersion(): string {
  const version = () => execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  try {
    return version();
  } catch {
    process.stderr.write('openssl not found: installing it with apt-get\n');
    execFileSync('apt-get', ['install', '-y', '-qq', 'openssl'], { stdio: 'inherit' });
    return version();
  }
}

function measureOpenssl(): OpensslFigures {
  const figures: OpensslFigures = new Map();
  for (const [alg, name] of Object.entries(OPENSSL_NAMES)) {
    for (const size of SIZES) {
      const seal = opensslSpeed(name, size, false);
      const open = opensslSpeed(name, size, true);
      figures.set(`${alg}/${size}`, { seal, open });
      process.stderr.write(`openssl speed ${name} ${size}B: encrypt ${fmtNs(seal)} ns, decrypt ${fmtNs(open)} ns\n`);
    }
  }
  return figures;
}

/** Batches per EVP floor run; each scores its median batch. */
const FLOOR_BATCHES = Number(process.env.BENCH_FLOOR_BATCHES ?? 1000);
const FLOOR_RUNS = 3;

/** Builds bench/evp-floor.c; null (and why, on stderr) when this machine cannot. */
function buildFloor(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  const source = resolve(here, '../../bench/evp-floor.c');
  const binary = resolve(tmpdir(), `ovpn-evp-floor-${process.pid}`);
  try {
    execFileSync('cc', ['-O2', '-o', binary, source, '-lcrypto'], { stdio: ['ignore', 'ignore', 'pipe'] });
    return binary;
  } catch (e) {
    process.stderr.write(
      `no EVP floor column: cannot build ${source} (needs cc and libssl-dev): ${(e as Error).message}\n`,
    );
    return null;
  }
}

function measureFloor(): OpensslFigures {
  const figures: OpensslFigures = new Map();
  const binary = buildFloor();
  if (binary === null) return figures;
  // A floor: the best of a few runs, each the median of its batches, so one burst of another
  // process's load during a run does not raise it.
  const once = (name: string, size: number, op: 'seal' | 'open') =>
    Number(execFileSync(binary, [name, String(size), op, String(FLOOR_BATCHES)], { encoding: 'utf8' }).trim());
  const run = (name: string, size: number, op: 'seal' | 'open') =>
    Math.min(...Array.from({ length: FLOOR_RUNS }, () => once(name, size, op)));
  try {
    for (const [alg, name] of Object.entries(OPENSSL_NAMES)) {
      for (const size of SIZES) {
        const seal = run(name, size, 'seal');
        const open = run(name, size, 'open');
        figures.set(`${alg}/${size}`, { seal, open });
        process.stderr.write(`EVP floor ${name} ${size}B: seal ${fmtNs(seal)} ns, open ${fmtNs(open)} ns\n`);
      }
    }
  } finally {
    rmSync(binary, { force: true });
  }
  return figures;
}

function fmtNs(value: number | null): string {
  return value === null ? '—' : value.toFixed(0);
}

function fmtRatio(value: number | null): string {
  return value === null ? '—' : `${value.toFixed(2)}x`;
}

function table(rows: Row[], op: 'seal' | 'open'): string {
  const header = [
    'cipher',
    'bytes',
    `${op} node ns`,
    `${op} native ns`,
    'bare node:crypto ns',
    'openssl speed ns',
    'EVP floor ns',
    'native/node',
    'native/openssl',
    'native/floor',
  ];
  const body = rows.map((r) => {
    const g = r[op];
    return [
      r.cipher,
      String(r.size),
      fmtNs(g.node),
      fmtNs(g.native),
      fmtNs(g.bare),
      fmtNs(g.openssl),
      fmtNs(g.floor),
      fmtRatio(g.nativeOverNode),
      fmtRatio(g.nativeOverOpenssl),
      fmtRatio(g.nativeOverFloor),
    ];
  });
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
  const opensslCli = opensslVersion();
  const rows: Row[] = [];
  const openssl = measureOpenssl();
  const floor = measureFloor();
  for (const alg of CIPHER_ALGS) {
    for (const size of SIZES) {
      const row = measure(alg, size, openssl, floor);
      rows.push(row);
      const { seal: s, open: o } = row;
      process.stderr.write(
        `${alg} ${size}B: seal node ${fmtNs(s.node)} native ${fmtNs(s.native)} bare ${fmtNs(s.bare)} openssl ${fmtNs(s.openssl)} ns; ` +
          `open node ${fmtNs(o.node)} native ${fmtNs(o.native)} bare ${fmtNs(o.bare)} openssl ${fmtNs(o.openssl)} ns\n`,
      );
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const cpu = cpus()[0]?.model.trim() ?? 'unknown';
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    nativeOpenssl: native().aeadOpenSSL(),
    opensslCli,
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
      'ns per packet: per sample, the median round (batch) / BATCH; reported: median over samples. ratios between in-process forms: median over samples of per-sample ratios; native/openssl: median native ns / openssl ns',
    interleave: 'node, native and bare alternate batch by batch within every sample, rotating who goes first',
    node: 'sealBatch / openBatch over a PacketBatch on the node:crypto backend (KeyContext, KeySlots, replay window)',
    native: 'sealBatch / openBatch over a PacketBatch on the native backend: one aeadSeal / aeadOpen call per batch',
    bare: 'createCipheriv+setAAD+update+final+getAuthTag / createDecipheriv+setAAD+setAuthTag+update+final, same KeyObject',
    openssl: `openssl speed -mr -seconds ${OPENSSL_SECONDS} -bytes <size> -evp <cipher> [-decrypt]: CPU seconds / blocks (EVP_Update on one context; no IV, AAD or tag per block)`,
    floor: `bench/evp-floor.c against the system libcrypto: the native backend's per-packet EVP sequence in C; best of ${FLOOR_RUNS} runs of ${FLOOR_BATCHES} batches of ${BATCH}, each scoring its median batch`,
    untimed: 'batch reset, fresh receive KeyContext per open sample, copy of pre-sealed packets into the batch',
  };
  const sealTable = table(rows, 'seal');
  const openTable = table(rows, 'open');
  const target = rows.filter((r) => r.size === 1400 && r.seal.nativeOverOpenssl !== null);
  const verdicts = target.map((r) => {
    const worst = Math.max(r.seal.nativeOverOpenssl!, r.open.nativeOverOpenssl!);
    const floorWorst =
      r.seal.nativeOverFloor === null ? null : Math.max(r.seal.nativeOverFloor, r.open.nativeOverFloor!);
    const floorText = floorWorst === null ? '' : `; native/EVP floor ${fmtRatio(floorWorst)}`;
    return `${r.cipher} at 1400 bytes: native/openssl speed ${fmtRatio(worst)} (target ≤ ${OPENSSL_TARGET}x ${worst <= OPENSSL_TARGET ? 'met' : 'NOT met'})${floorText}`;
  });
  const verdict = verdicts.join('\n');
  process.stdout.write(
    `\nseal\n${sealTable}\n\nopen\n${openTable}\n\n${verdict}\n(${machine.cpu}, node ${machine.node}, ${seconds.toFixed(1)} s)\n`,
  );

  const here = dirname(fileURLToPath(import.meta.url));
  const outDir = resolve(here, '../../bench/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(resolve(outDir, 'crypto.json'), `${JSON.stringify({ machine, method, seconds, rows }, null, 2)}\n`);
  const md = [
    '# Data-channel crypto: ns per packet',
    '',
    `Measured ${machine.date} on ${machine.cpu} (${machine.cores} cores, ${machine.arch}), node ${machine.node}`,
    `(OpenSSL ${machine.openssl}; the native backend runs on "${machine.nativeOpenssl}"); openssl speed and the EVP floor run on the system's ${machine.opensslCli}.`,
    '',
    `*node* and *native* are \`sealBatch\` / \`openBatch\` over a batch of ${BATCH} packets (KeyContext, replay window) on the`,
    'node:crypto backend (a cipher object per packet) and on the native backend (per-key EVP contexts in the shim, one call',
    'per batch). *bare node:crypto* is node:crypto alone doing the same AEAD on the same buffers with the same key, nonce and',
    '8-byte AAD. The three alternate batch by batch; a sample is',
    `${ROUNDS} batches of each and scores its median batch (robust to bursts from other processes on a shared machine); ns are`,
    `medians of ${REPEATS} samples after ${WARMUP} warm-up samples, and native/node is the median of the per-sample ratios.`,
    `*openssl speed* is \`openssl speed -evp <cipher> [-decrypt] -bytes <size>\` (${OPENSSL_SECONDS} s each) in the same run: CPU`,
    'time per block of EVP_EncryptUpdate / EVP_DecryptUpdate on one context, without per-block IV, AAD or tag.',
    "*EVP floor* is `bench/evp-floor.c`: the native backend's own per-packet sequence (set the IV, AAD, update, final, tag;",
    'open into scratch, copy after the tag verified) on the same layout in a C loop, no N-API or JavaScript, against the',
    `system's libcrypto, best of ${FLOOR_RUNS} runs: the least any EVP caller pays per packet. For ChaCha20-Poly1305 the`,
    'per-message IV setup and finalization are most of that at these sizes, which is why openssl speed is far below it.',
    'NONE has no AEAD, so no bare, openssl or floor figure.',
    '',
    '## Seal',
    '',
    sealTable,
    '',
    '## Open',
    '',
    openTable,
    '',
    ...verdicts.map((v) => `- ${v}`),
    '',
    'Reproduce: `npm run bench:crypto` (raw samples in `crypto.json`; `BENCH_OPENSSL_SECONDS`, `BENCH_FLOOR_BATCHES`,',
    '`BENCH_ROUNDS`, `BENCH_REPEATS`).',
    '',
  ].join('\n');
  writeFileSync(resolve(outDir, 'crypto.md'), md);
  if (sink === 42) process.stdout.write('\n');
}

main();
