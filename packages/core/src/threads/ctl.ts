/** A thread's control words (Int32, one buffer per thread, made by ManagedWorker in host.ts). */
export const Ctl = {
  /** Set and notified after every control message (host.ts). */
  WAKE: 0,
  /** txn-gate.ts: the thread is never terminated inside a state transaction. */
  GATE: 1,
} as const;
export const CTL_SLOTS = 2;
