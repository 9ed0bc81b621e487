// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { DataType as _viam_app_datasync_v1_DataType, DataType__Output as _viam_app_datasync_v1_DataType__Output } from '../../../../viam/app/datasync/v1/DataType';
import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../../../google/protobuf/Any';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../../google/protobuf/Timestamp';

export interface UploadMetadata {
  'part_id'?: (string);
  'component_type'?: (string);
  'component_name'?: (string);
  'method_name'?: (string);
  'type'?: (_viam_app_datasync_v1_DataType);
  'file_name'?: (string);
  'method_parameters'?: ({[key: string]: _google_protobuf_Any});
  'file_extension'?: (string);
  'tags'?: (string)[];
  'dataset_ids'?: (string)[];
  'mime_type'?: (string);
  'file_create_time'?: (_google_protobuf_Timestamp | null);
  'file_modify_time'?: (_google_protobuf_Timestamp | null);
}

export interface UploadMetadata__Output {
  'part_id': (string);
  'component_type': (string);
  'component_name': (string);
  'method_name': (string);
  'type': (_viam_app_datasync_v1_DataType__Output);
  'file_name': (string);
  'method_parameters': ({[key: string]: _google_protobuf_Any__Output});
  'file_extension': (string);
  'tags': (string)[];
  'dataset_ids': (string)[];
  'mime_type': (string);
  'file_create_time': (_google_protobuf_Timestamp__Output | null);
  'file_modify_time': (_google_protobuf_Timestamp__Output | null);
}
