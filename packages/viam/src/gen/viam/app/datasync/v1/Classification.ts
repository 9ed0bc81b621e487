// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface Classification {
  'label'?: (string);
  'confidence'?: (number | string);
  '_confidence'?: "confidence";
}

export interface Classification__Output {
  'label': (string);
  'confidence'?: (number);
  '_confidence'?: "confidence";
}
