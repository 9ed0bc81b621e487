// Summarize V8 .cpuprofile files (one per thread with --cpu-prof): top functions by self time.
import fs from 'node:fs';
import path from 'node:path';

export function summarizeProfiles(dir, top = 8) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map();
    const dt = p.timeDeltas ?? [];
    let total = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const n = byId.get(p.samples[i]);
      const d = dt[i] ?? 0;
      total += d;
      const cf = n.callFrame;
      // Paths relative to the repo (never a machine path in the report).
      const url = cf.url ? cf.url.replace(/^.*\/(node_modules\/\.pnpm\/[^/]+\/node_modules\/|packages\/)/, '').replace(/^file:\/\/.*?\/(benchmarks\/)/, '$1') : '';
      const key = `${cf.functionName || '(anonymous)'} ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
      self.set(key, (self.get(key) ?? 0) + d);
    }
    const idle = self.get('(idle)') ?? 0;
    const busy = total - idle;
    const rows = [...self.entries()]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: us / 1000, pctBusy: busy > 0 ? (100 * us) / busy : 0 }));
    // name the thread by its hottest edgecap file
    const urls = p.nodes.map((n) => n.callFrame.url).join(' ');
    const thread = /capture\/dist\/(writer-worker|threads\/writer)/.test(urls) ? 'writer' : /capture\/dist\/(collector-worker|threads\/collector)/.test(urls) ? 'collector' : 'main';
    out.push({ file: f, thread, totalMs: total / 1000, busyMs: busy / 1000, top: rows });
  }
  return out.sort((a, b) => b.busyMs - a.busyMs);
}
