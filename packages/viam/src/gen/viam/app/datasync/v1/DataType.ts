// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

export const DataType = {
  DATA_TYPE_UNSPECIFIED: 'DATA_TYPE_UNSPECIFIED',
  DATA_TYPE_BINARY_SENSOR: 'DATA_TYPE_BINARY_SENSOR',
  DATA_TYPE_TABULAR_SENSOR: 'DATA_TYPE_TABULAR_SENSOR',
  DATA_TYPE_FILE: 'DATA_TYPE_FILE',
} as const;

export type DataType =
  | 'DATA_TYPE_UNSPECIFIED'
  | 0
  | 'DATA_TYPE_BINARY_SENSOR'
  | 1
  | 'DATA_TYPE_TABULAR_SENSOR'
  | 2
  | 'DATA_TYPE_FILE'
  | 3

export type DataType__Output = typeof DataType[keyof typeof DataType]
