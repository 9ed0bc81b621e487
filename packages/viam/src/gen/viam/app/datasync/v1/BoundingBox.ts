// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto


export interface BoundingBox {
  'id'?: (string);
  'label'?: (string);
  'x_min_normalized'?: (number | string);
  'y_min_normalized'?: (number | string);
  'x_max_normalized'?: (number | string);
  'y_max_normalized'?: (number | string);
  'confidence'?: (number | string);
  '_confidence'?: "confidence";
}

export interface BoundingBox__Output {
  'id': (string);
  'label': (string);
  'x_min_normalized': (number);
  'y_min_normalized': (number);
  'x_max_normalized': (number);
  'y_max_normalized': (number);
  'confidence'?: (number);
  '_confidence'?: "confidence";
}
