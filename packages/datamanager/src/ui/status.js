// The edge status page. Every value from the server goes into the page as text (textContent,
// setAttribute), never as markup: resource names, reasons and readings cannot inject anything.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  // The token comes in the fragment (#token=...), never sent to the server in a URL; it is
  // dropped from the address bar once read.
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get('token') || '';
  if (token) history.replaceState(null, '', location.pathname + location.search);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmtNum(n) {
    if (n === null || n === undefined) return '–';
    if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return String(Math.round(n * 10) / 10);
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : '–'; }
  function kv(table, rows) {
    table.replaceChildren(...rows.map(([k, v]) => { const tr = el('tr'); tr.append(el('td', k), el('td', v)); return tr; }));
  }

  const MAX_POINTS = 300;
  const streams = new Map(); // key -> { root, plot, data, parts }
  let uploadPlot, uploadData = [[], []];

  function makePlot(target, label, data, width) {
    if (typeof uPlot !== 'function') return undefined;
    return new uPlot({ width: width, height: 110, legend: { show: false }, scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [{}, { label: label, stroke: '#2563eb', fill: 'rgba(37,99,235,.12)', width: 1.5 }], axes: [{ size: 28 }, { size: 44 }] }, data, target);
  }
  function push(data, t, v) {
    data[0].push(t); data[1].push(v);
    if (data[0].length > MAX_POINTS) { data[0].shift(); data[1].shift(); }
  }

  function streamCard(s) {
    const root = el('div', null, 'stream');
    root.setAttribute('data-stream', s.key);
    const left = el('div');
    const h = el('h3', s.kind + ' / ' + s.resource + ' / ' + s.method);
    const rateLine = el('div'); const rate = el('span', '0', 'rate'); rateLine.append(rate, el('span', ' readings/s'));
    const counters = el('div', null, 'counters');
    const plotBox = el('div', null, 'plot');
    left.append(h, rateLine, counters, plotBox);
    const last = el('div', null, 'last');
    last.append(el('div', 'last reading', 'counters'));
    root.append(left, last);
    $('streams').append(root);
    const data = [[], []];
    return { root, rate, counters, plotBox, last, data, plot: undefined, seq: -1, imgUrl: '' };
  }

  function renderLast(c, l) {
    if (!l) return;
    if (l.seq === c.seq) return;
    c.seq = l.seq;
    const head = el('div', 'last reading · seq ' + l.seq + ' · ' + fmtTime(l.time_ms), 'counters');
    if (l.image) {
      const img = el('img');
      img.alt = 'last image of ' + c.root.getAttribute('data-stream');
      fetch(l.image, { headers: token ? { 'x-edgecap-token': token } : {} })
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
        .then((b) => { if (c.imgUrl) URL.revokeObjectURL(c.imgUrl); c.imgUrl = URL.createObjectURL(b); img.src = c.imgUrl; })
        .catch(() => undefined);
      c.last.replaceChildren(head, img);
    } else if (l.values) {
      const t = el('table');
      for (const [k, v] of l.values) { const tr = el('tr'); tr.append(el('td', k), el('td', v)); t.append(tr); }
      c.last.replaceChildren(head, t);
    } else {
      c.last.replaceChildren(head, el('div', (l.mime_type || 'binary') + ', ' + fmtBytes(l.size)));
    }
  }

  function render(m) {
    $('part').textContent = m.part_id;
    $('capture-state').textContent = m.capture.running ? 'running' : 'stopped';
    $('sync-state').textContent = m.sync.enabled ? (m.sync.offline ? 'offline' : 'on') : 'off';
    for (const b of document.querySelectorAll('#controls button')) b.disabled = !(m.controls && token);
    if (!(m.controls && token)) $('control-msg').textContent = m.controls ? 'open the page with #token=… to use the controls' : 'controls off (no token configured)';
    if (m.full) { for (const c of streams.values()) c.root.remove(); streams.clear(); }
    const seen = new Set();
    for (const s of m.capture.streams) {
      seen.add(s.key);
      let c = streams.get(s.key);
      if (!c) {
        c = streamCard(s);
        streams.set(s.key, c);
        const hist = m.rates.streams[s.key];
        if (hist) for (let i = 0; i < m.rates.t.length; i++) push(c.data, m.rates.t[i], hist[i]);
        c.plot = makePlot(c.plotBox, 'readings/s', c.data, Math.max(240, c.plotBox.clientWidth || 400));
      } else if (!m.full && m.rates.t.length) {
        push(c.data, m.rates.t[m.rates.t.length - 1], s.rate);
        if (c.plot) c.plot.setData(c.data);
      }
      c.rate.textContent = fmtNum(s.rate);
      c.root.setAttribute('data-rate', String(s.rate));
      c.root.setAttribute('data-points', String(c.data[0].length));
      const cs = [['captured', s.captured], ['dropped', s.dropped], ['missed deadlines', s.missedDeadlines], ['capture errors', s.captureErrors], ['write errors', s.writeErrors], ['next seq', s.nextSeq], ['bytes', fmtBytes(s.bytes)]];
      c.counters.replaceChildren(...cs.map(([k, v]) => { const sp = el('span', k + ' '); sp.append(el('b', typeof v === 'number' ? fmtNum(v) : v)); return sp; }));
      renderLast(c, s.last);
    }
    for (const [k, c] of streams) if (!seen.has(k)) { c.root.remove(); streams.delete(k); }

    const sy = m.sync;
    kv($('sync'), sy.enabled ? [
      ['pending', sy.pendingFiles + ' files, ' + fmtBytes(sy.pendingBytes)],
      ['uploaded', sy.uploadedFiles + ' files, ' + fmtBytes(sy.uploadedBytes)],
      ['upload rate', fmtBytes(m.rates.upload.length ? m.rates.upload[m.rates.upload.length - 1] : 0) + '/s'],
      ['last error', sy.lastError || '–'],
      ['next retry', sy.nextRetryAt ? fmtTime(sy.nextRetryAt) : '–'],
    ] : [['sync', 'off']]);
    if (m.full) { uploadData = [[], []]; for (let i = 0; i < m.rates.t.length; i++) push(uploadData, m.rates.t[i], m.rates.upload[i]); }
    else if (m.rates.t.length) push(uploadData, m.rates.t[m.rates.t.length - 1], m.rates.upload[m.rates.upload.length - 1]);
    if (!uploadPlot) uploadPlot = makePlot($('upload-plot'), 'bytes/s', uploadData, Math.max(260, $('upload-plot').clientWidth || 300));
    else uploadPlot.setData(uploadData);

    $('failed-count').textContent = '(' + m.failed_total + ')';
    $('failed').tBodies[0].replaceChildren(...m.failed.map((f) => { const tr = el('tr'); tr.append(el('td', f.file), el('td', f.reason)); return tr; }));
    kv($('cpu'), m.cpu && m.cpu.length ? m.cpu.map((c) => [c.thread, c.pct.toFixed(2) + ' %']) : [['cpu', '–']]);
    const j = m.janitor;
    kv($('disk'), j ? [
      ['disk used', j.lastUsage !== undefined ? (j.lastUsage * 100).toFixed(1) + '%' : '–'],
      ['capture dir share', j.lastCaptureShare !== undefined ? (j.lastCaptureShare * 100).toFixed(1) + '%' : '–'],
      ['janitor checks', j.checks], ['deleted', j.deletedFiles + ' files, ' + fmtBytes(j.deletedBytes)], ['warnings', j.warnings], ['errors', j.errors],
    ] : [['janitor', 'not running']]);
    $('events').replaceChildren(...m.events.slice().reverse().map((e) => el('li', fmtTime(e.t) + ' ' + e.kind + ': ' + e.text, e.kind === 'control' ? '' : 'error')));
  }

  for (const b of document.querySelectorAll('#controls button')) {
    b.addEventListener('click', () => {
      const action = b.getAttribute('data-action');
      $('control-msg').textContent = action + '…';
      fetch('/api/control/' + action, { method: 'POST', headers: { 'x-edgecap-token': token } })
        .then((r) => r.json().then((j) => ({ ok: r.ok, j })))
        .then(({ ok, j }) => { $('control-msg').textContent = ok ? action + ': done' : action + ': ' + j.error; })
        .catch((e) => { $('control-msg').textContent = action + ': ' + e.message; });
    });
  }

  // Server-sent events read with fetch rather than EventSource, so the token travels in a
  // header and never in a URL (history, proxy and access logs).
  const live = (on) => { $('conn').textContent = on ? 'live' : 'disconnected'; $('conn').className = on ? 'badge live' : 'badge down'; };
  async function events() {
    const r = await fetch('/events', { headers: token ? { 'x-edgecap-token': token } : {} });
    if (!r.ok || !r.body) throw new Error('events: ' + r.status);
    live(true);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const data = buf.slice(0, i).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        buf = buf.slice(i + 2);
        if (data) render(JSON.parse(data));
      }
    }
  }
  (function connect() {
    events().catch(() => undefined).finally(() => { live(false); setTimeout(connect, 1000); });
  })();
})();
