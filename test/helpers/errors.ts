/** What an OvpnError says (code, field, message), or null when `f` succeeds: for asserting on refusals. */
import { OvpnError } from '../../src/device/ovpn-interface.js';

export function errorOf(f: () => unknown): { code: string; field?: string; message: string } | null {
  try {
    f();
    return null;
  } catch (error) {
    if (!(error instanceof OvpnError)) throw error;
    return { code: error.code, ...(error.field === undefined ? {} : { field: error.field }), message: error.message };
  }
}
