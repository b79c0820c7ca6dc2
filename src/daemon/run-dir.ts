/**
 * Housekeeping of the control root (/run/ovpn-dco): each namespace's directory holds its
 * daemons' sockets and capped logs. A daemon that exits cleanly removes its socket and keeps its
 * log for a post-mortem; the directory of a namespace that no longer exists can hold no daemon
 * any more, so the next daemon to start removes it. Nothing accumulates beyond the logs of
 * namespaces that are still there, each at most twice the log cap per interface name.
 */
import { readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Inodes of every network namespace a process is in or a name under /run/netns holds. */
function liveNamespaces(): Set<number> {
  const live = new Set<number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      // "net:[4026531840]": no stat needed, and it works for processes that exit meanwhile.
      const match = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      if (match) live.add(Number(match[1]));
    } catch {
      // exited, or not ours to read
    }
  }
  try {
    for (const name of readdirSync('/run/netns')) {
      try {
        live.add(statSync(join('/run/netns', name)).ino);
      } catch {
        // being deleted
      }
    }
  } catch {
    // no named namespaces
  }
  return live;
}

/** Removes the directories under `root` of namespaces that are gone; returns their names. */
export function sweepStaleNamespaceDirs(root: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  const live = liveNamespaces();
  const removed: string[] = [];
  for (const entry of entries) {
    const match = /^netns-(\d+)$/.exec(entry);
    if (match === null || live.has(Number(match[1]))) continue;
    rmSync(join(root, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
