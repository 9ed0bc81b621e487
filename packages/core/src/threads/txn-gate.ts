/**
 * A thread is never terminated inside a state transaction.
 *
 *   thread (writer)                         main (ManagedWorker.terminate, or anything that kills it)
 *   gated(fn): CAS FREE→IN_TXN ─ fn ─ FREE   closeGate: CAS FREE→CLOSED, or wait while IN_TXN
 *              CLOSED: sleep until killed    then worker.terminate()
 *
 * Why: lmdb-js's sync transactions run JS between beginTxn and commitTxn. worker.terminate()
 * landing there leaves the LMDB write lock and lmdb-js's process-wide writing lock held by a
 * thread that no longer runs JS; its clean-up then waits for the writing lock forever, and every
 * other thread of the process that writes the ledger (the main thread) blocks behind it: the
 * whole edge hangs (seen in the torture's writer-kill scenario). An exception inside the
 * transaction is not a problem: lmdb-js aborts it in a finally.
 */

/** The gate word's values (slot Ctl.GATE of a thread's control words). */
export const Gate = {
  FREE: 0,
  IN_TXN: 1,
  CLOSED: 2,
} as const;

let depth = 0; // this thread's nesting: a gated call inside a gated call holds the gate already

/** Run `fn` with the gate held; once the gate is closed the thread only waits to be terminated. */
export function gated<R>(word: Int32Array, slot: number, fn: () => R): R {
  if (depth > 0) return fn();
  while (Atomics.compareExchange(word, slot, Gate.FREE, Gate.IN_TXN) !== Gate.FREE) {
    // CLOSED: a terminate() is on its way; it interrupts this wait.
    Atomics.wait(word, slot, Gate.CLOSED, 1000);
  }
  depth++;
  try {
    return fn();
  } finally {
    depth--;
    Atomics.store(word, slot, Gate.FREE);
    Atomics.notify(word, slot);
  }
}

/** `obj` with every method run through gated() (reads too: a read transaction is one as well). */
export function gatedObject<T extends object>(obj: T, word: Int32Array, slot: number): T {
  return new Proxy(obj, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => gated(word, slot, () => (v as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

/**
 * Open a ledger handle behind the gate and gate its methods: a terminate() landing inside LMDB's
 * native open (a restarted writer opening while it is killed again) made lmdb-js throw while the
 * thread was terminating, and node-addon-api turns that failed throw into a fatal error that
 * aborts the whole process (seen in the torture's writer-kill scenario under load).
 */
export function openGated<T extends object>(open: () => T, word: Int32Array, slot: number): T {
  return gated(word, slot, () => gatedObject(open(), word, slot));
}

/**
 * Close the gate before terminating the thread: waits (without blocking this thread) while a
 * transaction is in progress, up to `timeoutMs`. Returns false if it could not close it in time
 * (a transaction stuck in a native call: terminating then risks the hang, but nothing better is left).
 */
export async function closeGate(word: Int32Array, slot: number, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const was = Atomics.compareExchange(word, slot, Gate.FREE, Gate.CLOSED);
    if (was !== Gate.IN_TXN) return true; // FREE (now closed) or already CLOSED
    const left = end - performance.now();
    if (left <= 0) return false;
    await new Promise((r) => setTimeout(r, 1)); // a transaction takes microseconds: poll, do not block
  }
}
