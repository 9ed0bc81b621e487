// Hand-rolled SVG plots: no dependencies, readable in any browser or on GitHub.
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function niceTicksLog(min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
  return out;
}

function label(v) {
  if (v >= 1e9) return `${v / 1e9}G`;
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

/**
 * Line chart with log x and log y. series: [{name, points: [[x, y], ...]}].
 */
export function lineChartLogLog({ title, xLabel, yLabel, series, xTickLabels }) {
  const W = 720, H = 420, L = 80, R = 200, T = 40, B = 60;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  if (pts.length === 0) return emptySvg(title, 'no data');
  const xmin = Math.min(...pts.map((p) => p[0])), xmax = Math.max(...pts.map((p) => p[0]));
  const ymin = 10 ** Math.floor(Math.log10(Math.min(...pts.map((p) => p[1])))), ymax = 10 ** Math.ceil(Math.log10(Math.max(...pts.map((p) => p[1]))));
  const lx = (x) => L + ((Math.log10(x) - Math.log10(xmin)) / Math.max(1e-9, Math.log10(xmax) - Math.log10(xmin))) * (W - L - R);
  const ly = (y) => H - B - ((Math.log10(y) - Math.log10(ymin)) / Math.max(1e-9, Math.log10(ymax) - Math.log10(ymin))) * (H - T - B);
  let s = svgHead(W, H, title);
  for (const t of niceTicksLog(ymin, ymax)) {
    if (t < ymin || t > ymax) continue;
    s += `<line x1="${L}" x2="${W - R}" y1="${ly(t)}" y2="${ly(t)}" stroke="#ddd"/><text x="${L - 6}" y="${ly(t) + 4}" text-anchor="end" font-size="11">${label(t)}</text>`;
  }
  const xt = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  for (const t of xt) s += `<line x1="${lx(t)}" x2="${lx(t)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${lx(t)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${esc(xTickLabels?.(t) ?? label(t))}</text>`;
  s += axes(W, H, L, R, T, B, xLabel, yLabel);
  series.forEach((ser, i) => {
    const c = COLORS[i % COLORS.length];
    const p = ser.points.filter(([x, y]) => x > 0 && y > 0).sort((a, b) => a[0] - b[0]);
    if (p.length) s += `<polyline fill="none" stroke="${c}" stroke-width="2" ${ser.dashed ? 'stroke-dasharray="6 4"' : ''} points="${p.map(([x, y]) => `${lx(x)},${ly(y)}`).join(' ')}"/>`;
    for (const [x, y] of p) s += `<circle cx="${lx(x)}" cy="${ly(y)}" r="3.5" fill="${c}"/>`;
    s += `<rect x="${W - R + 14}" y="${T + i * 20}" width="14" height="4" fill="${c}"/><text x="${W - R + 34}" y="${T + i * 20 + 6}" font-size="12">${esc(ser.name)}</text>`;
  });
  return s + '</svg>\n';
}

/** Grouped histogram: one group per bin, one bar per series (share of samples, %). */
export function histogramChart({ title, xLabel, bins, series }) {
  const W = 760, H = 420, L = 60, R = 210, T = 40, B = 70;
  if (!series.length) return emptySvg(title, 'no data');
  const n = bins.length;
  const gw = (W - L - R) / n;
  const bw = Math.max(1, (gw - 4) / series.length);
  const ly = (pct) => H - B - (pct / 100) * (H - T - B);
  let s = svgHead(W, H, title);
  for (const t of [0, 25, 50, 75, 100]) s += `<line x1="${L}" x2="${W - R}" y1="${ly(t)}" y2="${ly(t)}" stroke="#ddd"/><text x="${L - 6}" y="${ly(t) + 4}" text-anchor="end" font-size="11">${t}%</text>`;
  bins.forEach((b, k) => {
    s += `<text x="${L + k * gw + gw / 2}" y="${H - B + 14}" text-anchor="middle" font-size="10">${esc(b)}</text>`;
  });
  series.forEach((ser, i) => {
    const c = COLORS[i % COLORS.length];
    const total = ser.counts.reduce((a, b) => a + b, 0) || 1;
    ser.counts.forEach((cnt, k) => {
      const pct = (100 * cnt) / total;
      s += `<rect x="${L + k * gw + 2 + i * bw}" y="${ly(pct)}" width="${bw}" height="${ly(0) - ly(pct)}" fill="${c}"/>`;
    });
    s += `<rect x="${W - R + 14}" y="${T + i * 18}" width="12" height="12" fill="${c}"/><text x="${W - R + 32}" y="${T + i * 18 + 10}" font-size="12">${esc(ser.name)}</text>`;
  });
  s += axes(W, H, L, R, T, B, xLabel, 'share of intervals');
  return s + '</svg>\n';
}

function svgHead(W, H, title) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`;
}
function axes(W, H, L, R, T, B, xLabel, yLabel) {
  return `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/><text x="${(L + W - R) / 2}" y="${H - B + 40}" text-anchor="middle" font-size="12">${esc(xLabel)}</text><text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`;
}
function emptySvg(title, why) {
  return `${svgHead(480, 120, title)}<text x="240" y="70" text-anchor="middle" font-size="13">${esc(why)}</text></svg>\n`;
}
