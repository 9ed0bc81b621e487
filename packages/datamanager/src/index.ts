export { DataManager, toResourceSpecs, type DataManagerStats, type DataManagerEvents } from './manager.js';
export {
  configSchema,
  parseConfig,
  loadConfigFile,
  readConfigFile,
  SIM_MODELS,
  type EdgecapConfig,
  type EdgecapConfigInput,
  type ResourceConfig,
} from './config.js';
export { createMetricsRegistry } from './metrics.js';
