// An edge app that imports `edgecap` for DataManager must not load the ingest server's stack
// (gRPC over node:http2, proto loading, storage): ~70 ms of start-up and its heap, for nothing.
// Run from a folder where `edgecap` is installed; exits 1 naming what was loaded.
const m = await import('edgecap');
if (typeof m.DataManager !== 'function' || typeof m.startIngestServer !== 'function') {
  console.error('light-import: edgecap does not export DataManager and startIngestServer');
  process.exit(1);
}
const heavy = process.moduleLoadList.filter((x) => x === 'NativeModule http2');
if (heavy.length) {
  console.error(`light-import: import('edgecap') loaded ${heavy.join(', ')}: the ingest server must load on first use`);
  process.exit(1);
}
