export { DataManager, toResourceSpecs, type DataManagerStats, type DataManagerEvents, type CpuReport } from './manager.js';
export {
  configSchema,
  getConfigSchema,
  parseConfig,
  loadConfigFile,
  readConfigFile,
  type EdgecapConfig,
  type EdgecapConfigInput,
  type ResourceConfig,
} from './config.js';
export { createMetricsRegistry } from './metrics.js';
export type { StatusServer, StatusServerOptions } from './status-http.js';
// from core (fs only), not sync: importing this package must not load the gRPC stack
export { listFailed } from '@edgecap/core';
