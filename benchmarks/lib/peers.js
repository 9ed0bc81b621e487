// The Node peers a user would reach for, fed the same readings as edgecap:
// pino through its worker-thread transport (pino/file), pino.destination (sonic-boom) on the
// main thread, and a naive baseline (one JSON line per fs.writeSync). Each runs in its own child
// process (see util.runChild) so CPU and peak RSS are its own.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { reading } from '../fixtures/reading.js';

const elapsed = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

function result(file, count, sec) {
  const bytes = fs.statSync(file).size;
  fs.rmSync(file, { force: true });
  return { count, perSec: count / sec, mbps: bytes / 1e6 / sec, bytesPerRecord: bytes / count, seconds: sec };
}

/** pino + pino/file transport in a worker thread; the clock stops when the transport closed its file. */
export async function pinoTransport({ dir, count, size }) {
  const file = path.join(dir, `pino-transport-${size}-${process.pid}.log`);
  const keepAlive = setInterval(() => {}, 1000); // thread-stream unrefs its worker
  const transport = pino.transport({ target: 'pino/file', options: { destination: file, mkdir: true } });
  await new Promise((r) => transport.once('ready', r));
  const log = pino({ base: undefined, timestamp: false }, transport);
  const r = reading(size);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    log.info(r);
  }
  await new Promise((resolve) => {
    transport.once('close', resolve);
    transport.end();
  });
  clearInterval(keepAlive);
  return result(file, count, elapsed(t0));
}

/** pino.destination (sonic-boom), async, buffering 8 KiB (sonic-boom 4.2 hangs on end() with a larger maxWrite) and flushing every 100 ms like edgecap's flush_interval_ms; the clock stops when the file is closed. */
export async function pinoDestination({ dir, count, size }) {
  const file = path.join(dir, `pino-dest-${size}-${process.pid}.log`);
  const dest = pino.destination({ dest: file, sync: false, minLength: 8192, periodicFlush: 100 });
  await new Promise((r) => dest.once('ready', r));
  const log = pino({ base: undefined, timestamp: false }, dest);
  const r = reading(size);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    log.info(r);
  }
  // end() writes out everything buffered and closes the fd; the clock stops at 'close'.
  await new Promise((resolve) => {
    dest.once('close', resolve);
    dest.end();
  });
  return result(file, count, elapsed(t0));
}

/** Naive: JSON.stringify + one fs.writeSync per reading on the main thread. */
export async function naiveJsonLines({ dir, count, size }) {
  const file = path.join(dir, `naive-${size}-${process.pid}.log`);
  const fd = fs.openSync(file, 'a');
  const r = reading(size);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.seq = i;
    fs.writeSync(fd, JSON.stringify(r) + '\n');
  }
  const sec = elapsed(t0);
  fs.closeSync(fd);
  return result(file, count, sec);
}
