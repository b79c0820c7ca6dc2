/**
 * A peer's two key slots. OpenVPN renegotiates keys while traffic flows: the new key is
 * installed as secondary, then swapped to primary, and the old one lingers as secondary so that
 * packets still in flight under it can be opened. Sealing always uses the primary; opening picks
 * the slot whose key-id matches the packet's.
 */
import { type AeadBackend, nodeAead } from './aead.js';
import { type KeyConfig, KeyContext } from './key-context.js';

export const enum KeySlot {
  Primary = 0,
  Secondary = 1,
}

export function keySlotName(slot: KeySlot): 'primary' | 'secondary' {
  return slot === KeySlot.Primary ? 'primary' : 'secondary';
}

export class KeySlots {
  private slots: [KeyContext | null, KeyContext | null] = [null, null];
  /** Forwarded to every installed key: its packet-ids are close to running out. */
  onSwapNeeded: ((keyId: number) => void) | null = null;

  get primary(): KeyContext | null {
    return this.slots[KeySlot.Primary];
  }

  get secondary(): KeyContext | null {
    return this.slots[KeySlot.Secondary];
  }

  get(slot: KeySlot): KeyContext | null {
    return this.slots[slot];
  }

  /**
   * Installs a new key in `slot` on `backend` (the interface's choice), replacing and destroying
   * what was there.
   */
  install(slot: KeySlot, config: KeyConfig, backend: AeadBackend = nodeAead): KeyContext {
    const context = new KeyContext(config, undefined, backend);
    context.onSwapNeeded = (keyId) => this.onSwapNeeded?.(keyId);
    this.slots[slot]?.destroy();
    this.slots[slot] = context;
    return context;
  }

  /** The key for an incoming packet's key-id, or null: the caller drops and counts it. */
  forKeyId(keyId: number): KeyContext | null {
    const [primary, secondary] = this.slots;
    if (primary !== null && primary.keyId === keyId) return primary;
    if (secondary !== null && secondary.keyId === keyId) return secondary;
    return null;
  }

  swap(): void {
    this.slots = [this.slots[KeySlot.Secondary], this.slots[KeySlot.Primary]];
  }

  /** Deletes one slot, or both when no slot is given; a deleted key is destroyed (aead.ts). */
  delete(slot?: KeySlot): void {
    for (const s of slot === undefined ? [KeySlot.Primary, KeySlot.Secondary] : [slot]) {
      this.slots[s]?.destroy();
      this.slots[s] = null;
    }
  }
}
