import { openKeyAdmin } from '@edgecap/ingest';
import { userPath, Exit, type Out } from './util.js';

export interface KeysCliOptions {
  data?: string;
  pgUrl?: string;
  json?: boolean;
}

const target = (o: KeysCliOptions): { dataDir?: string; pgUrl?: string } => {
  const pgUrl = o.pgUrl ?? process.env.EDGECAP_PG_URL;
  return pgUrl ? { pgUrl } : o.data ? { dataDir: userPath(o.data) } : {};
};

/** `edgecap keys create|list|revoke`: the secret is printed once, only by create. */
export async function keysCmd(action: 'create' | 'list' | 'revoke', arg: string | undefined, o: KeysCliOptions, out: Out): Promise<number> {
  const admin = await openKeyAdmin(target(o));
  try {
    if (action === 'create') {
      const k = await admin.create(arg ?? '');
      if (o.json) out.write(`${JSON.stringify(k)}\n`);
      else out.write(`key_id ${k.key_id}\npart_id ${k.part_id}\nsecret ${k.secret}\n# the secret is shown once: put it in the device's ingest.api_key\n`);
      return Exit.OK;
    }
    if (action === 'list') {
      for (const k of await admin.list()) {
        const row = { key_id: k.key_id, part_id: k.part_id, created: new Date(k.created_at_ms).toISOString(), revoked: k.revoked_at_ms === undefined ? null : new Date(k.revoked_at_ms).toISOString() };
        out.write(o.json ? `${JSON.stringify(row)}\n` : `${row.key_id}\t${row.part_id}\t${row.created}\t${row.revoked ? `revoked ${row.revoked}` : 'active'}\n`);
      }
      return Exit.OK;
    }
    const ok = await admin.revoke(arg ?? '');
    out.write(ok ? `revoked ${arg}\n` : `no active key ${arg}\n`);
    return ok ? Exit.OK : Exit.FAILURE;
  } finally {
    await admin.close();
  }
}
