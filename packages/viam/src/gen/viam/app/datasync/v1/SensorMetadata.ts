// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../../google/protobuf/Timestamp';
import type { MimeType as _viam_app_datasync_v1_MimeType, MimeType__Output as _viam_app_datasync_v1_MimeType__Output } from '../../../../viam/app/datasync/v1/MimeType';
import type { Annotations as _viam_app_datasync_v1_Annotations, Annotations__Output as _viam_app_datasync_v1_Annotations__Output } from '../../../../viam/app/datasync/v1/Annotations';

export interface SensorMetadata {
  'time_requested'?: (_google_protobuf_Timestamp | null);
  'time_received'?: (_google_protobuf_Timestamp | null);
  'mime_type'?: (_viam_app_datasync_v1_MimeType);
  'annotations'?: (_viam_app_datasync_v1_Annotations | null);
}

export interface SensorMetadata__Output {
  'time_requested': (_google_protobuf_Timestamp__Output | null);
  'time_received': (_google_protobuf_Timestamp__Output | null);
  'mime_type': (_viam_app_datasync_v1_MimeType__Output);
  'annotations': (_viam_app_datasync_v1_Annotations__Output | null);
}
