/**
 * `model: "http"`: a resource that speaks HTTP (a PLC gateway, a weather station, a sidecar
 * exposing JSON), polled with undici over one keep-alive connection per resource, so a 100 Hz
 * poll costs no TCP or TLS handshake per reading.
 *
 * Attributes: `url` (http or https, required), `method` (default GET), `headers` (object of
 * strings), `body` (string), `timeout_ms` (default 5000: headers and body each).
 * Capture methods:
 *   Readings  the response body parsed as JSON (tabular); a JSON value that is not an object
 *             is captured as `{ value }`
 *   Get       the raw body (binary) with the response's content-type
 * A status outside 2xx, a timeout, or a body that is not JSON (Readings) throws: the collector
 * counts it as a capture error and goes on polling.
 */
import { Pool, type Dispatcher } from 'undici';
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import { HttpResourceError } from './http-error.js';
import type { LoadedResource, ResourceCtx } from './sims.js';

export { HttpResourceError };

function attrError(ctx: ResourceCtx, field: string, what: string): EdgecapError {
  return new EdgecapError(ErrorCodes.CONFIG_INVALID, `resource "${ctx.name}" (model http): attributes.${field} ${what}`, {
    details: { resource: ctx.name, field: `attributes.${field}` },
  });
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

export function httpResource(ctx: ResourceCtx): LoadedResource {
  const a = ctx.attributes;
  let url: URL;
  try {
    url = new URL(String(a.url ?? ''));
  } catch {
    throw attrError(ctx, 'url', `must be an http(s) URL, got ${JSON.stringify(a.url)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw attrError(ctx, 'url', `must be an http(s) URL, got ${JSON.stringify(a.url)}`);
  const method = String(a.method ?? 'GET').toUpperCase();
  if (!METHODS.has(method)) throw attrError(ctx, 'method', `must be one of ${[...METHODS].join(', ')}`);
  const headers = a.headers ?? {};
  if (typeof headers !== 'object' || headers === null || Object.values(headers).some((v) => typeof v !== 'string')) {
    throw attrError(ctx, 'headers', 'must be an object of strings');
  }
  if (a.body !== undefined && typeof a.body !== 'string') throw attrError(ctx, 'body', 'must be a string');
  const timeout = a.timeout_ms ?? 5000;
  if (typeof timeout !== 'number' || !(timeout > 0)) throw attrError(ctx, 'timeout_ms', 'must be a positive number');

  const pool = new Pool(url.origin, { connections: 1, pipelining: 1 });
  const opts: Dispatcher.RequestOptions = {
    path: url.pathname + url.search,
    method: method as Dispatcher.HttpMethod,
    headers: headers as Record<string, string>,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    ...(typeof a.body === 'string' ? { body: a.body } : {}),
  };

  const fetchOk = async (): Promise<Dispatcher.ResponseData> => {
    let res: Dispatcher.ResponseData;
    try {
      res = await pool.request(opts);
    } catch (e) {
      throw new HttpResourceError(`resource "${ctx.name}": ${method} ${url.href} failed: ${(e as Error).message}`, { resource: ctx.name }, e);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump(); // free the connection for the next poll
      throw new HttpResourceError(`resource "${ctx.name}": ${method} ${url.href} answered ${res.statusCode}`, { resource: ctx.name, status: res.statusCode });
    }
    return res;
  };

  return {
    Readings: async () => {
      const res = await fetchOk();
      const text = await res.body.text();
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        throw new HttpResourceError(`resource "${ctx.name}": ${url.href} did not answer JSON (${text.length} bytes)`, { resource: ctx.name });
      }
      return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : { value: v };
    },
    Get: async () => {
      const res = await fetchOk();
      const ct = res.headers['content-type'];
      return { data: new Uint8Array(await res.body.arrayBuffer()), mime_type: (Array.isArray(ct) ? ct[0] : ct) ?? 'application/octet-stream' };
    },
    close: () => pool.close(),
  };
}
