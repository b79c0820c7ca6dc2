#!/usr/bin/env node
/**
 * ovpn-cli: drives ovpn interfaces through their control sockets. Accepts both the seed's
 * syntax, `ovpn-cli <iface> <cmd> ...` (creating the interface when a peer is added to one
 * that does not exist yet), and the upstream selftests' syntax, `ovpn-cli <cmd> <iface> ...`.
 * `--json` prints every result as JSON.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import { ControlClient, ControlError, listInterfaces, startDaemon } from '../control/client.js';
import type { Notification } from '../control/protocol.js';
import type { CipherAlg } from '../core/cipher.js';
import { decodeKeyFile, type KeyDirection, keysFromFile } from '../core/key-file.js';
import { formatKey, formatNotification, formatPeer } from './format.js';
import { packageVersion } from './version.js';

type Args = string[];

class UsageError extends Error {}

interface Command {
  usage: string;
  /** Seed syntax only: the interface is created (in this mode) when it does not exist. */
  creates?: 'P2P' | 'MP';
  run(ifname: string, args: Args, out: Output): Promise<void>;
}

interface Output {
  json: boolean;
  print(text: string, value: unknown): void;
}

const CIPHERS: Record<string, CipherAlg> = { aes: 'AES-256-GCM', chachapoly: 'CHACHA20-POLY1305', none: 'NONE' };

function int(value: string | undefined, name: string, max = 0xffffffff): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) > max)
    throw new UsageError(`${name} must be a whole number up to ${max}, got ${value ?? 'nothing'}`);
  return Number(value);
}

function ipOf(address: string, name: string): { v4: boolean; address: string } {
  const family = isIP(address);
  if (family === 0) throw new UsageError(`${name} must be an IPv4 or IPv6 address, got ${address}`);
  return { v4: family === 4, address };
}

function remoteAttrs(raddr: string, rport: string): Record<string, unknown> {
  const { v4, address } = ipOf(raddr, 'raddr');
  return { [v4 ? 'remote-ipv4' : 'remote-ipv6']: address, 'remote-port': int(rport, 'rport', 65535) };
}

function vpnAttrs(vpnaddr: string | undefined): Record<string, unknown> {
  if (vpnaddr === undefined) return {};
  const { v4, address } = ipOf(vpnaddr, 'vpnaddr');
  return { [v4 ? 'vpn-ipv4' : 'vpn-ipv6']: address };
}

function slotOf(value: string | undefined): 'primary' | 'secondary' {
  if (value === '1') return 'primary';
  if (value === '2') return 'secondary';
  throw new UsageError(`slot must be 1 (primary) or 2 (secondary), got ${value ?? 'nothing'}`);
}

async function withClient<T>(ifname: string, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(ifname);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

function request(ifname: string, cmd: Parameters<ControlClient['request']>[0], body: Record<string, unknown> = {}) {
  return withClient(ifname, (client) => client.request(cmd, body));
}

/** Key and peer files are small: more than this is a wrong path (a device, a log), not a key. */
const MAX_INPUT_FILE = 1 << 20;

/** Reads a small text file, refusing one larger than MAX_INPUT_FILE without reading it all. */
function readSmallFile(path: string, what: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_INPUT_FILE + 1);
    let size = 0;
    for (let n = 1; n > 0 && size < buf.length; size += n) n = readSync(fd, buf, size, buf.length - size, null);
    if (size > MAX_INPUT_FILE)
      throw new UsageError(`${what} ${path} is larger than ${MAX_INPUT_FILE} bytes: is it the right file?`);
    return buf.toString('utf8', 0, size);
  } finally {
    closeSync(fd);
  }
}

function readPeersFile(path: string): string[][] {
  return readSmallFile(path, 'peers file')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map((line) => line.split(/\s+/));
}

async function newKey(
  ifname: string,
  peerId: number,
  slot: 'primary' | 'secondary',
  keyId: number,
  cipherName: string,
  dir: string,
  file: string,
): Promise<void> {
  const cipher = CIPHERS[cipherName];
  if (cipher === undefined) throw new UsageError(`cipher must be aes, chachapoly or none, got ${cipherName}`);
  if (dir !== '0' && dir !== '1') throw new UsageError(`key_dir must be 0 or 1, got ${dir}`);
  const keys = keysFromFile(decodeKeyFile(readSmallFile(file, 'key file'), file), cipher, Number(dir) as KeyDirection);
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  await request(ifname, 'key-new', {
    keyconf: {
      'peer-id': peerId,
      slot,
      'key-id': keyId,
      'cipher-alg': cipher,
      'encrypt-dir': { 'cipher-key': b64(keys.encrypt.key), 'nonce-tail': b64(keys.encrypt.nonceTail) },
      'decrypt-dir': { 'cipher-key': b64(keys.decrypt.key), 'nonce-tail': b64(keys.decrypt.nonceTail) },
    },
  });
}

async function getPeer(ifname: string, id: string | undefined, out: Output): Promise<void> {
  if (id === undefined) {
    const reply = await request(ifname, 'peer-get');
    const peers = reply.peers as Record<string, unknown>[];
    out.print([`List of peers connected to: ${ifname}`, ...peers.map(formatPeer)].join('\n'), peers);
  } else {
    const reply = await request(ifname, 'peer-get', { peer: { id: int(id, 'peer_id', 0xffffff) } });
    out.print(formatPeer(reply.peer as Record<string, unknown>), reply.peer);
  }
}

async function addMultiPeers(ifname: string, lport: number, file: string): Promise<void> {
  await withClient(ifname, async (client) => {
    for (const fields of readPeersFile(file)) {
      // Seed files: <peer-id> <raddr> <rport> <vpnaddr>; upstream adds laddr and lport columns.
      const [id, raddr, rport, vpnaddr] = fields.length >= 6 ? [fields[0], fields[3], fields[4], fields[5]] : fields;
      if (id === undefined || raddr === undefined || rport === undefined || vpnaddr === undefined) {
        throw new UsageError(`${file}: each line needs <peer-id> <raddr> <rport> <vpnaddr>, got "${fields.join(' ')}"`);
      }
      await client.request('peer-new', {
        peer: {
          id: int(id, 'peer_id', 0xffffff),
          'local-port': lport,
          ...remoteAttrs(raddr, rport),
          ...vpnAttrs(vpnaddr),
        },
      });
    }
  });
}

/** TCP server: each peer of the file (<peer-id> <vpnaddr>) takes the next connection on lport. */
async function listenTcp(ifname: string, lport: number, file: string): Promise<void> {
  await withClient(ifname, async (client) => {
    for (const [id, vpnaddr, extra] of readPeersFile(file)) {
      if (id === undefined || vpnaddr === undefined || extra !== undefined) {
        throw new UsageError(`${file}: each line needs <peer-id> <vpnaddr>, got "${[id, vpnaddr, extra].join(' ')}"`);
      }
      await client.request('peer-new', {
        peer: { id: int(id, 'peer_id', 0xffffff), transport: 'tcp', 'local-port': lport, ...vpnAttrs(vpnaddr) },
      });
    }
  });
}

/** TCP client: connects to the server and adds it as the peer once the connection is up. */
async function connectTcp(
  ifname: string,
  id: string | undefined,
  raddr: string | undefined,
  rport: string | undefined,
  vpnaddr?: string,
): Promise<number> {
  if (raddr === undefined || rport === undefined) throw new UsageError('missing arguments');
  const peerId = int(id, 'peer_id', 0xffffff);
  await request(ifname, 'peer-new', {
    peer: { id: peerId, transport: 'tcp', ...remoteAttrs(raddr, rport), ...vpnAttrs(vpnaddr) },
  });
  return peerId;
}

async function listenMcast(ifname: string | undefined, out: Output): Promise<void> {
  const names = ifname === undefined ? listInterfaces() : [ifname];
  if (names.length === 0) throw new ControlError('ENODEV', 'no ovpn interface in this network namespace to listen to');
  const clients = await Promise.all(names.map((name) => ControlClient.connect(name)));
  const print = (ntf: Notification) => out.print(formatNotification(ntf), ntf);
  await Promise.all(clients.map((client) => client.subscribe(print)));
  if (!out.json) process.stderr.write(`listening for notifications on ${names.join(', ')}\n`);
  await Promise.all(clients.map((client) => client.closed()));
}

/** Commands in the seed's syntax: ovpn-cli <iface> <cmd> ... */
const SEED: Record<string, Command> = {
  new_peer: {
    usage: 'new_peer <lport> <peer-id> <raddr> <rport> <vpnaddr>',
    creates: 'P2P',
    run: async (ifname, [lport, id, raddr, rport, vpnaddr]) => {
      if (vpnaddr === undefined) throw new UsageError('missing arguments');
      await request(ifname, 'peer-new', {
        peer: {
          id: int(id, 'peer-id', 0xffffff),
          'local-port': int(lport, 'lport', 65535),
          ...remoteAttrs(raddr!, rport!),
          ...vpnAttrs(vpnaddr),
        },
      });
    },
  },
  new_multi_peer: {
    usage: 'new_multi_peer <lport> <file>   (file lines: <peer-id> <raddr> <rport> <vpnaddr>)',
    creates: 'MP',
    run: async (ifname, [lport, file]) => {
      if (file === undefined) throw new UsageError('missing arguments');
      await addMultiPeers(ifname, int(lport, 'lport', 65535), file);
    },
  },
  set_peer: {
    usage: 'set_peer <peer-id> <keepalive_interval> <keepalive_timeout>',
    run: async (ifname, [id, interval, timeout]) => {
      await request(ifname, 'peer-set', {
        peer: {
          id: int(id, 'peer-id', 0xffffff),
          'keepalive-interval': int(interval, 'keepalive_interval'),
          'keepalive-timeout': int(timeout, 'keepalive_timeout'),
        },
      });
    },
  },
  del_peer: {
    usage: 'del_peer <peer-id>',
    run: async (ifname, [id]) => {
      await request(ifname, 'peer-del', { peer: { id: int(id, 'peer-id', 0xffffff) } });
    },
  },
  get_peer: { usage: 'get_peer [peer-id]', run: (ifname, [id], out) => getPeer(ifname, id, out) },
  new_key: {
    usage: 'new_key <peer-id> <aes|chachapoly|none> <key_dir> <key_file>',
    run: async (ifname, [id, cipher, dir, file]) => {
      if (file === undefined) throw new UsageError('missing arguments');
      await newKey(ifname, int(id, 'peer-id', 0xffffff), 'primary', 0, cipher!, dir!, file);
    },
  },
  del_key: {
    usage: 'del_key <peer-id>',
    run: async (ifname, [id]) => {
      await request(ifname, 'key-del', { keyconf: { 'peer-id': int(id, 'peer-id', 0xffffff), slot: 'primary' } });
    },
  },
  swap_keys: {
    usage: 'swap_keys <peer-id>',
    run: async (ifname, [id]) => {
      await request(ifname, 'key-swap', { keyconf: { 'peer-id': int(id, 'peer-id', 0xffffff) } });
    },
  },
  listen: {
    usage: 'listen <lport> <peers_file>   (file lines: <peer-id> <vpnaddr>; TCP server)',
    creates: 'MP',
    run: async (ifname, [lport, file]) => {
      if (file === undefined) throw new UsageError('missing arguments');
      await listenTcp(ifname, int(lport, 'lport', 65535), file);
    },
  },
  connect: {
    usage: 'connect <peer-id> <raddr> <rport> <vpnaddr>   (TCP client)',
    creates: 'P2P',
    run: async (ifname, [id, raddr, rport, vpnaddr]) => {
      if (vpnaddr === undefined) throw new UsageError('missing arguments');
      await connectTcp(ifname, id, raddr, rport, vpnaddr);
    },
  },
  listen_mcast: { usage: 'listen_mcast', run: (ifname, _args, out) => listenMcast(ifname, out) },
};

/** Commands in the upstream selftests' syntax: ovpn-cli <cmd> <iface> ... */
const UPSTREAM: Record<string, Command> = {
  new_iface: {
    usage: 'new_iface <iface> [P2P|MP]',
    run: async (ifname, [mode], out) => {
      if (mode !== undefined && mode !== 'P2P' && mode !== 'MP')
        throw new UsageError(`Cannot parse iface mode: ${mode}`);
      await startDaemon(ifname, mode ?? 'P2P');
      out.print(`Creating interface ${ifname} with mode ${mode ?? 'P2P'}`, { ifname, mode: mode ?? 'P2P' });
    },
  },
  del_iface: {
    usage: 'del_iface <iface>',
    run: async (ifname, _args, out) => {
      await withClient(ifname, async (client) => {
        const info = await client.request('iface-get');
        await client.request('iface-del');
        await client.closed();
        out.print(`Deleting interface ${ifname} ifindex ${String(info.ifindex)}`, {
          ifname,
          ifindex: info.ifindex,
        });
      });
    },
  },
  new_peer: {
    usage: 'new_peer <iface> <peer_id> <lport> <raddr> <rport> [vpnaddr]',
    run: async (ifname, [id, lport, raddr, rport, vpnaddr]) => {
      if (rport === undefined) throw new UsageError('missing arguments');
      await request(ifname, 'peer-new', {
        peer: {
          id: int(id, 'peer_id', 0xffffff),
          'local-port': int(lport, 'lport', 65535),
          ...remoteAttrs(raddr!, rport),
          ...vpnAttrs(vpnaddr),
        },
      });
    },
  },
  new_multi_peer: { ...SEED.new_multi_peer!, usage: 'new_multi_peer <iface> <lport> <file>', creates: undefined },
  set_peer: { ...SEED.set_peer!, usage: 'set_peer <iface> <peer_id> <keepalive_interval> <keepalive_timeout>' },
  del_peer: { ...SEED.del_peer!, usage: 'del_peer <iface> <peer_id>' },
  get_peer: { ...SEED.get_peer!, usage: 'get_peer <iface> [peer_id]' },
  new_key: {
    usage: 'new_key <iface> <peer_id> <slot 1|2> <key_id> <aes|chachapoly|none> <key_dir> <key_file>',
    run: async (ifname, [id, slot, keyId, cipher, dir, file]) => {
      if (file === undefined) throw new UsageError('missing arguments');
      await newKey(ifname, int(id, 'peer_id', 0xffffff), slotOf(slot), int(keyId, 'key_id', 7), cipher!, dir!, file);
    },
  },
  get_key: {
    usage: 'get_key <iface> <peer_id> <slot 1|2>',
    run: async (ifname, [id, slot], out) => {
      const reply = await request(ifname, 'key-get', {
        keyconf: { 'peer-id': int(id, 'peer_id', 0xffffff), slot: slotOf(slot) },
      });
      out.print(formatKey(reply.keyconf as Record<string, unknown>), reply.keyconf);
    },
  },
  del_key: {
    usage: 'del_key <iface> <peer_id> [slot 1|2]',
    run: async (ifname, [id, slot]) => {
      await request(ifname, 'key-del', {
        keyconf: { 'peer-id': int(id, 'peer_id', 0xffffff), ...(slot === undefined ? {} : { slot: slotOf(slot) }) },
      });
    },
  },
  swap_keys: { ...SEED.swap_keys!, usage: 'swap_keys <iface> <peer_id>' },
  listen: { ...SEED.listen!, usage: 'listen <iface> <lport> <peers_file>', creates: undefined },
  connect: {
    usage: 'connect <iface> <peer_id> <raddr> <rport> [key_file]   (key_file: AES-256-GCM, key_dir 1, primary slot)',
    run: async (ifname, [id, raddr, rport, file]) => {
      const peerId = await connectTcp(ifname, id, raddr, rport);
      if (file !== undefined) await newKey(ifname, peerId, 'primary', 0, 'aes', '1', file);
    },
  },
};

function usage(): string {
  return [
    'Usage: ovpn-cli [--json] <iface> <cmd> [args...]      (seed syntax)',
    '       ovpn-cli [--json] <cmd> <iface> [args...]      (upstream syntax)',
    '',
    'seed commands:',
    ...Object.values(SEED).map((c) => `  ${c.usage}`),
    '',
    'upstream commands:',
    ...Object.values(UPSTREAM).map((c) => `  ${c.usage}`),
    '  listen_mcast [iface]',
  ].join('\n');
}

async function interfaceExists(ifname: string): Promise<boolean> {
  if (!listInterfaces().includes(ifname)) return false;
  // A daemon killed with SIGKILL leaves its socket file behind: only one that answers counts.
  try {
    (await ControlClient.connect(ifname)).close();
    return true;
  } catch (error) {
    if (error instanceof ControlError && error.code === 'ENODEV') return false;
    throw error;
  }
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const args = argv.filter((arg) => arg !== '--json');
  const out: Output = {
    json,
    print: (text, value) => process.stdout.write(`${json ? JSON.stringify(value ?? {}) : text}\n`),
  };
  const [first, second, ...rest] = args;
  // Asked-for help goes to stdout (to page or grep it); help for a wrong call goes to stderr.
  if (first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`ovpn-cli ${packageVersion()}\n`);
    return 0;
  }
  if (first === undefined) {
    process.stderr.write(`${usage()}\n`);
    return 1;
  }
  let command: Command | undefined;
  let ifname: string | undefined;
  let commandArgs: Args;
  if (first === 'listen_mcast') {
    command = { usage: 'listen_mcast [iface]', run: (name, _a, o) => listenMcast(name || undefined, o) };
    ifname = second ?? '';
    commandArgs = [];
  } else if (UPSTREAM[first] !== undefined) {
    command = UPSTREAM[first];
    ifname = second;
    commandArgs = rest;
  } else {
    command = second === undefined ? undefined : SEED[second];
    ifname = first;
    commandArgs = rest;
  }
  if (command === undefined || ifname === undefined) {
    process.stderr.write(`Error: unknown command.\n\n${usage()}\n`);
    return 1;
  }
  try {
    if (command.creates !== undefined && first === ifname && !(await interfaceExists(ifname)))
      await startDaemon(ifname, command.creates);
    await command.run(ifname, commandArgs, out);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`Error: invalid arguments: ${error.message}\n\nUsage: ovpn-cli ${command.usage}\n`);
      return 1;
    }
    const code = (error as { code?: string }).code ?? 'EIO';
    if (json) process.stdout.write(`${JSON.stringify({ error: { code, message: (error as Error).message } })}\n`);
    process.stderr.write(`Cannot execute command: ${(error as Error).message} (${code})\n`);
    return 2;
  }
}

/** Exits once stdout has taken everything written to it: a pipe may still hold some. */
function exitAfterOutput(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2)).then(exitAfterOutput, (error: unknown) => {
  process.stderr.write(`ovpn-cli: ${(error as Error).stack ?? String(error)}\n`);
  exitAfterOutput(70);
});
