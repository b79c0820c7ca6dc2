/**
 * OpenVPN's control packets in their plain form (no tls-auth or tls-crypt wrapping):
 *
 *   opcode/key-id byte | own session id | ack count | acked message ids | peer's session id
 *   (only when something is acked) | message id (not in P_ACK_V1) | payload
 *
 * Message ids count the reliable messages of one direction of one key state, from 0 (the reset).
 */

import { Opcode } from '../core/wire.js';

export const SESSION_ID_SIZE = 8;

export type OpcodeValue = (typeof Opcode)[keyof typeof Opcode];

/** The opcodes this module reads and writes. */
export type ControlOpcode = 3 | 4 | 5 | 7 | 8;
const CONTROL_OPCODES = new Set<number>([3, 4, 5, 7, 8]);

/** How many acks one packet may carry: OpenVPN refuses more than its ack array holds. */
export const MAX_ACKS_PER_PACKET = 8;

export interface ControlPacket {
  opcode: ControlOpcode;
  keyId: number;
  sessionId: Buffer;
  acks: number[];
  /** Present exactly when acks is non-empty. */
  remoteSessionId?: Buffer;
  /** Absent only in P_ACK_V1. */
  messageId?: number;
  payload: Buffer;
}

export class ControlPacketError extends Error {
  override name = 'ControlPacketError';
}

export function opcodeOf(byte: number): number {
  return byte >> 3;
}

/** The part after the opcode byte and session id, which tls-crypt encrypts and tls-auth signs. */
export function encodeControlBody(packet: ControlPacket): Buffer {
  const { acks, messageId, opcode } = packet;
  if (acks.length > MAX_ACKS_PER_PACKET) throw new RangeError(`at most ${MAX_ACKS_PER_PACKET} acks per packet`);
  if (acks.length > 0 !== (packet.remoteSessionId !== undefined))
    throw new RangeError('the remote session id goes with acks, and only with them');
  if ((opcode === Opcode.ACK_V1) !== (messageId === undefined))
    throw new RangeError('every control packet but P_ACK_V1 has a message id');
  if (opcode === Opcode.ACK_V1 && acks.length === 0) throw new RangeError('P_ACK_V1 acks something');
  const size = 1 + 4 * acks.length + (acks.length > 0 ? SESSION_ID_SIZE : 0) + (messageId === undefined ? 0 : 4);
  const out = Buffer.alloc(size + packet.payload.length);
  let at = out.writeUInt8(acks.length, 0);
  for (const id of acks) at = out.writeUInt32BE(id, at);
  if (packet.remoteSessionId !== undefined) at += checkSid(packet.remoteSessionId).copy(out, at);
  if (messageId !== undefined) at = out.writeUInt32BE(messageId, at);
  packet.payload.copy(out, at);
  return out;
}

export function encodeHeader(opcode: number, keyId: number, sessionId: Buffer): Buffer {
  if (keyId < 0 || keyId > 7) throw new RangeError(`key-id is 0-7, got ${keyId}`);
  const out = Buffer.alloc(1 + SESSION_ID_SIZE);
  out[0] = (opcode << 3) | keyId;
  checkSid(sessionId).copy(out, 1);
  return out;
}

export function encodeControlPacket(packet: ControlPacket): Buffer {
  return Buffer.concat([encodeHeader(packet.opcode, packet.keyId, packet.sessionId), encodeControlBody(packet)]);
}

/** Parses the body (see encodeControlBody) of a packet whose header was read already. */
export function decodeControlBody(
  opcode: ControlOpcode,
  keyId: number,
  sessionId: Buffer,
  body: Uint8Array,
): ControlPacket {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const need = (at: number, n: number, what: string) => {
    if (at + n > buf.length) throw new ControlPacketError(`control packet too short for its ${what}`);
  };
  need(0, 1, 'ack count');
  const count = buf[0]!;
  if (count > MAX_ACKS_PER_PACKET) throw new ControlPacketError(`control packet acks ${count} messages`);
  let at = 1;
  need(at, 4 * count, 'acks');
  const acks: number[] = [];
  for (let i = 0; i < count; i++, at += 4) acks.push(buf.readUInt32BE(at));
  let remoteSessionId: Buffer | undefined;
  if (count > 0) {
    need(at, SESSION_ID_SIZE, 'remote session id');
    remoteSessionId = Buffer.from(buf.subarray(at, at + SESSION_ID_SIZE));
    at += SESSION_ID_SIZE;
  }
  let messageId: number | undefined;
  if (opcode !== Opcode.ACK_V1) {
    need(at, 4, 'message id');
    messageId = buf.readUInt32BE(at);
    at += 4;
  } else if (count === 0) throw new ControlPacketError('P_ACK_V1 without acks');
  const packet: ControlPacket = {
    opcode,
    keyId,
    sessionId,
    acks,
    payload: Buffer.from(buf.subarray(at)),
  };
  if (remoteSessionId !== undefined) packet.remoteSessionId = remoteSessionId;
  if (messageId !== undefined) packet.messageId = messageId;
  return packet;
}

export interface ControlHeader {
  opcode: ControlOpcode;
  keyId: number;
  sessionId: Buffer;
}

export function decodeHeader(data: Uint8Array): ControlHeader {
  if (data.length < 1 + SESSION_ID_SIZE) throw new ControlPacketError('control packet shorter than its header');
  const opcode = opcodeOf(data[0]!);
  if (!CONTROL_OPCODES.has(opcode)) throw new ControlPacketError(`opcode ${opcode} is not a control opcode we speak`);
  return {
    opcode: opcode as ControlOpcode,
    keyId: data[0]! & 7,
    sessionId: Buffer.from(data.subarray(1, 1 + SESSION_ID_SIZE)),
  };
}

export function decodeControlPacket(data: Uint8Array): ControlPacket {
  const h = decodeHeader(data);
  return decodeControlBody(h.opcode, h.keyId, h.sessionId, data.subarray(1 + SESSION_ID_SIZE));
}

function checkSid(sid: Buffer): Buffer {
  if (sid.length !== SESSION_ID_SIZE) throw new RangeError(`a session id is ${SESSION_ID_SIZE} bytes`);
  return sid;
}
