/**
 * Who is calling, from the credential alone (never from the request body):
 *
 *   authorization: Bearer <cred>
 *     eks_<id>_<secret>          a device key in the registry        ─► device (its part only)
 *     <fleet key>                a key given with --api-key          ─► fleet  (any part)
 *     <JWT> signed with the registry's token secret, sub = key id    ─► device (key re-checked: a
 *                                                                       revoked key's tokens die with it)
 *     <JWT> signed with a fleet key                                   ─► fleet
 *   none of these ─► UNAUTHENTICATED
 *
 * A loopback server with no fleet key and an empty registry accepts every caller as fleet
 * (development); once a device key exists it authenticates like any other server.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { API_KEY_CREDENTIALS, ROBOT_SECRET_CREDENTIALS, readAccessToken, type Authenticated } from '@edgecap/viam';
import { RequestRejected } from './errors.js';
import { isKeyId, keyIdOfSecret, matchDeviceSecret, type DeviceKey, type KeyLookup, type Principal } from './keys.js';

const hashKey = (k: string): Buffer => createHash('sha256').update(k, 'utf8').digest();

/** Constant-time lookup of a fleet key among the configured ones (the key, or undefined). */
export function makeKeyMatcher(apiKeys: readonly string[]): (secret: string) => string | undefined {
  const hashes = apiKeys.map((k) => [k, hashKey(k)] as const);
  return (secret) => {
    const h = hashKey(secret);
    let found: string | undefined;
    for (const [k, kh] of hashes) if (timingSafeEqual(h, kh)) found = k;
    return found;
  };
}

export interface Identity {
  /** The caller of a call, or undefined when its credential is missing or not valid now. */
  principal(md: grpc.Metadata): Principal | undefined;
  /** proto.rpc.v1.AuthService: which secret signs the token for this credential, bound to which part. */
  authenticate(entity: string, type: string, payload: string): Authenticated | undefined;
}

export interface IdentityOptions {
  fleetKeys: readonly string[];
  registry: KeyLookup;
  /** Signs the access tokens of device keys (shared by every node of one store). */
  tokenSecret: string;
  /** Loopback without fleet keys: callers are let in while the registry is empty. */
  openWhenNoKeys: boolean;
}

const FLEET: Principal = { kind: 'fleet', label: 'fleet key' };
const OPEN: Principal = { kind: 'fleet', label: 'open (loopback, no keys)' };

export function makeIdentity(o: IdentityOptions): Identity {
  const fleet = makeKeyMatcher(o.fleetKeys);
  const device = (k: DeviceKey): Principal => ({ kind: 'device', keyId: k.key_id, partId: k.part_id });
  const live = (keyId: string): DeviceKey | undefined => {
    const k = o.registry.lookupKey(keyId);
    return k && k.revoked_at_ms === undefined ? k : undefined;
  };
  const ofCredential = (cred: string): Principal | undefined => {
    if (cred.length > 8192) return undefined;
    if (keyIdOfSecret(cred)) {
      const k = matchDeviceSecret(o.registry, cred);
      return k ? device(k) : undefined;
    }
    if (fleet(cred) !== undefined) return FLEET;
    if (cred.split('.').length === 3) {
      const c = readAccessToken(cred, o.tokenSecret);
      if (c) {
        const k = live(c.sub);
        return k && c.part === k.part_id ? device(k) : undefined;
      }
      for (const f of o.fleetKeys) if (readAccessToken(cred, f)) return FLEET;
    }
    return undefined;
  };
  return {
    principal(md) {
      const v = md.get('authorization')[0];
      const who = typeof v === 'string' && v.startsWith('Bearer ') ? ofCredential(v.slice(7)) : undefined;
      if (who) return who;
      return o.openWhenNoKeys && !o.registry.anyKeys() ? OPEN : undefined;
    },
    authenticate(entity, type, payload) {
      if (type === API_KEY_CREDENTIALS) {
        // entity = the key id (viam: "API key ID"); a fleet key has no id, any entity will do.
        if (isKeyId(entity)) {
          const k = matchDeviceSecret(o.registry, payload);
          return k && k.key_id === entity ? { signWith: o.tokenSecret, part: k.part_id } : undefined;
        }
        const f = fleet(payload);
        if (f !== undefined) return { signWith: f };
        return o.openWhenNoKeys && o.fleetKeys.length === 0 && !o.registry.anyKeys() ? { signWith: o.tokenSecret } : undefined;
      }
      if (type === ROBOT_SECRET_CREDENTIALS) {
        // entity = the part id; the secret must be a live device key of that part.
        const k = matchDeviceSecret(o.registry, payload);
        if (!k) return undefined;
        actAs(device(k), entity, 'Authenticate');
        return { signWith: o.tokenSecret, part: k.part_id };
      }
      return undefined;
    },
  };
}

/**
 * The part a request may act as: a device key only as its own part (an empty part id in the
 * request means "mine"); a fleet key as the part the request names.
 */
export function actAs(who: Principal, partId: string, what: string): string {
  if (who.kind === 'fleet') return partId;
  if (partId === '' || partId === who.partId) return who.partId;
  throw new RequestRejected(
    grpc.status.PERMISSION_DENIED,
    `${what}: key ${who.keyId} belongs to part ${JSON.stringify(who.partId)}, not ${JSON.stringify(partId)}`,
  );
}

/** A token our AuthService issued for a key that is gone is refused as UNAUTHENTICATED, like a wrong key. */
export const UNAUTHENTICATED_DETAILS = 'missing, invalid, expired or revoked credential (send authorization: Bearer <key or access token>)';
