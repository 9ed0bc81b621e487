// The esbuild options every bundle of ours shares (packages/edgecap/scripts/build.js;
// packages/datamanager/scripts/bundle-zod.js takes its Node target): ESM for the oldest Node that
// package.json's engines allow, split into chunks so that a dynamic import stays a chunk loaded
// only when it runs. Worker threads' entries: NODE_CJS_THREAD_BUNDLE below.
export const NODE_ESM_BUNDLE = {
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  chunkNames: 'chunk-[hash]',
};

/**
 * A worker thread's entry as ONE CommonJS file (`.cjs`, beside ESM packages): a thread that starts
 * from an ES module loads Node's ESM machinery first (resolver, loader, translators, module jobs,
 * fs/promises and readline with them) and links each chunk: measured with 19 resources, spawn →
 * every stream's first reading 622 → 547 ms (median of 8 alternating runs, Node 22).
 * Dynamic imports (a user's resource module) still go through the ESM loader, when they run.
 * import.meta.url becomes the file's own URL, as in the ESM build.
 */
export const NODE_CJS_THREAD_BUNDLE = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: NODE_ESM_BUNDLE.target,
  outExtension: { '.js': '.cjs' },
  define: { 'import.meta.url': '__edgecapModuleUrl' },
  banner: { js: "const __edgecapModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
};
