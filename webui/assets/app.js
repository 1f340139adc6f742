// stagefarm's web view: one page, routed by the URL's hash, reading
// nothing but the JSON API under /api/v1/ (docs/web-api.md). Live: the
// server's event stream says when something changed, and the page shown
// reads its data again.
'use strict';

const main = document.getElementById('main');
let current = null;      // the page shown: {render: async fn}
let refreshTimer = null;

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
}

function secs(n) {
  if (!(n > 0)) return '';
  if (n < 1) return (n * 1000).toFixed(0) + ' ms';
  if (n < 120) return n.toFixed(n < 10 ? 2 : 1) + ' s';
  return Math.floor(n / 60) + ' m ' + Math.round(n % 60) + ' s';
}

function when(t) {
  if (!(t > 0)) return '';
  return new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

function bytes(n) {
  if (!(n >= 0)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

function state(s) {
  return `<span class="state state-${esc(s)}">${esc(s)}</span>`;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({'X-Stagefarm': '1'}, options.headers || {});
  const resp = await fetch('/api/v1/' + path, Object.assign({}, options, {headers}));
  const type = resp.headers.get('Content-Type') || '';
  const body = type.startsWith('application/json') ? await resp.json() : await resp.text();
  if (!resp.ok) {
    throw new ApiError(resp.status, (body && body.error) || String(body) || resp.statusText);
  }
  return body;
}

// Where the hash points: ["builds", id] and its query.
function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent),
          query: new URLSearchParams(query || '')};
}

function setNav(name) {
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('current', a.dataset.nav === name);
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function show() {
  const {parts, query} = route();
  const page = parts[0] || 'builds';
  setNav(page);
  if (page === 'builds' && parts[1]) current = buildPage(parts[1]);
  else if (page === 'workers') current = workersPage();
  else if (page === 'cache') current = cachePage();
  else if (page === 'cas') current = casPage(query);
  else current = buildsPage(query);
  await render(true);
}

async function render(first) {
  const page = current;
  try {
    await page.render(first);
  } catch (e) {
    if (page !== current) return;
    if (e instanceof ApiError && e.status === 401) return loginPage();
    main.innerHTML = `<h1>Error</h1><p class="error" role="alert">${esc(e.message)}</p>`;
  }
}

// --- sign-in -----------------------------------------------------------------

function loginPage() {
  current = {render: async () => {}};
  main.innerHTML = `
    <h1>Sign in</h1>
    <form class="login" id="login">
      <label for="token">This farm serves its tenants. Your token:</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required>
      <button type="submit">Sign in</button>
      <p class="error" id="login-error" role="alert"></p>
    </form>`;
  document.getElementById('token').focus();
  document.getElementById('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('session', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({token: document.getElementById('token').value})});
      document.getElementById('who').innerHTML =
        `${esc(r.tenant)} <button id="logout">Sign out</button>`;
      bindLogout();
      startEvents();
      show();
    } catch (e) {
      document.getElementById('login-error').textContent = e.message;
    }
  });
}

function bindLogout() {
  const b = document.getElementById('logout');
  if (b) b.addEventListener('click', async () => {
    await api('session', {method: 'DELETE'});
    document.getElementById('who').textContent = '';
    loginPage();
  });
}

// --- builds ------------------------------------------------------------------

function buildsPage(query) {
  const pageSize = 50;
  let offset = Number(query.get('offset') || 0);
  let q = query.get('q') || '';
  let st = query.get('state') || '';
  let drawn = false;
  const go = () => {
    const p = new URLSearchParams();
    if (q) p.set('q', q);
    if (st) p.set('state', st);
    if (offset) p.set('offset', offset);
    location.hash = '#/builds' + (p.toString() ? '?' + p : '');
  };
  return {render: async () => {
    const p = new URLSearchParams({offset, limit: pageSize});
    if (q) p.set('q', q);
    if (st) p.set('state', st);
    const data = await api('builds?' + p);
    const rows = data.builds.map((b) => {
      const dur = b.finished > 0 ? b.finished - b.submitted : 0;
      const what = b.dockerfile + (b.target ? ' (' + b.target + ')' : '');
      return `<tr data-build="${esc(b.id)}">
        <td><a href="#/builds/${esc(b.id)}" class="mono">${esc(b.id)}</a></td>
        <td>${state(b.state)}</td>
        <td>${esc(b.tenant || '')}</td>
        <td>${esc(what)}</td>
        <td>${esc(b.platform)}</td>
        <td>${esc(when(b.submitted))}</td>
        <td class="num">${esc(secs(dur))}</td>
        <td class="num">${b.steps_run} / ${b.steps_cached}</td>
        <td class="mono">${esc((b.manifest || '').slice(0, 19))}${
          (b.tags || []).map((t) => `<div class="tag">${esc(t)}</div>`).join('')}${
          b.error ? `<div class="error">${esc(b.error.split('\n')[0].slice(0, 160))}</div>` : ''}</td>
      </tr>`;
    }).join('');
    const table = `<table aria-label="builds">
      <thead><tr><th>Build</th><th>State</th><th>Tenant</th><th>Dockerfile</th>
      <th>Platform</th><th>Submitted</th><th class="num">Duration</th>
      <th class="num">Run / cached</th><th>Image</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="9" class="muted">No builds.</td></tr>'}</tbody></table>
      <div class="pager"><button id="prev" ${offset ? '' : 'disabled'}>Newer</button>
      <span>${data.total ? offset + 1 : 0}&ndash;${offset + data.builds.length} of ${data.total}</span>
      <button id="next" ${offset + pageSize < data.total ? '' : 'disabled'}>Older</button></div>`;
    if (!drawn) {
      main.innerHTML = `<h1>Builds</h1>
        <form class="toolbar" id="filter" role="search">
          <label>Search <input id="q" type="search" value="${esc(q)}"
            placeholder="id, Dockerfile, tenant, tag, error (/)"></label>
          <label>State <select id="st">${['', 'running', 'succeeded', 'failed', 'cancelled']
            .map((s) => `<option value="${s}" ${s === st ? 'selected' : ''}>${s || 'any'}</option>`).join('')}
          </select></label>
          <button type="submit">Filter</button>
        </form><div id="list"></div>`;
      drawn = true;
      document.getElementById('filter').addEventListener('submit', (ev) => {
        ev.preventDefault();
        q = document.getElementById('q').value;
        st = document.getElementById('st').value;
        offset = 0;
        go();
      });
    }
    document.getElementById('list').innerHTML = table;
    document.getElementById('prev').addEventListener('click', () => {
      offset = Math.max(0, offset - pageSize); go();
    });
    document.getElementById('next').addEventListener('click', () => {
      offset += pageSize; go();
    });
  }};
}

// --- one build ---------------------------------------------------------------

// The stage graph: a column per depth (a stage is one deeper than the
// deepest stage it needs), edges from what a stage needs to it.
function dagSvg(stages) {
  const byIndex = new Map(stages.map((s) => [s.index, s]));
  const depth = new Map();
  const depthOf = (s, seen = new Set()) => {
    if (depth.has(s.index)) return depth.get(s.index);
    if (seen.has(s.index)) return 0;
    seen.add(s.index);
    let d = 0;
    for (const i of s.depends_on) {
      const dep = byIndex.get(i);
      if (dep) d = Math.max(d, depthOf(dep, seen) + 1);
    }
    depth.set(s.index, d);
    return d;
  };
  stages.forEach((s) => depthOf(s));
  const columns = [];
  for (const s of stages) (columns[depth.get(s.index)] ||= []).push(s);
  const W = 170, H = 44, GX = 60, GY = 16;
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((s, r) =>
    pos.set(s.index, {x: 10 + c * (W + GX), y: 10 + r * (H + GY)})));
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const width = 20 + columns.length * (W + GX) - GX, height = 20 + rows * (H + GY) - GY;
  let edges = '', nodes = '';
  for (const s of stages) {
    const to = pos.get(s.index);
    for (const i of s.depends_on) {
      const from = pos.get(i);
      if (!from) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      edges += `<path class="edge" data-edge="${esc(byIndex.get(i).name)}->${esc(s.name)}"
        d="M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}"
        marker-end="url(#arrow)"/>`;
    }
    const done = s.steps.filter((x) => x.state !== 'running').length;
    nodes += `<g class="node state-${esc(s.state)}" data-stage="${esc(s.name)}">
      <title>${esc(s.name)}: ${esc(s.state)}${s.worker ? ' on ' + esc(s.worker) : ''}</title>
      <rect x="${to.x}" y="${to.y}" width="${W}" height="${H}" rx="6"/>
      <text x="${to.x + 8}" y="${to.y + 17}" font-weight="600">${esc(s.name.slice(0, 22))}</text>
      <text x="${to.x + 8}" y="${to.y + 34}" class="muted">${esc(s.state)} ${
        s.steps_total ? done + '/' + s.steps_total : ''} ${esc((s.worker || '').slice(0, 12))}</text></g>`;
  }
  return `<svg class="dag" width="${width}" height="${height}" role="img"
    aria-label="stage graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5"
    markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"
    fill="currentColor"/></marker></defs>${edges}${nodes}</svg>`;
}

// The waterfall: a row per worker slot, a bar per stage, its steps inside.
function timelineSvg(b) {
  const placed = b.stages.filter((s) => s.start > 0);
  if (!placed.length) return '<p class="muted">Nothing has started yet.</p>';
  const t0 = b.submitted;
  const end = Math.max(b.finished || 0, ...placed.map((s) => s.end || 0),
    ...placed.flatMap((s) => s.steps.map((x) => x.end || x.start || 0)), t0 + 0.001);
  const lanes = [];
  for (const s of placed) {
    const key = s.worker + '#' + s.lane;
    if (!lanes.includes(key)) lanes.push(key);
  }
  lanes.sort();
  const L = 160, W = 900, R = 26;
  const x = (t) => L + (Math.max(0, t - t0) / (end - t0)) * W;
  let out = '';
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + (end - t0) * i / ticks;
    out += `<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="0" y2="${lanes.length * R + 6}"/>
      <text x="${x(t) + 2}" y="${lanes.length * R + 18}" class="muted">${esc(secs(t - t0) || '0')}</text>`;
  }
  lanes.forEach((key, i) => {
    const [worker, lane] = key.split('#');
    out += `<text class="lane-label" x="4" y="${i * R + 17}">${esc(worker.slice(0, 16))} slot ${Number(lane) + 1}</text>`;
  });
  for (const s of placed) {
    const row = lanes.indexOf(s.worker + '#' + s.lane);
    const y = row * R + 3;
    const sEnd = s.end || end;
    out += `<g data-lane-stage="${esc(s.name)}"><rect class="bar-stage" x="${x(s.start)}" y="${y}"
      width="${Math.max(2, x(sEnd) - x(s.start))}" height="${R - 6}"><title>stage ${esc(s.name)}: ${
      esc(secs(sEnd - s.start))} on ${esc(s.worker)}</title></rect>`;
    for (const st of s.steps) {
      if (!(st.start > 0)) continue;
      const e = st.end || sEnd;
      out += `<rect class="bar-step ${esc(st.state)}" x="${x(st.start)}" y="${y + 4}"
        width="${Math.max(1.5, x(e) - x(st.start))}" height="${R - 14}"><title>${esc(st.instruction)}: ${
        esc(st.state)} ${esc(secs(e - st.start))}</title></rect>`;
    }
    out += `<text x="${x(s.start) + 3}" y="${y + R - 10}">${esc(s.name.slice(0, 20))}</text></g>`;
  }
  return `<div class="scroll"><svg width="${L + W + 40}" height="${lanes.length * R + 24}"
    role="img" aria-label="timeline">${out}</svg></div>`;
}

// A step's key: its stage's name and number ("sdk/2"); the number is last.
function stepKey(stage, step) { return stage + '/' + step; }
function splitKey(key) {
  const at = key.lastIndexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
}

function buildPage(id) {
  const openLogs = new Set();
  let firstFailure = true;
  const logUrl = (stage, step) =>
    `builds/${encodeURIComponent(id)}/log?stage=${encodeURIComponent(stage)}&step=${step}`;
  const fillLogs = async () => {
    for (const pre of main.querySelectorAll('pre[data-log]')) {
      const [stage, step] = splitKey(pre.dataset.log);
      try { pre.textContent = (await api(logUrl(stage, step))) || '(no output)'; }
      catch (e) { pre.textContent = e.message; }
    }
  };
  return {render: async () => {
    const b = await api('builds/' + encodeURIComponent(id));
    const failedStage = b.stages.find((s) => s.steps.some((x) => x.state === 'failed'));
    const failedStep = failedStage && failedStage.steps.find((x) => x.state === 'failed');
    if (failedStep && firstFailure) {
      openLogs.add(stepKey(failedStage.name, failedStep.step));
      firstFailure = false;
    }
    const dur = (b.finished || Date.now() / 1000) - b.submitted;
    let html = `<h1>Build <span class="mono">${esc(b.id)}</span> ${state(b.state)}</h1>`;
    if (b.state === 'failed' || b.state === 'cancelled') {
      html += `<section class="failure" aria-label="failure"><h2>${
        b.state === 'failed' ? 'Failed' : 'Cancelled'}</h2>`;
      if (failedStep) {
        html += `<p>Stage <b>${esc(failedStage.name)}</b>, step ${failedStep.step}:
          <code>${esc(failedStep.instruction)}</code></p>
          ${failedStep.exit_code !== undefined ? `<p>Exit code <b data-exit-code>${
            esc(failedStep.exit_code)}</b></p>` : ''}
          <p class="error" data-failure-error>${esc(failedStep.error || b.error)}</p>
          <p class="muted">Last output:</p><pre data-tail>${''}</pre>`;
      } else {
        html += `<p class="error" data-failure-error>${esc(b.error)}</p>`;
      }
      html += '</section>';
    }
    html += `<dl class="facts">
      <dt>Dockerfile</dt><dd>${esc(b.dockerfile)}${b.target ? ' (target ' + esc(b.target) + ')' : ''}</dd>
      ${b.tenant ? `<dt>Tenant</dt><dd>${esc(b.tenant)}</dd>` : ''}
      <dt>Platform</dt><dd>${esc(b.platform || 'the workers\u2019')}</dd>
      <dt>Submitted</dt><dd>${esc(when(b.submitted))}</dd>
      <dt>Duration</dt><dd>${esc(secs(dur))}${b.state === 'running' ? ' so far' : ''}</dd>
      <dt>Steps</dt><dd>${b.steps_run} run, ${b.steps_cached} cached${b.compared_with ?
        ` <span class="muted">(why each ran: compared with <a href="#/builds/${esc(b.compared_with)}">${
          esc(b.compared_with)}</a>)</span>` : ''}</dd>
      ${(b.tags || []).length ? `<dt>Tags</dt><dd data-tags>${b.tags.map(esc).join(', ')}</dd>` : ''}
      ${b.manifest ? `<dt>Image</dt><dd class="mono"><a href="#/cas?instance=${
        encodeURIComponent(b.instance)}&amp;hash=${esc(b.manifest.slice(7))}&amp;size=${
        b.manifest_size}">${esc(b.manifest)}</a></dd>` : ''}
    </dl>
    <div class="toolbar">
      ${b.state === 'running' ? '<button class="danger" id="cancel">Cancel build</button>' : ''}
      <a href="/api/v1/builds/${esc(b.id)}/trace" download>Download trace (Perfetto)</a>
    </div>
    <h2>Stages</h2>${dagSvg(b.stages)}
    <h2>Timeline</h2>${timelineSvg(b)}
    <h2>Steps</h2>`;
    for (const s of b.stages) {
      html += `<h3 id="stage-${esc(s.index)}">${esc(s.name)} ${state(s.state)}
        <span class="muted">${esc(s.worker ? 'on ' + s.worker : '')} ${esc(s.platform)}</span></h3>`;
      if (!s.steps.length) { html += '<p class="muted">No steps reported.</p>'; continue; }
      html += `<table aria-label="steps of ${esc(s.name)}"><thead><tr><th class="num">#</th>
        <th class="num">Line</th><th>Instruction</th><th>State</th><th class="num">Duration</th><th>Worker</th>
        <th class="num">Layer</th><th class="num">Output</th><th></th></tr></thead><tbody>`;
      for (const st of s.steps) {
        const key = stepKey(s.name, st.step);
        const d = st.seconds || (st.end && st.start ? st.end - st.start : 0);
        html += `<tr data-step="${esc(s.name)}/${st.step}" class="step-${esc(st.state)}">
          <td class="num">${st.step}</td><td class="num" data-line>${st.line ? esc(st.line) : ''}</td>
          <td><code>${esc(st.instruction)}</code>${
            st.error ? `<div class="error">${esc(st.error.split('\n')[0])}</div>` : ''}${
            st.miss ? `<div class="miss" data-miss="${esc((st.miss_parts || []).join(' '))}">Ran: ${
              esc(st.miss)}</div>` : ''}</td>
          <td>${state(st.state)}</td><td class="num">${esc(secs(d))}</td>
          <td>${esc(st.worker)}</td><td class="num" data-layer>${
            st.layer_bytes === undefined ? '' : st.layer_bytes ? esc(bytes(st.layer_bytes)) : 'none'}</td>
          <td class="num">${st.log_bytes ? esc(bytes(st.log_bytes)) : ''}</td>
          <td>${st.state === 'cached' ? '' : `<button data-toggle="${esc(key)}" aria-expanded="${
            openLogs.has(key)}">${openLogs.has(key) ? 'Hide log' : 'Log'}</button>`}${
            st.full_log ? ` <a href="#/cas?instance=${encodeURIComponent(b.instance)}&amp;hash=${
              esc(st.full_log.split('/')[0].slice(7))}&amp;size=${esc(st.full_log.split('/')[1])}">whole output</a>` : ''}${
            st.key && (st.state === 'done' || st.state === 'cached') ? ` <a data-cache-entry href="#/cas?kind=action&amp;instance=${
              encodeURIComponent(b.instance)}&amp;hash=${esc(st.key.slice(7))}&amp;size=32"
              title="the step's entry in the action cache">cache entry</a>` : ''}</td></tr>`;
        if (openLogs.has(key)) {
          html += `<tr><td></td><td colspan="8"><pre data-log="${esc(key)}">loading&hellip;</pre></td></tr>`;
        }
      }
      html += '</tbody></table>';
    }
    main.innerHTML = html;
    const cancel = document.getElementById('cancel');
    if (cancel) cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try { await api(`builds/${encodeURIComponent(id)}/cancel`, {method: 'POST'}); }
      catch (e) { alert(e.message); }
      render();
    });
    for (const btn of main.querySelectorAll('button[data-toggle]')) {
      btn.addEventListener('click', () => {
        const key = btn.dataset.toggle;
        if (openLogs.has(key)) openLogs.delete(key); else openLogs.add(key);
        render();
      });
    }
    const tail = main.querySelector('pre[data-tail]');
    if (tail && failedStep) {
      try {
        const text = await api(logUrl(failedStage.name, failedStep.step));
        tail.textContent = text.split('\n').slice(-21).join('\n') || '(no output)';
      } catch (e) { tail.textContent = e.message; }
    }
    await fillLogs();
  }};
}

// --- workers -----------------------------------------------------------------

function workersPage() {
  return {render: async () => {
    const data = await api('workers');
    const rows = data.workers.map((w) => `<tr data-worker="${esc(w.name)}">
      <td>${esc(w.name)}</td><td>${w.live ? state('done').replace('done', 'live') :
        '<span class="state state-failed">gone</span>'}</td>
      <td class="num">${w.busy} / ${w.slots || '?'}</td>
      <td>${esc((w.platforms || []).join(', '))}</td>
      <td>${(w.running || []).map((r) => `<a href="#/builds/${esc(r.build)}">${esc(r.build.slice(0, 8))}</a> ${
        esc(r.stage)}`).join('<br>') || '<span class="muted">idle</span>'}</td>
      <td class="num">${w.failures}</td>
      <td class="num">${w.disk_bytes >= 0 ? esc(bytes(w.disk_bytes)) : '<span class="muted">not reported</span>'}</td>
      <td>${esc(when(w.last_seen))}</td></tr>`).join('');
    main.innerHTML = `<h1>Workers</h1><table aria-label="workers"><thead><tr><th>Worker</th>
      <th>State</th><th class="num">Busy / slots</th><th>Platforms</th><th>Running now</th>
      <th class="num">Failed stages (recent)</th><th class="num">Layer cache</th><th>Last seen</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="8" class="muted">No worker has called in.</td></tr>'}</tbody></table>`;
  }};
}

// --- cache -------------------------------------------------------------------

function cachePage() {
  return {render: async () => {
    const d = await api('cache');
    const pct = (x) => (x * 100).toFixed(1) + ' %';
    const store = d.store || {};
    const facts = Object.entries(store).map(([k, v]) =>
      `<dt>${esc(k.replace(/_/g, ' '))}</dt><dd>${/bytes/.test(k) ? esc(bytes(v)) : esc(v)}</dd>`).join('');
    const tenants = d.tenants.map((t) => `<tr><td>${esc(t.tenant)}</td>
      <td class="num">${t.steps_run}</td><td class="num">${t.steps_cached}</td>
      <td class="num">${pct(t.hit_rate)}</td></tr>`).join('');
    const H = 120, BW = 22;
    const bars = d.hours.map((h, i) => {
      const all = h.steps_run + h.steps_cached || 1;
      const hit = H * h.steps_cached / all;
      return `<g><title>${esc(when(h.hour))}: ${pct(h.hit_rate)} of ${all} steps cached</title>
        <rect class="hbar miss" x="${i * (BW + 4)}" y="0" width="${BW}" height="${H - hit}"/>
        <rect class="hbar" x="${i * (BW + 4)}" y="${H - hit}" width="${BW}" height="${hit}"/></g>`;
    }).join('');
    const most = d.most_run.map((m) => `<tr><td><code>${esc(m.instruction)}</code></td>
      <td class="num">${m.runs}</td></tr>`).join('');
    main.innerHTML = `<h1>Cache</h1>
      <h2>Store</h2><dl class="facts">${facts || '<dd class="muted">not reported</dd>'}</dl>
      <h2>Hit rate by tenant</h2><table aria-label="hit rate by tenant"><thead><tr><th>Tenant</th>
        <th class="num">Steps run</th><th class="num">Steps cached</th><th class="num">Hit rate</th></tr></thead>
        <tbody>${tenants || '<tr><td colspan="4" class="muted">No finished builds.</td></tr>'}</tbody></table>
      <h2>Hit rate by hour</h2><p class="muted">cached (lower, green) against run (upper) steps, an hour a bar</p>
      <svg width="${Math.max(1, d.hours.length) * (BW + 4)}" height="${H}" role="img"
        aria-label="hit rate by hour">${bars}</svg>
      <h2>Steps that miss most</h2><table aria-label="steps that miss most"><thead><tr>
        <th>Instruction</th><th class="num">Times run</th></tr></thead><tbody>${
        most || '<tr><td colspan="2" class="muted">Nothing ran.</td></tr>'}</tbody></table>`;
  }};
}

// --- CAS browser -------------------------------------------------------------

function casLink(instance, hash, size, text) {
  return `<a href="#/cas?instance=${encodeURIComponent(instance)}&amp;hash=${esc(hash)}&amp;size=${
    esc(size)}" class="mono">${esc(text || hash.slice(0, 16) + '/' + size)}</a>`;
}

function casPage(query) {
  const instance = query.get('instance') || '';
  const hash = (query.get('hash') || '').replace(/^sha256:/, '');
  const size = query.get('size') || '';
  const kind = query.get('kind') === 'action' ? 'action' : 'blob';
  return {render: async (first) => {
    if (!first) return;  // blobs do not change
    let html = `<h1>CAS</h1><form class="toolbar" id="cas">
      <label>Open <select id="kind">${[['blob', 'a blob'], ['action', 'an action\u2019s cached result']]
        .map(([v, t]) => `<option value="${v}" ${v === kind ? 'selected' : ''}>${t}</option>`).join('')}</select></label>
      <label>Instance <input id="instance" value="${esc(instance)}"></label>
      <label>Hash <input id="hash" class="mono" size="66" value="${esc(hash)}" required></label>
      <label>Size <input id="size" size="10" value="${esc(size)}"></label>
      <button type="submit">Open</button></form><div id="blob"></div>`;
    main.innerHTML = html;
    document.getElementById('cas').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams({kind: document.getElementById('kind').value,
        instance: document.getElementById('instance').value,
        hash: document.getElementById('hash').value.trim().replace(/^sha256:/, ''),
        size: document.getElementById('size').value.trim()});
      location.hash = '#/cas?' + p;
    });
    if (!hash) return;
    const sz = size || '0';
    const path = `${kind === 'action' ? 'actions' : 'blobs'}/${encodeURIComponent(hash)}/${
      encodeURIComponent(sz)}?instance=${encodeURIComponent(instance)}`;
    const out = document.getElementById('blob');
    const b = await api(path);
    const raw = `/api/v1/${path}&raw=1`;
    let body = kind === 'action'
      ? `<p>The action cache\u2019s entry for action <span class="mono">${esc(hash.slice(0, 16))}</span></p>`
      : `<p>${esc(b.kind)}, ${esc(bytes(b.size))}${b.truncated ? ' (first part shown)' : ''}
      &middot; <a href="${esc(raw)}" download>download</a></p>${
        b.note ? `<p class="muted" data-note>${esc(b.note)}</p>` : ''}`;
    if (b.kind === 'directory') {
      body += `<table aria-label="directory"><thead><tr><th>Name</th><th>Type</th><th>Digest</th></tr></thead><tbody>${
        b.entries.map((e) => `<tr><td>${esc(e.name)}</td><td>${esc(e.type)}${e.executable ? ' (x)' : ''}</td><td>${
          e.digest ? casLink(instance, e.digest.hash, e.digest.size) : esc('-> ' + e.target)}</td></tr>`).join('')}</tbody></table>`;
    } else if (b.kind === 'manifest') {
      const m = b.json;
      const d = (x) => casLink(instance, x.digest.replace(/^sha256:/, ''), x.size,
        x.digest.slice(0, 19) + ' ' + bytes(x.size));
      body += `<h2>Config</h2><p>${d(m.config)}</p><h2>Layers</h2><ol>${
        (m.layers || []).map((l) => `<li>${d(l)} <span class="muted">${esc(l.mediaType)}</span></li>`).join('')}</ol>
        <pre>${esc(JSON.stringify(m, null, 2))}</pre>`;
    } else if (b.kind === 'index') {
      body += `<ol>${(b.json.manifests || []).map((m) => `<li>${casLink(instance,
        m.digest.replace(/^sha256:/, ''), m.size)} ${esc(JSON.stringify(m.platform || {}))}</li>`).join('')}</ol>
        <pre>${esc(JSON.stringify(b.json, null, 2))}</pre>`;
    } else if (b.kind === 'action_result') {
      const r = b.action_result;
      const out = (d) => d.hash ? casLink(instance, d.hash, d.size) : '<span class="muted">none</span>';
      body += `<dl class="facts"><dt>Exit code</dt><dd>${r.exit_code}</dd><dt>Worker</dt><dd>${esc(r.worker || '-')}</dd>
        <dt>stdout</dt><dd>${out(r.stdout)}</dd>
        <dt>stderr</dt><dd>${out(r.stderr)}</dd></dl>
        <table aria-label="outputs" data-outputs><tbody>${r.output_files.map((f) => `<tr><td>${esc(f.path)}</td><td>${
          casLink(instance, f.digest.hash, f.digest.size)}</td></tr>`).join('')}${r.output_directories.map((d) =>
          `<tr><td>${esc(d.path)}/</td><td>${casLink(instance, d.tree.hash, d.tree.size)}</td></tr>`).join('')}</tbody></table>`;
    } else if (b.kind === 'json') {
      body += `<pre>${esc(JSON.stringify(b.json, null, 2))}</pre>`;
    } else if (b.kind === 'text') {
      body += `<pre>${esc(b.text)}</pre>`;
    } else {
      body += `<pre class="mono">${esc(b.hex.replace(/(.{32})/g, '$1\n'))}</pre>`;
    }
    out.innerHTML = body;
  }};
}

// --- live updates ------------------------------------------------------------

let source = null;
function startEvents() {
  if (source) source.close();
  source = new EventSource('/api/v1/events');
  const live = document.getElementById('live');
  source.addEventListener('open', () => live.classList.add('on'));
  source.addEventListener('error', () => live.classList.remove('on'));
  source.addEventListener('change', () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => render(false), 150);
  });
}

document.addEventListener('keydown', (ev) => {
  if (ev.key === '/' && document.activeElement.tagName !== 'INPUT') {
    const q = document.getElementById('q');
    if (q) { ev.preventDefault(); q.focus(); }
  }
});

window.addEventListener('hashchange', show);
(async () => {
  try {
    const s = await api('session');
    if (s.tenants && !s.tenant) return loginPage();
    if (s.tenant) {
      document.getElementById('who').innerHTML =
        `${esc(s.tenant)} <button id="logout">Sign out</button>`;
      bindLogout();
    }
  } catch (e) { /* shown by the page */ }
  startEvents();
  show();
})();
