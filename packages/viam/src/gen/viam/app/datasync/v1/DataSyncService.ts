// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DataCaptureUploadRequest as _viam_app_datasync_v1_DataCaptureUploadRequest, DataCaptureUploadRequest__Output as _viam_app_datasync_v1_DataCaptureUploadRequest__Output } from '../../../../viam/app/datasync/v1/DataCaptureUploadRequest';
import type { DataCaptureUploadResponse as _viam_app_datasync_v1_DataCaptureUploadResponse, DataCaptureUploadResponse__Output as _viam_app_datasync_v1_DataCaptureUploadResponse__Output } from '../../../../viam/app/datasync/v1/DataCaptureUploadResponse';
import type { FileUploadRequest as _viam_app_datasync_v1_FileUploadRequest, FileUploadRequest__Output as _viam_app_datasync_v1_FileUploadRequest__Output } from '../../../../viam/app/datasync/v1/FileUploadRequest';
import type { FileUploadResponse as _viam_app_datasync_v1_FileUploadResponse, FileUploadResponse__Output as _viam_app_datasync_v1_FileUploadResponse__Output } from '../../../../viam/app/datasync/v1/FileUploadResponse';
import type { StreamingDataCaptureUploadRequest as _viam_app_datasync_v1_StreamingDataCaptureUploadRequest, StreamingDataCaptureUploadRequest__Output as _viam_app_datasync_v1_StreamingDataCaptureUploadRequest__Output } from '../../../../viam/app/datasync/v1/StreamingDataCaptureUploadRequest';
import type { StreamingDataCaptureUploadResponse as _viam_app_datasync_v1_StreamingDataCaptureUploadResponse, StreamingDataCaptureUploadResponse__Output as _viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output } from '../../../../viam/app/datasync/v1/StreamingDataCaptureUploadResponse';

export interface DataSyncServiceClient extends grpc.Client {
  DataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  DataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  DataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  DataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  dataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  dataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  dataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  dataCaptureUpload(argument: _viam_app_datasync_v1_DataCaptureUploadRequest, callback: grpc.requestCallback<_viam_app_datasync_v1_DataCaptureUploadResponse__Output>): grpc.ClientUnaryCall;
  
  FileUpload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  FileUpload(metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  FileUpload(options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  FileUpload(callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  fileUpload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  fileUpload(metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  fileUpload(options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  fileUpload(callback: grpc.requestCallback<_viam_app_datasync_v1_FileUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_FileUploadRequest>;
  
  StreamingDataCaptureUpload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  StreamingDataCaptureUpload(metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  StreamingDataCaptureUpload(options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  StreamingDataCaptureUpload(callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  streamingDataCaptureUpload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  streamingDataCaptureUpload(metadata: grpc.Metadata, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  streamingDataCaptureUpload(options: grpc.CallOptions, callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  streamingDataCaptureUpload(callback: grpc.requestCallback<_viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>): grpc.ClientWritableStream<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest>;
  
}

export interface DataSyncServiceHandlers extends grpc.UntypedServiceImplementation {
  DataCaptureUpload: grpc.handleUnaryCall<_viam_app_datasync_v1_DataCaptureUploadRequest__Output, _viam_app_datasync_v1_DataCaptureUploadResponse>;
  
  FileUpload: grpc.handleClientStreamingCall<_viam_app_datasync_v1_FileUploadRequest__Output, _viam_app_datasync_v1_FileUploadResponse>;
  
  StreamingDataCaptureUpload: grpc.handleClientStreamingCall<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest__Output, _viam_app_datasync_v1_StreamingDataCaptureUploadResponse>;
  
}

export interface DataSyncServiceDefinition extends grpc.ServiceDefinition {
  DataCaptureUpload: MethodDefinition<_viam_app_datasync_v1_DataCaptureUploadRequest, _viam_app_datasync_v1_DataCaptureUploadResponse, _viam_app_datasync_v1_DataCaptureUploadRequest__Output, _viam_app_datasync_v1_DataCaptureUploadResponse__Output>
  FileUpload: MethodDefinition<_viam_app_datasync_v1_FileUploadRequest, _viam_app_datasync_v1_FileUploadResponse, _viam_app_datasync_v1_FileUploadRequest__Output, _viam_app_datasync_v1_FileUploadResponse__Output>
  StreamingDataCaptureUpload: MethodDefinition<_viam_app_datasync_v1_StreamingDataCaptureUploadRequest, _viam_app_datasync_v1_StreamingDataCaptureUploadResponse, _viam_app_datasync_v1_StreamingDataCaptureUploadRequest__Output, _viam_app_datasync_v1_StreamingDataCaptureUploadResponse__Output>
}
