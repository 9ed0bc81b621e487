import net from 'node:net';

/**
 * Address helpers shared by the config check (datamanager) and sync's target check. A leaf
 * module on purpose: validating a config must not load the gRPC stack that sync brings.
 */

/** Host part of `host:port`, `[v6]:port`, `dns:///host:port`, `ipv4:host:port`. */
export function hostOf(address: string): string {
  let a = address.replace(/^dns:(\/\/[^/]*\/)?/, '').replace(/^ipv[46]:/, '').replace(/^\/+/, '');
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']'));
  const colons = a.split(':').length - 1;
  if (colons === 1) a = a.slice(0, a.lastIndexOf(':'));
  return a;
}

export function isLoopback(address: string): boolean {
  const h = hostOf(address).toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}
