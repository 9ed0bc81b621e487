// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { SensorMetadata as _viam_app_datasync_v1_SensorMetadata, SensorMetadata__Output as _viam_app_datasync_v1_SensorMetadata__Output } from '../../../../viam/app/datasync/v1/SensorMetadata';
import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from '../../../../google/protobuf/Struct';

export interface SensorData {
  'metadata'?: (_viam_app_datasync_v1_SensorMetadata | null);
  'struct'?: (_google_protobuf_Struct | null);
  'binary'?: (Buffer | Uint8Array | string);
  'data'?: "struct"|"binary";
}

export interface SensorData__Output {
  'metadata': (_viam_app_datasync_v1_SensorMetadata__Output | null);
  'struct'?: (_google_protobuf_Struct__Output | null);
  'binary'?: (Buffer);
  'data'?: "struct"|"binary";
}
