/**
 * The TCP attacker, run inside the client's namespace (`ip netns exec NS node tcp-attack-ns.js
 * HOST PORT SECONDS`): for SECONDS, at once, keeps up to IDLE connections open and silent
 * (reopening what the server closes), holds trickle connections (a 65535 length prefix, then one
 * byte every 100 ms), and opens and closes connections in a loop. Prints `RESULT {...}` counts.
 */
import { connect, type Socket } from 'node:net';

const IDLE = 300;
const TRICKLE = 20;

const [host, portText, secondsText] = process.argv.slice(2);
const port = Number(portText);
const end = Date.now() + Number(secondsText) * 1000;
const counts = {
  idleOpened: 0,
  idleClosedByServer: 0,
  trickleOpened: 0,
  trickleClosedByServer: 0,
  openClose: 0,
  refused: 0,
};
const sockets = new Set<Socket>();
const over = () => Date.now() >= end;

function open(onConnect: (s: Socket) => void, onServerClose: () => void): void {
  if (over()) return;
  const s = connect(port, host);
  sockets.add(s);
  s.on('connect', () => onConnect(s));
  s.on('error', () => counts.refused++);
  s.on('data', () => undefined);
  s.on('close', () => {
    sockets.delete(s);
    if (!over()) onServerClose();
  });
}

function idle(): void {
  open(
    () => counts.idleOpened++,
    () => {
      counts.idleClosedByServer++;
      setTimeout(idle, 20);
    },
  );
}

function trickle(): void {
  let timer: NodeJS.Timeout | undefined;
  open(
    (s) => {
      counts.trickleOpened++;
      s.write(Buffer.from([0xff, 0xff]));
      timer = setInterval(() => s.write(Buffer.from([0x42])), 100);
    },
    () => {
      clearInterval(timer);
      counts.trickleClosedByServer++;
      setTimeout(trickle, 20);
    },
  );
}

async function openClose(): Promise<void> {
  while (!over()) {
    await new Promise<void>((resolve) => {
      const s = connect(port, host, () => {
        counts.openClose++;
        s.destroy();
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
  }
}

for (let i = 0; i < IDLE; i++) idle();
for (let i = 0; i < TRICKLE; i++) trickle();
await openClose();
for (const s of sockets) s.destroy();
console.log(`RESULT ${JSON.stringify(counts)}`);
process.exit(0);
