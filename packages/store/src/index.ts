export {
  StateStore,
  openStateStore,
  defaultStateDir,
  type FileState,
  type FileStatus,
  type ExplainedGap,
} from './store.js';
