// Original file: ../../proto/viam/app/datasync/v1/data_sync.proto

import type { BoundingBox as _viam_app_datasync_v1_BoundingBox, BoundingBox__Output as _viam_app_datasync_v1_BoundingBox__Output } from '../../../../viam/app/datasync/v1/BoundingBox';
import type { Classification as _viam_app_datasync_v1_Classification, Classification__Output as _viam_app_datasync_v1_Classification__Output } from '../../../../viam/app/datasync/v1/Classification';

export interface Annotations {
  'bboxes'?: (_viam_app_datasync_v1_BoundingBox)[];
  'classifications'?: (_viam_app_datasync_v1_Classification)[];
}

export interface Annotations__Output {
  'bboxes': (_viam_app_datasync_v1_BoundingBox__Output)[];
  'classifications': (_viam_app_datasync_v1_Classification__Output)[];
}
