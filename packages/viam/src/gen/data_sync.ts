import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from './google/protobuf/Any';
import type { ListValue as _google_protobuf_ListValue, ListValue__Output as _google_protobuf_ListValue__Output } from './google/protobuf/ListValue';
import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from './google/protobuf/Struct';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp';
import type { Value as _google_protobuf_Value, Value__Output as _google_protobuf_Value__Output } from './google/protobuf/Value';
import type { Annotations as _viam_app_datasync_v1_Annotations, Annotations__Output as _viam_app_datasync_v1_Annotations__Output } from './viam/app/datasync/v1/Annotations';
import type { BoundingBox as _viam_app_datasync_v1_BoundingBox, BoundingBox__Output as _viam_app_datasync_v1_BoundingBox__Output } from './viam/app/datasync/v1/BoundingBox';
import type { Classification as _viam_app_datasync_v1_Classification, Classification__Output as _viam_app_datasync_v1_Classification__Output } from './viam/app/datasync/v1/Classification';
import type { DataCaptureMetadata as _viam_app_datasync_v1_DataCaptureMetadata, DataCaptureMetadata__Output as _viam_app_datasync_v1_DataCaptureMetadata__Output } from './viam/app/datasync/v1/DataCaptureMetadata';
import type { DataCaptureUploadMetadata as _viam_app_datasync_v1_DataCaptureUploadMetadata, DataCaptureUploadMetadata__Output as _viam_app_datasync_v1_DataCaptureUploadMetadata__Output } from './viam/app/datasync/v1/DataCaptureUploadMetadata';
import type { DataCaptureUploadRequest as _viam_app_datasync_v1_DataCaptureUploadRequest, DataCaptureUploadRequest__Output as _viam_app_datasync_v1_DataCaptureUploadRequest__Output } from './viam/app/datasync/v1/DataCaptureUploadRequest';
import type { DataCaptureUploadResponse as _viam_app_datasync_v1_DataCaptureUploadResponse, DataCaptureUploadResponse__Output as _viam_app_datasync_v1_DataCaptureUploadResponse__Output } from './viam/app/datasync/v1/DataCaptureUploadResponse';
import type { DataSyncServiceClient as _viam_app_datasync_v1_DataSyncServiceClient, DataSyncServiceDefinition as _viam_app_datasync_v1_DataSyncServiceDefinition } from './viam/app/datasync/v1/DataSyncService';
import type { FileData as _viam_app_datasync_v1_FileData, FileData__Output as _viam_app_datasync_v1_FileData__Output } from './viam/app/datasync/v1/FileData';
import type { FileUploadRequest as _viam_app_datasync_v1_FileUploadRequest, FileUploadRequest__Output as _viam_app_datasync_v1_FileUploadRequest__Output } from './viam/app/datasync/v1/FileUploadRequest';
import type { FileUploadResponse as _viam_app_datasync_v1_FileUploadResponse, FileUploadResponse__Output as _viam_app_datasync_v1_FileUploadResponse__Output } from './viam/app/datasync/v1/FileUploadResponse';
import type { SensorData as _viam_app_datasync_v1_SensorData, SensorData__Output as _viam_app_datasync_v1_SensorData__Output } from './viam/app/datasync/v1/SensorData';
import type { SensorMetadata as _viam_app_datasync_v1_SensorMetadata, SensorMetadata__Output as _viam_app_datasync_v1_SensorMetadata__Output } from './viam/app/datasync/v1/SensorMetadata';
import type { StreamingDataCaptureUploadRequest as _viam_app_datasync_v1_StreamingDataCaptureUploadRequest, StreamingDataCaptureUploadRequest__Output as _viam_app_datasync_v1_StreamingDataCaptureUploadRequest__Output } from './viam/app/datasync/v1/StreamingDataCaptureUploadRequest';
import type { StreamingDataCaptureUploadResponse as _viam_app_datasync_v1_StreamingDataCaptureUploadResponse, StreamingDataCaptureUploadResponse__Output as _viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output } from './viam/app/datasync/v1/StreamingDataCaptureUploadResponse';
import type { UploadMetadata as _viam_app_datasync_v1_UploadMetadata, UploadMetadata__Output as _viam_app_datasync_v1_UploadMetadata__Output } from './viam/app/datasync/v1/UploadMetadata';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  google: {
    protobuf: {
      Any: MessageTypeDefinition<_google_protobuf_Any, _google_protobuf_Any__Output>
      ListValue: MessageTypeDefinition<_google_protobuf_ListValue, _google_protobuf_ListValue__Output>
      NullValue: EnumTypeDefinition
      Struct: MessageTypeDefinition<_google_protobuf_Struct, _google_protobuf_Struct__Output>
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
      Value: MessageTypeDefinition<_google_protobuf_Value, _google_protobuf_Value__Output>
    }
  }
  viam: {
    app: {
      datasync: {
        v1: {
          Annotations: MessageTypeDefinition<_viam_app_datasync_v1_Annotations, _viam_app_datasync_v1_Annotations__Output>
          BoundingBox: MessageTypeDefinition<_viam_app_datasync_v1_BoundingBox, _viam_app_datasync_v1_BoundingBox__Output>
          Classification: MessageTypeDefinition<_viam_app_datasync_v1_Classification, _viam_app_datasync_v1_Classification__Output>
          DataCaptureMetadata: MessageTypeDefinition<_viam_app_datasync_v1_DataCaptureMetadata, _viam_app_datasync_v1_DataCaptureMetadata__Output>
          DataCaptureUploadMetadata: MessageTypeDefinition<_viam_app_datasync_v1_DataCaptureUploadMetadata, _viam_app_datasync_v1_DataCaptureUploadMetadata__Output>
          DataCaptureUploadRequest: MessageTypeDefinition<_viam_app_datasync_v1_DataCaptureUploadRequest, _viam_app_datasync_v1_DataCaptureUploadRequest__Output>
          DataCaptureUploadResponse: MessageTypeDefinition<_viam_app_datasync_v1_DataCaptureUploadResponse, _viam_app_datasync_v1_DataCaptureUploadResponse__Output>
          DataSyncService: SubtypeConstructor<typeof grpc.Client, _viam_app_datasync_v1_DataSyncServiceClient> & { service: _viam_app_datasync_v1_DataSyncServiceDefinition }
          DataType: EnumTypeDefinition
          FileData: MessageTypeDefinition<_viam_app_datasync_v1_FileData, _viam_app_datasync_v1_FileData__Output>
          FileUploadRequest: MessageTypeDefinition<_viam_app_datasync_v1_FileUploadRequest, _viam_app_datasync_v1_FileUploadRequest__Output>
          FileUploadResponse: MessageTypeDefinition<_viam_app_datasync_v1_FileUploadResponse, _viam_app_datasync_v1_FileUploadResponse__Output>
          MimeType: EnumTypeDefinition
          SensorData: MessageTypeDefinition<_viam_app_datasync_v1_SensorData, _viam_app_datasync_v1_SensorData__Output>
          SensorMetadata: MessageTypeDefinition<_viam_app_datasync_v1_SensorMetadata, _viam_app_datasync_v1_SensorMetadata__Output>
          StreamingDataCaptureUploadRequest: MessageTypeDefinition<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest, _viam_app_datasync_v1_StreamingDataCaptureUploadRequest__Output>
          StreamingDataCaptureUploadResponse: MessageTypeDefinition<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse, _viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>
          UploadMetadata: MessageTypeDefinition<_viam_app_datasync_v1_UploadMetadata, _viam_app_datasync_v1_UploadMetadata__Output>
        }
      }
    }
  }
}

