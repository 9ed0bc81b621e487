// The esbuild options every bundle of ours shares (packages/capture/scripts/bundle-threads.js,
// packages/edgecap/scripts/build.js; packages/datamanager/scripts/bundle-zod.js takes its Node
// target): ESM for the oldest Node that package.json's engines allow, split into chunks so that a
// dynamic import stays a chunk loaded only when it runs.
export const NODE_ESM_BUNDLE = {
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  chunkNames: 'chunk-[hash]',
};
