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
    const total = state.nodes.length;
    const healthy = state.nodes.filter((n) => n.healthy).length;
    const down = total - healthy;
    let active = 0, failed = 0, listening = 0;
    for (const p of state.lb) {
      active += p.active || 0;
      if (p.state === 'failed') failed++;
      if (p.state === 'listening') listening++;
    }
    const actives = state.groups.map((g) => `${g.name}: ${g.active ? g.active.member : (g.mode === 'active-active' ? g.answer.length + ' live' : 'none active')}`);
    const noActive = state.groups.some((g) => g.mode !== 'active-active' && !g.active);
    setHTML('summary', [
      tile(`${num(healthy)}<small class="muted"> / ${num(total)}</small>`, 'nodes healthy', down ? 'down' : (total ? 'ok' : ''),
        down ? `${down} not answered in DNS nor sent connections` : ''),
      tile(num(state.services.length), 'services'),
      tile(num(state.listeners.length), `listeners · ${num(listening)} ${listening === 1 ? 'port' : 'ports'} open${failed ? `, <b>${failed} failed</b>` : ''}`, failed ? 'down' : ''),
      tile(num(active), 'open connections'),
      tile(num(state.groups.length), state.groups.length ? esc(actives.join(', ')) : 'balancer groups', noActive ? 'warn' : ''),
      tile(num((st.checkers || []).length), 'health checkers', (st.checkers || []).length ? 'ok' : 'warn',
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
    let rows = '';
    const backends = new Map();
    for (const l of state.listeners) {
      if (!matches(l.name, l.service, l.port, l.ports, l.bind)) continue;
      const ports = stats.get(l.name) || [];
      const sum = { active: 0, total: 0, bytes_in: 0, bytes_out: 0, connect_errors: 0, retries: 0, refused: 0 };
      const states = {};
      const errors = [];
      for (const p of ports) {
        for (const k of Object.keys(sum)) sum[k] += p[k] || 0;
        states[p.state] = (states[p.state] || 0) + 1;
        if (p.error) errors.push(`${p.addr}: ${p.error}`);
        if (p.backends && p.backends.length) backends.set(l.service, p.backends);
      }
      let st;
      const keys = Object.keys(states);
      if (!keys.length) st = badge('not on this server', '');
      else st = keys.sort().map((k) => badge(keys.length === 1 && ports.length > 1 ? `${ports.length} ${k}` : (keys.length > 1 ? `${states[k]} ${k}` : k),
        k === 'listening' ? 'ok' : k === 'failed' ? 'down' : 'warn')).join(' ');
      const bind = l.bind || '0.0.0.0';
      rows += `<tr data-listener="${esc(l.name)}">
        <td class="nowrap"><b>${esc(l.name)}</b></td>
        <td class="mono nowrap">${esc(bind)}:${esc(l.port || l.ports)}</td>
        <td>${esc(l.service)}</td>
        <td class="opt">${esc(l.balance || 'round_robin')}${l.proxy_protocol ? ' · PROXY ' + esc(l.proxy_protocol) : ''}</td>
        <td${errors.length ? ` title="${esc(errors.join('\n'))}"` : ''}>${st}</td>
        <td class="num">${num(sum.active)}</td><td class="num">${num(sum.total)}</td>
        <td class="num">${bytes(sum.bytes_in)}</td><td class="num">${bytes(sum.bytes_out)}</td>
        <td class="num opt" title="connect errors / retries / refused clients">${num(sum.connect_errors)} / ${num(sum.retries)} / ${num(sum.refused)}</td></tr>`;
    }
    let html = rows ? `<div class="scroll"><table><thead><tr><th>Listener</th><th>Ports</th><th>Service</th><th class="opt">Balance</th><th>State</th>
      <th class="num">Active</th><th class="num">Total</th><th class="num">In</th><th class="num">Out</th><th class="num opt">Err / retry / refused</th></tr></thead><tbody>${rows}</tbody></table></div>` : '<p class="empty">Nothing matches the filter.</p>';
    for (const [svc, bs] of backends) {
      html += `<div class="block"><div class="block-head"><h3>Backends of ${esc(svc)}</h3><span class="muted">counted over every port of the service</span></div>
        <div class="scroll"><table><thead><tr><th>Node</th><th>Address</th><th>Health</th><th class="num opt">Weight</th><th class="num">Active</th><th class="num">Total</th><th class="num">In</th><th class="num">Out</th><th class="num opt">Errors</th></tr></thead><tbody>`;
      for (const b of bs) {
        html += `<tr data-backend="${esc(svc + '/' + b.node)}"><td class="nowrap"><b>${esc(b.node)}</b></td><td class="mono nowrap">${esc(b.addr)}</td>
          <td>${b.healthy ? badge('healthy', 'ok') : badge('down', 'down')}</td><td class="num opt">${num(b.weight)}</td>
          <td class="num">${num(b.active)}</td><td class="num">${num(b.total)}</td><td class="num">${bytes(b.bytes_in)}</td><td class="num">${bytes(b.bytes_out)}</td>
          <td class="num opt">${num(b.connect_errors)}</td></tr>`;
      }
      html += '</tbody></table></div></div>';
    }
    setHTML('listeners', html);
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
      if (!aa) head += g.active ? badge(`active: ${g.active.member}`, 'ok') : badge('no member is active', 'down');
      head += '</div>';
      const names = fqdn(g.name);
      if (names.length) head += `<div class="answers">${names.map((n) => `<code>${esc(n)}</code>`).join(', ')} → ${g.answer.length ? g.answer.map((a) => `<code>${esc(a)}</code>`).join(' ') : '<b>nothing</b>'}${g.active ? ` · since ${since(g.active.since)} ago, fencing ${esc(g.active.fencing)}` : ''}</div>`;
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
      why = `${esc(e.reason)}${e.by ? ` · by ${esc(e.by)}` : ''}`;
    } else if (e.kind === 'role') {
      cls = e.role === 'active' ? 'ok' : e.role === 'fault' ? 'down' : '';
      what = `${badge(e.role || 'role', cls)} <span class="what">${esc(e.group)}/${esc(e.member)}</span> is ${esc(e.role)}${e.fencing ? ` <span class="muted">fencing ${esc(e.fencing)}</span>` : ''}`;
      why = `${esc(e.reason)}${e.checker ? ` · ${esc(e.checker)}` : ''}`;
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
    const list = state.events.filter((e) => matches(e.kind, e.service, e.node, e.address, e.reason, e.group, e.member, e.role, e.new, e.checker));
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
