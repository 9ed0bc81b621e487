/**
 * viam.app.datasync.v1, loaded at run time from `proto/viam/app/datasync/v1/data_sync.proto`
 * (the single source of truth), with TypeScript types generated from the same file by
 * proto-loader-gen-types (`pnpm --filter @edgecap/viam gen`).
 *
 * Two views of the same file:
 *  - @grpc/proto-loader for the gRPC service (client and server);
 *  - a protobufjs Root for the on-disk `.capture` codec (length-delimited messages), decoding
 *    to exactly the same JS shape (LOADER_OPTIONS) as the gRPC messages.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { PROTO_ROOT, loadGrpcPackage } from '@edgecap/proto';
import type { ProtoGrpcType } from './gen/data_sync.js';

export type { DataSyncServiceClient, DataSyncServiceHandlers } from './gen/viam/app/datasync/v1/DataSyncService.js';
export type { UploadMetadata, UploadMetadata__Output } from './gen/viam/app/datasync/v1/UploadMetadata.js';
export type { SensorData, SensorData__Output } from './gen/viam/app/datasync/v1/SensorData.js';
export type { SensorMetadata, SensorMetadata__Output } from './gen/viam/app/datasync/v1/SensorMetadata.js';
export type { DataCaptureMetadata, DataCaptureMetadata__Output } from './gen/viam/app/datasync/v1/DataCaptureMetadata.js';
export type { DataCaptureUploadRequest, DataCaptureUploadRequest__Output } from './gen/viam/app/datasync/v1/DataCaptureUploadRequest.js';
export type { FileUploadRequest, FileUploadRequest__Output } from './gen/viam/app/datasync/v1/FileUploadRequest.js';
export type { StreamingDataCaptureUploadRequest, StreamingDataCaptureUploadRequest__Output } from './gen/viam/app/datasync/v1/StreamingDataCaptureUploadRequest.js';
export type { DataType__Output as ViamDataType } from './gen/viam/app/datasync/v1/DataType.js';
export type { MimeType__Output as ViamMimeType } from './gen/viam/app/datasync/v1/MimeType.js';
export type { Struct, Struct__Output } from './gen/google/protobuf/Struct.js';
export type { Value, Value__Output } from './gen/google/protobuf/Value.js';
export type { Timestamp, Timestamp__Output } from './gen/google/protobuf/Timestamp.js';
export type { Any, Any__Output } from './gen/google/protobuf/Any.js';

export const VIAM_PROTO = 'viam/app/datasync/v1/data_sync.proto';
export const VIAM_PACKAGE = 'viam.app.datasync.v1';
export const VIAM_SERVICE = `${VIAM_PACKAGE}.DataSyncService`;

/** Loader options: the same JS shape as edgecap's own contract (keepCase, enums as names, ...). */
export const VIAM_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/** The same options for protobufjs Type.toObject. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, oneofs: true };

export function loadViamProto(): ProtoGrpcType {
  return loadGrpcPackage<ProtoGrpcType>(VIAM_PROTO, VIAM_LOADER_OPTIONS);
}

/** The DataSyncService definition (for server.addService). */
export function viamDataSyncService(): grpc.ServiceDefinition {
  return loadViamProto().viam.app.datasync.v1.DataSyncService.service;
}

let rootCached: protobuf.Root | undefined;

function root(): protobuf.Root {
  if (!rootCached) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(PROTO_ROOT, target));
    r.loadSync(VIAM_PROTO, { keepCase: true });
    r.resolveAll();
    rootCached = r;
  }
  return rootCached;
}

/** A message type of viam.app.datasync.v1 (or a google.protobuf well-known type) for the codec. */
export function viamType(name: string): protobuf.Type {
  return root().lookupType(name.includes('.') ? name : `${VIAM_PACKAGE}.${name}`);
}

/** Encode a JS object (loader shape) as protobuf bytes. */
export function encodeMessage(type: string, obj: object): Uint8Array {
  const t = viamType(type);
  return t.encode(t.fromObject(obj as Record<string, unknown>)).finish();
}

/** Decode protobuf bytes to the loader's JS shape; throws on malformed input. */
export function decodeMessage<T>(type: string, bytes: Uint8Array): T {
  const t = viamType(type);
  return t.toObject(t.decode(bytes), TO_OBJECT) as T;
}
