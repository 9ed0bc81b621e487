// The ingest data browser. Everything shown comes from clients (part ids, resource names, file
// names, labels): it goes into the page only as text (textContent, setAttribute, CSSOM), never
// as markup. The admin token arrives in the fragment (#token=...) and is sent as a header.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
  if (token) history.replaceState(null, '', location.pathname + location.search);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  const fmtUs = (us) => new Date(us / 1000).toISOString().replace('T', ' ').replace('Z', '');
  function status(text, bad) { $('status').textContent = text; $('status').className = bad ? 'error' : ''; }

  async function api(path, params, init) {
    const q = params ? '?' + new URLSearchParams(params).toString() : '';
    const r = await fetch('/api/' + path + q, Object.assign({}, init, { headers: Object.assign({ 'x-edgecap-token': token }, (init && init.headers) || {}) }));
    if (!r.ok) {
      let msg = String(r.status);
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r;
  }
  const getJson = (path, params) => api(path, params).then((r) => r.json());

  let current = null; // { ref, readings offset, images offset }
  let plot;

  function refOf(s) { return { part: s.part_id, kind: s.resource_kind, resource: s.resource_name, method: s.method }; }

  async function loadMachines() {
    const m = await getJson('machines');
    const list = $('machine-list');
    list.replaceChildren();
    for (const mach of m.machines) {
      const li = el('li', null, 'machine');
      li.setAttribute('data-part', mach.part_id);
      li.append(el('div', mach.part_id, 'part'));
      for (const s of mach.streams) {
        const b = el('button', s.resource_kind + ' / ' + s.resource_name + ' / ' + s.method + ' (' + s.readings + ')', 'stream-link');
        b.setAttribute('data-key', s.resource_kind + '/' + s.resource_name + '/' + s.method);
        b.addEventListener('click', () => { for (const x of document.querySelectorAll('nav button')) x.classList.remove('active'); b.classList.add('active'); openStream(s).catch((e) => status(e.message, true)); });
        li.append(b);
      }
      if (mach.files) {
        const b = el('button', 'files (' + mach.files + ', ' + fmtBytes(mach.file_bytes) + ')', 'files-link');
        b.addEventListener('click', () => openFiles(mach.part_id).catch((e) => status(e.message, true)));
        li.append(b);
      }
      list.append(li);
    }
    if (m.truncated) list.append(el('li', 'more streams than shown (limit reached)', 'muted'));
  }

  async function openStream(s) {
    current = { s, ref: refOf(s), offset: 0, imgOffset: 0 };
    $('files-view').hidden = true;
    $('stream-view').hidden = false;
    $('stream-title').textContent = s.part_id + ' · ' + s.resource_kind + ' / ' + s.resource_name + ' / ' + s.method;
    const f = await getJson('fields', current.ref);
    const sel = $('field');
    sel.replaceChildren(...f.fields.map((x) => { const o = el('option', x); o.value = x; return o; }));
    $('plot').replaceChildren();
    $('plot').removeAttribute('data-points');
    plot = undefined;
    $('plot-info').textContent = f.fields.length ? '' : 'no numeric fields';
    await Promise.all([f.fields.length ? drawPlot() : null, loadReadings(), loadImages()]);
  }

  function toUs(input) { return input.value ? String(new Date(input.value).getTime() * 1000) : ''; }

  async function drawPlot() {
    const field = $('field').value;
    if (!field || !current) return;
    const params = Object.assign({ field, buckets: String(Math.max(200, Math.floor(($('plot').clientWidth || 800) / 2))) }, current.ref);
    const from = toUs($('from')), to = toUs($('to'));
    if (from) params.from = from;
    if (to) params.to = to;
    const r = await getJson('series', params);
    $('plot-info').textContent = r.points + ' points in ' + r.t.length + ' buckets of ' + (r.bucket_us / 1000) + ' ms (min/max per bucket)' + (r.truncated ? ' — cut at the scan limit' : '');
    // A break in the line where buckets are missing (no readings there), instead of a bridge.
    const data = [[], [], []];
    for (let i = 0; i < r.t.length; i++) {
      if (i > 0 && r.t[i] - r.t[i - 1] > 2 * r.bucket_us / 1e6) { data[0].push((r.t[i - 1] + r.t[i]) / 2); data[1].push(null); data[2].push(null); }
      data[0].push(r.t[i]); data[1].push(r.min[i]); data[2].push(r.max[i]);
    }
    $('plot').setAttribute('data-points', String(r.points));
    if (plot) plot.destroy();
    $('plot').replaceChildren();
    if (typeof uPlot !== 'function') return;
    plot = new uPlot({ width: Math.max(400, $('plot').clientWidth || 800), height: 240,
      series: [{}, { label: field + ' min', stroke: '#2563eb', width: 1 }, { label: field + ' max', stroke: '#1e40af', width: 1 }],
      bands: [{ series: [2, 1], fill: 'rgba(37,99,235,.15)' }] }, data, $('plot'));
  }

  async function loadReadings() {
    const r = await getJson('readings', Object.assign({ offset: String(current.offset), limit: '25' }, current.ref));
    $('readings').tBodies[0].replaceChildren(...r.rows.map((x) => {
      const tr = el('tr');
      tr.append(el('td', x.seq), el('td', fmtUs(x.time_requested_us)), el('td', x.data, 'data'));
      return tr;
    }));
    $('page-info').textContent = 'readings ' + current.offset + '–' + (current.offset + r.rows.length);
    $('prev').disabled = current.offset === 0;
    $('next').disabled = !r.more;
  }

  async function loadImages() {
    const r = await getJson('images', Object.assign({ offset: String(current.imgOffset), limit: '12' }, current.ref));
    const g = $('gallery');
    g.replaceChildren();
    if (!r.images.length) g.append(el('span', 'no images', 'muted'));
    for (const im of r.images) {
      const fig = el('figure');
      const img = el('img');
      img.alt = 'seq ' + im.seq;
      fig.append(img);
      const cap = el('figcaption', 'seq ' + im.seq + ' · ' + im.mime_type + ' · ' + fmtBytes(im.size));
      for (const a of im.annotations) {
        cap.append(el('div', a.label + (a.confidence !== undefined ? ' (' + a.confidence.toFixed(2) + ')' : ''), 'annotation'));
        if (a.box) {
          const b = el('div', null, 'box');
          b.style.left = (a.box[0] * 100) + '%'; b.style.top = (a.box[1] * 100) + '%';
          b.style.width = ((a.box[2] - a.box[0]) * 100) + '%'; b.style.height = ((a.box[3] - a.box[1]) * 100) + '%';
          b.title = a.label;
          fig.append(b);
        }
      }
      fig.append(cap);
      g.append(fig);
      api('image', { part: current.ref.part, file: im.file_id, seq: String(im.seq) }).then((res) => res.blob()).then((blob) => { img.src = URL.createObjectURL(blob); }).catch((e) => { img.alt = e.message; img.title = e.message; });
    }
    $('img-prev').disabled = current.imgOffset === 0;
    $('img-next').disabled = !r.more;
  }

  async function openFiles(part) {
    $('stream-view').hidden = true;
    $('files-view').hidden = false;
    $('files-title').textContent = part + ' · files';
    const r = await getJson('files', { part, limit: '200' });
    $('files').tBodies[0].replaceChildren(...r.files.map((f) => {
      const tr = el('tr');
      const b = el('button', 'download');
      b.addEventListener('click', () => {
        api('download', { part, file: f.file_id }).then((res) => res.blob()).then((blob) => {
          const a = el('a');
          a.href = URL.createObjectURL(blob);
          a.download = f.file_name.split('/').pop() || 'file';
          a.click();
          setTimeout(() => URL.revokeObjectURL(a.href), 10000);
        }).catch((e) => status(e.message, true));
      });
      const td = el('td'); td.append(b);
      tr.append(el('td', f.source), el('td', f.file_name), el('td', fmtBytes(f.size)), el('td', new Date(f.received_at_ms).toISOString()), td);
      return tr;
    }));
    if (r.more) $('files').tBodies[0].append(el('tr', 'more files than shown', 'muted'));
  }

  async function loadGaps() {
    const r = await getJson('gaps');
    const reasons = new Map();
    const reasonClass = (x) => { if (!reasons.has(x)) reasons.set(x, 'r' + Math.min(reasons.size, 4)); return reasons.get(x); };
    const rows = [];
    for (const s of r.streams) {
      let max = 0;
      for (const x of s.received) max = Math.max(max, x.to_seq);
      for (const x of s.gaps) max = Math.max(max, x.to_seq);
      const span = max + 1;
      const row = el('div', null, 'gaprow');
      const name = el('div', s.part_id + ' · ' + s.resource_kind + ' / ' + s.resource + ' / ' + s.method + ' — ' + s.readings + ' received, ' + s.unexplained_readings + ' unexplained', 'gapname');
      const bar = el('div', null, 'gapbar');
      bar.setAttribute('data-stream', s.part_id + '/' + s.resource_kind + '/' + s.resource + '/' + s.method);
      const seg = (from, to, cls, title) => {
        const d = el('div', null, 'seg ' + cls);
        d.style.left = (from / span * 100) + '%';
        d.style.width = ((to - from + 1) / span * 100) + '%';
        d.setAttribute('data-from', String(from));
        d.setAttribute('data-to', String(to));
        d.title = title + ': seq ' + from + '–' + to;
        bar.append(d);
      };
      for (const x of s.received) seg(x.from_seq, x.to_seq, 'received', 'received');
      for (const g of s.gaps) {
        if (g.explained) seg(g.from_seq, g.to_seq, 'explained ' + reasonClass(g.reasons.join(', ')), 'explained (' + g.reasons.join(', ') + ')');
        else seg(g.from_seq, g.to_seq, 'unexplained', 'unexplained gap');
      }
      row.append(name, bar);
      rows.push(row);
    }
    $('gaps').replaceChildren(...rows);
    if (!rows.length) $('gaps').append(el('span', 'nothing received yet', 'muted'));
    const legend = [['received', 'received'], ['unexplained', 'unexplained gap'], ...[...reasons].map(([k, c]) => [c, 'explained: ' + k])];
    $('gap-legend').replaceChildren(...legend.map(([c, t]) => { const s = el('span'); s.append(el('span', null, 'sw ' + c), el('span', t)); return s; }));
  }

  async function loadKeys() {
    const r = await getJson('keys');
    $('keys').tBodies[0].replaceChildren(...r.keys.map((k) => {
      const tr = el('tr');
      tr.setAttribute('data-key-id', k.key_id);
      const td = el('td');
      if (k.revoked_at_ms === null) {
        const b = el('button', 'revoke');
        b.addEventListener('click', () => {
          api('keys/revoke', null, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key_id: k.key_id }) })
            .then(loadKeys).catch((e) => status(e.message, true));
        });
        td.append(b);
      }
      tr.append(el('td', k.key_id), el('td', k.part_id), el('td', new Date(k.created_at_ms).toISOString()), el('td', k.revoked_at_ms === null ? 'active' : 'revoked ' + new Date(k.revoked_at_ms).toISOString(), 'state'), td);
      return tr;
    }));
  }

  $('create-key').addEventListener('click', () => {
    api('keys', null, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ part_id: $('new-part').value }) })
      .then((r) => r.json())
      .then((k) => { const p = $('new-secret'); p.hidden = false; p.textContent = 'key ' + k.key_id + ' for ' + k.part_id + ' — secret (shown once): ' + k.secret; return loadKeys(); })
      .catch((e) => status(e.message, true));
  });
  $('plot-btn').addEventListener('click', () => drawPlot().catch((e) => status(e.message, true)));
  $('field').addEventListener('change', () => drawPlot().catch((e) => status(e.message, true)));
  $('prev').addEventListener('click', () => { current.offset = Math.max(0, current.offset - 25); loadReadings().catch((e) => status(e.message, true)); });
  $('next').addEventListener('click', () => { current.offset += 25; loadReadings().catch((e) => status(e.message, true)); });
  $('img-prev').addEventListener('click', () => { current.imgOffset = Math.max(0, current.imgOffset - 12); loadImages().catch((e) => status(e.message, true)); });
  $('img-next').addEventListener('click', () => { current.imgOffset += 12; loadImages().catch((e) => status(e.message, true)); });

  if (!token) status('open this page with #token=<admin token>', true);
  Promise.all([loadMachines(), loadGaps(), loadKeys()]).then(() => status('loaded ' + new Date().toLocaleTimeString())).catch((e) => status(e.message, true));
})();
