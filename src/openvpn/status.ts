/**
 * OpenVPN 2.6's server status file (`status FILE [SECONDS]`, `status-version 1|2|3`), byte for
 * byte, from a plain snapshot: pure, no clock and no files. The facts, taken from openvpn
 * 2.6.14's output (test/fixtures/openvpn-status/) and its multi_print_status:
 * - version 1: "OpenVPN CLIENT LIST", "Updated,<time>", a client list, "ROUTING TABLE", "GLOBAL
 *   STATS", "END"; versions 2 (commas) and 3 (tabs): TITLE, TIME (text and time_t), HEADER rows
 *   naming the columns, CLIENT_LIST and ROUTING_TABLE rows, GLOBAL_STATS (incl. dco_enabled), END;
 * - times are the local time as "YYYY-MM-DD HH:MM:SS"; every line ends in "\n";
 * - an unknown common name or username is "UNDEF"; an unset virtual address is empty;
 * - a real address is "a.b.c.d:port" (an IPv4-mapped IPv6 address as its IPv4 address), a plain
 *   IPv6 address without its port;
 * - bytes received/sent are what was read from/written to the client's transport (link bytes).
 */

export interface StatusClient {
  commonName?: string;
  /** The client's transport address: IP and port. */
  realAddress: string;
  realPort: number;
  virtualAddress?: string;
  virtualIpv6Address?: string;
  /** Link bytes read from / written to the client. */
  bytesReceived: number;
  bytesSent: number;
  /** Unix time, seconds. */
  connectedSince: number;
  username?: string;
  /** The management interface's client id (a counter from 0). */
  clientId: number;
  peerId: number;
  /** The data channel cipher, as OpenVPN names it (AES-256-GCM, CHACHA20-POLY1305, none). */
  cipher: string;
}

export interface StatusRoute {
  /** The route's address (a client's VPN address, or a learned prefix with /bits). */
  virtualAddress: string;
  commonName?: string;
  realAddress: string;
  realPort: number;
  /** Unix time of its last reference, seconds. */
  lastRef: number;
}

export interface StatusSnapshot {
  /** Version 2/3's TITLE (openvpn's version line). */
  title: string;
  /** Unix time of the snapshot, seconds. */
  time: number;
  clients: readonly StatusClient[];
  routes: readonly StatusRoute[];
  /** "Max bcast/mcast queue length". */
  maxBcastQueue: number;
  /** GLOBAL_STATS dco_enabled (versions 2 and 3). */
  dcoEnabled: boolean;
}

export type StatusVersion = 1 | 2 | 3;

export interface StatusFormatOptions {
  /** Print times in UTC instead of local time (tests). */
  utc?: boolean;
}

const two = (n: number) => String(n).padStart(2, '0');

/** OpenVPN's time_string: "YYYY-MM-DD HH:MM:SS", local time unless `utc`. */
export function statusTime(seconds: number, utc = false): string {
  const d = new Date(seconds * 1000);
  const [y, mo, da, h, mi, s] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  return `${String(y).padStart(4, '0')}-${two(mo + 1)}-${two(da)} ${two(h)}:${two(mi)}:${two(s)}`;
}

/** OpenVPN's mroute_addr_print for a transport address. */
export function statusRealAddress(address: string, port: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return `${mapped[1]}:${port}`;
  if (address.includes(':')) return address;
  return `${address}:${port}`;
}

const name = (n: string | undefined) => (n === undefined || n === '' ? 'UNDEF' : n);

export function formatStatus(
  snapshot: StatusSnapshot,
  version: StatusVersion,
  options: StatusFormatOptions = {},
): string {
  const time = (t: number) => statusTime(t, options.utc);
  const lines: string[] = [];
  if (version === 1) {
    lines.push('OpenVPN CLIENT LIST', `Updated,${time(snapshot.time)}`);
    lines.push('Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since');
    for (const c of snapshot.clients)
      lines.push(
        [
          name(c.commonName),
          statusRealAddress(c.realAddress, c.realPort),
          c.bytesReceived,
          c.bytesSent,
          time(c.connectedSince),
        ].join(','),
      );
    lines.push('ROUTING TABLE', 'Virtual Address,Common Name,Real Address,Last Ref');
    for (const r of snapshot.routes)
      lines.push(
        [r.virtualAddress, name(r.commonName), statusRealAddress(r.realAddress, r.realPort), time(r.lastRef)].join(','),
      );
    lines.push('GLOBAL STATS', `Max bcast/mcast queue length,${snapshot.maxBcastQueue}`, 'END');
  } else {
    const row = (...fields: (string | number)[]) => lines.push(fields.join(version === 3 ? '\t' : ','));
    row('TITLE', snapshot.title);
    row('TIME', time(snapshot.time), Math.floor(snapshot.time));
    row(
      'HEADER',
      'CLIENT_LIST',
      'Common Name',
      'Real Address',
      'Virtual Address',
      'Virtual IPv6 Address',
      'Bytes Received',
      'Bytes Sent',
      'Connected Since',
      'Connected Since (time_t)',
      'Username',
      'Client ID',
      'Peer ID',
      'Data Channel Cipher',
    );
    for (const c of snapshot.clients)
      row(
        'CLIENT_LIST',
        name(c.commonName),
        statusRealAddress(c.realAddress, c.realPort),
        c.virtualAddress ?? '',
        c.virtualIpv6Address ?? '',
        c.bytesReceived,
        c.bytesSent,
        time(c.connectedSince),
        Math.floor(c.connectedSince),
        name(c.username),
        c.clientId,
        c.peerId,
        c.cipher,
      );
    row('HEADER', 'ROUTING_TABLE', 'Virtual Address', 'Common Name', 'Real Address', 'Last Ref', 'Last Ref (time_t)');
    for (const r of snapshot.routes)
      row(
        'ROUTING_TABLE',
        r.virtualAddress,
        name(r.commonName),
        statusRealAddress(r.realAddress, r.realPort),
        time(r.lastRef),
        Math.floor(r.lastRef),
      );
    row('GLOBAL_STATS', 'Max bcast/mcast queue length', snapshot.maxBcastQueue);
    row('GLOBAL_STATS', 'dco_enabled', snapshot.dcoEnabled ? 1 : 0);
    lines.push('END');
  }
  return `${lines.join('\n')}\n`;
}
