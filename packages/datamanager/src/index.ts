export { DataManager, toResourceSpecs, type DataManagerStats, type DataManagerEvents } from './manager.js';
export {
  configSchema,
  parseConfig,
  loadConfigFile,
  readConfigFile,
  type EdgecapConfig,
  type EdgecapConfigInput,
  type ResourceConfig,
} from './config.js';
export { createMetricsRegistry } from './metrics.js';
export { listFailed } from '@edgecap/sync';
