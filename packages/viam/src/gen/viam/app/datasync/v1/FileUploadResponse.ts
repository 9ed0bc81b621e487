// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface FileUploadResponse {
  'file_id'?: (string);
  'binary_data_id'?: (string);
}

export interface FileUploadResponse__Output {
  'file_id': (string);
  'binary_data_id': (string);
}
