import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time comparison of a presented token with the configured one (the web pages' admin
 * and control tokens). Hashing first gives equal lengths, so the length leaks nothing either.
 */
export function tokenMatches(want: string | undefined, got: unknown): boolean {
  if (!want || typeof got !== 'string' || !got) return false;
  return timingSafeEqual(createHash('sha256').update(want).digest(), createHash('sha256').update(got).digest());
}
