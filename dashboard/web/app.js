// Confide dashboard: renders the state the server streams as server-sent events
// ("status": the overview, committee, clients and checkpoints; "round": one round's
// record) and draws the per-round charts as plain SVG. No dependencies, no network
// access beyond this page's origin.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 360, H = 200, M = { l: 46, r: 12, t: 10, b: 44 };

  // Each chart plots some fields of the round records; scale converts units.
  const CHARTS = [
    { id: 'accuracy', title: 'Accuracy', series: [
      { key: 'accuracy', label: 'central' },
      { key: 'federated_accuracy', label: 'federated' }] },
    { id: 'loss', title: 'Loss', series: [
      { key: 'loss', label: 'central' },
      { key: 'federated_loss', label: 'federated' },
      { key: 'train_loss', label: 'training (mean)' }] },
    { id: 'epsilon', title: 'ε spent', series: [
      { key: 'epsilon', label: 'worst client, record-level', when: (s) => s.privacy.dp_sgd },
      { key: 'user_epsilon', label: 'user-level', when: (s) => !!s.privacy.user_level }],
    empty: (s) => (s && !s.privacy.dp_sgd && !s.privacy.user_level) ? 'no DP: ε = ∞ (no guarantee)' : 'no data yet' },
    { id: 'bytes', title: 'Traffic (MB)', series: [
      { key: 'bytes_down', label: 'to clients', scale: 1e-6 },
      { key: 'bytes_up', label: 'from clients', scale: 1e-6 }] },
    { id: 'seconds', title: 'Round time (s)', series: [
      { key: 'seconds', label: 'wall time' }] },
    { id: 'dropouts', title: 'Dropouts and refusals', series: [
      { key: 'dropouts', label: 'dropouts' },
      { key: 'refusals', label: 'refusals' },
      { key: 'errors', label: 'errors', sparse: true }] },
  ];

  const rounds = new Map();
  let status = null;
  let drawPending = false;

  const $ = (id) => document.getElementById(id);

  function text(id, value) {
    const el = $(id);
    if (el) el.textContent = value;
    return el;
  }

  function el(tag, attrs, parent, content) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (content !== undefined) e.textContent = content;
    if (parent) parent.appendChild(e);
    return e;
  }

  function svg(tag, attrs, parent, content) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (content !== undefined) e.textContent = content;
    if (parent) parent.appendChild(e);
    return e;
  }

  // num formats a number with about three significant digits.
  function num(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (!Number.isFinite(v)) return '∞';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    if (a >= 1000) return Math.round(v).toLocaleString('en-US');
    return String(Number(v.toPrecision(3)));
  }

  function size(bytes) {
    if (bytes >= 1e9) return num(bytes / 1e9) + ' GB';
    if (bytes >= 1e6) return num(bytes / 1e6) + ' MB';
    if (bytes >= 1e3) return num(bytes / 1e3) + ' kB';
    return bytes + ' B';
  }

  function ago(seconds) {
    if (seconds < 1) return 'just now';
    if (seconds < 120) return Math.round(seconds) + ' s ago';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min ago';
    return Math.round(seconds / 3600) + ' h ago';
  }

  // niceStep rounds a raw tick interval to 1, 2 or 5 times a power of ten.
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function setupCharts() {
    const box = $('charts');
    for (const c of CHARTS) {
      const fig = el('figure', { id: 'chart-' + c.id, class: 'chart', 'data-chart': c.id }, box);
      el('figcaption', {}, fig, c.title);
    }
  }

  function drawCharts() {
    drawPending = false;
    const recs = [...rounds.values()].sort((a, b) => a.round - b.round);
    document.body.dataset.rounds = String(recs.length);
    for (const c of CHARTS) drawChart($('chart-' + c.id), c, recs);
  }

  function scheduleDraw() {
    if (!drawPending) {
      drawPending = true;
      requestAnimationFrame(drawCharts);
    }
  }

  function drawChart(fig, spec, recs) {
    const old = fig.querySelector('svg');
    if (old) old.remove();
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title }, fig);
    const series = [];
    spec.series.forEach((s) => {
      if (s.when && (!status || !s.when(status))) return;
      const pts = [];
      for (const r of recs) {
        const v = r[s.key];
        if (typeof v === 'number' && Number.isFinite(v)) pts.push([r.round, v * (s.scale || 1)]);
      }
      if (pts.length === 0 || (s.sparse && pts.every((p) => p[1] === 0))) return;
      series.push({ spec: s, pts: pts, cls: 's' + series.length });
    });
    if (series.length === 0) {
      const msg = spec.empty ? spec.empty(status) : 'no data yet';
      svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, root, msg);
      return;
    }
    let x0 = Infinity, x1 = -Infinity, y0 = 0, y1 = -Infinity;
    for (const s of series) {
      for (const [x, y] of s.pts) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 <= y0) y1 = y0 + 1;
    const step = niceStep((y1 - y0) / 4);
    y0 = Math.floor(y0 / step) * step;
    y1 = Math.ceil(y1 / step) * step;
    const px = (x) => M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r);
    const py = (y) => H - M.b - (y - y0) / (y1 - y0) * (H - M.t - M.b);
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));

    for (let y = y0; y <= y1 + step / 2; y += step) {
      svg('line', { x1: M.l, x2: W - M.r, y1: py(y), y2: py(y), class: 'grid' }, root);
      svg('text', { x: M.l - 5, y: py(y) + 3, 'text-anchor': 'end' }, root, y.toFixed(decimals));
    }
    const xstep = Math.max(1, Math.ceil((x1 - x0) / 6));
    for (let x = Math.ceil(x0); x <= x1; x += xstep) {
      svg('text', { x: px(x), y: H - M.b + 13, 'text-anchor': 'middle' }, root, String(x));
    }
    svg('line', { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b, class: 'axis' }, root);
    svg('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, class: 'axis' }, root);
    svg('text', { x: W - M.r, y: H - M.b + 24, 'text-anchor': 'end' }, root, 'round');

    let lx = M.l;
    for (const s of series) {
      const d = s.pts.map(([x, y], i) => (i ? 'L' : 'M') + px(x).toFixed(1) + ' ' + py(y).toFixed(1)).join(' ');
      svg('path', { d: d, class: 'series ' + s.cls, 'data-key': s.spec.key, 'data-points': s.pts.length }, root);
      if (s.pts.length <= 80) {
        for (const [x, y] of s.pts) {
          const dot = svg('circle', { cx: px(x), cy: py(y), r: 2.5, class: s.cls, 'data-round': x, 'data-value': y }, root);
          svg('title', {}, dot, `round ${x}: ${num(y)}`);
        }
      }
      const g = svg('g', { class: 'legend' }, root);
      svg('line', { x1: lx, x2: lx + 14, y1: H - 8, y2: H - 8, class: 'series ' + s.cls }, g);
      svg('text', { x: lx + 18, y: H - 5 }, g, s.spec.label);
      lx += 26 + 5.5 * s.spec.label.length;
    }
  }

  function renderStatus(s) {
    status = s;
    text('kind', s.kind);
    text('name', s.name || '');
    document.title = 'Confide ' + s.kind + (s.name ? ' ' + s.name : '');
    const st = text('state', s.state);
    st.className = 'big ' + s.state;
    text('waiting', s.waiting || '');
    const r = text('round', String(s.round));
    r.dataset.value = String(s.round);
    text('rounds', String(s.rounds));
    text('current', s.current ? `round ${s.current} in progress` : '');
    const on = text('clients-online', String(s.clients_online));
    on.dataset.value = String(s.clients_online);
    text('clients-registered', String(s.clients_registered));

    const p = s.privacy;
    const em = $('eps-max');
    if (p.dp_sgd) {
      em.textContent = num(p.epsilon_max);
      em.dataset.value = String(p.epsilon_max);
      const mean = text('eps-mean', num(p.epsilon_mean));
      mean.dataset.value = String(p.epsilon_mean);
      text('eps-clients', String(p.clients_accounted));
    } else {
      em.textContent = '∞';
      em.dataset.value = 'Infinity';
      text('eps-mean', '∞');
      text('eps-clients', 'all');
    }
    renderSettings(s);
    renderCommittee(s.committee, p.secure_aggregation);
    renderCheckpoints(s);
    renderClients(s);
    scheduleDraw();
  }

  function dl(id, pairs) {
    const box = $(id);
    box.replaceChildren();
    for (const [k, v] of pairs) {
      el('dt', {}, box, k);
      el('dd', {}, box, v);
    }
  }

  function renderSettings(s) {
    const p = s.privacy;
    const pairs = [['strategy', s.strategy || '–']];
    if (p.dp_sgd) {
      pairs.push(['DP-SGD', `σ = ${p.noise_multiplier}, C = ${p.max_grad_norm}, q = ${num(p.sample_rate)}, ${p.steps} steps a round`]);
      pairs.push(['accounting', `δ = ${p.delta}, ${(p.accountant || 'rdp').toUpperCase()} accountant`]);
    } else {
      pairs.push(['DP-SGD', 'off: no record-level guarantee (ε = ∞)']);
    }
    if (p.user_level) {
      const u = p.user_level;
      pairs.push(['user-level DP', `${u.mode} noise, z = ${u.noise_multiplier}, clip ${num(u.clip)}${u.adaptive ? ' (adaptive)' : ''}, ε = ${num(u.epsilon)}`]);
    }
    if (p.update_clip_norm) pairs.push(['update clip', num(p.update_clip_norm)]);
    pairs.push(['secure aggregation', p.secure_aggregation ? 'on: the server sees only sums' : 'off']);
    if (s.initial_accuracy !== undefined) pairs.push(['initial accuracy', num(s.initial_accuracy)]);
    dl('settings', pairs);
  }

  function renderCommittee(c, on) {
    if (!c) {
      dl('committee', [['status', on ? 'no committee yet' : 'no secure aggregation']]);
      return;
    }
    const pairs = [
      ['session', c.session],
      ['stage', c.ready ? 'ready' : 'key setup: ' + c.stage],
      ['holders online', `${c.holders_online} of ${c.holders} (threshold t = ${c.threshold}, K = ${c.size})`],
      ['can decrypt', c.ready && c.holders_online >= c.threshold ? 'yes' : 'no'],
    ];
    if (c.ready) pairs.push(['formed after round', String(c.formed_round || 0)]);
    if (c.last_failure) pairs.push(['last setup failure', c.last_failure]);
    dl('committee', pairs);
  }

  function renderCheckpoints(s) {
    const ul = $('checkpoints');
    ul.replaceChildren();
    for (const c of s.checkpoints || []) {
      const li = el('li', {}, ul);
      el('a', { href: 'checkpoints/' + encodeURIComponent(c.name), download: c.name }, li, c.name);
      li.appendChild(document.createTextNode(` · ${size(c.bytes)} · ${c.modified}`));
    }
    let note = '';
    if (!s.checkpoints || s.checkpoints.length === 0) {
      note = s.kind === 'simulation' ? 'The final model is written to the results directory when the run ends.' : 'No checkpoints (the server writes them with --checkpoint-dir).';
    }
    text('checkpoints-note', note);
  }

  function renderClients(s) {
    const body = el('tbody');
    for (const c of s.clients) {
      const tr = el('tr', {}, body);
      el('td', {}, tr, c.id);
      const dot = el('td', {}, tr);
      el('span', { class: c.online ? 'dot on' : 'dot', title: c.online ? 'online' : 'offline' }, dot);
      el('td', {}, tr, ago(c.seen_ago));
      el('td', {}, tr, String(c.sampled));
      el('td', {}, tr, String(c.rounds));
      el('td', {}, tr, s.privacy.dp_sgd ? num(c.epsilon) : '∞');
      el('td', {}, tr, String(c.refusals));
      el('td', {}, tr, String(c.dropouts));
      el('td', {}, tr, c.member ? 'member' : '');
    }
    $('clients').querySelector('tbody').replaceWith(body);
    let note = `${s.clients.length} of ${s.clients_registered} registered clients`;
    if (s.clients.length < s.clients_registered) note += ' (the first by id)';
    if (s.clock === 'virtual') note += '; last seen on the simulated clock';
    text('clients-note', note);
  }

  function connect() {
    const badge = $('connection');
    const es = new EventSource('api/events');
    es.addEventListener('status', (e) => renderStatus(JSON.parse(e.data)));
    es.addEventListener('round', (e) => {
      const r = JSON.parse(e.data);
      rounds.set(r.round, r);
      scheduleDraw();
    });
    es.onopen = () => { badge.textContent = 'live'; badge.className = 'badge live'; };
    es.onerror = () => { badge.textContent = 'reconnecting…'; badge.className = 'badge lost'; };
  }

  setupCharts();
  drawCharts();
  connect();
})();
