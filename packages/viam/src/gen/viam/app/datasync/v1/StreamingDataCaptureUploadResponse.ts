// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface StreamingDataCaptureUploadResponse {
  'file_id'?: (string);
  'binary_data_id'?: (string);
}

export interface StreamingDataCaptureUploadResponse__Output {
  'file_id': (string);
  'binary_data_id': (string);
}
