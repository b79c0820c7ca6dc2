/**
 * Where a CPU sample of our daemon belongs. The same rule serves perf's native+JS stacks and
 * V8's --cpu-prof trees: walk from the leaf towards the root and take the first frame that
 * decides; frames that don't (V8 builtins, libc, node internals, generic kernel code) leave the
 * decision to their caller. So a Buffer view allocated by our seal() counts as our JavaScript,
 * a page fault taken inside a scavenge as GC, and the kernel's whole veth and TCP receive work
 * done inside our sendmmsg() as socket I/O: the cost of that call, as our process pays it.
 */

export type Category = 'tun' | 'socket' | 'crypto' | 'js' | 'gc' | 'malloc' | 'loop' | 'softirq' | 'other';

export const CATEGORIES: readonly { key: Category; label: string; what: string }[] = [
  {
    key: 'tun',
    label: 'TUN I/O',
    what: 'read()/write() on the TUN fd: kernel side (tun_chr_read_iter, tun_get_user and the IP stack behind it) and the shim loops readBatch/writeBatch',
  },
  {
    key: 'crypto',
    label: 'crypto (node:crypto)',
    what: 'OpenSSL (AES-GCM, ChaCha20-Poly1305, EVP), node::crypto C++ and its JS wrappers (createCipheriv, update, final, getAuthTag...)',
  },
  {
    key: 'socket',
    label: 'socket I/O',
    what: "sendmmsg()/recvmmsg(): kernel side (UDP, IP, veth, and the peer namespace's receive path run inline) and the shim loops udpSendBatch/udpRecvBatch",
  },
  {
    key: 'js',
    label: 'our JavaScript',
    what: 'code under dist/src (framing, batches, peers, stats) and the V8 builtins and Buffer helpers it calls',
  },
  {
    key: 'gc',
    label: 'GC',
    what: 'V8 garbage collection on the main thread and its helper threads (scavenges, sweeping of ArrayBuffers)',
  },
  {
    key: 'malloc',
    label: 'malloc/free',
    what: 'glibc malloc and free whose callers perf could not unwind (glibc has no frame pointers); a DWARF-unwound run showed them to be node:crypto allocating a fresh output buffer in every update()/getAuthTag() and the GC freeing those buffers, about half each',
  },
  {
    key: 'softirq',
    label: 'kernel networking (softirq)',
    what: 'packet processing the kernel ran in interrupt context while our process was on the CPU (not inside one of our syscalls): veth and TUN receive, IP, UDP, TCP',
  },
  {
    key: 'loop',
    label: 'event loop + callbacks',
    what: 'epoll_wait, libuv, the N-API poll callback into JS (napi_make_callback) and microtask checkpoints',
  },
  { key: 'other', label: 'other', what: 'everything else: JIT compilation, timers, scheduler, interrupts' },
];

/** Kernel frames that name the syscall a sample is in. */
const SYSCALL_RULES: [RegExp, Category][] = [
  [/^(tun_chr_read_iter|tun_chr_write_iter|tun_get_user|tun_do_read|tun_put_user|tun_chr_poll)/, 'tun'],
  [
    /(sendmmsg|recvmmsg|^udp_sendmsg|^udp_recvmsg|^udpv6_sendmsg|^udpv6_recvmsg|^__sys_sendmsg|^___sys_sendmsg|^___sys_recvmsg)/,
    'socket',
  ],
  [/^(do_epoll_wait|do_epoll_pwait|ep_poll|__x64_sys_epoll)/, 'loop'],
  // The daemon's only read()/write() traffic is the TUN: a sample caught in the generic part of
  // those syscalls, before the TUN driver, is still TUN I/O.
  [/^(ksys_read|ksys_write|vfs_read|vfs_write|__x64_sys_read|__x64_sys_write)$/, 'tun'],
];
const SCHEDULER = /^(finish_task_switch.*|__schedule|schedule|preempt_schedule.*)$/;
const SOFTIRQ = /^(handle_softirqs|__do_softirq|do_softirq|net_rx_action)$/;
const isKernel = (dso: string) => dso.includes('kernel.kallsyms');

const NATIVE_RULES: [RegExp, Category][] = [
  [/^(read_batch|write_batch)$/, 'tun'],
  [/^(udp_recv_batch|udp_send_batch)$/, 'socket'],
  // glibc's syscall wrappers (no frame pointer: the shim frame above them is lost).
  [/^(read|write|__read|__write|__libc_read|__libc_write|__GI___libc_read|__GI___libc_write)$/, 'tun'],
  [/^(sendmmsg|recvmmsg|__sendmmsg|__recvmmsg|__libc_sendmmsg|__libc_recvmmsg)$/, 'socket'],
  [/^on_poll$/, 'loop'],
  [
    /^node::crypto::|^(EVP_|evp_|ossl_|OSSL_|aesni_|aes_|AES_|gcm_|CRYPTO_|ChaCha20|chacha20|Poly1305|poly1305|OPENSSL_|ERR_|BN_|_aesni|_x86_64_AES)|_gcm_|ghash/,
    'crypto',
  ],
  [
    /^v8::internal::(Heap::|Scavenger|ScavengerCollector|MarkCompact|MinorMarkCompact|ConcurrentMarking|ArrayBufferSweeper|IncrementalMarking|GCTracer|Sweeper|MarkingVisitor|GlobalHandles::(Process|Iterate|Post|Invoke)|ScavengeJob|MemoryReducer)/,
    'gc',
  ],
  [
    /^(uv_run|uv__io_poll|uv__run_|uv__async|napi_make_callback|node::InternalMakeCallback|node::InternalCallbackScope|node::SpinEventLoop|v8::internal::MicrotaskQueue|node::PerformCheckpoint|node::task_queue|Builtins_RunMicrotasks)/,
    'loop',
  ],
  [/^v8::internal::(compiler|Compiler|Maglev|baseline|OptimizingCompileDispatcher|Parser|Deoptimizer)/, 'other'],
];

export interface PerfFrame {
  /** Symbol without its +offset. */
  sym: string;
  dso: string;
}

/**
 * A perf stack, leaf first. The kernel part is decided as a whole: the syscall it belongs to
 * (the outermost frame that names one, so that the IP stack run inside a TUN write counts for
 * the TUN), else softirq packet processing; otherwise (page faults, timer interrupts, the
 * scheduler) the user-space code it interrupted decides.
 */
export function classifyPerfStack(frames: readonly PerfFrame[]): Category {
  let k = 0;
  while (k < frames.length && isKernel(frames[k]!.dso)) k++;
  let syscall: Category | null = null;
  let softirq = false;
  let scheduler = false;
  for (let i = 0; i < k; i++) {
    const sym = frames[i]!.sym;
    for (const [re, cat] of SYSCALL_RULES) if (re.test(sym)) syscall = cat;
    if (SOFTIRQ.test(sym)) softirq = true;
    if (SCHEDULER.test(sym)) scheduler = true;
  }
  if (syscall !== null) return syscall;
  if (softirq) return 'softirq';
  // Switched out and back in (preempted on a busy machine): the scheduler's time, not the code's.
  if (scheduler) return 'other';
  const user = frames.slice(k);
  const cat = classifyStack(user, (f) => perfFrameOwner(f.sym, f.dso));
  return cat === 'other' && user[0] !== undefined && MALLOC.test(user[0].sym) ? 'malloc' : cat;
}

const MALLOC =
  /^(_int_malloc|_int_free|malloc|free|cfree(@.*)?|__libc_(malloc|free|calloc|realloc)|malloc_consolidate|unlink_chunk.*|calloc|realloc|_int_realloc|tcache_.*)$/;

/** A user-space perf frame's owner. */
export function perfFrameOwner(sym: string, dso: string): Category | null {
  if (isKernel(dso)) return null;
  if (sym.startsWith('JS:') || sym.startsWith('LazyCompile:') || sym.startsWith('Function:')) return jsUrlOwner(sym);
  for (const [re, cat] of NATIVE_RULES) if (re.test(sym)) return cat;
  return null;
}

/**
 * A JS function's owner from its name and url (perf map names carry both: "JS:*read file:///…").
 * The edge wrappers TunDevice.read/write and UdpBind.recv/send only call the shim, so they stand
 * for it: V8 charges native time to its JS caller, and perf loses the shim frame when the glibc
 * syscall wrapper below it has no frame pointer.
 */
function jsOwner(name: string, url: string): Category | null {
  if (url.includes('node:internal/crypto') || url.includes('node:crypto')) return 'crypto';
  if (url.includes('/dist/src/edge/tun.js') && (name === 'read' || name === 'write')) return 'tun';
  if (url.includes('/dist/src/edge/udp.js') && (name === 'recv' || name === 'send')) return 'socket';
  if (url.includes('/dist/src/')) return 'js';
  return null;
}

function jsUrlOwner(sym: string): Category | null {
  const m = sym.match(/^\w+:[*~^+-]?(\S*) (\S+)/);
  return m ? jsOwner(m[1]!, m[2]!) : null;
}

/** The innermost deciding frame of a stack given leaf first; 'other' if none decides. */
export function classifyStack<F>(frames: readonly F[], owner: (f: F) => Category | null): Category {
  for (const f of frames) {
    const c = owner(f);
    if (c !== null) return c;
  }
  return 'other';
}

/** V8 --cpu-prof call frame. */
export interface CpuProfileFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

const SHIM_FUNCTIONS: Record<string, Category> = {
  readBatch: 'tun',
  writeBatch: 'tun',
  udpRecvBatch: 'socket',
  udpSendBatch: 'socket',
};

/**
 * A --cpu-prof frame's owner. V8 charges time in a native (N-API or C++ binding) function to
 * the JS function that called it, so the thin edge wrappers TunDevice.read/write and
 * UdpBind.recv/send stand for the shim's syscall loops, and node:internal/crypto functions for
 * OpenSSL; a native frame that does show up is decided by name or by its caller.
 */
export function cpuProfileFrameOwner(f: CpuProfileFrame): Category | null {
  if (f.functionName === '(garbage collector)') return 'gc';
  if (f.functionName === '(program)' || f.functionName === '(root)') return 'loop';
  if (f.url === '') return SHIM_FUNCTIONS[f.functionName] ?? null;
  return jsOwner(f.functionName, f.url);
}
