import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';
import { runScenario, runSlowConsumer, resultTable, type ScenarioOptions, type ScenarioResult, type SlowConsumerResult } from './torture.js';

// CI runs the short version; `pnpm torture --long` (EDGECAP_TORTURE=long) the long one and
// records its table in RELIABILITY.md.
const long = process.env.EDGECAP_TORTURE === 'long';
const scenarios: ScenarioOptions[] = [
  // Edge kills leave the edge time to start, capture and sync between kills.
  // Start-up to the first reading now takes 1–5 s on a loaded 2-core host (writer supervision,
  // ledger and lock set-up; issue #14 measures it): kills 0.9–2 s apart left no time to flush.
  { name: 'edge-crash-loop', fault: 'edge', rounds: long ? 200 : 30, minGapMs: 2500, maxGapMs: 4000 },
  { name: 'ingest-crash-loop', fault: 'ingest', rounds: long ? 60 : 8 },
  { name: 'both-crash-loop', fault: 'both', rounds: long ? 60 : 8, minGapMs: 2500, maxGapMs: 4000 },
  { name: 'network-faults', fault: 'network', rounds: long ? 90 : 12 },
  { name: 'disk-full', fault: 'disk-full', rounds: long ? 60 : 16, minGapMs: 800, maxGapMs: 1200 },
];
const canMount = process.getuid?.() === 0;
const results: ScenarioResult[] = [];
let slow: SlowConsumerResult | undefined;

describe.sequential('torture: kills and cut networks with exact accounting', () => {
  for (const s of scenarios) {
    it(
      s.name,
      async (ctx) => {
        if (s.fault === 'disk-full' && !canMount) ctx.skip('needs root to mount a small tmpfs; CI runs as root');
        const r = await runScenario(s);
        results.push(r);
        process.stdout.write(`\n${resultTable([r])}\n`);
        expect(r.flushed).toBeGreaterThan(0);
        expect(r.ingested).toBeGreaterThanOrEqual(r.flushed > 0 ? 1 : 0);
        expect({ lost: r.lost, duplicated: r.duplicated, corrupt: r.corrupt, unexplainedGaps: r.unexplainedGaps }).toEqual({ lost: 0, duplicated: 0, corrupt: 0, unexplainedGaps: 0 });
        if (s.fault === 'edge' || s.fault === 'both') expect(r.kills).toBeGreaterThan(0);
        if (s.fault === 'disk-full') expect(r.deletedByJanitor).toBeGreaterThan(0);
      },
      long ? 3_600_000 : 300_000,
    );
  }

  it('slow consumer: drops counted exactly and explained, memory flat, disk intact', async () => {
    const r = await runSlowConsumer(long ? 10 : 2);
    process.stdout.write(`\nslow consumer: ${JSON.stringify(r)}\n`);
    slow = r;
    expect(r.dropped).toBeGreaterThan(0);
    expect(r.corruptFiles).toBe(0);
    // What the edge says it flushed is exactly what a consumer read; every ring drop is in a GAP frame.
    expect(r.writeDropped).toBe(0);
    expect(r.onDisk).toBe(r.flushed);
    expect(r.gapSeqs).toBe(r.dropped);
    expect(r.rssMaxMiB - r.rssStartMiB).toBeLessThan(150);
  }, 120_000);

  it.runIf(long)('records the long run in RELIABILITY.md', () => {
    const file = path.join(REPO, 'RELIABILITY.md');
    const head = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('<!-- results -->')[0]! : '# Reliability\n\n';
    fs.writeFileSync(file, `${head}<!-- results -->\nLong run, ${new Date().toISOString()}, command \`pnpm torture --long\`:\n\n${resultTable(results)}\n\nSlow consumer: ${JSON.stringify(slow)}\n`);
    expect(results.length).toBe(scenarios.length);
  });
});
