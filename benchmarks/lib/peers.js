// The Node peers a user would reach for, fed the same readings as edgecap:
// pino through its worker-thread transport, pino.destination (sonic-boom) on the main thread,
// and a naive baseline (one JSON line per fs.writeSync).
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';

export function reading(size, i) {
  // ~size bytes once encoded: a few numbers plus filler.
  const fill = size > 48 ? 'x'.repeat(size - 48) : '';
  return { seq: i, x: 1.25 + i, y: 2.5, z: 3.75, f: fill };
}

async function finish(dest) {
  await new Promise((resolve) => {
    dest.flush?.(() => resolve());
    if (!dest.flush) resolve();
  });
}

/** pino + pino/file transport in a worker thread. */
export async function pinoTransport(dir, { count, size }) {
  const file = path.join(dir, `pino-transport-${size}.log`);
  const transport = pino.transport({ target: 'pino/file', options: { destination: file, mkdir: true } });
  const log = pino({ base: undefined, timestamp: false }, transport);
  const r = reading(size, 0);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    log.info(r);
  }
  await new Promise((resolve) => {
    transport.on('close', resolve);
    transport.end();
  });
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const bytes = fs.statSync(file).size;
  fs.rmSync(file);
  return { perSec: count / sec, mbps: bytes / 1e6 / sec, cpuMainSec: (cpu.user + cpu.system) / 1e6, seconds: sec };
}

/** pino.destination (sonic-boom), async with a 64 KiB buffer, flushed at the end. */
export async function pinoDestination(dir, { count, size }) {
  const file = path.join(dir, `pino-dest-${size}.log`);
  const dest = pino.destination({ dest: file, sync: false, minLength: 65536 });
  const log = pino({ base: undefined, timestamp: false }, dest);
  const r = reading(size, 0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    log.info(r);
  }
  await finish(dest);
  dest.flushSync();
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = fs.statSync(file).size;
  dest.destroy();
  fs.rmSync(file);
  return { perSec: count / sec, mbps: bytes / 1e6 / sec, seconds: sec };
}

/** Naive: JSON.stringify + one writeSync per reading on the main thread. */
export function naiveJsonLines(dir, { count, size }) {
  const file = path.join(dir, `naive-${size}.log`);
  const fd = fs.openSync(file, 'a');
  const r = reading(size, 0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    fs.writeSync(fd, JSON.stringify(r) + '\n');
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  const bytes = fs.statSync(file).size;
  fs.rmSync(file);
  return { perSec: count / sec, mbps: bytes / 1e6 / sec, seconds: sec };
}
