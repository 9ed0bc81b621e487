/**
 * The ingest server's entry points, loaded on first use: an edge app imports `edgecap` for
 * DataManager, and loading gRPC's server, the viam protocol and storage with it cost ~70 ms of
 * start-up (and their heap) for nothing. Same names and signatures as @edgecap/ingest.
 */
import type * as Ingest from '@edgecap/ingest';

const ingest = (): Promise<typeof Ingest> => import('@edgecap/ingest');

export const startIngestServer: typeof Ingest.startIngestServer = async (opts) => (await ingest()).startIngestServer(opts);
export async function* exportReadings(...a: Parameters<typeof Ingest.exportReadings>): ReturnType<typeof Ingest.exportReadings> {
  yield* (await ingest()).exportReadings(...a);
}
export const listReceived: typeof Ingest.listReceived = async (target) => (await ingest()).listReceived(target);
export const readReceived: typeof Ingest.readReceived = async (...a) => (await ingest()).readReceived(...a);
export const gapReport: typeof Ingest.gapReport = async (...a) => (await ingest()).gapReport(...a);
