// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

export const MimeType = {
  MIME_TYPE_UNSPECIFIED: 'MIME_TYPE_UNSPECIFIED',
  MIME_TYPE_IMAGE_JPEG: 'MIME_TYPE_IMAGE_JPEG',
  MIME_TYPE_IMAGE_PNG: 'MIME_TYPE_IMAGE_PNG',
  MIME_TYPE_APPLICATION_PCD: 'MIME_TYPE_APPLICATION_PCD',
} as const;

export type MimeType =
  | 'MIME_TYPE_UNSPECIFIED'
  | 0
  | 'MIME_TYPE_IMAGE_JPEG'
  | 1
  | 'MIME_TYPE_IMAGE_PNG'
  | 2
  | 'MIME_TYPE_APPLICATION_PCD'
  | 3

export type MimeType__Output = typeof MimeType[keyof typeof MimeType]
