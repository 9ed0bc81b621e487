// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface DataCaptureUploadResponse {
  'file_id'?: (string);
  'binary_data_id'?: (string);
}

export interface DataCaptureUploadResponse__Output {
  'file_id': (string);
  'binary_data_id': (string);
}
