/**
 * The daemon's log lines, as text: one line per event, logfmt (`key=value` pairs, the value
 * quoted as a JSON string when it holds a space, a quote, an equals sign or nothing), starting
 * with `time`, `level` and `msg`. logfmt rather than JSON lines because the same line is read by
 * people in `journalctl` and the per-interface log file, and is still split by machines with one
 * rule. Where the lines go (stderr, a capped file) is the daemon's business (src/daemon/log.ts).
 */

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured fields of a line. Callers pass chosen values only, never key material. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** What a component logs through; the daemon gives it a real one, a library user none. */
export interface Log {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

/** Drops everything: the default where nobody asked for a log. */
export const SILENT_LOG: Log = { error() {}, warn() {}, info() {}, debug() {} };

/** The level named by `text` (case-insensitive), or an error that lists the levels. */
export function parseLogLevel(text: string, field = 'log level'): LogLevel {
  const level = text.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new Error(`${field} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(text)}`);
}

/** Whether a line at `level` passes a log set to `threshold`. */
export function levelEnabled(level: LogLevel, threshold: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold);
}

function formatValue(value: string | number | boolean | null): string {
  const text = String(value);
  return text === '' || /[\s"=\\]/.test(text) || /[^\x20-\x7e]/.test(text) ? JSON.stringify(text) : text;
}

/** One line, without the newline. Undefined fields are left out; keys are the caller's names. */
export function formatLogLine(time: Date, level: LogLevel, msg: string, fields: LogFields = {}): string {
  const parts = [`time=${time.toISOString()}`, `level=${level}`, `msg=${formatValue(msg)}`];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.join(' ');
}
