#!/usr/bin/env node
// Dependencies point one way (ARCHITECTURE.md): a package may depend only on packages of a
// lower layer, so worker packages never import each other or the facade. Exits 1 on a violation.
import fs from 'node:fs';
import path from 'node:path';

const LAYER = {
  core: 0,
  format: 1, ring: 1, store: 1, proto: 1,
  viam: 1.5, // protocol library over format + proto, used by ingest and sync
  capture: 2, sync: 2, janitor: 2, ingest: 2, mongo: 2,
  datamanager: 3,
  cli: 4,
  edgecap: 5, // the published package: bundles everything below it
};
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
let bad = 0;
for (const name of fs.readdirSync(path.join(root, 'packages'))) {
  const pj = JSON.parse(fs.readFileSync(path.join(root, 'packages', name, 'package.json'), 'utf8'));
  if (!(name in LAYER)) {
    console.error(`packages/${name}: not in the layer table of scripts/check-layers.js`);
    bad++;
    continue;
  }
  // edgecap bundles the internal packages (packages/edgecap/README.md): they are its devDependencies.
  const declared = new Set([...Object.keys(pj.dependencies ?? {}), ...(name === 'edgecap' ? Object.keys(pj.devDependencies ?? {}) : [])]);
  // What the sources import, too: pnpm's root node_modules would resolve an undeclared one.
  const imported = new Set();
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) for (const m of fs.readFileSync(p, 'utf8').matchAll(/from '(@edgecap\/[a-z]+)'/g)) imported.add(m[1]);
    }
  };
  walk(path.join(root, 'packages', name, 'src'));
  for (const dep of new Set([...declared, ...imported])) {
    if (!dep.startsWith('@edgecap/')) continue;
    const d = dep.slice('@edgecap/'.length);
    if (!(LAYER[d] < LAYER[name])) {
      console.error(`packages/${name} (layer ${LAYER[name]}) depends on ${dep} (layer ${LAYER[d]}): imports must point down`);
      bad++;
    } else if (!declared.has(dep)) {
      console.error(`packages/${name} imports ${dep} without declaring it in its package.json`);
      bad++;
    }
  }
}

// One owner per state machine (ARCHITECTURE 16): the edge state's LMDB databases (the file ledger's
// files/ids/totals, seqs, gaps) are private to packages/store. No other package opens LMDB or
// reaches into a StateStore's databases; they call its named transitions. (ingest keeps its own
// server-side LMDB index.)
const LMDB_OWNERS = new Set(['store', 'ingest']);
const RAW = [
  [/from 'lmdb'|import\('lmdb'\)|require\('lmdb'\)/, 'imports lmdb'],
  [/\b(transactionSync|openDB|getRange|putSync|removeSync|getKeys|ifVersion)\b/, 'calls an LMDB database API'],
  [/\.(claimedBy|lease)\b/, "reads a claim's owner (a claim rule of its own: ask the ledger, holderOf / canClaimDelete)"],
  [/\b\w*[sS]tore\w*!?\??\.(files|ids|seqs|gaps|root|ledger|totalsDb)\b|\[['"](files|ids|seqs|gaps|root|ledger|totalsDb)['"]\]/, "reads a StateStore's private database"],
];
let raw = 0;
for (const name of fs.readdirSync(path.join(root, 'packages'))) {
  if (LMDB_OWNERS.has(name)) continue;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'gen') walk(p);
      } else if (e.name.endsWith('.ts')) {
        fs.readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
          const code = line.trim();
          if (code.startsWith('*') || code.startsWith('//') || code.startsWith('/*')) return;
          for (const [re, what] of RAW) {
            if (re.test(code)) {
              console.error(`${path.relative(root, p)}:${i + 1} ${what} (the edge state is packages/store's: use its transitions): ${code}`);
              raw++;
            }
          }
        });
      }
    }
  };
  walk(path.join(root, 'packages', name, 'src'));
}
bad += raw;
if (bad) process.exit(1);
console.log(`layers ok: ${Object.keys(LAYER).length} packages, imports point down; the edge state's LMDB is packages/store's alone`);
