// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { UploadMetadata as _viam_app_datasync_v1_UploadMetadata, UploadMetadata__Output as _viam_app_datasync_v1_UploadMetadata__Output } from '../../../../viam/app/datasync/v1/UploadMetadata';
import type { SensorMetadata as _viam_app_datasync_v1_SensorMetadata, SensorMetadata__Output as _viam_app_datasync_v1_SensorMetadata__Output } from '../../../../viam/app/datasync/v1/SensorMetadata';

export interface DataCaptureUploadMetadata {
  'upload_metadata'?: (_viam_app_datasync_v1_UploadMetadata | null);
  'sensor_metadata'?: (_viam_app_datasync_v1_SensorMetadata | null);
}

export interface DataCaptureUploadMetadata__Output {
  'upload_metadata': (_viam_app_datasync_v1_UploadMetadata__Output | null);
  'sensor_metadata': (_viam_app_datasync_v1_SensorMetadata__Output | null);
}
