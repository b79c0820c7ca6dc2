/**
 * OpenVPN packet framing: the opcode/key-id byte, the DATA_V2 header and the two special
 * plaintext messages that travel inside data packets (keepalive ping and explicit-exit-notify).
 *
 * The first byte of every OpenVPN packet is `opcode << 3 | key_id`. DATA_V2 extends it with a
 * 24-bit peer-id, so the header is 4 bytes; the packet-id that follows is part of the crypto
 * layout (see cipher.ts) because it doubles as the AEAD nonce prefix.
 */

export const OPCODE_SHIFT = 3;
export const KEY_ID_MASK = 0x07;

/** Opcodes from OpenVPN's ssl_pkt.h; only the two data opcodes are ours, the rest go up. */
export const Opcode = {
  CONTROL_HARD_RESET_CLIENT_V1: 1,
  CONTROL_HARD_RESET_SERVER_V1: 2,
  CONTROL_SOFT_RESET_V1: 3,
  CONTROL_V1: 4,
  ACK_V1: 5,
  DATA_V1: 6,
  CONTROL_HARD_RESET_CLIENT_V2: 7,
  CONTROL_HARD_RESET_SERVER_V2: 8,
  DATA_V2: 9,
  CONTROL_HARD_RESET_CLIENT_V3: 10,
  CONTROL_WKC_V1: 11,
} as const;

export const MAX_KEY_ID = 7;
export const MAX_PEER_ID = 0xffffff;
/** The peer-id a sender puts when it has none assigned: the receiver finds the peer by its address. */
export const PEER_ID_UNDEF = 0xffffff;
/** op/key-id byte plus 24-bit peer-id. */
export const DATA_V2_HEADER_SIZE = 4;

export const enum PacketKind {
  /** Empty: nothing to classify, drop and count. */
  Malformed = 0,
  DataV2 = 1,
  /** Legacy data packet without peer-id; ovpn-dco does not offload it. */
  DataV1 = 2,
  /** Any other opcode: handed to the control plane untouched. */
  Control = 3,
}

export function opcodeOf(firstByte: number): number {
  return firstByte >>> OPCODE_SHIFT;
}

export function keyIdOf(firstByte: number): number {
  return firstByte & KEY_ID_MASK;
}

export function composeOpByte(opcode: number, keyId: number): number {
  return ((opcode << OPCODE_SHIFT) | (keyId & KEY_ID_MASK)) & 0xff;
}

export function classify(buf: Uint8Array, offset: number, size: number): PacketKind {
  if (size < 1) return PacketKind.Malformed;
  const op = opcodeOf(buf[offset]!);
  if (op === Opcode.DATA_V2) return PacketKind.DataV2;
  if (op === Opcode.DATA_V1) return PacketKind.DataV1;
  return PacketKind.Control;
}

/** Writes the 4-byte DATA_V2 header: one big-endian word, opcode/key-id in the top byte. */
export function writeDataV2Header(buf: Buffer, offset: number, keyId: number, peerId: number): void {
  buf.writeUInt32BE(((composeOpByte(Opcode.DATA_V2, keyId) << 24) | (peerId & MAX_PEER_ID)) >>> 0, offset);
}

export interface DataV2Header {
  keyId: number;
  peerId: number;
}

/** Parses a DATA_V2 header; null when the packet is too short or is not DATA_V2. */
export function parseDataV2Header(buf: Buffer, offset: number, size: number): DataV2Header | null {
  if (size < DATA_V2_HEADER_SIZE || opcodeOf(buf[offset]!) !== Opcode.DATA_V2) return null;
  return { keyId: keyIdOf(buf[offset]!), peerId: readPeerId(buf, offset) };
}

/** The 24-bit peer-id of a DATA_V2 packet (caller has checked the size). */
export function readPeerId(buf: Buffer, offset: number): number {
  return buf.readUIntBE(offset + 1, 3);
}

/** OpenVPN's keepalive payload (ping.c): sent as the plaintext of a data packet. */
export const KEEPALIVE_MESSAGE: Buffer = Buffer.from('2a187bf3641eb4cb07ed2d0a981fc748', 'hex');

/** OCC magic (occ.c) followed by OCC_EXIT: the explicit-exit-notify a leaving peer sends. */
export const OCC_MAGIC: Buffer = Buffer.from('287f346bd4ef7a812d56b8d3afc5459c', 'hex');
export const OCC_EXIT = 6;
export const EXIT_NOTIFY_MESSAGE: Buffer = Buffer.concat([OCC_MAGIC, Buffer.from([OCC_EXIT])]);

function equalsAt(buf: Buffer, offset: number, size: number, message: Buffer): boolean {
  return size === message.length && buf.compare(message, 0, message.length, offset, offset + size) === 0;
}

export function isKeepalive(buf: Buffer, offset: number, size: number): boolean {
  return equalsAt(buf, offset, size, KEEPALIVE_MESSAGE);
}

export function isExitNotify(buf: Buffer, offset: number, size: number): boolean {
  return equalsAt(buf, offset, size, EXIT_NOTIFY_MESSAGE);
}
