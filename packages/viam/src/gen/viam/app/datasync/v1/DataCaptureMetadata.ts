// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { DataType as _viam_app_datasync_v1_DataType, DataType__Output as _viam_app_datasync_v1_DataType__Output } from '../../../../viam/app/datasync/v1/DataType';
import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../../../google/protobuf/Any';

export interface DataCaptureMetadata {
  'component_type'?: (string);
  'component_name'?: (string);
  'method_name'?: (string);
  'type'?: (_viam_app_datasync_v1_DataType);
  'method_parameters'?: ({[key: string]: _google_protobuf_Any});
  'file_extension'?: (string);
  'tags'?: (string)[];
  'mime_type'?: (string);
}

export interface DataCaptureMetadata__Output {
  'component_type': (string);
  'component_name': (string);
  'method_name': (string);
  'type': (_viam_app_datasync_v1_DataType__Output);
  'method_parameters': ({[key: string]: _google_protobuf_Any__Output});
  'file_extension': (string);
  'tags': (string)[];
  'mime_type': (string);
}
