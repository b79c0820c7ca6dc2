/** ovpn-cli's side of the control socket: one request, an interface's removal, whether one exists. */
import { ControlClient, ControlError, listInterfaces } from '../control/client.js';
import type { Command } from '../control/protocol.js';

export type Body = Record<string, unknown>;

export async function withClient<T>(ifname: string | undefined, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(ifname!);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** The reply without its envelope (id, ok). */
export function attrs(reply: Body): Body {
  const { id: _id, ok: _ok, ...rest } = reply;
  return rest;
}

/** One request on its own connection. */
export async function request(ifname: string | undefined, cmd: Command, body: Body = {}): Promise<Body> {
  return attrs(await withClient(ifname, (client) => client.request(cmd, body)));
}

/** Deletes an interface and waits until its daemon has gone; resolves with its iface-get. */
export function deleteInterface(ifname: string): Promise<Body> {
  return withClient(ifname, async (client) => {
    const info = attrs(await client.request('iface-get'));
    await client.request('iface-del');
    await client.closed();
    return info;
  });
}

/** Whether the interface's daemon answers: one killed with SIGKILL leaves its socket file behind. */
export async function interfaceExists(ifname: string): Promise<boolean> {
  if (!listInterfaces().includes(ifname)) return false;
  try {
    (await ControlClient.connect(ifname)).close();
    return true;
  } catch (error) {
    if (error instanceof ControlError && error.code === 'ENODEV') return false;
    throw error;
  }
}

/** The interfaces of this namespace whose daemons answer, in name order. */
export async function liveInterfaces(): Promise<string[]> {
  const names = listInterfaces().sort();
  const alive = await Promise.all(names.map(interfaceExists));
  return names.filter((_, i) => alive[i]);
}
