// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface FileData {
  'data'?: (Buffer | Uint8Array | string);
}

export interface FileData__Output {
  'data': (Buffer);
}
