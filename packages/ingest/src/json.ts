/**
 * JSON for values whose depth a client controls: no recursion anywhere, so a reading nested
 * 100,000 deep is converted and serialized instead of overflowing the call stack.
 *
 *   decoded reading ──► toExportable() ──► stringify() / stringifyChunks() ──► output
 *   (msgpack Decoder    explicit stack:     explicit stack: exactly JSON.stringify's
 *    is iterative too)  bytes → summary,    text for JSON values; memory, not stack,
 *                       bigint → string,    grows with depth
 *                       Date → ISO string
 */
import { createHash } from 'node:crypto';

export interface BinarySummary {
  /** annotations: a viam image's bounding boxes and classifications, as stored with the reading. */
  binary: { size: number; sha256: string; mime_type?: string; annotations?: unknown };
}

/** Own data property (an assignment to `__proto__` would set the prototype instead). */
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function binarySummary(v: Uint8Array, mime: string | undefined, annotations?: unknown): BinarySummary {
  const b: BinarySummary['binary'] = { size: v.length, sha256: createHash('sha256').update(v).digest('hex') };
  if (mime) b.mime_type = mime;
  // a client wrote them: exported the same iterative way as any reading value
  if (annotations !== undefined) b.annotations = toExportable(annotations);
  return { binary: b };
}

/**
 * How a storage adapts the export form: what a byte array becomes (PostgreSQL also keeps the
 * bytes), and how strings and keys are cleaned (JSONB cannot hold NUL).
 */
export interface ExportHooks {
  binary?(v: Uint8Array, mime: string | undefined): unknown;
  text?(s: string): string;
}

/** A leaf's exported form, or `undefined` when `v` is a container to descend into. */
function leaf(v: unknown, mime: string | undefined, h: ExportHooks | undefined): { v: unknown } | undefined {
  if (v instanceof Uint8Array) return { v: h?.binary ? h.binary(v, mime) : binarySummary(v, mime) };
  if (typeof v === 'bigint') return { v: v.toString() };
  if (v instanceof Date) return { v: v.toJSON() };
  if (typeof v === 'string' && h?.text) return { v: h.text(v) };
  if (v === null || typeof v !== 'object') return { v };
  return undefined;
}

interface ConvFrame {
  src: unknown;
  dst: Record<string, unknown> | unknown[];
  /** Map entries, object keys (by index), or the array itself. */
  keys: unknown[];
  i: number;
  kind: 'array' | 'map' | 'object';
}

/**
 * A reading's value with every byte array replaced by `{binary:{size,sha256[,mime_type]}}`
 * (`mime` applies to a top-level byte array only), bigints as decimal strings, Dates as
 * `toJSON()` (ISO string, null when invalid), Maps as objects with String(key) keys, other
 * objects by their own enumerable string keys. Iterative; a cycle throws a TypeError.
 * `annotations` (the reading's, format's READING 6th element) join a top-level byte array's
 * summary as `binary.annotations` (without hooks; a storage with its own binary form keeps them
 * its own way).
 */
export function toExportable(value: unknown, mime?: string, hooks?: ExportHooks, annotations?: unknown): unknown {
  if (annotations !== undefined && value instanceof Uint8Array && !hooks?.binary) return binarySummary(value, mime, annotations);
  const top = leaf(value, mime, hooks);
  if (top) return top.v;
  const onPath = new Set<object>();
  const open = (src: object): ConvFrame => {
    if (onPath.has(src)) throw new TypeError('cannot export a circular value');
    onPath.add(src);
    if (Array.isArray(src)) return { src, dst: new Array<unknown>(src.length), keys: src, i: 0, kind: 'array' };
    if (src instanceof Map) return { src, dst: {}, keys: [...src.entries()], i: 0, kind: 'map' };
    return { src, dst: {}, keys: Object.keys(src), i: 0, kind: 'object' };
  };
  const root = open(value as object);
  const stack: ConvFrame[] = [root];
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.i >= f.keys.length) {
      stack.pop();
      onPath.delete(f.src as object);
      continue;
    }
    const idx = f.i++;
    let key: string | number;
    let child: unknown;
    if (f.kind === 'array') {
      key = idx;
      child = f.keys[idx];
    } else if (f.kind === 'map') {
      const [k, x] = f.keys[idx] as [unknown, unknown];
      key = String(k);
      child = x;
    } else {
      key = f.keys[idx] as string;
      child = (f.src as Record<string, unknown>)[key];
    }
    if (hooks?.text) key = typeof key === 'string' ? hooks.text(key) : key;
    const l = leaf(child, undefined, hooks);
    let out: unknown;
    let next: ConvFrame | undefined;
    if (l) out = l.v;
    else {
      next = open(child as object);
      out = next.dst;
    }
    if (typeof key === 'number') (f.dst as unknown[])[key] = out;
    else put(f.dst as Record<string, unknown>, key, out);
    if (next) stack.push(next);
  }
  return root.dst;
}

/** `JSON.stringify`'s `space` argument, normalised to the indent string. */
function gapOf(space: string | number | undefined): string {
  if (typeof space === 'number') return ' '.repeat(Math.max(0, Math.min(10, Math.trunc(space))));
  if (typeof space === 'string') return space.slice(0, 10);
  return '';
}

interface SerFrame {
  value: object;
  array: boolean;
  keys: string[] | undefined;
  i: number;
  /** Members written so far (objects skip undefined/function/symbol values). */
  n: number;
}

/** The value JSON.stringify serializes for `v` held under `key` (toJSON, boxed primitives). */
function prepare(v: unknown, key: string): unknown {
  if (v !== null && (typeof v === 'object' || typeof v === 'bigint')) {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') v = (toJSON as (k: string) => unknown).call(v, key);
  }
  if (v instanceof Number) return Number(v);
  if (v instanceof String) return String(v);
  if (v instanceof Boolean) return v.valueOf();
  return v;
}

/** Text of a non-container, or undefined when JSON skips it (undefined, function, symbol). */
function scalar(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      return v === null ? 'null' : undefined;
  }
}

/**
 * JSON text of `value` in pieces of about `chunkChars` characters: exactly what
 * `JSON.stringify(value, null, space)` produces, without recursion (an explicit stack of open
 * arrays/objects), so any depth that fits in memory serializes. Yields nothing when JSON.stringify
 * would return undefined. Throws TypeError on a cycle or a BigInt, as JSON.stringify does.
 */
export function* stringifyChunks(value: unknown, space?: string | number, chunkChars = 64 * 1024): Generator<string> {
  const gap = gapOf(space);
  let parts: string[] = [];
  let size = 0;
  const emit = (s: string): void => {
    parts.push(s);
    size += s.length;
  };
  const stack: SerFrame[] = [];
  const onPath = new Set<object>();
  const newline = (depth: number): string => (gap ? '\n' + gap.repeat(depth) : '');
  /** Write `v` (prepared) or open it; false when JSON skips it. */
  const start = (v: unknown): boolean => {
    if (v !== null && typeof v === 'object') {
      if (onPath.has(v)) throw new TypeError('Converting circular structure to JSON');
      onPath.add(v);
      const array = Array.isArray(v);
      stack.push({ value: v, array, keys: array ? undefined : Object.keys(v), i: 0, n: 0 });
      emit(array ? '[' : '{');
      return true;
    }
    const s = scalar(v);
    if (s === undefined) return false;
    emit(s);
    return true;
  };

  if (!start(prepare(value, ''))) return;
  while (stack.length > 0) {
    if (size >= chunkChars) {
      yield parts.join('');
      parts = [];
      size = 0;
    }
    const f = stack[stack.length - 1]!;
    const depth = stack.length;
    if (f.array) {
      const arr = f.value as unknown[];
      if (f.i >= arr.length) {
        stack.pop();
        onPath.delete(f.value);
        emit(f.n > 0 ? newline(depth - 1) + ']' : ']');
        continue;
      }
      const i = f.i++;
      emit((f.n++ > 0 ? ',' : '') + newline(depth));
      if (!start(prepare(arr[i], String(i)))) emit('null');
      continue;
    }
    const keys = f.keys!;
    if (f.i >= keys.length) {
      stack.pop();
      onPath.delete(f.value);
      emit(f.n > 0 ? newline(depth - 1) + '}' : '}');
      continue;
    }
    const k = keys[f.i++]!;
    const v = prepare((f.value as Record<string, unknown>)[k], k);
    if (v !== null && typeof v === 'object') {
      emit((f.n++ > 0 ? ',' : '') + newline(depth) + JSON.stringify(k) + (gap ? ': ' : ':'));
      start(v);
      continue;
    }
    const s = scalar(v);
    if (s === undefined) continue;
    emit((f.n++ > 0 ? ',' : '') + newline(depth) + JSON.stringify(k) + (gap ? ': ' : ':') + s);
  }
  if (parts.length > 0) yield parts.join('');
}

/** `JSON.stringify(value, null, space)` without recursion; see stringifyChunks. */
export function stringify(value: unknown, space?: string | number): string | undefined {
  const parts: string[] = [];
  for (const c of stringifyChunks(value, space, Infinity)) parts.push(c);
  return parts.length === 0 ? undefined : parts.join('');
}
