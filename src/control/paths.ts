/**
 * Where an interface's control socket lives. The directory is named after the inode of the
 * caller's network namespace, so each namespace has its own set (two namespaces can each run a
 * tun0) and a client only finds the daemons of its own namespace. Mode 0700 and owner root:
 * only root can reach the sockets, as only CAP_NET_ADMIN can use the netlink family.
 * The interface name is checked before a path is built from it: `../x` must not reach a file.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkInterfaceName } from '../device/options.js';

export const CONTROL_ROOT = process.env.OVPN_DCO_RUN_DIR ?? '/run/ovpn-dco';

export function namespaceId(): string {
  return `netns-${statSync('/proc/self/ns/net').ino}`;
}

export function controlDir(create = false): string {
  const dir = join(CONTROL_ROOT, namespaceId());
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function socketPath(ifname: string, create = false): string {
  const name = checkInterfaceName(ifname);
  return join(controlDir(create), `${name}.sock`);
}

export function logPath(ifname: string): string {
  const name = checkInterfaceName(ifname);
  return join(controlDir(true), `${name}.log`);
}
