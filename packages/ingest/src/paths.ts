import { createHash } from 'node:crypto';
import path from 'node:path';
import { invalid } from './errors.js';

const ID = /^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$/;

/** file_id names the stored blob: letters, digits, _ . - (not leading .), at most 128 chars. */
export function checkFileId(id: string): string {
  if (!ID.test(id) || id.includes('..')) {
    throw invalid(`file_id ${JSON.stringify(id)} is not valid: use 1-128 letters, digits, _ . - (not starting with . and without ..)`);
  }
  return id;
}

const SAFE = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*$/;

/**
 * A free-form name (part id, sync root) as one safe path segment. Safe names stay as they
 * are; anything else has unsafe characters replaced and a short hash of the original
 * appended, so two different names never share a folder.
 */
export function segmentOf(value: string): string {
  if (value.length === 0) return '_';
  if (SAFE.test(value) && !value.includes('..') && value.length <= 128) return value;
  const hash = createHash('sha256').update(value).digest('hex').slice(0, 10);
  const cleaned = value.replace(/[^A-Za-z0-9_.\-]+/g, '_').replace(/\.{2,}/g, '_').replace(/^[.\-]+/, '').slice(0, 100);
  return `${cleaned || '_'}-${hash}`;
}

/**
 * An arbitrary file's name as sent by the edge: relative, '/'-separated. Refused when
 * absolute, with empty / '.' / '..' segments, backslashes, NUL, or escaping `root`.
 * Returns the normalised relative path (with the platform separator).
 */
export function checkFileName(name: string, root: string): string {
  const bad = (why: string): never => {
    throw invalid(`file_name ${JSON.stringify(name)} refused: ${why}`, { field: 'file_name' });
  };
  if (name.length === 0) bad('empty');
  if (name.length > 4096) bad('longer than 4096 characters');
  if (name.includes('\0')) bad('contains NUL');
  if (name.includes('\\')) bad('contains a backslash (use / as separator)');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) bad('absolute paths are not allowed');
  const segs = name.split('/');
  for (const s of segs) {
    if (s === '..') bad('contains a ".." segment');
    if (s === '' || s === '.') bad('contains an empty or "." segment');
    if (Buffer.byteLength(s) > 255) bad('a path segment is longer than 255 bytes');
  }
  const rel = segs.join(path.sep);
  const abs = path.resolve(root, rel);
  const r = path.resolve(root);
  if (!abs.startsWith(r + path.sep)) bad('would escape the storage root');
  return rel;
}
