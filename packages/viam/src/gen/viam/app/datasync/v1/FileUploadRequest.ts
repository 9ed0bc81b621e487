// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { UploadMetadata as _viam_app_datasync_v1_UploadMetadata, UploadMetadata__Output as _viam_app_datasync_v1_UploadMetadata__Output } from '../../../../viam/app/datasync/v1/UploadMetadata';
import type { FileData as _viam_app_datasync_v1_FileData, FileData__Output as _viam_app_datasync_v1_FileData__Output } from '../../../../viam/app/datasync/v1/FileData';

export interface FileUploadRequest {
  'metadata'?: (_viam_app_datasync_v1_UploadMetadata | null);
  'file_contents'?: (_viam_app_datasync_v1_FileData | null);
  'upload_packet'?: "metadata"|"file_contents";
}

export interface FileUploadRequest__Output {
  'metadata'?: (_viam_app_datasync_v1_UploadMetadata__Output | null);
  'file_contents'?: (_viam_app_datasync_v1_FileData__Output | null);
  'upload_packet'?: "metadata"|"file_contents";
}
