/**
 * Tuning settings read from the environment (OVPN_UDP_GSO, OVPN_TUN_TXQUEUELEN, ...), so a
 * daemon started by ovpn-cli or a benchmark can be switched without new options. One parser
 * for all of them, so every switch accepts the same spellings.
 */

/** Unset or empty: `fallback`; 0, off, no or false (any case): false; anything else: true. */
export function envSwitch(name: string, fallback: boolean): boolean {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  return !/^(0|off|no|false)$/i.test(v);
}

/** A whole number from `min` to `max`; unset, empty or anything else: `fallback`. */
export function envInteger(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = process.env[name];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}
