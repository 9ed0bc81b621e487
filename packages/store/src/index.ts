export { StateStore, openStateStore, defaultStateDir, type StateStoreOptions } from './store.js';
export {
  TRANSITIONS,
  DEFAULT_LEASE_MS,
  IllegalTransitionError,
  holderOf,
  type FileState,
  type FileStatus,
  type LedgerState,
  type ExplainedGap,
  type Lease,
  type Holder,
  type TransitionName,
  type TransitionRule,
  type UploadClaim,
} from './ledger.js';
export { thisProcess, processStartTime, pidAlive, ownerAlive, processStartedAtMs, type LeaseOwner } from './owner.js';
