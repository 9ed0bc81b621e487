// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { DataCaptureUploadMetadata as _viam_app_datasync_v1_DataCaptureUploadMetadata, DataCaptureUploadMetadata__Output as _viam_app_datasync_v1_DataCaptureUploadMetadata__Output } from '../../../../viam/app/datasync/v1/DataCaptureUploadMetadata';

export interface StreamingDataCaptureUploadRequest {
  'metadata'?: (_viam_app_datasync_v1_DataCaptureUploadMetadata | null);
  'data'?: (Buffer | Uint8Array | string);
  'upload_packet'?: "metadata"|"data";
}

export interface StreamingDataCaptureUploadRequest__Output {
  'metadata'?: (_viam_app_datasync_v1_DataCaptureUploadMetadata__Output | null);
  'data'?: (Buffer);
  'upload_packet'?: "metadata"|"data";
}
