/**
 * viam's application-level auth (proto.rpc.v1.AuthService, `proto/viam/rpc/v1/auth.proto`):
 * an API key (id + secret) is exchanged for an access token, which then rides on every call as
 * `authorization: Bearer <token>`. This is how a viam-server authenticates to app.viam.com.
 *
 *   client: AccessTokens — one token per (address, key id) per thread, fetched once, shared by
 *           concurrent uploads, renewed before it expires or after the server refused it.
 *   server: authServiceHandlers — issues HS256 JWTs signed with the matching API key, so every
 *           ingest node that holds the key verifies them (no shared session store).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadGrpcPackage } from '@edgecap/proto';
import type { ProtoGrpcType } from './gen/auth.js';
import type { AuthServiceClient } from './gen/proto/rpc/v1/AuthService.js';
import type { AuthenticateRequest__Output } from './gen/proto/rpc/v1/AuthenticateRequest.js';
import { VIAM_LOADER_OPTIONS } from './proto.js';

export type { AuthServiceClient };
export const AUTH_PROTO = 'viam/rpc/v1/auth.proto';
/** The credentials type of an API key. */
export const API_KEY_CREDENTIALS = 'api-key';
/** Default lifetime of a token our ingest issues. */
export const DEFAULT_ACCESS_TOKEN_TTL_MS = 60 * 60 * 1000;

function loadAuthProto(): ProtoGrpcType {
  return loadGrpcPackage<ProtoGrpcType>(AUTH_PROTO, VIAM_LOADER_OPTIONS);
}

export function authServiceDefinition(): grpc.ServiceDefinition {
  return loadAuthProto().proto.rpc.v1.AuthService.service;
}

export function createAuthClient(address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions): AuthServiceClient {
  const Ctor = loadAuthProto().proto.rpc.v1.AuthService;
  return new Ctor(address, creds, options) as unknown as AuthServiceClient;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** `exp` of a JWT in ms since the epoch; undefined when the token is not a JWT with one. */
export function jwtExpiryMs(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** A token is renewed this long before it expires (half its life when that is shorter). */
const RENEW_BEFORE_MS = 60_000;
/** A token without a readable expiry is kept this long. */
const OPAQUE_TOKEN_MS = 5 * 60_000;

export class AccessTokens {
  private readonly cache = new Map<string, { token: string; renewAt: number } | Promise<string>>();

  /** A valid token for `entity` at the server behind `client` (one Authenticate for concurrent callers). */
  async get(client: AuthServiceClient, address: string, entity: string, secret: string, deadlineMs: number): Promise<string> {
    // the secret is part of the key: a changed key never reuses the old key's token
    const key = `${address}\0${entity}\0${createHash('sha256').update(secret).digest('hex')}`;
    const hit = this.cache.get(key);
    if (hit instanceof Promise) return hit;
    if (hit && Date.now() < hit.renewAt) return hit.token;
    const p = new Promise<string>((resolve, reject) => {
      client.Authenticate({ entity, credentials: { type: API_KEY_CREDENTIALS, payload: secret } }, { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) return reject(err);
        if (!res?.access_token) return reject(Object.assign(new Error('Authenticate returned no access_token'), { code: grpc.status.UNAUTHENTICATED }));
        resolve(res.access_token);
      });
    });
    this.cache.set(key, p);
    try {
      const token = await p;
      const now = Date.now();
      const exp = jwtExpiryMs(token) ?? now + OPAQUE_TOKEN_MS;
      this.cache.set(key, { token, renewAt: exp - Math.min(RENEW_BEFORE_MS, (exp - now) / 2) });
      return token;
    } catch (e) {
      this.cache.delete(key);
      throw e;
    }
  }

  /** The server refused the token (expired, keys rotated): fetch a new one next time. */
  invalidate(address: string, entity: string): void {
    const prefix = `${address}\0${entity}\0`;
    for (const [k, v] of this.cache) if (k.startsWith(prefix) && !(v instanceof Promise)) this.cache.delete(k);
  }
}

const keyOf = (secret: string): Buffer => createHash('sha256').update(`edgecap-access-token\0${secret}`).digest();
const sign = (data: string, secret: string): string => b64url(createHmac('sha256', keyOf(secret)).update(data).digest());

/** The claims our tokens carry: `sub` the entity; `part` when the token speaks for one part only. */
export interface AccessTokenClaims {
  sub: string;
  part?: string;
  exp: number;
}

/** An HS256 JWT for `entity`, signed with (a hash of) `secret`; `part` binds it to one part. */
export function issueAccessToken(entity: string, secret: string, ttlMs: number, now = Date.now(), part?: string): string {
  const claims: Record<string, unknown> = { sub: entity, iat: Math.floor(now / 1000), exp: Math.floor((now + ttlMs) / 1000) };
  if (part !== undefined) claims.part = part;
  const data = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${data}.${sign(data, secret)}`;
}

/** The claims of `token` when it is unexpired and signed with `secret`; undefined otherwise. */
export function readAccessToken(token: string, secret: string, now = Date.now()): AccessTokenClaims | undefined {
  const i = token.lastIndexOf('.');
  if (i < 0 || token.indexOf('.') === i || token.length > 4096) return undefined;
  const data = token.slice(0, i);
  const sig = Buffer.from(token.slice(i + 1));
  const want = Buffer.from(sign(data, secret));
  if (want.length !== sig.length || !timingSafeEqual(want, sig)) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(data.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const c = claims as Partial<AccessTokenClaims> | null;
  if (!c || typeof c.sub !== 'string' || typeof c.exp !== 'number' || now >= c.exp * 1000) return undefined;
  if (c.part !== undefined && typeof c.part !== 'string') return undefined;
  return c as AccessTokenClaims;
}

/** True when `token` is unexpired and signed with one of `secrets`. */
export function verifyAccessToken(token: string, secrets: readonly string[], now = Date.now()): boolean {
  let ok = false;
  for (const s of secrets) if (readAccessToken(token, s, now)) ok = true;
  return ok;
}

/** viam-server's other credential: entity = part id, payload = the part's secret. */
export const ROBOT_SECRET_CREDENTIALS = 'robot-secret';

/** What an accepted credential yields: the secret that signs the token, and the part it is bound to. */
export interface Authenticated {
  signWith: string;
  part?: string;
}

export interface AuthServiceOptions {
  /**
   * Check a credential (type api-key: entity = key id; robot-secret: entity = part id) and say
   * how to sign its token; undefined refuses it (UNAUTHENTICATED); an error with a gRPC `status`
   * refuses it with that status (PERMISSION_DENIED: a valid key of another part).
   */
  authenticate(entity: string, type: string, payload: string): Authenticated | undefined;
  ttlMs?: number;
  onAuthenticate?: (entity: string, ok: boolean) => void;
}

export function authServiceHandlers(o: AuthServiceOptions): grpc.UntypedServiceImplementation {
  return {
    Authenticate: (call: grpc.ServerUnaryCall<AuthenticateRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const { entity, credentials } = call.request;
      const refuse = (code: grpc.status, details: string): void => {
        o.onAuthenticate?.(entity, false);
        cb({ code, details });
      };
      const type = credentials?.type ?? '';
      if (type !== API_KEY_CREDENTIALS && type !== ROBOT_SECRET_CREDENTIALS) {
        return refuse(grpc.status.UNAUTHENTICATED, `unsupported credentials type ${JSON.stringify(type)}: use "${API_KEY_CREDENTIALS}" or "${ROBOT_SECRET_CREDENTIALS}"`);
      }
      if (entity.length > 1024 || (credentials?.payload.length ?? 0) > 1024) return refuse(grpc.status.INVALID_ARGUMENT, 'entity or credentials longer than 1024 characters');
      let ok: Authenticated | undefined;
      try {
        ok = o.authenticate(entity, type, credentials!.payload);
      } catch (e) {
        // a valid credential that may not speak for this entity (another part's key)
        const code = (e as { status?: grpc.status }).status;
        return refuse(typeof code === 'number' ? code : grpc.status.UNAUTHENTICATED, (e as Error).message);
      }
      if (!ok) return refuse(grpc.status.UNAUTHENTICATED, type === API_KEY_CREDENTIALS ? 'invalid API key' : 'invalid robot secret');
      o.onAuthenticate?.(entity, true);
      cb(null, { access_token: issueAccessToken(entity, ok.signWith, o.ttlMs ?? DEFAULT_ACCESS_TOKEN_TTL_MS, Date.now(), ok.part) });
    },
  };
}
