import { randomBytes } from 'node:crypto';

const RAND_BITS = 74n; // rand_a (12 bits) and rand_b (62 bits)
const RAND_B_MASK = (1n << 62n) - 1n;
let lastMs = -1;
let lastRand = 0n;

/**
 * UUIDv7: 48-bit millisecond timestamp then 74 random bits, so ids sort by creation time and `_id` alone gives
 * a stable pagination order. Ids made in the same millisecond by this process are monotonic (RFC 9562 §6.2,
 * method 2): the first takes fresh random bits with the top one clear, each next one adds 1 to them, so two jobs
 * submitted within a millisecond still list in the order they were made. A millisecond other than the last one
 * (a new one, or an explicit older `now`) starts from fresh random bits again.
 * @see https://www.rfc-editor.org/rfc/rfc9562#name-uuid-version-7
 */
export function uuidv7(now: number = Date.now()): string {
  let rand: bigint;
  if (now === lastMs && lastRand + 1n < 1n << RAND_BITS) {
    rand = lastRand + 1n;
  } else {
    rand = BigInt(`0x${randomBytes(10).toString('hex')}`) & ((1n << (RAND_BITS - 1n)) - 1n);
  }
  lastMs = now;
  lastRand = rand;
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(now, 0, 6);
  const randA = Number(rand >> 62n);
  bytes[6] = 0x70 | (randA >> 8);
  bytes[7] = randA & 0xff;
  bytes.writeBigUInt64BE((2n << 62n) | (rand & RAND_B_MASK), 8);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The smallest UUIDv7 of a millisecond: every id created at or after `ms` sorts at or after it. */
export function uuidv7Floor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
