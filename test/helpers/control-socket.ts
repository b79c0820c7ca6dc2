/** Raw access to a daemon's control socket for tests: a connection, or one request and its answer. */
import { connect, type Socket } from 'node:net';

export async function open(path: string): Promise<Socket> {
  const socket = connect(path);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** One request on a fresh connection, and its answer. */
export async function ask(path: string, request: object): Promise<Record<string, any>> {
  const socket = await open(path);
  socket.write(`${JSON.stringify(request)}\n`);
  let text = '';
  for await (const chunk of socket) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  socket.destroy();
  return JSON.parse(text.slice(0, text.indexOf('\n'))) as Record<string, any>;
}
