/**
 * The name of the daemon's network namespace. A daemon keeps its namespace alive: after `ip netns
 * del NAME` nothing could reach it but nsenter, and it would run for ever. So a daemon started in
 * a named namespace (one bind-mounted under /run/netns) watches that directory and reports when
 * no name is left for its namespace. One started in an unnamed namespace has nothing to watch.
 */
import { type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';

const NAMES = '/run/netns';

/** Whether some name under /run/netns is the namespace with inode `ino`. */
function named(ino: number): boolean {
  let names: string[];
  try {
    names = readdirSync(NAMES);
  } catch {
    return false;
  }
  return names.some((name) => {
    try {
      return statSync(join(NAMES, name)).ino === ino;
    } catch {
      return false;
    }
  });
}

/** Calls onGone once the last name of our namespace is deleted; null when it has none to lose. */
export function watchNamespaceName(onGone: () => void): { close(): void } | null {
  const ino = statSync('/proc/self/ns/net').ino;
  if (!named(ino)) return null;
  let watcher: FSWatcher | null = watch(NAMES, () => {
    if (watcher === null || named(ino)) return;
    watcher.close();
    watcher = null;
    onGone();
  });
  return {
    close() {
      watcher?.close();
      watcher = null;
    },
  };
}
