#!/usr/bin/env node
/**
 * Build the published `edgecap` package from the workspace's compiled packages (run `pnpm build`
 * at the repo root first):
 *  - dist/*.js: one ESM bundle (esbuild, code-split) of the library entry, the CLI and the four
 *    worker-thread entries. @edgecap/* and grpc-js (with the repo's patch, see patches/README.md)
 *    are bundled; every other dependency stays an import of the package.json dependency;
 *  - dist/index.d.ts: the library's declarations in one file (rollup-plugin-dts), so a user's
 *    `tsc` needs nothing of ours but this file;
 *  - proto/: the .proto files, found at run time relative to dist/ (`new URL('../proto/', ...)`).
 */
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { NODE_CJS_THREAD_BUNDLE, NODE_ESM_BUNDLE } from '../../../scripts/esbuild-node.js';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repo = path.resolve(pkgDir, '../..');
const dist = path.join(pkgDir, 'dist');
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));

// Imports left to npm: the runtime dependencies and the optional peers (loaded on first use).
const EXTERNAL = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
const isExternal = (spec) => [...EXTERNAL].some((d) => spec === d || spec.startsWith(`${d}/`));
// Bundled (not a dependency): grpc-js must be the patched copy; proto-loader and protobufjs go with it.
const BUNDLED = new Set(['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']);

// Worker threads are started with `new URL('./<name>.js', import.meta.url)` next to the module
// that starts them; in the bundle every file sits in dist/, so two `./worker.js` would collide.
// The capture threads start their one-file CommonJS bundles (`./threads/<name>.cjs`,
// packages/capture/scripts/bundle-threads.js): bundled again here the same way, on their own.
const WORKERS = {
  'capture/threads/collector': 'collector-worker',
  'capture/threads/writer': 'writer-worker',
  'janitor/worker': 'janitor-worker',
  'sync/worker': 'sync-worker',
};
const distOf = (name) => path.join(repo, 'packages', name, 'dist');

function need(file) {
  if (!fs.existsSync(file)) throw new Error(`${path.relative(repo, file)} is missing: run \`pnpm build\` at the repo root first`);
  return file;
}

/** Asset folders/files the bundle reads relative to itself: assets/<path> -> source. */
const assets = new Map();

/** Rename worker URLs to the bundle's entry names; fail on a worker the table does not know. */
const workerUrls = {
  name: 'edgecap-worker-urls',
  setup(build) {
    build.onLoad({ filter: /[\\/]packages[\\/][a-z]+[\\/]dist[\\/].*\.js$/ }, async (args) => {
      const m = /[\\/]packages[\\/]([a-z]+)[\\/]dist[\\/]/.exec(args.path);
      const owner = m[1];
      let src = await fs.promises.readFile(args.path, 'utf8');
      const errors = [];
      src = src.replace(/new URL\((['"])\.\/([\w/-]+)\.(c?js)\1,\s*import\.meta\.url\)/g, (whole, q, name, ext) => {
        const entry = WORKERS[`${owner}/${name}`];
        if (!entry) {
          errors.push({ text: `${owner}: new URL('./${name}.${ext}', import.meta.url) is not a known worker entry (add it to WORKERS in ${path.relative(repo, fileURLToPath(import.meta.url))})` });
          return whole;
        }
        return `new URL(${q}./${entry}.${ext}${q}, import.meta.url)`;
      });
      // Files read beside the sources (a status page's html/css/js): shipped under assets/<package>/.
      src = src.replace(/new URL\((['"])(\.\.\/[^'"]*)\1,\s*import\.meta\.url\)/g, (whole, q, rel) => {
        const target = path.resolve(path.dirname(args.path), rel);
        const srcDir = path.join(repo, 'packages', owner, 'src');
        if (!target.startsWith(srcDir + path.sep) && target !== srcDir) return whole;
        const inPkg = path.relative(path.join(repo, 'packages', owner), target);
        assets.set(path.join(owner, inPkg), target);
        return `new URL(${q}../assets/${owner}/${inPkg.split(path.sep).join('/')}${rel.endsWith('/') ? '/' : ''}${q}, import.meta.url)`;
      });
      return { contents: src, loader: 'js', errors };
    });
  },
};

/** Which third-party packages went into the bundle (printed, so an accidental one shows). */
const bundled = new Set();
const externals = {
  name: 'edgecap-externals',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:') || isExternal(args.path)) return { path: args.path, external: true };
      if (!args.path.startsWith('@edgecap/') && !builtinModules.includes(args.path)) bundled.add(args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0]);
      return undefined;
    });
  },
};

// Every runtime dependency of an internal package must be one of ours (or bundled): a package
// added to packages/*/package.json but not here would be bundled silently or missing at run time.
for (const name of fs.readdirSync(path.join(repo, 'packages'))) {
  const pj = path.join(repo, 'packages', name, 'package.json');
  if (name === 'edgecap' || !fs.existsSync(pj)) continue;
  const p = JSON.parse(fs.readFileSync(pj, 'utf8'));
  for (const dep of [...Object.keys(p.dependencies ?? {}), ...Object.keys(p.peerDependencies ?? {})]) {
    if (!dep.startsWith('@edgecap/') && !BUNDLED.has(dep) && !EXTERNAL.has(dep)) {
      throw new Error(`packages/${name} depends on ${dep}: add it to packages/edgecap/package.json (dependencies, or an optional peer)`);
    }
  }
}

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });

const entryPoints = {
  index: path.join(pkgDir, 'src/index.ts'),
  cli: need(path.join(distOf('cli'), 'index.js')),
};
const ownEntryPoints = {};
for (const [from, to] of Object.entries(WORKERS)) {
  const [p, ...f] = from.split('/');
  const own = from.startsWith('capture/threads/');
  (own ? ownEntryPoints : entryPoints)[to] = need(path.join(distOf(p), `${f.join('/')}.${own ? 'cjs' : 'js'}`));
}

await esbuild.build({
  entryPoints,
  outdir: dist,
  ...NODE_ESM_BUNDLE,
  // grpc-js and protobufjs are CommonJS: their require() of Node built-ins needs a real require.
  banner: { js: "import { createRequire as __edgecapCreateRequire } from 'node:module';\nconst require = __edgecapCreateRequire(import.meta.url);" },
  plugins: [externals, workerUrls],
  legalComments: 'eof',
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: ownEntryPoints,
  outdir: dist,
  ...NODE_CJS_THREAD_BUNDLE,
  // already a thread bundle: its import.meta.url is its own file's (the banner it carries)
  banner: undefined,
  define: undefined,
  plugins: [externals, workerUrls],
  legalComments: 'eof',
  logLevel: 'warning',
});

// The config schema's zod parts, one CommonJS file required beside the module that validates
// (packages/datamanager/scripts/bundle-zod.js): every chunk sits in dist/.
fs.copyFileSync(need(path.join(distOf('datamanager'), 'zod-parts.cjs')), path.join(dist, 'zod-parts.cjs'));

// Declarations: tsc -b wrote build/index.d.ts (imports of @edgecap/*); inline them.
const bundle = await rollup({
  input: need(path.join(pkgDir, 'build/index.d.ts')),
  plugins: [dts({ respectExternal: true, tsconfig: path.join(pkgDir, 'tsconfig.json') })],
  // Inline only our own declarations; anything else stays an import (checked below).
  external: (id) => !id.startsWith('@edgecap/') && !id.startsWith('.') && !path.isAbsolute(id),
});
await bundle.write({ file: path.join(dist, 'index.d.ts'), format: 'es' });
await bundle.close();

// Protos: the shipped copy of the repo's proto/ (the one source of truth).
const protoOut = path.join(pkgDir, 'proto');
fs.rmSync(protoOut, { recursive: true, force: true });
fs.cpSync(path.join(repo, 'proto'), protoOut, { recursive: true, filter: (src) => fs.statSync(src).isDirectory() || src.endsWith('.proto') });

// Files the modules find relative to themselves: from dist/, `new URL('../x', import.meta.url)`
// must name something this package ships (the assets were copied just above).
const assetsOut = path.join(pkgDir, 'assets');
fs.rmSync(assetsOut, { recursive: true, force: true });
for (const [to, from] of assets) {
  // Only what a browser or the runtime reads: no TypeScript sources among the assets.
  if (fs.existsSync(from)) fs.cpSync(from, path.join(assetsOut, to), { recursive: true, filter: (f) => !f.endsWith('.ts') });
}
for (const f of fs.readdirSync(dist).filter((f) => f.endsWith('.js'))) {
  const js = fs.readFileSync(path.join(dist, f), 'utf8');
  for (const m of js.matchAll(/new URL\((['"])(\.\.\/[^'"]*)\1,\s*import\.meta\.url\)/g)) {
    if (!fs.existsSync(path.join(dist, m[2]))) throw new Error(`dist/${f} reads ${m[2]} relative to itself, which is not in the package`);
  }
}

// Imports the bundled declarations keep must be ones a user has: Node's own or a dependency.
// (doc comments may quote an import: `import('@edgecap/datamanager') stays cheap` is prose)
const dtsText = fs.readFileSync(path.join(dist, 'index.d.ts'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
const bad = [...dtsText.matchAll(/from ['"]([^'"]+)['"]|import\(['"]([^'"]+)['"]\)|require\(['"]([^'"]+)['"]\)/g)]
  .map((m) => m[1] ?? m[2] ?? m[3])
  .filter((s) => !s.startsWith('node:') && !builtinModules.includes(s) && !isExternal(s));
if (bad.length > 0) throw new Error(`dist/index.d.ts imports ${[...new Set(bad)].join(', ')}, which a user does not install`);
console.log(`edgecap: dist/ built; bundled third-party packages: ${[...bundled].sort().join(', ') || 'none'}`);
