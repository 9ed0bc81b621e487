// Child-process entry: node child.js <module> <export> <json args>. Reports {value} over IPC,
// with the whole process's CPU time (every thread) and peak RSS added.
const [modulePath, fn, argsJson] = process.argv.slice(2);
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
try {
  const mod = await import(modulePath);
  const value = await mod[fn](JSON.parse(argsJson));
  const cpu = process.cpuUsage(cpu0);
  const ru = process.resourceUsage();
  const proc = { cpuSec: (cpu.user + cpu.system) / 1e6, cpuUserSec: cpu.user / 1e6, cpuSysSec: cpu.system / 1e6, maxRssMB: ru.maxRSS / 1024, wallSec: Number(process.hrtime.bigint() - t0) / 1e9 };
  process.send({ ok: true, value: { ...value, proc: { ...proc, ...(value && value.proc) } } }, () => process.exit(0));
} catch (e) {
  process.send({ ok: false, error: e && e.stack ? e.stack : String(e) }, () => process.exit(1));
}
