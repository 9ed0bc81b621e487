/**
 * The key registry of an ingest store, opened outside a running server (`edgecap keys`): the
 * embedded store's LMDB (safe beside a running server: LMDB is multi-process) or PostgreSQL.
 */
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import { checkPartId, type DeviceKey, type NewDeviceKey } from './keys.js';
import { PgStorage } from './pg/storage.js';
import { acquireFileStorage, releaseFileStorage } from './storage.js';

export interface KeyAdmin {
  create(partId: string): Promise<NewDeviceKey>;
  list(): Promise<DeviceKey[]>;
  revoke(keyId: string): Promise<boolean>;
  close(): Promise<void>;
}

export async function openKeyAdmin(target: { dataDir?: string; pgUrl?: string }): Promise<KeyAdmin> {
  const s = target.pgUrl ? await PgStorage.open({ url: target.pgUrl }) : target.dataDir ? acquireFileStorage(target.dataDir) : undefined;
  if (!s) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, 'keys: give --data DIR (embedded storage) or --pg-url URL');
  return {
    create(partId) {
      const why = checkPartId(partId);
      if (why) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `--part: ${why}`);
      return s.createKey(partId);
    },
    list: () => s.listKeys(),
    revoke: (keyId) => s.revokeKey(keyId),
    close: () => (s instanceof PgStorage ? s.close() : releaseFileStorage(s)),
  };
}
