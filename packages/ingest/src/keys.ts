/**
 * Per-device identity: API keys bound to one part, kept in the ingest's own store.
 *
 *   edgecap keys create --part P ──► key id  ek_<16 hex>
 *                                    secret  eks_<16 hex>_<43 base64url>   (shown once)
 *   store keeps { key_id, part_id, sha256(secret), created, revoked? }   (never the secret)
 *
 *   request ─► Bearer <secret> ─► key id from the secret ─► record ─► sha256 equal (constant time)
 *                                                           └► revoked / unknown ─► UNAUTHENTICATED
 *
 * The secret names its key id, so a lookup is one read; the hash makes a leaked store useless
 * for authenticating. The caller's part comes from the key, never from the request body.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface DeviceKey {
  key_id: string;
  part_id: string;
  /** Hex SHA-256 of the secret. */
  secret_sha256: string;
  created_at_ms: number;
  revoked_at_ms?: number;
}

/** What `keys create` prints: the secret exists only here. */
export interface NewDeviceKey {
  key_id: string;
  part_id: string;
  secret: string;
}

/**
 * The caller of a request, from its credential:
 *   fleet   a key given to the server at start (--api-key): may act as any part (development,
 *           single tenant)
 *   device  a registry key: may act only as its own part
 */
export type Principal = { kind: 'fleet'; label: string } | { kind: 'device'; keyId: string; partId: string };

/** Read side of a key registry (the server's view). */
export interface KeyLookup {
  lookupKey(keyId: string): DeviceKey | undefined;
  /** True once any key (live or revoked) exists: a keyed server never falls back to open access. */
  anyKeys(): boolean;
}

/** A key registry in a storage backend. */
export interface KeyRegistry extends KeyLookup {
  createKey(partId: string): Promise<NewDeviceKey>;
  listKeys(): Promise<DeviceKey[]>;
  /** True when the key existed and was not revoked before. */
  revokeKey(keyId: string): Promise<boolean>;
  /** The secret that signs access tokens for device keys (created once, shared by every node). */
  tokenSecret(): Promise<string>;
  /** A registry read through a cache (PostgreSQL): reload it; the server calls this every few seconds. */
  refreshKeys?(): Promise<void>;
}

const KEY_ID = /^ek_[0-9a-f]{16}$/;
const SECRET = /^eks_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

export const MAX_PART_ID_BYTES = 256;

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

export function isKeyId(s: string): boolean {
  return KEY_ID.test(s);
}

/** The key id a device secret names, or undefined when `secret` is not shaped like one. */
export function keyIdOfSecret(secret: string): string | undefined {
  const m = SECRET.exec(secret);
  return m ? `ek_${m[1]}` : undefined;
}

export function newDeviceKey(partId: string, now = Date.now()): { record: DeviceKey; secret: string } {
  const hex = randomBytes(8).toString('hex');
  const secret = `eks_${hex}_${randomBytes(32).toString('base64url')}`;
  return { record: { key_id: `ek_${hex}`, part_id: partId, secret_sha256: sha256Hex(secret), created_at_ms: now }, secret };
}

/** A part id a key may be bound to: non-empty, bounded, no control characters. */
export function checkPartId(partId: string): string | undefined {
  if (partId.length === 0) return 'part id is empty';
  if (Buffer.byteLength(partId) > MAX_PART_ID_BYTES) return `part id is longer than ${MAX_PART_ID_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(partId)) return 'part id contains a control character';
  return undefined;
}

/**
 * The live device key `secret` belongs to, or undefined (unknown, revoked, wrong secret).
 * Constant time in the secret's bytes once its key id is known.
 */
export function matchDeviceSecret(keys: KeyLookup, secret: string): DeviceKey | undefined {
  const id = keyIdOfSecret(secret);
  if (!id) return undefined;
  const rec = keys.lookupKey(id);
  if (!rec || rec.revoked_at_ms !== undefined) return undefined;
  const want = Buffer.from(rec.secret_sha256, 'hex');
  const got = createHash('sha256').update(secret, 'utf8').digest();
  return want.length === got.length && timingSafeEqual(want, got) ? rec : undefined;
}
