// Memory mode (storage: "memory") beside disk mode, same run, same pipeline: collector threads at
// full speed → SAB rings → writer thread → sealed files (disk: renamed .capture files; memory:
// files handed to a MemoryStore). Readings counted afterwards by scanning the sealed bytes
// (CRC-checked frames), not trusted from counters. The budget is large enough that nothing is
// dropped, and memory releases every sealed file at once (as an acknowledged sync would), so
// the figure is capture's, not the budget's.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaptureEngine, MemoryStore } from '@edgecap/capture';
import { openStateStore } from '@edgecap/store';
import { listFiles, scanFrames, FILE_MAGIC, FrameType } from '@edgecap/format';

const FIXTURE = fileURLToPath(new URL('../fixtures/blob-resource.js', import.meta.url));
const elapsed = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function count(bytes) {
  let readings = 0;
  let corrupt = 0;
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) {
    if (ev.kind === 'frame') {
      if (ev.type === FrameType.READING) readings++;
    } else corrupt++;
  }
  return { readings, corrupt };
}

async function one(mode, { dir, resources, bytes, seconds, maxFileBytes }) {
  const captureDir = path.join(dir, `capture-${mode}`);
  let store;
  let memory;
  const tally = { readings: 0, bytes: 0, files: 0, corrupt: 0 };
  const sealed = [];
  if (mode === 'memory') {
    memory = new MemoryStore({ budgetBytes: 1024 * 1024 * 1024, policy: 'drop_oldest' });
    // counted after the measured window, as the disk files are
    memory.on('sealed', (f) => {
      sealed.push(f.bytes);
      memory.release(f.id);
    });
    store = memory;
  } else store = openStateStore(path.join(dir, `state-${mode}`));
  const specs = Array.from({ length: resources }, (_, i) => ({ name: `r${i}`, module: FIXTURE, attributes: { bytes, binary: false }, methods: [{ method: 'Readings', frequencyHz: 1e9 }] }));
  const engine = new CaptureEngine({ captureDir, store, partId: 'bench', tags: [], maxFileBytes, ...(memory ? { memory } : {}) });
  const errors = [];
  engine.on('error', (e) => errors.push(String(e?.message ?? e)));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await engine.start(specs);
  await sleep(seconds * 1000);
  const stats = engine.stats();
  await engine.stop();
  if (memory) await memory.drained();
  const wallSec = elapsed(t0);
  const cpu = process.cpuUsage(cpu0);
  if (!memory) await store.close();
  const files = memory ? sealed : listFiles(captureDir, '.capture').map((f) => fs.readFileSync(f));
  {
    for (const b of files) {
      const c = count(b);
      tally.readings += c.readings;
      tally.corrupt += c.corrupt;
      tally.bytes += b.length;
      tally.files++;
    }
  }
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  return {
    mode,
    captured: stats.reduce((a, s) => a + s.captured, 0),
    dropped: stats.reduce((a, s) => a + s.dropped, 0),
    ...tally,
    wallSec,
    perSec: tally.readings / wallSec,
    cpuSec,
    cpuSecPerMillion: tally.readings ? cpuSec / (tally.readings / 1e6) : null,
    wroteUnderCaptureDir: fs.existsSync(captureDir),
    errors: errors.slice(0, 3),
  };
}

/** Disk then memory, same sizes, same process: readings/s and CPU side by side. */
export async function memoryVsDisk({ dir, resources = 2, bytes = 64, seconds = 2, maxFileBytes = 256 * 1024 }) {
  const o = { dir, resources, bytes, seconds, maxFileBytes };
  const disk = await one('disk', o);
  const memory = await one('memory', o);
  fs.rmSync(dir, { recursive: true, force: true });
  return { resources, bytes, seconds, maxFileBytes, disk, memory };
}
