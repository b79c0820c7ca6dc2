/**
 * ovpn-cli's commands, one table: each names its parameters (for usage, help and errors) in
 * the seed's syntax (`ovpn-cli <iface> <cmd> ...`) and/or the upstream selftests' syntax
 * (`ovpn-cli <cmd> <iface> ...`), and `prepare`s a call: every argument and file is checked
 * there, before anything is created; what it returns then talks to the daemon.
 */
import { ControlClient, ControlError, listInterfaces, startDaemon } from '../control/client.js';
import type { Command, Notification } from '../control/protocol.js';
import type { CipherAlg } from '../core/cipher.js';
import type { KeyDirection } from '../core/key-file.js';
import { type Args, atLine, ipAttr, MAX_PEER_ID, readKeyFile, readPeersFile, UsageError, wholeNumber } from './args.js';
import { formatAttrs, formatKey, formatNotification, formatPeer } from './format.js';
import { writeKeyFile } from './genkey.js';
import type { Output } from './output.js';
import { type Body, deleteInterface, request, withClient } from './requests.js';
import { showInterfaces } from './show.js';

export interface Context {
  /** Undefined only for the commands whose interface is optional or absent. */
  ifname: string | undefined;
  out: Output;
}

export type Action = (ctx: Context) => Promise<void>;

export interface Syntax {
  /** Parameters after the command and interface, in order; `[name]` is optional. */
  params: readonly string[];
  /** Upstream syntax: whether the interface follows the command (default required). */
  iface?: 'optional' | 'none';
  /** Seed syntax: the interface is created in this mode when it does not exist yet. */
  creates?: 'P2P' | 'MP';
  /** What else usage says, after the syntax. */
  note?: string;
  prepare(args: Args): Action;
}

export interface CommandDef {
  name: string;
  summary: string;
  seed?: Syntax;
  upstream?: Syntax;
}

/** A command that only changes something: the request, then nothing to print but success. */
function change(cmd: Command, body: Body): Action {
  return async ({ ifname }) => {
    await request(ifname, cmd, body);
  };
}

function newPeer(args: Args): Action {
  return change('peer-new', {
    peer: {
      id: args.peerId(),
      'local-port': args.port('lport'),
      ...args.ip('raddr', 'remote'),
      'remote-port': args.port('rport'),
      ...(args.has('vpnaddr') ? args.ip('vpnaddr', 'vpn') : {}),
    },
  });
}

/** UDP peers of a multi-peer server, from a file: `<peer-id> <raddr> <rport> <vpnaddr>` per line. */
function newMultiPeer(args: Args): Action {
  const lport = args.port('lport');
  const peers = readPeersFile(args.str('peers-file'), 'peers-file').map((line) =>
    atLine(line, () => {
      // Upstream files add laddr and lport columns: <peer-id> <laddr> <lport> <raddr> <rport> <vpnaddr>.
      const words = line.words.length >= 6 ? [line.words[0], ...line.words.slice(3, 6)] : line.words;
      const [id, raddr, rport, vpnaddr, extra] = words as (string | undefined)[];
      if (vpnaddr === undefined || extra !== undefined)
        throw new UsageError(`expected <peer-id> <raddr> <rport> <vpnaddr>, got "${line.words.join(' ')}"`);
      return {
        id: wholeNumber(id!, 'peer-id', MAX_PEER_ID),
        'local-port': lport,
        ...ipAttr(raddr!, 'raddr', 'remote'),
        'remote-port': wholeNumber(rport!, 'rport', 65535),
        ...ipAttr(vpnaddr, 'vpnaddr', 'vpn'),
      };
    }),
  );
  return addPeers(peers);
}

/** Adds the peers of a file, in its order. */
function addPeers(peers: Body[]): Action {
  return async ({ ifname }) => {
    await withClient(ifname, async (client) => {
      for (const peer of peers) await client.request('peer-new', { peer });
    });
  };
}

/** TCP server: each peer of the file (`<peer-id> <vpnaddr>`) takes the next connection on lport. */
function listen(args: Args): Action {
  const lport = args.port('lport');
  const peers = readPeersFile(args.str('peers-file'), 'peers-file').map((line) =>
    atLine(line, () => {
      const [id, vpnaddr, extra] = line.words;
      if (vpnaddr === undefined || extra !== undefined)
        throw new UsageError(`expected <peer-id> <vpnaddr>, got "${line.words.join(' ')}"`);
      return {
        id: wholeNumber(id!, 'peer-id', MAX_PEER_ID),
        transport: 'tcp',
        'local-port': lport,
        ...ipAttr(vpnaddr, 'vpnaddr', 'vpn'),
      };
    }),
  );
  return addPeers(peers);
}

interface KeyCall {
  peerId: number;
  slot: 'primary' | 'secondary';
  keyId: number;
  cipher: CipherAlg;
  dir: KeyDirection;
}

/** key-new's keyconf, with the key file read and checked now. */
function keyconf(args: Args, call: KeyCall): Body {
  const keys = readKeyFile(args.str('key-file'), 'key-file', call.cipher, call.dir);
  return { 'peer-id': call.peerId, slot: call.slot, 'key-id': call.keyId, 'cipher-alg': call.cipher, ...keys };
}

/** key-del's syntax; `absent`: what goes when no slot is given. */
function delKey(absent: 'primary' | 'both'): Syntax {
  return {
    params: ['peer-id', '[slot]'],
    note: `slot: 1 (primary) or 2 (secondary); ${absent === 'both' ? 'both' : 'the primary'} when absent`,
    prepare: (args) => {
      const slot = args.has('slot') ? args.slot() : absent === 'primary' ? 'primary' : undefined;
      return change('key-del', { keyconf: { 'peer-id': args.peerId(), ...(slot === undefined ? {} : { slot }) } });
    },
  };
}

function getPeer(args: Args): Action {
  const id = args.has('peer-id') ? args.peerId() : undefined;
  return async ({ ifname, out }) => {
    if (id === undefined) {
      const peers = (await request(ifname, 'peer-get')).peers as Body[];
      out.print([`List of peers connected to: ${ifname}`, ...peers.map(formatPeer)].join('\n'), peers);
    } else {
      const { peer } = await request(ifname, 'peer-get', { peer: { id } });
      out.print(formatPeer(peer as Body), peer);
    }
  };
}

function setPeer(args: Args): Action {
  return change('peer-set', {
    peer: {
      id: args.peerId(),
      'keepalive-interval': args.int('keepalive-interval'),
      'keepalive-timeout': args.int('keepalive-timeout'),
    },
  });
}

async function listenMcast({ ifname, out }: Context): Promise<void> {
  const names = ifname === undefined ? listInterfaces() : [ifname];
  if (names.length === 0) throw new ControlError('ENODEV', 'no ovpn interface in this network namespace to listen to');
  const clients = await Promise.all(names.map((name) => ControlClient.connect(name)));
  const print = (ntf: Notification) => out.print(formatNotification(ntf), ntf);
  await Promise.all(clients.map((client) => client.subscribe(print)));
  if (!out.json) process.stderr.write(`listening for notifications on ${names.join(', ')}\n`);
  await Promise.all(clients.map((client) => client.closed()));
}

const PEER_COMMON = {
  setPeer: { params: ['peer-id', 'keepalive-interval', 'keepalive-timeout'], prepare: setPeer },
  delPeer: {
    params: ['peer-id'],
    prepare: (args: Args) => change('peer-del', { peer: { id: args.peerId() } }),
  },
  getPeer: { params: ['[peer-id]'], prepare: getPeer },
  swapKeys: {
    params: ['peer-id'],
    prepare: (args: Args) => change('key-swap', { keyconf: { 'peer-id': args.peerId() } }),
  },

  routeAdd: {
    params: ['peer-id', 'prefix'],
    note: 'prefix: 10.1.0.0/16, fd00::/64 or an address (MP: traffic to it goes to the peer)',
    prepare: (args: Args) => change('route-add', { 'peer-id': args.peerId(), prefix: args.str('prefix') }),
  },
  routeDel: {
    params: ['peer-id', 'prefix'],
    prepare: (args: Args) => change('route-del', { 'peer-id': args.peerId(), prefix: args.str('prefix') }),
  },
  routeGet: {
    params: ['peer-id'],
    prepare: (args: Args): Action => {
      const peerId = args.peerId();
      return async ({ ifname, out }) => {
        const reply = await request(ifname, 'route-get', { 'peer-id': peerId });
        out.print([`Routes of peer ${peerId}:`, ...(reply.routes as string[]).map((r) => `\t${r}`)].join('\n'), reply);
      };
    },
  },
  ifaceGet: {
    params: [],
    prepare:
      (): Action =>
      async ({ ifname, out }) => {
        const info = await request(ifname, 'iface-get');
        out.print(formatAttrs(info), info);
      },
  },
  show: {
    params: [],
    prepare: (): Action => (ctx) => showInterfaces(ctx.ifname, ctx.out),
  },
} satisfies Record<string, Syntax>;

const PEERS_FILE_UDP = 'peers-file lines: <peer-id> <raddr> <rport> <vpnaddr>';
const PEERS_FILE_TCP = 'peers-file lines: <peer-id> <vpnaddr>; each takes the next TCP connection';
const SEED_KEY = 'cipher: aes, chachapoly or none; key-dir: 0 on one side, 1 on the other';

export const COMMANDS: readonly CommandDef[] = [
  {
    name: 'new_iface',
    summary: 'create an interface (and its daemon) in P2P or MP mode (default P2P)',
    upstream: {
      params: ['[mode]'],
      prepare: (args) => {
        const mode = args.has('mode') ? args.str('mode') : 'P2P';
        if (mode !== 'P2P' && mode !== 'MP') throw new UsageError(`mode must be P2P or MP, got ${mode}`, 'mode');
        return async ({ ifname, out }) => {
          await startDaemon(ifname!, mode);
          out.print(`Creating interface ${ifname} with mode ${mode}`, { ifname, mode });
        };
      },
    },
  },
  {
    name: 'del_iface',
    summary: 'delete an interface; its peers go with it and its daemon exits',
    upstream: {
      params: [],
      prepare:
        () =>
        async ({ ifname, out }) => {
          const info = await deleteInterface(ifname!);
          out.print(`Deleting interface ${ifname} ifindex ${String(info.ifindex)}`, { ifname, ifindex: info.ifindex });
        },
    },
  },
  {
    name: 'iface_get',
    summary: "the interface's mode, index, MTU, peer count, daemon pid and drop counters",
    seed: PEER_COMMON.ifaceGet,
    upstream: PEER_COMMON.ifaceGet,
  },
  {
    name: 'show',
    summary: 'every interface of this namespace (or one) with its peers, keys, traffic and drops, like wg show',
    seed: PEER_COMMON.show,
    upstream: { ...PEER_COMMON.show, iface: 'optional' },
  },
  {
    name: 'new_peer',
    summary: 'add a UDP peer (seed syntax: creates the interface in P2P mode if missing)',
    seed: { params: ['lport', 'peer-id', 'raddr', 'rport', 'vpnaddr'], creates: 'P2P', prepare: newPeer },
    upstream: { params: ['peer-id', 'lport', 'raddr', 'rport', '[vpnaddr]'], prepare: newPeer },
  },
  {
    name: 'new_multi_peer',
    summary: 'add UDP peers from a file (seed syntax: creates the interface in MP mode if missing)',
    seed: { params: ['lport', 'peers-file'], creates: 'MP', note: PEERS_FILE_UDP, prepare: newMultiPeer },
    upstream: { params: ['lport', 'peers-file'], note: PEERS_FILE_UDP, prepare: newMultiPeer },
  },
  {
    name: 'listen',
    summary: 'TCP server: peers from a file take the connections accepted on lport (seed: creates MP)',
    seed: { params: ['lport', 'peers-file'], creates: 'MP', note: PEERS_FILE_TCP, prepare: listen },
    upstream: { params: ['lport', 'peers-file'], note: PEERS_FILE_TCP, prepare: listen },
  },
  {
    name: 'connect',
    summary: 'TCP client: connect to a server and add it as the peer (seed: creates P2P)',
    seed: {
      params: ['peer-id', 'raddr', 'rport', 'vpnaddr'],
      creates: 'P2P',
      prepare: (args) =>
        change('peer-new', {
          peer: {
            id: args.peerId(),
            transport: 'tcp',
            ...args.ip('raddr', 'remote'),
            'remote-port': args.port('rport'),
            ...args.ip('vpnaddr', 'vpn'),
          },
        }),
    },
    upstream: {
      params: ['peer-id', 'raddr', 'rport', '[key-file]'],
      note: 'key-file: installed as AES-256-GCM, key-dir 1, primary slot',
      prepare: (args) => {
        const peerId = args.peerId();
        const peer = { id: peerId, transport: 'tcp', ...args.ip('raddr', 'remote'), 'remote-port': args.port('rport') };
        const key = args.has('key-file')
          ? keyconf(args, { peerId, slot: 'primary', keyId: 0, cipher: 'AES-256-GCM', dir: 1 })
          : undefined;
        return async ({ ifname }) => {
          await request(ifname, 'peer-new', { peer });
          if (key !== undefined) await request(ifname, 'key-new', { keyconf: key });
        };
      },
    },
  },
  {
    name: 'set_peer',
    summary: 'keepalive interval and timeout, in seconds',
    seed: PEER_COMMON.setPeer,
    upstream: PEER_COMMON.setPeer,
  },
  { name: 'del_peer', summary: 'delete a peer', seed: PEER_COMMON.delPeer, upstream: PEER_COMMON.delPeer },
  {
    name: 'get_peer',
    summary: 'one peer, or all: addresses, keepalive, VPN/LINK counters, drops',
    seed: PEER_COMMON.getPeer,
    upstream: PEER_COMMON.getPeer,
  },
  {
    name: 'new_key',
    summary: "install a key from a key file (see genkey) in a peer's slot",
    seed: {
      params: ['peer-id', 'cipher', 'key-dir', 'key-file'],
      note: `${SEED_KEY}; primary slot, key-id 0`,
      prepare: (args) => {
        const call = {
          peerId: args.peerId(),
          slot: 'primary',
          keyId: 0,
          cipher: args.cipher(),
          dir: args.keyDir(),
        } as const;
        return change('key-new', { keyconf: keyconf(args, call) });
      },
    },
    upstream: {
      params: ['peer-id', 'slot', 'key-id', 'cipher', 'key-dir', 'key-file'],
      note: `slot: 1 (primary) or 2 (secondary); key-id: 0-7; ${SEED_KEY}`,
      prepare: (args) => {
        const call = {
          peerId: args.peerId(),
          slot: args.slot(),
          keyId: args.int('key-id', 7),
          cipher: args.cipher(),
          dir: args.keyDir(),
        };
        return change('key-new', { keyconf: keyconf(args, call) });
      },
    },
  },
  {
    name: 'get_key',
    summary: "a key slot's key-id and cipher (never the key)",
    upstream: {
      params: ['peer-id', 'slot'],
      note: 'slot: 1 (primary) or 2 (secondary)',
      prepare: (args) => {
        const body = { keyconf: { 'peer-id': args.peerId(), slot: args.slot() } };
        return async ({ ifname, out }) => {
          const { keyconf } = await request(ifname, 'key-get', body);
          out.print(formatKey(keyconf as Body), keyconf);
        };
      },
    },
  },
  {
    name: 'del_key',
    summary: "delete a peer's key(s)",
    // The seed's del_key deletes the primary key; the upstream one both when no slot is given.
    seed: delKey('primary'),
    upstream: delKey('both'),
  },
  {
    name: 'swap_keys',
    summary: 'swap the primary and secondary keys',
    seed: PEER_COMMON.swapKeys,
    upstream: PEER_COMMON.swapKeys,
  },
  {
    name: 'route_add',
    summary: 'MP: send a prefix to a peer',
    seed: PEER_COMMON.routeAdd,
    upstream: PEER_COMMON.routeAdd,
  },
  { name: 'route_del', summary: 'MP: remove a route_add', seed: PEER_COMMON.routeDel, upstream: PEER_COMMON.routeDel },
  {
    name: 'route_get',
    summary: 'the prefixes attached to a peer with route_add',
    seed: PEER_COMMON.routeGet,
    upstream: PEER_COMMON.routeGet,
  },
  {
    name: 'listen_mcast',
    summary: 'print notifications (peer deleted, key swap needed, float...) of one or every interface',
    seed: { params: [], prepare: () => listenMcast },
    upstream: { params: [], iface: 'optional', prepare: () => listenMcast },
  },
  {
    name: 'genkey',
    summary: 'write a fresh random key file (mode 0600), or print one to stdout',
    upstream: {
      params: ['[file]'],
      iface: 'none',
      prepare: (args) => {
        const file = args.has('file') ? args.str('file') : undefined;
        return async ({ out }) => writeKeyFile(file, out);
      },
    },
  },
];

/** The command called `name`; `-` may stand for `_` (`iface-get` as on the socket). */
export function commandNamed(name: string): CommandDef | undefined {
  const wanted = name.replaceAll('-', '_');
  return COMMANDS.find((command) => command.name === wanted);
}
