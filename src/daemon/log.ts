/**
 * Where the daemon's log lines go (their text is core/log.ts). Under a service manager (systemd
 * hands stderr to the journal and says so in JOURNAL_STREAM, or `--foreground`) they go to
 * stderr, which already has its own retention. Otherwise to the interface's log file next to its
 * control socket, capped: when a line would take it past the cap it is renamed to `.1` (replacing
 * the previous one) and a new file is started, so one interface never holds more than twice the
 * cap however long it runs.
 */
import { closeSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';
import { formatLogLine, type Log, type LogFields, type LogLevel, levelEnabled } from '../core/log.js';

/** The default cap of a log file: 1 MiB, `OVPN_LOG_MAX_BYTES` to change it. */
export const DEFAULT_LOG_MAX_BYTES = 1 << 20;

export interface LogTarget {
  write(line: string): void;
  close(): void;
}

/** Whether stderr is the journal: JOURNAL_STREAM is `device:inode` of the stream systemd gave us. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (stream === undefined) return false;
  try {
    const { dev, ino } = fstatSync(2);
    return stream === `${dev}:${ino}`;
  } catch {
    return false;
  }
}

export const stderrTarget: LogTarget = {
  write(line) {
    process.stderr.write(line);
  },
  close() {},
};

/** A log file that is rotated to `.1` before it would pass `maxBytes`. */
export class CappedLogFile implements LogTarget {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    readonly maxBytes = DEFAULT_LOG_MAX_BYTES,
  ) {
    this.fd = openSync(path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  write(line: string): void {
    if (this.fd < 0) return;
    const bytes = Buffer.byteLength(line);
    try {
      if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
      // Synchronous: lines are rare (events, not packets), and the last ones before an exit or
      // a crash must reach the file.
      writeSync(this.fd, line);
      this.size += bytes;
    } catch (error) {
      // A log that cannot be written (disk full, the file's directory removed) must not take the
      // interface down: the line goes to stderr instead, with the reason.
      process.stderr.write(`log file ${this.path}: ${(error as Error).message}\n${line}`);
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    renameSync(this.path, `${this.path}.1`);
    const fd = openSync(this.path, 'a', 0o600);
    closeSync(this.fd);
    this.fd = fd;
    this.size = 0;
  }
}

/** A Log that writes the lines at or above `threshold` to `target`, each with `fields` added. */
export class Logger implements Log {
  constructor(
    private readonly target: LogTarget,
    readonly threshold: LogLevel,
    private readonly fields: LogFields = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  error(msg: string, fields?: LogFields): void {
    this.line('error', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.line('warn', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.line('info', msg, fields);
  }

  debug(msg: string, fields?: LogFields): void {
    this.line('debug', msg, fields);
  }

  close(): void {
    this.target.close();
  }

  private line(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!levelEnabled(level, this.threshold)) return;
    this.target.write(`${formatLogLine(this.now(), level, msg, { ...this.fields, ...fields })}\n`);
  }
}
