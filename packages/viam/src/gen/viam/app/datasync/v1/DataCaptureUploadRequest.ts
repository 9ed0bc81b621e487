// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { UploadMetadata as _viam_app_datasync_v1_UploadMetadata, UploadMetadata__Output as _viam_app_datasync_v1_UploadMetadata__Output } from '../../../../viam/app/datasync/v1/UploadMetadata';
import type { SensorData as _viam_app_datasync_v1_SensorData, SensorData__Output as _viam_app_datasync_v1_SensorData__Output } from '../../../../viam/app/datasync/v1/SensorData';

export interface DataCaptureUploadRequest {
  'metadata'?: (_viam_app_datasync_v1_UploadMetadata | null);
  'sensor_contents'?: (_viam_app_datasync_v1_SensorData)[];
}

export interface DataCaptureUploadRequest__Output {
  'metadata': (_viam_app_datasync_v1_UploadMetadata__Output | null);
  'sensor_contents': (_viam_app_datasync_v1_SensorData__Output)[];
}
