/**
 * The wire contract, loaded at run time from `proto/` (one source of truth) with TypeScript
 * types generated from the same file by proto-loader-gen-types (`pnpm build` regenerates them).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/sync.js';

export type { DataSyncClient } from './gen/edgecap/sync/v1/DataSync.js';
export type { DataSyncHandlers } from './gen/edgecap/sync/v1/DataSync.js';
export type { FileMetadata, FileMetadata__Output } from './gen/edgecap/sync/v1/FileMetadata.js';
export type { UploadRequest, UploadRequest__Output } from './gen/edgecap/sync/v1/UploadRequest.js';
export type { UploadResponse, UploadResponse__Output } from './gen/edgecap/sync/v1/UploadResponse.js';
export type { UploadBatchResponse, UploadBatchResponse__Output } from './gen/edgecap/sync/v1/UploadBatchResponse.js';
export type { BatchFileResult, BatchFileResult__Output } from './gen/edgecap/sync/v1/BatchFileResult.js';
export type { Gap, Gap__Output } from './gen/edgecap/sync/v1/Gap.js';
export type { ReportGapsRequest__Output } from './gen/edgecap/sync/v1/ReportGapsRequest.js';
export type { ReportGapsResponse } from './gen/edgecap/sync/v1/ReportGapsResponse.js';
export type { HealthResponse } from './gen/edgecap/sync/v1/HealthResponse.js';
export type { DataType } from './gen/edgecap/sync/v1/DataType.js';
export type { UploadStatus } from './gen/edgecap/sync/v1/UploadStatus.js';

/**
 * The `.proto` files, found relative to this module: `proto/` beside `dist/` in the package
 * that ships this code (in the repo a symlink to the root `proto/`; in the published `edgecap`
 * package a copy made at build time), never the monorepo layout.
 */
export const PROTO_ROOT = path.resolve(fileURLToPath(new URL('../proto/', import.meta.url)));
export const SYNC_PROTO = 'edgecap/sync/v1/sync.proto';

/** Loader options shared by client and server: they must agree on the JS shape of messages. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

const loaded = new Map<string, grpc.GrpcObject>();

/** Load a `.proto` under PROTO_ROOT as a grpc-js package object, once per file. */
export function loadGrpcPackage<T>(relPath: string, options: protoLoader.Options = LOADER_OPTIONS): T {
  let pkg = loaded.get(relPath);
  if (!pkg) {
    pkg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(PROTO_ROOT, relPath), options));
    loaded.set(relPath, pkg);
  }
  return pkg as unknown as T;
}

export function loadSyncProto(): ProtoGrpcType {
  return loadGrpcPackage<ProtoGrpcType>(SYNC_PROTO);
}

/** The DataSync service definition (for server.addService). */
export function dataSyncService(): grpc.ServiceDefinition {
  return loadSyncProto().edgecap.sync.v1.DataSync.service;
}
