#!/usr/bin/env node
/**
 * proto-loader-gen-types writes relative imports without an extension (`from './edgecap/sync/v1/Gap'`).
 * Under NodeNext resolution those do not resolve, and a user's `tsc` with `skipLibCheck: false`
 * reports every one of them in our `.d.ts`. Add `.js` to each relative specifier of every
 * generated file under the given folders (idempotent).
 */
import fs from 'node:fs';
import path from 'node:path';

const SPEC = /(\bfrom\s+['"])(\.{1,2}\/[^'"]+?)(['"])/g;

function fix(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += fix(p);
    else if (e.name.endsWith('.ts')) {
      const src = fs.readFileSync(p, 'utf8');
      const out = src.replace(SPEC, (_m, a, spec, b) => (spec.endsWith('.js') ? `${a}${spec}${b}` : `${a}${spec}.js${b}`));
      if (out !== src) {
        fs.writeFileSync(p, out);
        n++;
      }
    }
  }
  return n;
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: fix-gen.js DIR...');
  process.exit(2);
}
for (const d of dirs) fix(d);
