// seamark dashboard: reads the public HTTP API of the server that served it.
//
// Nodes (/v1/nodes) and events (/v1/events) follow the server with blocking
// reads (?index=, see docs/api.md), so a change shows as soon as the server's
// snapshot has it. Everything else is read every 2 s, and at once when an
// event arrives. While the tab is hidden nothing is read, so background tabs
// hold no connections. No dependencies, no build step.
'use strict';

(() => {
  const TOKEN_KEY = 'seamark.token';
  const API = '../v1/';          // the page lives at /ui/
  const POLL_MS = 2000;
  const WAIT = '55s';            // blocking read: shorter than any proxy's idle timeout
  const EVENTS_KEPT = 200;
  const MAX_ROWS = 100;          // node rows per service

  const state = {
    status: null, services: [], nodes: [], listeners: [], lb: [], groups: [],
    zones: [], records: {}, events: [], filter: '',
    loaded: {}, lastEventRev: 0, flashAfter: 0,
    // Rates: the previous /v1/lb sample (counters by key, and when it was
    // read), the rates between it and the newest, and the peaks seen since
    // this page loaded. expanded holds the port ranges opened port by port.
    lbPrev: null, rates: new Map(), peaks: new Map(), expanded: new Set(),
    loadedAt: new Date(),
  };
  const $ = (id) => document.getElementById(id);

  // ---- reading the API -------------------------------------------------

  class AuthError extends Error {}

  async function get(path, signal) {
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(API + path, { headers, signal, cache: 'no-store' });
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (resp.status === 401 || resp.status === 403) {
      throw new AuthError((body && body.error) || resp.statusText);
    }
    if (!resp.ok) {
      throw new Error(`GET /v1/${path}: ${resp.status} ${(body && body.error) || resp.statusText}`);
    }
    return { data: body, index: Number(resp.headers.get('X-Seamark-Index') || 0), size: text.length };
  }

  // send writes through the API with the saved token: the node actions.
  async function send(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(API + path, {
      method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) throw new Error(`${method} /v1/${path}: ${resp.status} ${(data && data.error) || resp.statusText}`);
    return data;
  }

  // gen counts restarts: a loop started for an older generation stops.
  let gen = 0;
  const inflight = new Set();
  let kickPoll = () => {};

  function sleep(ms, g) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (g !== undefined) kickPoll = () => { clearTimeout(t); resolve(); };
    });
  }

  function whenVisible() {
    if (!document.hidden) return Promise.resolve();
    return new Promise((resolve) => {
      const on = () => { if (!document.hidden) { document.removeEventListener('visibilitychange', on); resolve(); } };
      document.addEventListener('visibilitychange', on);
    });
  }

  const failing = new Map();   // loop name -> error message
  function ok(name) { failing.delete(name); showLive(); }
  function fail(name, err) { failing.set(name, err.message || String(err)); showLive(); }

  function showLive(mode) {
    const el = $('live');
    if (mode === 'token') {
      el.dataset.state = 'token'; el.textContent = 'token needed'; el.title = '';
    } else if (failing.size) {
      el.dataset.state = 'retrying'; el.textContent = 'reconnecting';
      el.title = [...failing.values()].join('\n');
    } else {
      el.dataset.state = 'live'; el.textContent = 'live';
      el.title = 'Following the server: nodes and events as they change, counters every 2 s';
    }
  }

  // watch runs a blocking-read loop on path and hands every answer to apply.
  async function watch(name, path, apply, g) {
    let index = 0;
    let backoff = 500;
    while (g === gen) {
      await whenVisible();
      if (g !== gen) return;
      const ctl = new AbortController();
      inflight.add(ctl);
      try {
        const sep = path.includes('?') ? '&' : '?';
        const r = await get(index ? `${path}${sep}index=${index}&wait=${WAIT}` : path, ctl.signal);
        if (g !== gen) return;
        // An index that went backwards (a server restarted on a new store)
        // is taken as it comes: the answer is whole either way.
        index = r.index;
        apply(r.data);
        ok(name);
        backoff = 500;
      } catch (err) {
        if (g !== gen) return;
        if (err.name === 'AbortError') continue;   // the tab was hidden
        if (err instanceof AuthError) { needToken(err.message); return; }
        fail(name, err);
        index = 0;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      } finally {
        inflight.delete(ctl);
      }
    }
  }

  // poll reads everything that has no blocking read of its own.
  async function poll(g) {
    let round = 0;
    let lbEvery = 1;
    while (g === gen) {
      await whenVisible();
      if (g !== gen) return;
      try {
        const [status, services, listeners, groups, zones] = await Promise.all(
          ['status', 'services', 'listeners', 'groups', 'zones'].map((p) => get(p)));
        const records = {};
        await Promise.all(zones.data.map(async (z) => {
          records[z.name] = (await get(`zones/${encodeURIComponent(z.name)}/records`)).data;
        }));
        if (round % lbEvery === 0) {
          const lb = await get('lb');
          state.lb = lb.data;
          sampleRates(lb.data, performance.now());
          // Thousands of ports make a large answer: read it less often.
          lbEvery = lb.size > 1e6 ? 5 : 1;
          state.loaded.lb = true;
        }
        if (g !== gen) return;
        Object.assign(state, {
          status: status.data, services: services.data, listeners: listeners.data,
          groups: groups.data, zones: zones.data, records,
        });
        Object.assign(state.loaded, { status: true, services: true, listeners: true, groups: true, zones: true });
        ok('poll');
        render();
      } catch (err) {
        if (g !== gen) return;
        if (err instanceof AuthError) { needToken(err.message); return; }
        fail('poll', err);
      }
      round++;
      await sleep(POLL_MS, g);
    }
  }

  function start() {
    gen++;
    const g = gen;
    failing.clear();
    showLive();
    watch('nodes', 'nodes', (nodes) => { state.nodes = nodes; state.loaded.nodes = true; render(); }, g);
    watch('events', `events?limit=${EVENTS_KEPT}`, (events) => {
      state.events = events;
      state.loaded.events = true;
      const last = events.length ? events[events.length - 1].revision || 0 : 0;
      if (state.lastEventRev && last > state.lastEventRev) kickPoll(); // a role change: read groups now
      if (state.loaded.eventsOnce) state.flashAfter = state.lastEventRev; // flash what is newer
      state.loaded.eventsOnce = true;
      state.lastEventRev = last;
      render();
    }, g);
    poll(g);
  }

  function stop() {
    gen++;
    for (const ctl of inflight) ctl.abort();
    inflight.clear();
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) for (const ctl of inflight) ctl.abort();
  });

  // ---- token -----------------------------------------------------------

  function needToken(msg) {
    stop();
    showLive('token');
    const had = !!localStorage.getItem(TOKEN_KEY);
    $('auth-msg').innerHTML = `<strong>${had ? 'The saved token was refused' : 'This server needs a token to read'}</strong>: ${esc(msg)}`;
    $('auth').hidden = false;
    $('auth-token').focus();
  }

  $('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('auth-token').value.trim();
    if (!v) return;
    localStorage.setItem(TOKEN_KEY, v);
    $('auth-token').value = '';
    $('auth').hidden = true;
    stop();
    start();
  });
  $('auth-clear').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    $('auth-token').value = '';
    $('auth').hidden = true;
    stop();
    start();
  });
  $('auth-close').addEventListener('click', () => { $('auth').hidden = true; });
  $('token-btn').addEventListener('click', () => {
    const had = !!localStorage.getItem(TOKEN_KEY);
    $('auth-msg').innerHTML = had
      ? '<strong>A token is saved in this browser.</strong> Paste another to replace it, or forget it.'
      : '<strong>No token is saved.</strong> Reads need one only when the server sets <code>anonymous_read: false</code>.';
    $('auth').hidden = !$('auth').hidden;
  });

  let filterTimer;
  $('filter').addEventListener('input', (ev) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.filter = ev.target.value.trim().toLowerCase(); render(); }, 120);
  });

  // ---- formatting ------------------------------------------------------

  function esc(v) {
    return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  function ago(t) {
    const ms = Date.now() - Date.parse(t);
    if (!isFinite(ms)) return '';
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
    return `${Math.floor(s / 86400)}d${Math.floor(s / 3600) % 24}h`;
  }
  // since renders a time that keeps counting (the 1 s ticker updates it).
  // The text is filled in by tick, so that unchanged data renders the same
  // HTML and setHTML leaves the page (and a selection in it) alone.
  const since = (t) => t ? `<span data-since="${esc(t)}" title="${esc(new Date(t).toLocaleString())}"></span>` : '';
  function tick(root) {
    for (const el of root.querySelectorAll('[data-since]')) el.textContent = ago(el.dataset.since);
  }
  const shown = {};
  function setHTML(id, html) {
    if (shown[id] === html) return;
    shown[id] = html;
    const el = $(id);
    el.innerHTML = html;
    tick(el);
  }

  function bytes(n) {
    n = Number(n || 0);
    if (n < 1024) return `${n} B`;
    const units = 'KMGTPE';
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return `${n.toFixed(1)} ${units[i]}iB`;
  }

  // latency turns a Go duration ("312.5µs", "1.2034ms", "1s") into
  // milliseconds an operator reads at a glance.
  function latency(d) {
    const m = /^([0-9.]+)(ns|µs|us|ms|s)$/.exec(d || '');
    if (!m) return d || '-';
    const ms = Number(m[1]) * { ns: 1e-6, 'µs': 1e-3, us: 1e-3, ms: 1, s: 1000 }[m[2]];
    return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }
  const num = (n) => Number(n || 0).toLocaleString('en-US');
  const badge = (text, cls) => `<span class="badge ${cls || ''}">${esc(text)}</span>`;
  const matches = (...parts) => !state.filter || parts.some((p) => String(p ?? '').toLowerCase().includes(state.filter));
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
  const zoneNames = () => (state.zones || []).map((z) => z.name);
  const fqdn = (label) => zoneNames().map((z) => `${label}.${z}`);

  // health says how a node looks: [label, css class]. "down" means the
  // checkers find it dead; other labels say why it is not answered.
  function health(svc, n) {
    if (n.healthy) return ['healthy', 'ok'];
    if (n.state && n.state !== 'healthy') return [n.state, n.state === 'unhealthy' ? 'down' : 'warn'];
    if (!n.checks || n.checks.length === 0) return ['unchecked', ''];
    return ['down', 'down'];
  }

  // answersOf is what <service>.<zone> answers now (as the DNS server forms
  // it: the healthy nodes; with none healthy and fail_open, every node not
  // draining or in maintenance).
  function answersOf(svc, nodes) {
    const healthy = nodes.filter((n) => n.healthy && !adminOut(n));
    if (healthy.length) return { addrs: healthy.map((n) => n.address), failOpen: false };
    if (((svc.answers || {}).when_none_healthy || 'fail_open') === 'fail_open') {
      return { addrs: nodes.filter((n) => n.state !== 'draining' && n.state !== 'maintenance' && !adminOut(n)).map((n) => n.address), failOpen: true };
    }
    return { addrs: [], failOpen: false };
  }

  // adminOf is a node's admin state as the operator set it (ready when none).
  const adminOf = (n) => (n.admin && n.admin.state) || 'ready';
  const adminOut = (n) => adminOf(n) === 'drain' || adminOf(n) === 'maint';
  // canWrite: the node actions show once a token is saved (a write token;
  // a read token's action is refused with the server's 403 message).
  const canWrite = () => !!localStorage.getItem(TOKEN_KEY);

  // downSince is when the checkers last found the node down: the newest
  // transition to unhealthy among their verdicts.
  function downSince(n) {
    if (n.healthy) return '';
    let t = '';
    for (const c of n.checks || []) if (c.state !== 'healthy' && (!t || Date.parse(c.since) > Date.parse(t))) t = c.since;
    return t;
  }

  // adminCell shows the admin state (with who set it, the weight override
  // and how long) and, with a token, the actions.
  function adminCell(svc, n) {
    const a = adminOf(n);
    let html = badge(a, a === 'ready' ? '' : 'warn');
    if (n.admin) {
      const bits = [n.admin.weight ? `weight ${n.admin.weight} (registered ${n.registered_weight || n.weight})` : '', n.admin.by ? `by ${n.admin.by}` : '', n.admin.reason || ''].filter(Boolean).map(esc);
      if (n.admin.since && a !== 'ready') bits.push(`${since(n.admin.since)}`);
      if (bits.length) html += ` <span class="muted">${bits.join(' · ')}</span>`;
    }
    if (canWrite()) {
      const key = esc(svc.name + '/' + n.id);
      const btn = (act, label, title) => act === a ? '' : `<button type="button" class="act" data-act="${act}" data-node="${key}" title="${esc(title)}">${label}</button>`;
      html += ` <span class="acts">${btn('drain', 'Drain', 'Out of DNS, no new balancer connections; open ones go on')}${btn('maint', 'Maint', 'Drain, and stop health probes')}${btn('ready', 'Ready', 'Served again while healthy')}</span>`;
    }
    return html;
  }

  function checkText(c) {
    if (!c || !c.type) return '';
    if (c.type === 'none') return 'no check: registrations are trusted';
    let s = `${c.type} every ${c.interval}`;
    if (c.type === 'http' || c.type === 'https') s += ` ${c.method || 'GET'} ${c.path || '/'}`;
    return `${s}, rise ${c.rise} fall ${c.fall}, timeout ${c.timeout}`;
  }

  // ---- rates -----------------------------------------------------------

  // Counters that become rates, and the sums a listener row shows.
  const RATED = ['total', 'bytes_in', 'bytes_out'];
  const SUMMED = ['active', 'total', 'bytes_in', 'bytes_out', 'connect_errors', 'connect_refused', 'connect_timeouts',
    'resets', 'retries', 'refused', 'denied', 'queued', 'paused'];

  function sumOf(list) {
    const sum = {};
    for (const k of SUMMED) sum[k] = 0;
    for (const p of list) for (const k of SUMMED) sum[k] += p[k] || 0;
    return sum;
  }

  // sampleRates turns two successive /v1/lb answers into rates per
  // listener, per port and per backend, over the time between the two
  // reads (taken when each answer arrived, so a slow or skipped poll does
  // not skew them). A counter that went back (a restarted server) gives
  // no rate for that step.
  function sampleRates(lb, at) {
    const cur = new Map();
    const byListener = new Map();
    for (const p of lb) {
      cur.set(`port ${p.name} ${p.addr}`, p);
      if (!byListener.has(p.name)) byListener.set(p.name, []);
      byListener.get(p.name).push(p);
      for (const b of p.backends || []) cur.set(`backend ${p.service}/${b.node}`, b);
    }
    for (const [name, ports] of byListener) cur.set(`listener ${name}`, sumOf(ports));
    const prev = state.lbPrev;
    state.lbPrev = { at, cur };
    if (!prev) return;
    const dt = (at - prev.at) / 1000;
    if (dt <= 0.2) return;   // too close to measure: keep the last rates
    const rates = new Map();
    for (const [key, c] of cur) {
      const o = prev.cur.get(key);
      if (!o) continue;
      const r = {};
      let ok = true;
      for (const k of RATED) {
        const d = (c[k] || 0) - (o[k] || 0);
        if (d < 0) ok = false;
        r[k] = d / dt;
      }
      if (ok) rates.set(key, r);
    }
    state.rates = rates;
    for (const [name, ports] of byListener) {
      const r = rates.get(`listener ${name}`) || { total: 0 };
      const active = cur.get(`listener ${name}`).active;
      const pk = state.peaks.get(name) || { active: 0, cps: 0 };
      pk.active = Math.max(pk.active, active);
      pk.cps = Math.max(pk.cps, r.total);
      state.peaks.set(name, pk);
    }
  }

  function rate(v) {
    if (v === undefined || v === null) return '–';
    if (v === 0) return '0';
    if (v < 10) return v.toFixed(1);
    return num(Math.round(v));
  }
  function byteRate(v) {
    if (v === undefined || v === null) return '–';
    return bytes(Math.round(v)) + '/s';
  }

  // totalsCell is the counters since the server started: connections, and
  // bytes in and out below them.
  function totalsCell(s) {
    return `<td class="num opt totals">${num(s.total)}<br><span class="muted">${bytes(s.bytes_in)} / ${bytes(s.bytes_out)}</span></td>`;
  }

  // errorsCell splits connect errors into refused, timeout and other, with
  // the resets beside them.
  function errorsCell(s) {
    const other = Math.max(0, (s.connect_errors || 0) - (s.connect_refused || 0) - (s.connect_timeouts || 0));
    const data = `data-refused="${s.connect_refused || 0}" data-timeouts="${s.connect_timeouts || 0}" data-other="${other}" data-resets="${s.resets || 0}"`;
    const title = 'connect errors: refused by the backend, timed out, other (unreachable, reset while connecting); resets: connections that ended by a reset' +
      (s.retries !== undefined ? `\nretries ${s.retries}, clients refused (no backend answered) ${s.refused || 0}` : '');
    const bits = [];
    if (s.connect_refused) bits.push(badge(`${num(s.connect_refused)} refused`, 'down'));
    if (s.connect_timeouts) bits.push(badge(`${num(s.connect_timeouts)} timeout`, 'down'));
    if (other) bits.push(badge(`${num(other)} other`, 'down'));
    if (s.resets) bits.push(badge(`${num(s.resets)} reset`, 'warn'));
    return `<td class="errs" ${data} title="${esc(title)}">${bits.join(' ') || '<span class="muted">none</span>'}</td>`;
  }

  // ---- rendering -------------------------------------------------------

  let queued = false;
  function render() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      renderServer();
      renderSummary();
      renderServices();
      renderListeners();
      renderGroups();
      renderServers();
      renderZones();
      renderEvents();
    });
  }

  function renderServer() {
    const st = state.status;
    if (!st) return;
    const lag = (st.store.revision || 0) - (st.snapshot_revision || 0);
    const parts = [
      `version ${esc(st.version)}`,
      `store ${esc(st.store.kind || '?')}${st.store.etcd_version ? ' (etcd ' + esc(st.store.etcd_version) + ')' : ''}`,
      `revision ${num(st.snapshot_revision)}${lag > 0 ? ` (${num(lag)} behind the store)` : ''}`,
      `up ${since(st.started_at)}`,
    ];
    // Trouble first: a store that does not answer, a reload that was refused.
    if (st.store.available === false) {
      parts.unshift(`<b class="bad" title="${esc(st.store.error || '')}">store unavailable: ${esc(st.store.error || 'no answer')}</b>`);
    }
    if (st.config && st.config.last_reload_success === false) {
      parts.unshift(`<b class="bad" title="${esc(st.config.error || '')}">config reload refused ${since(st.config.last_reload)} ago: ${esc(st.config.error || '')}</b>`);
    }
    setHTML('server', parts.join(' · '));
  }

  function tile(n, label, cls, title) {
    return `<div class="tile ${cls || ''}"${title ? ` title="${esc(title)}"` : ''}><div class="n">${n}</div><div class="l">${label}</div></div>`;
  }

  function renderSummary() {
    const st = state.status;
    if (!st) return;
    const degraded = (st.checkers || []).filter((c) => c.degraded).length;
    const total = state.nodes.length;
    const healthy = state.nodes.filter((n) => n.healthy).length;
    const down = total - healthy;
    let active = 0, failed = 0, listening = 0;
    for (const p of state.lb) {
      active += p.active || 0;
      if (p.state === 'failed') failed++;
      if (p.state === 'listening') listening++;
    }
    const flow = { total: 0, bytes_in: 0, bytes_out: 0 };
    let rated = false;
    for (const [key, r] of state.rates) {
      if (!key.startsWith('listener ')) continue;
      rated = true;
      for (const k of RATED) flow[k] += r[k];
    }
    const actives = state.groups.map((g) => `${g.name}: ${g.active ? g.active.member + (g.mode !== 'active-active' && !liveStandbys(g).length ? ' (no standby)' : '') : (g.mode === 'active-active' ? g.answer.length + ' live' : 'none active')}`);
    const noActive = state.groups.some((g) => g.mode !== 'active-active' && (!g.active || !liveStandbys(g).length));
    setHTML('summary', [
      tile(`${num(healthy)}<small class="muted"> / ${num(total)}</small>`, 'nodes healthy', down ? 'down' : (total ? 'ok' : ''),
        down ? `${down} not answered in DNS nor sent connections` : ''),
      tile(num(state.services.length), 'services'),
      tile(num(state.listeners.length), `listeners · ${num(listening)} ${listening === 1 ? 'port' : 'ports'} open${failed ? `, <b>${failed} failed</b>` : ''}`, failed ? 'down' : ''),
      tile(num(active), 'open connections'),
      `<div class="tile rates" id="total-rates" data-cps="${rated ? flow.total : ''}"><div class="n">${rated ? rate(flow.total) : '–'}<small class="muted"> conn/s</small></div>` +
        `<div class="l">${rated ? `in ${byteRate(flow.bytes_in)} · out ${byteRate(flow.bytes_out)}` : 'rates after the second read'}</div></div>`,
      tile(num(state.groups.length), state.groups.length ? esc(actives.join(', ')) : 'balancer groups', noActive ? 'warn' : ''),
      tile(num((st.checkers || []).length), `health checkers${degraded ? `, <b>${degraded} degraded</b>` : ''}`, !(st.checkers || []).length || degraded ? 'warn' : 'ok',
        (st.checkers || []).map((c) => c.id).join(', ')),
    ].join(''));
  }

  function renderServices() {
    if (!state.loaded.services || !state.loaded.nodes) return;
    const byService = new Map();
    for (const n of state.nodes) {
      if (!byService.has(n.service)) byService.set(n.service, []);
      byService.get(n.service).push(n);
    }
    if (!state.services.length) {
      setHTML('services', '<p class="empty">No services yet. Declare them under <code>services:</code> in the config file, or <code>POST /v1/services</code>.</p>');
      return;
    }
    const out = [];
    for (const svc of state.services) {
      const all = byService.get(svc.name) || [];
      const svcMatch = matches(svc.name);
      const nodes = svcMatch ? all : all.filter((n) => matches(n.id, n.address, ...(n.checks || []).map((c) => c.reason)));
      if (!svcMatch && !nodes.length) continue;
      const healthy = all.filter((n) => n.healthy).length;
      const out_ = all.filter(adminOut).length;
      const ans = answersOf(svc, all);
      const names = fqdn(svc.name);
      const cls = !all.length ? '' : healthy === all.length ? 'ok' : healthy === 0 ? 'down' : 'warn';
      let html = `<div class="block" data-service="${esc(svc.name)}"><div class="block-head">
        <h3>${esc(svc.name)}</h3>${badge(`${healthy}/${all.length} healthy`, cls)}${out_ ? ' ' + badge(`${out_} drained or in maint`, 'warn') : ''}
        <span class="muted">port ${esc(svc.port)} · ${esc(checkText(svc.check))}</span></div>`;
      if (names.length) {
        html += `<div class="answers">${names.map((n) => `<code>${esc(n)}</code>`).join(', ')} → ${ans.addrs.length ? ans.addrs.map((a) => `<code>${esc(a)}</code>`).join(' ') : '<b>nothing</b> (NODATA)'}${ans.failOpen ? ' ' + badge('fail-open: no node is healthy, every node is answered', 'warn') : ''}</div>`;
      }
      if (!all.length) {
        html += `<p class="empty">No nodes. Register one with <code>PUT /v1/services/${esc(svc.name)}/nodes/ID</code> or run <code>seamark agent</code> beside it.</p></div>`;
        out.push(html);
        continue;
      }
      html += `<div class="scroll"><table class="nodes"><thead><tr><th>Node</th><th>Address</th><th>Health</th><th>Admin</th><th>Last check</th><th class="opt">Registered</th></tr></thead><tbody>`;
      // A large pool (candidate ranges): the nodes that are not healthy
      // first, and at most MAX_ROWS rows; the filter finds the rest.
      let rows = nodes;
      if (nodes.length > MAX_ROWS) {
        rows = [...nodes.filter((n) => !n.healthy), ...nodes.filter((n) => n.healthy)].slice(0, MAX_ROWS);
      }
      for (const n of rows) {
        const [label, hcls] = health(svc, n);
        const port = n.port || svc.port;
        const checks = (n.checks || []).map((c) =>
          `<span class="verdict">${badge(c.state, c.state === 'healthy' ? 'ok' : 'down')} ${esc(c.reason)} · ${esc(latency(c.latency))} · ${since(c.since)} ago <span class="who">by ${esc(c.checker)}</span></span>`).join('');
        const reg = [n.source, n.ttl ? `ttl ${n.ttl}` : '', n.weight && n.weight !== 1 ? `weight ${n.weight}` : ''].filter(Boolean).map(esc).join(' · ');
        const down = downSince(n);
        html += `<tr data-node="${esc(svc.name + '/' + n.id)}" data-health="${esc(label)}" data-admin="${esc(adminOf(n))}" class="${hcls === 'down' ? 'down' : ''}">
          <td class="nowrap"><b>${esc(n.id)}</b></td>
          <td class="mono nowrap">${esc(n.address)}:${esc(port)}</td>
          <td class="nowrap">${badge(label, hcls)}${down ? ` <span class="muted" title="since the checkers last found it down">down ${since(down)}</span>` : ''}</td>
          <td class="nowrap admin">${adminCell(svc, n)}</td>
          <td>${checks || (svc.check && svc.check.type === 'none' ? '<span class="muted">not checked</span>' : '<span class="muted">waiting for the first probes</span>')}</td>
          <td class="opt muted">${reg}${n.registered ? ` · ${since(n.registered)} ago` : ''}</td></tr>`;
      }
      html += '</tbody></table></div>';
      if (rows.length < nodes.length) {
        html += `<p class="empty">${num(nodes.length - rows.length)} more nodes not shown (the ones not healthy are listed first): type in the filter to find one.</p>`;
      }
      html += '</div>';
      out.push(html);
    }
    setHTML('services', out.join('') || '<p class="empty">Nothing matches the filter.</p>');
  }

  const MAX_PORT_ROWS = 256;   // per-port rows of one opened range

  function renderListeners() {
    if (!state.loaded.listeners || !state.loaded.lb) return;
    if (!state.listeners.length) {
      setHTML('listeners', '<p class="empty">No listeners. Declare them under <code>listeners:</code> (one port per customer, or a range) in the config file, or <code>POST /v1/listeners</code>.</p>');
      return;
    }
    const stats = new Map();
    for (const p of state.lb) {
      if (!stats.has(p.name)) stats.set(p.name, []);
      stats.get(p.name).push(p);
    }
    const stateBadge = (st) => badge(st, st === 'listening' ? 'ok' : st === 'failed' ? 'down' : 'warn');
    // activeCell: the open connections beside max_conns, and at the cap how
    // many wait in the kernel's accept queue.
    // capNote says a port is at max_conns and how many clients wait in the
    // kernel's accept queue meanwhile.
    const capNote = (atCap, queued) => (atCap ? `<br>${badge('at max_conns', 'warn')}` : '') +
      (queued ? ` <span class="muted nowrap" title="clients waiting in the kernel's accept queue">${num(queued)} queued</span>` : '');
    const activeCell = (active, max, queued, paused) => {
      const h = `<b>${num(active)}</b>${max ? `<span class="muted"> / ${num(max)}</span>` : ''}`;
      return `<td class="num" data-active="${active}" data-queued="${queued}" title="${max ? `max_conns ${max} per port; accepts paused at the cap ${num(paused)} times` : 'no max_conns'}">${h}</td>`;
    };
    let rows = '';
    const backends = new Map();
    for (const l of state.listeners) {
      if (!matches(l.name, l.service, l.port, l.ports, l.bind)) continue;
      const ports = stats.get(l.name) || [];
      const sum = sumOf(ports);
      const states = {};
      const errors = [];
      let atCap = 0;
      for (const p of ports) {
        states[p.state] = (states[p.state] || 0) + 1;
        if (p.error) errors.push(`${p.addr}: ${p.error}`);
        if (p.backends && p.backends.length) backends.set(l.service, p.backends);
        if (p.max_conns && p.active >= p.max_conns) atCap++;
      }
      let st;
      const keys = Object.keys(states);
      if (!keys.length) st = badge('not on this server', '');
      else st = keys.sort().map((k) => badge(keys.length === 1 && ports.length > 1 ? `${ports.length} ${k}` : (keys.length > 1 ? `${states[k]} ${k}` : k),
        k === 'listening' ? 'ok' : k === 'failed' ? 'down' : 'warn')).join(' ');
      const bind = l.bind || '0.0.0.0';
      const r = state.rates.get(`listener ${l.name}`);
      const pk = state.peaks.get(l.name);
      const range = ports.length > 1;
      const open = range && state.expanded.has(l.name);
      const max = l.max_conns || 0;
      const cap = range && atCap ? `<br>${badge(`${atCap} of ${ports.length} ports at max_conns`, 'warn')}` +
        (sum.queued ? ` <span class="muted nowrap">${num(sum.queued)} queued</span>` : '') : capNote(atCap, sum.queued);
      rows += `<tr data-listener="${esc(l.name)}" data-cps="${r ? r.total : ''}" data-ports="${ports.length}" class="${atCap ? 'cap' : ''}">
        <td class="nowrap">${range ? `<button type="button" class="expand" data-expand="${esc(l.name)}" aria-expanded="${open}" title="${open ? 'Hide' : 'Show'} the ports of this range one by one">${open ? '▾' : '▸'}</button> ` : ''}<b>${esc(l.name)}</b></td>
        <td class="mono nowrap">${esc(bind)}:${esc(l.port || l.ports)}</td>
        <td class="nowrap" title="balance ${esc(l.balance || 'round_robin')}${l.proxy_protocol ? ', sends PROXY ' + esc(l.proxy_protocol) : ''}">${esc(l.service)}</td>
        <td${errors.length ? ` title="${esc(errors.join('\n'))}"` : ''}>${st}${cap}</td>
        ${activeCell(sum.active, max, sum.queued, sum.paused)}
        <td class="num rate">${r ? rate(r.total) : '–'}</td>
        <td class="num rate">${r ? byteRate(r.bytes_in) : '–'}</td><td class="num rate">${r ? byteRate(r.bytes_out) : '–'}</td>
        <td class="num opt peak" title="the highest seen since this page loaded">${pk ? `${num(pk.active)} · ${rate(pk.cps)}/s` : '–'}</td>
        ${totalsCell(sum)}
        ${errorsCell(sum)}</tr>`;
      if (open) {
        for (const p of ports.slice(0, MAX_PORT_ROWS)) {
          const pr = state.rates.get(`port ${p.name} ${p.addr}`);
          rows += `<tr class="port-row" data-port="${esc(l.name + ' ' + p.addr)}" data-cps="${pr ? pr.total : ''}">
            <td></td><td class="mono nowrap">${esc(p.addr)}</td><td></td>
            <td${p.error ? ` title="${esc(p.error)}"` : ''}>${stateBadge(p.state)}${capNote(p.max_conns && p.active >= p.max_conns, p.queued || 0)}</td>
            ${activeCell(p.active || 0, p.max_conns || 0, p.queued || 0, p.paused || 0)}
            <td class="num rate">${pr ? rate(pr.total) : '–'}</td>
            <td class="num rate">${pr ? byteRate(pr.bytes_in) : '–'}</td><td class="num rate">${pr ? byteRate(pr.bytes_out) : '–'}</td>
            <td class="opt"></td>${totalsCell(p)}
            ${errorsCell(p)}</tr>`;
        }
        if (ports.length > MAX_PORT_ROWS) rows += `<tr class="port-row"><td></td><td colspan="10" class="muted">${num(ports.length - MAX_PORT_ROWS)} more ports not shown (see <code>seamark listeners --ports</code>)</td></tr>`;
      }
    }
    const loadedAt = state.loadedAt.toLocaleTimeString([], { hour12: false });
    let html = rows ? `<div class="scroll"><table class="listeners"><thead><tr><th>Listener</th><th>Ports</th><th>Service</th><th>State</th>
      <th class="num" title="open connections / max_conns per port">Active</th><th class="num">Conn/s</th><th class="num">In/s</th><th class="num">Out/s</th>
      <th class="num opt" title="the highest active connections and conn/s seen since this page loaded, at ${esc(loadedAt)}">Peak*</th>
      <th class="num opt" title="connections, bytes in / out since the server started">Total</th><th>Errors</th></tr></thead><tbody>${rows}</tbody></table></div>
      <p class="note muted">Rates are over the last two reads of /v1/lb. *Peak: the most active connections and conn/s seen since this page loaded (${esc(loadedAt)}).</p>` : '<p class="empty">Nothing matches the filter.</p>';
    for (const [svc, bs] of backends) {
      html += `<div class="block"><div class="block-head"><h3>Backends of ${esc(svc)}</h3><span class="muted">counted over every port of the service</span></div>
        <div class="scroll"><table><thead><tr><th>Node</th><th>Address</th><th>Health</th><th class="num opt">Weight</th><th class="num">Active</th><th class="num">Conn/s</th><th class="num">In/s</th><th class="num">Out/s</th><th class="num opt" title="connections, bytes in / out since the server started">Total</th><th>Errors</th></tr></thead><tbody>`;
      for (const b of bs) {
        const r = state.rates.get(`backend ${svc}/${b.node}`);
        html += `<tr data-backend="${esc(svc + '/' + b.node)}" data-cps="${r ? r.total : ''}"><td class="nowrap"><b>${esc(b.node)}</b></td><td class="mono nowrap">${esc(b.addr)}</td>
          <td>${b.healthy ? badge('healthy', 'ok') : badge('down', 'down')}${b.down_since ? ` <span class="muted" title="since the balancer took it out">down ${since(b.down_since)}</span>` : ''}</td><td class="num opt">${num(b.weight)}</td>
          <td class="num">${num(b.active)}</td><td class="num rate">${r ? rate(r.total) : '–'}</td>
          <td class="num rate">${r ? byteRate(r.bytes_in) : '–'}</td><td class="num rate">${r ? byteRate(r.bytes_out) : '–'}</td>
          ${totalsCell(b)}
          ${errorsCell(b)}</tr>`;
      }
      html += '</tbody></table></div></div>';
    }
    setHTML('listeners', html);
  }

  // Open or close a range's per-port rows.
  $('listeners').addEventListener('click', (ev) => {
    const b = ev.target.closest('button.expand');
    if (!b) return;
    const name = b.dataset.expand;
    if (state.expanded.has(name)) state.expanded.delete(name); else state.expanded.add(name);
    renderListeners();
  });

  // renderServers lists the health checkers (one per seamark server that
  // checks) and marks the server this page reads from. A checker is listed
  // while its store lease lives; its last report is the newest verdict it
  // gave on any node.
  function renderServers() {
    const st = state.status;
    if (!st || !state.loaded.nodes) return;
    const checkers = (st.checkers || []).slice().sort((a, b) => a.id.localeCompare(b.id));
    const last = new Map();
    for (const n of state.nodes) {
      for (const c of n.checks || []) {
        if (!last.has(c.checker) || Date.parse(c.since) > Date.parse(last.get(c.checker))) last.set(c.checker, c.since);
      }
    }
    const here = st.server || '';
    let rows = '';
    const row = (id, c) => {
      const me = id === here;
      const health = !c ? badge('does not check', '')
        : c.degraded ? `${badge('degraded', 'warn')} <span class="muted">${esc(c.degraded)}</span>` : badge('ok', 'ok');
      return `<tr data-server="${esc(id)}" data-degraded="${c && c.degraded ? 'true' : 'false'}" class="${me ? 'this-server' : ''}">
        <td class="nowrap"><b>${esc(id)}</b>${me ? ` ${badge('this page', '')}` : ''}</td>
        <td>${health}</td>
        <td class="mono">${esc((c && c.version) || (me ? st.version : ''))}</td>
        <td class="nowrap">${c ? since(c.started) : since(st.started_at)}</td>
        <td class="nowrap" title="the newest verdict this checker gave on any node">${last.has(id) ? `${since(last.get(id))} ago` : '<span class="muted">no verdict yet</span>'}</td></tr>`;
    };
    for (const c of checkers) rows += row(c.id, c);
    if (here && !checkers.some((c) => c.id === here)) rows = row(here, null) + rows;
    setHTML('servers', rows
      ? `<div class="scroll"><table><thead><tr><th>Server</th><th>Checker</th><th>Version</th><th>Up</th><th>Last report</th></tr></thead><tbody>${rows}</tbody></table></div>`
      : '<p class="empty">No health checker is live: nothing probes the nodes. Every <code>seamark server</code> checks unless started with checks off.</p>');
  }

  // liveStandbys are the members of an active-standby group, other than the
  // active one, whose candidacy is live and not in fault: the ones that
  // would take over.
  function liveStandbys(g) {
    const active = g.active ? g.active.member : '';
    return (g.candidates || []).filter((c) => c.member !== active && !c.fault);
  }

  function renderGroups() {
    if (!state.loaded.groups) return;
    if (!state.groups.length) {
      setHTML('groups', '<p class="empty">No balancer groups. Declare them under <code>groups:</code> in the config file and run each balancer with <code>seamark server --member NAME</code>.</p>');
      return;
    }
    const out = [];
    for (const g of state.groups) {
      if (!matches(g.name, ...g.members.map((m) => m.name), ...g.members.map((m) => m.address))) continue;
      const cands = new Map((g.candidates || []).map((c) => [c.member, c]));
      const aa = g.mode === 'active-active';
      let head = `<div class="block" data-group="${esc(g.name)}"><div class="block-head"><h3>${esc(g.name)}</h3><span class="muted">${esc(g.mode || 'active-standby')}${g.preempt === false ? ', no preempt' : g.preempt_delay ? `, preempt after ${esc(g.preempt_delay)}` : ''}</span>`;
      const standbys = liveStandbys(g);
      if (!aa) head += g.active ? badge(`active: ${g.active.member}`, 'ok') : badge('no member is active', 'down');
      if (!aa && g.active && !standbys.length) {
        head += ` <span class="badge warn" data-nostandby="${esc(g.name)}" title="only the active member campaigns: if it fails, nothing takes its place">no live standby</span>`;
      }
      head += '</div>';
      const names = fqdn(g.name);
      if (names.length) head += `<div class="answers">${names.map((n) => `<code>${esc(n)}</code>`).join(', ')} → ${g.answer.length ? g.answer.map((a) => `<code>${esc(a)}</code>`).join(' ') : '<b>nothing</b>'}${g.active ? ` · since ${since(g.active.since)} ago, fencing ${esc(g.active.fencing)}` : ''}</div>`;
      if (!aa && g.active) {
        // Fast failover: the observers' views of the active member's claim.
        const obs = (g.observations || []).filter((o) => o.member === g.active.member && o.lease === g.active.lease);
        const down = obs.filter((o) => o.down);
        if (g.fast_failover === false) head += '<div class="muted" data-observers="off">fast failover off: lease expiry only</div>';
        else head += `<div class="muted" data-observers="${obs.length}">${obs.length} observer${obs.length === 1 ? '' : 's'} of ${esc(g.active.member)}${down.length ? `: ${badge(`${down.length} say down`, 'down')} ${down.map((o) => `${esc(o.observer)} (${esc(o.reason || '')})`).join(', ')}` : ', all see it answer'}</div>`;
      }
      let rows = '';
      for (const m of g.members) {
        const c = cands.get(m.name);
        const isActive = g.active && g.active.member === m.name;
        let role;
        if (!c) role = badge('not running', 'down');
        else if (c.fault) role = badge('fault', 'down');
        else role = badge(c.role || '?', c.role === 'active' ? 'ok' : '');
        rows += `<tr data-member="${esc(g.name + '/' + m.name)}" class="${isActive ? 'active-row' : ''}">
          <td class="nowrap"><b>${esc(m.name)}</b></td><td class="mono">${esc(m.address)}</td>
          <td class="num">${esc(m.priority)}</td><td class="num">${c ? esc(c.effective) : '-'}</td>
          <td>${role}</td><td class="opt">${c ? esc(c.server || '') : ''}</td>
          <td class="muted">${c ? esc(c.reason || '') : `no server campaigns as ${esc(m.name)}`}</td></tr>`;
      }
      out.push(`${head}<div class="scroll"><table><thead><tr><th>Member</th><th>Address</th><th class="num">Priority</th><th class="num">Effective</th><th>Role</th><th class="opt">Server</th><th>Note</th></tr></thead><tbody>${rows}</tbody></table></div></div>`);
    }
    setHTML('groups', out.join('') || '<p class="empty">Nothing matches the filter.</p>');
  }

  function renderZones() {
    if (!state.loaded.zones) return;
    if (!state.zones.length) {
      setHTML('zones', '<p class="empty">No zones: nothing is served in DNS. Declare them with <code>zones: [example.com]</code> in the config file.</p>');
      return;
    }
    const out = [];
    for (const z of state.zones) {
      const recs = (state.records[z.name] || []).filter((r) => matches(r.name, r.type, ...(r.values || [])));
      const served = [
        ...state.services.map((s) => `<code>${esc(s.name)}</code>`),
        ...state.groups.map((g) => `<code>${esc(g.name)}</code>`),
      ];
      let html = `<div class="block" data-zone="${esc(z.name)}"><div class="block-head"><h3>${esc(z.name)}</h3>
        <span class="muted">${served.length ? 'names of ' + served.join(', ') + ', ' : ''}<code>&lt;node&gt;.node</code>, SOA, NS${recs.length ? ', and these records:' : ''}</span></div>`;
      if (recs.length) {
        html += '<div class="scroll"><table><thead><tr><th>Name</th><th>Type</th><th class="opt">TTL</th><th>Values</th></tr></thead><tbody>';
        for (const r of recs) {
          html += `<tr><td class="mono">${esc(r.name)}</td><td>${esc(r.type)}</td><td class="opt">${esc(r.ttl || '')}</td><td class="mono">${(r.values || []).map(esc).join('<br>')}</td></tr>`;
        }
        html += '</tbody></table></div>';
      }
      out.push(html + '</div>');
    }
    setHTML('zones', out.join(''));
  }

  function eventHTML(e, isNew) {
    const when = `<span class="when" title="${esc(new Date(e.time).toLocaleString())}">${esc(clock(e.time))}</span>`;
    let what, why = '', cls = '';
    if (e.kind === 'health') {
      cls = e.new === 'healthy' ? 'ok' : 'down';
      what = `${badge(e.new === 'healthy' ? 'up' : 'down', cls)} <span class="what">${esc(e.service)}/${esc(e.node)}</span> <span class="mono muted">${esc(e.address)}</span> ${esc(e.old || '?')} → ${esc(e.new)}`;
      why = `${esc(e.reason)}${e.checker ? ` · by ${esc(e.checker)}` : ''}`;
    } else if (e.kind === 'admin') {
      cls = e.new === 'ready' ? 'ok' : 'warn';
      what = `${badge(e.new || 'admin', cls)} <span class="what">${esc(e.service)}/${esc(e.node)}</span> admin ${esc(e.old || 'ready')} → ${esc(e.new)}`;
      why = `${esc(e.reason)}${e.who ? ` · by ${esc(e.who)}` : ''}`;
    } else if (e.kind === 'role') {
      cls = e.role === 'active' ? 'ok' : e.role === 'fault' ? 'down' : '';
      what = `${badge(e.role || 'role', cls)} <span class="what">${esc(e.group)}/${esc(e.member)}</span> is ${esc(e.role)}${e.fencing ? ` <span class="muted">fencing ${esc(e.fencing)}</span>` : ''}`;
      why = `${esc(e.reason)}${e.checker ? ` · ${esc(e.checker)}` : ''}`;
    } else if (e.kind === 'audit') {
      const ok = /^(2\d\d|NOERROR)$/.test(e.result || '');
      cls = ok ? '' : 'down';
      what = `${badge('audit', cls)} <span class="what">${esc(e.action)}</span> <span class="mono muted">${esc(e.result)}</span>`;
      why = `${esc(e.who)} from ${esc(e.from)}`;
    } else if (e.kind === 'revoke') {
      cls = 'down';
      what = `${badge('revoked', cls)} <span class="what">${esc(e.group)}/${esc(e.member)}</span> lost its claim <span class="muted">fencing ${esc(e.fencing)}</span>`;
      why = `${esc(e.reason)}${e.checker ? ` · by ${esc(e.checker)}` : ''}`;
    } else {
      // Kinds this page does not know yet (registrations, ...): show what they carry.
      const subject = [e.service && e.node ? `${e.service}/${e.node}` : e.service || e.node, e.group && e.member ? `${e.group}/${e.member}` : e.group]
        .filter(Boolean).join(' ');
      what = `${badge(e.kind, '')} <span class="what">${esc(subject)}</span> <span class="mono muted">${esc(e.address)}</span>${e.new ? ` ${esc(e.old || '')} → ${esc(e.new)}` : ''}`;
      why = esc(e.reason || '');
    }
    return `<li class="${isNew ? 'new' : ''}" data-kind="${esc(e.kind)}">${when}${what}${why ? `<span class="why">${why}</span>` : ''}</li>`;
  }

  function renderEvents() {
    if (!state.loaded.events) return;
    const list = state.events.filter((e) => matches(e.kind, e.service, e.node, e.address, e.reason, e.group, e.member, e.role, e.new, e.checker, e.who, e.action));
    $('events-note').textContent = state.events.length ? `newest first · ${state.events.length} shown` : '';
    if (!list.length) {
      setHTML('events', `<li class="empty">${state.events.length ? 'Nothing matches the filter.' : 'No events yet. Health transitions and role changes appear here as they happen.'}</li>`);
      return;
    }
    const after = state.flashAfter;
    setHTML('events', list.slice().reverse().map((e) => eventHTML(e, after > 0 && (e.revision || 0) > after)).join(''));
  }

  // Node actions: one handler for every button the services table holds.
  $('services').addEventListener('click', async (ev) => {
    const b = ev.target.closest('button.act');
    if (!b) return;
    const [svc, id] = b.dataset.node.split('/');
    const path = `services/${encodeURIComponent(svc)}/nodes/${encodeURIComponent(id)}/admin`;
    const n = state.nodes.find((x) => x.service === svc && x.id === id);
    const weight = n && n.admin ? n.admin.weight || 0 : 0;
    b.disabled = true;
    try {
      if (b.dataset.act === 'ready' && !weight) await send('DELETE', path);
      else await send('PUT', path, weight ? { state: b.dataset.act, weight } : { state: b.dataset.act });
      $('action-msg').hidden = true;
    } catch (err) {
      $('action-msg').textContent = err.message;
      $('action-msg').hidden = false;
      b.disabled = false;
    }
  });

  // Relative times keep counting between updates.
  setInterval(() => tick(document), 1000);

  start();
})();
