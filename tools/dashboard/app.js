// SPDX-License-Identifier: MIT
// heald's dashboard: plain JS, no build step, nothing loaded from anywhere but heald.
// Initial state from /api/v1/status, /api/v1/traces and /api/v1/traces/ID; live through
// the SSE stream /api/v1/events/stream (resumed after the status' last_event_id, so no
// event falls between the snapshot and the stream; duplicates are dropped by event id).
// The control bar offers what heald offers: pause, resume and mode when their POST answers
// 401 without a token, the demo failures of /api/v1/triggers when it lists any.
'use strict';
(function () {
  const API = '/api/v1';
  const FAILURES = new Set(['SYSCALL_FAILURE', 'API_FAILURE', 'CRASH', 'EXIT_FAILURE', 'OOM_KILL', 'SYSCALL_COUNTS']);
  const ENDS = new Set(['HEALED', 'HEAL_FAILED', 'ESCALATED', 'DRY_RUN']);
  const KIND = {
    HEALED: 'ok', VERIFY_PASS: 'ok', APPROVED: 'ok', PATCH_APPLIED: 'ok', RELOAD_DONE: 'ok',
    HEAL_FAILED: 'bad', ESCALATED: 'bad', VERIFY_FAIL: 'bad', PATCH_BLOCKED: 'bad', REJECTED: 'bad',
    ROLLBACK_DONE: 'warn', APPROVAL_REQUIRED: 'warn', DRY_RUN: 'warn',
  };
  const MARK = { ok: '✓', bad: '✗', warn: '!', info: '•' };
  const MAX_TRACES = 100, MAX_LOG = 400, DETAIL_PRELOAD = 10;

  const $ = (id) => document.getElementById(id);
  const traces = new Map(); // trace_id -> {id, target, playbook, state, started, events: [], seen: Set}
  let selected = null, userPicked = false, lastId = 0, es = null, features = {};

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const kindOf = (type) => KIND[type] || (FAILURES.has(type) ? 'bad' : 'info');
  const pct = (x) => (typeof x === 'number' ? Math.round(x * 100) + '%' : '–');
  const ms = (x) => (typeof x !== 'number' ? '' : x < 1000 ? x + ' ms' : (x / 1000).toFixed(2) + ' s');
  const clock = (ts) => (ts ? String(ts).replace(/^.*T/, '').replace(/(\.\d{3})\d*Z?$/, '$1') : '');

  // ---- token and actions -------------------------------------------------------------------
  const tokenInput = $('token');
  try { tokenInput.value = sessionStorage.getItem('heal.token') || ''; } catch (e) { /* storage off */ }
  tokenInput.addEventListener('input', () => {
    try { sessionStorage.setItem('heal.token', tokenInput.value.trim()); } catch (e) { /* storage off */ }
  });

  function notice(msg, bad) {
    const n = $('notice');
    n.textContent = msg;
    n.className = 'notice' + (bad ? ' bad' : '');
  }

  // POST with the token; `what` names the action in the notice (default: the path).
  async function post(path, body, what) {
    const token = tokenInput.value.trim();
    what = what || path;
    if (!token) { notice(`${what}: paste the API token (STATE_DIR/api.token) first.`, true); tokenInput.focus(); return false; }
    try {
      const r = await fetch(API + path, {
        method: 'POST',
        headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify(body || {}),
      });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) { notice(`${what}: ${j.error || r.status}`, true); return false; }
      notice(`${what}: ${r.status === 202 ? 'queued' : 'done'}`);
      setTimeout(loadStatus, 300);
      return true;
    } catch (e) {
      notice(`${what}: ${e.message}`, true);
      return false;
    }
  }

  // An endpoint exists when a POST without a token gets 401 (heald routes before it authorizes).
  async function offered(path) {
    try {
      const r = await fetch(API + path, { method: 'POST', body: '{}' });
      return r.status === 401 || r.status === 403;
    } catch (e) { return false; }
  }
  async function probeFeatures() {
    const [pause, resume, mode] = await Promise.all(['/pause', '/resume', '/mode'].map(offered));
    features = { pause, resume, mode };
    $('pause').hidden = !pause;
    $('resume').hidden = !resume;
    $('mode-select').hidden = !mode;
    $('mode').hidden = mode;
  }
  $('pause').addEventListener('click', () => post('/pause'));
  $('resume').addEventListener('click', () => post('/resume'));
  $('mode-select').addEventListener('change', (e) => post('/mode', { mode: e.target.value }));

  // ---- demo failures -----------------------------------------------------------------------
  // GET /api/v1/triggers lists [{target, name, description}]; none, or a heald without it
  // (404), hides the control. POST /api/v1/trigger {target, name} queues one (202); heald
  // runs its command and publishes TRIGGERED (target, name, exit_code, output).
  const trigSelect = $('trigger-select'), trigButton = $('trigger');
  let triggers = [];
  const trigKey = (x) => JSON.stringify([x.target, x.name]);
  const trigLabel = (x) => `${x.target} · ${x.name}`;
  const currentTrigger = () => triggers.find((x) => trigKey(x) === trigSelect.value) || null;
  function describeTrigger() {
    const x = currentTrigger();
    const d = x && x.description ? x.description : '';
    trigSelect.title = d;
    trigButton.title = `${d ? d + '. ' : ''}Runs this failure's command on heald's host (needs the token).`;
  }
  async function loadTriggers() {
    let list = [];
    try {
      const r = await fetch(API + '/triggers');
      const j = r.ok ? await r.json() : [];
      if (Array.isArray(j)) list = j.filter((x) => x && typeof x.target === 'string' && typeof x.name === 'string');
    } catch (e) { /* not offered */ }
    const prev = trigSelect.value;
    triggers = list;
    trigSelect.replaceChildren(...list.map((x) => el('option', { value: trigKey(x), title: x.description || '', text: trigLabel(x) })));
    if (list.some((x) => trigKey(x) === prev)) trigSelect.value = prev;
    $('trigger-box').hidden = list.length === 0;
    describeTrigger();
  }
  trigSelect.addEventListener('change', describeTrigger);
  trigButton.addEventListener('click', async () => {
    const x = currentTrigger();
    if (!x) return;
    trigButton.disabled = true;
    try { await post('/trigger', { target: x.target, name: x.name }, `trigger ${trigLabel(x)}`); } finally { trigButton.disabled = false; }
  });
  const triggeredKind = (p) => (p && p.exit_code === 0 ? 'warn' : 'bad');
  function onTriggered(ev) {
    const p = ev.payload || {};
    const what = `${p.target || '?'} · ${p.name || '?'}`;
    const out = String(p.output || '').trim().split('\n').pop();
    if (p.exit_code === 0) notice(`triggered ${what}: waiting for the failure…`);
    else notice(`trigger ${what} failed (exit ${p.exit_code ?? '?'})${out ? ': ' + out.slice(0, 200) : ''}`, true);
  }

  // ---- status ------------------------------------------------------------------------------
  async function loadStatus() {
    try {
      const s = await (await fetch(API + '/status')).json();
      $('mode').textContent = s.mode || '–';
      if (s.mode) $('mode-select').value = s.mode;
      $('paused').hidden = !s.paused;
      $('paused').className = 'pill warn';
      const c = $('counts');
      c.replaceChildren();
      for (const [k, label] of [['open_traces', 'open'], ['healed', 'healed'], ['failed', 'failed'],
        ['escalated', 'escalated'], ['blocked', 'blocked'], ['rolled_back', 'rolled back']]) {
        if (typeof s[k] === 'number') c.append(el('span', { 'data-k': k }, label + ' ', el('b', { text: String(s[k]) }), ' '));
      }
      c.title = `heald ${s.version || ''} (${s.revision || ''}), up ${s.uptime_s ?? '?'} s`;
      return s;
    } catch (e) {
      return null;
    }
  }

  // ---- traces ------------------------------------------------------------------------------
  function traceOf(id, row) {
    let t = traces.get(id);
    if (!t) {
      t = { id, events: [], seen: new Set(), state: 'OPEN' };
      traces.set(id, t);
    }
    if (row) {
      for (const k of ['target', 'playbook', 'state', 'started', 'elapsed_ms']) if (row[k] !== undefined && row[k] !== '') t[k] = row[k];
      if (row.diff) t.diff = row.diff;
    }
    return t;
  }

  // Add one event (the journal's JSON, with "id" when known); true when it is new.
  function addEvent(t, ev) {
    const key = ev.id !== undefined ? 'i' + ev.id : 'k' + ev.type + ev.timestamp;
    if (t.seen.has(key)) return false;
    t.seen.add(key);
    t.events.push(ev);
    if (ev.id !== undefined) t.events.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    const p = ev.payload || {};
    if (p.target) t.target = p.target;
    if (p.playbook) t.playbook = p.playbook;
    if (!t.started) t.started = ev.timestamp;
    if (!FAILURES.has(ev.type)) {
      if (ENDS.has(ev.type) || ev.type === 'APPROVAL_REQUIRED' || !ENDS.has(t.state)) t.state = ENDS.has(ev.type) ? ev.type : (ev.type === 'APPROVAL_REQUIRED' ? 'APPROVAL_REQUIRED' : 'OPEN');
      if (typeof p.elapsed_ms === 'number') t.elapsed_ms = p.elapsed_ms;
    }
    if (p.diff) t.diff = p.diff;
    return true;
  }

  function renderCard(t, fresh) {
    let li = document.querySelector(`.trace[data-trace="${CSS.escape(t.id)}"]`);
    const steps = el('ol', { class: 'steps', 'aria-label': 'Steps' });
    let repeats = 0, detected = false;
    for (const ev of t.events) {
      if (FAILURES.has(ev.type)) {
        if (detected) { repeats++; continue; }
        detected = true;
      }
      const p = ev.payload || {};
      const k = kindOf(ev.type);
      const label = FAILURES.has(ev.type) ? `${ev.type} detected` : ev.type;
      const dur = FAILURES.has(ev.type) ? clock(ev.timestamp) : ms(p.step_ms);
      const st = el('li', { class: `step k-${k}`, 'data-type': ev.type, title: p.elapsed_ms !== undefined ? `+${ms(p.elapsed_ms)} since the failure` : '' },
        el('span', { class: 'mark', 'aria-hidden': 'true', text: MARK[k] }), el('span', { text: label }), el('span', { class: 'ms', text: dur }));
      if (fresh && fresh.has(ev)) st.classList.add('new');
      steps.append(st);
    }
    if (repeats) steps.append(el('li', { class: 'step k-info' }, el('span', { class: 'mark', text: '↻' }),
      el('span', { text: `${repeats} repeat${repeats > 1 ? 's' : ''} of the failure` }), el('span')));
    const card = el('li', {
      class: `trace s-${t.state}${t.id === selected ? ' sel' : ''}`, 'data-trace': t.id, 'data-state': t.state,
      tabindex: '0', role: 'button', 'aria-pressed': t.id === selected ? 'true' : 'false',
      'aria-label': `Heal ${t.id} of ${t.target || '?'}: ${t.state}`,
      onclick: () => select(t.id, true),
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(t.id, true); } },
    },
    el('div', { class: 'head' }, el('span', { class: 'title', text: `${t.target || '?'} · ${t.playbook || '…'}` }),
      el('span', { class: `pill ${stateKind(t.state)}`, text: t.state })),
    el('div', { class: 'head' }, el('span', { class: 'id', text: t.id }), el('span', { class: 'id', text: t.elapsed_ms !== undefined ? ms(t.elapsed_ms) : '' })),
    steps);
    if (li) li.replaceWith(card);
    else {
      const list = $('traces');
      list.prepend(card);
      while (list.children.length > MAX_TRACES) {
        const last = list.lastElementChild;
        traces.delete(last.dataset.trace);
        last.remove();
      }
    }
    $('no-traces').hidden = traces.size > 0;
  }
  function stateKind(s) {
    return s === 'HEALED' ? 'ok' : s === 'OPEN' ? '' : s === 'DRY_RUN' || s === 'APPROVAL_REQUIRED' ? 'warn' : 'bad';
  }

  function select(id, byUser) {
    if (byUser) {
      userPicked = true;
      $('follow').checked = false;
    }
    const prev = selected;
    selected = id;
    for (const c of document.querySelectorAll('.trace')) {
      const on = c.dataset.trace === id;
      c.classList.toggle('sel', on);
      c.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    renderReasoning();
    const t = traces.get(id);
    if (t && !t.loaded && prev !== id) loadTrace(id);
  }
  $('follow').addEventListener('change', (e) => {
    userPicked = !e.target.checked;
    if (!userPicked) {
      const first = $('traces').firstElementChild;
      if (first) select(first.dataset.trace, false);
    }
  });

  // ---- reasoning lane ----------------------------------------------------------------------
  function last(t, types) {
    for (let i = t.events.length - 1; i >= 0; i--) if (types.includes(t.events[i].type)) return t.events[i];
    return null;
  }
  function meter(x, cls) {
    return el('span', {}, el('span', { class: 'meter ' + (cls || ''), 'aria-hidden': 'true' },
      el('span', { style: `width:${Math.max(0, Math.min(1, x || 0)) * 100}%` })), pct(x));
  }
  function kv(pairs) {
    const dl = el('dl', { class: 'kv' });
    for (const [k, v] of pairs) if (v !== undefined && v !== null && v !== '') dl.append(el('dt', { text: k }), el('dd', {}, v));
    return dl;
  }
  function diffView(text) {
    const pre = el('pre', { class: 'diff', 'aria-label': 'Unified diff' });
    for (const line of String(text).replace(/\n$/, '').split('\n')) {
      let cls = 'ctx';
      if (line.startsWith('+++') || line.startsWith('---')) cls = 'file';
      else if (line.startsWith('@@')) cls = 'hunk';
      else if (line.startsWith('+')) cls = 'add';
      else if (line.startsWith('-')) cls = 'del';
      pre.append(el('span', { class: cls, text: line || ' ' }));
    }
    return pre;
  }

  function renderReasoning() {
    const box = $('reasoning');
    const t = selected && traces.get(selected);
    box.replaceChildren();
    if (!t) { box.append(el('p', { class: 'empty', text: 'Select a heal.' })); return; }
    const fail = t.events.find((e) => FAILURES.has(e.type));
    const rca = last(t, ['RCA_READY']);
    const ready = last(t, ['PATCH_READY', 'PATCH_BLOCKED']);
    const verify = last(t, ['VERIFY_PASS', 'VERIFY_FAIL']);
    const end = last(t, [...ENDS]);
    const rb = last(t, ['ROLLBACK_DONE']);
    const fp = (fail && fail.payload) || {};

    box.append(el('h3', { text: 'Heal' }), kv([
      ['trace', t.id], ['target', t.target], ['state', el('span', { class: `pill ${stateKind(t.state)}`, text: t.state })],
      ['failure', fail ? `${fail.type}${fp.symbol ? ' in ' + fp.symbol : ''}${fp.syscall ? ' ' + fp.syscall : ''}${fp.errno ? ' ' + fp.errno : ''}${fp.ret !== undefined ? ' ret ' + fp.ret : ''}` : ''],
      ['started', t.started], ['elapsed', t.elapsed_ms !== undefined ? ms(t.elapsed_ms) : ''],
    ]));

    box.append(el('h3', { text: 'Cause' }));
    if (rca) {
      const p = rca.payload || {};
      box.append(el('p', { class: 'cause', id: 'cause', text: p.cause || '–' }), kv([
        ['confidence', meter(p.confidence)], ['risk', meter(p.risk, 'risk')],
        ['playbook', p.playbook || t.playbook], ['source', p.source],
        ['alternatives', Array.isArray(p.plans) && p.plans.length > 1
          ? p.plans.map((x) => `${x.playbook} (${pct(x.confidence)}, risk ${pct(x.risk)})`).join(', ') : ''],
      ]));
    } else box.append(el('p', { class: 'empty', text: 'Waiting for the root cause analysis…' }));

    const approval = last(t, ['APPROVAL_REQUIRED', 'APPROVED', 'REJECTED']);
    if (approval && approval.type === 'APPROVAL_REQUIRED' && !end) {
      const p = approval.payload || {};
      box.append(el('h3', { text: 'Approval' }),
        el('p', { class: 'verdict warn', text: `Waiting for approval: risk ${pct(p.risk)} is above ${pct(p.approve_above)}.` }),
        el('div', { class: 'actions' },
          el('button', { type: 'button', class: 'ok', onclick: () => post(`/traces/${encodeURIComponent(t.id)}/approve`), text: 'Approve' }),
          el('button', { type: 'button', class: 'bad', onclick: () => post(`/traces/${encodeURIComponent(t.id)}/reject`), text: 'Reject' })));
    } else if (approval) {
      box.append(el('h3', { text: 'Approval' }), el('p', { class: `verdict ${kindOf(approval.type)}`, text: `${approval.type}${approval.payload && approval.payload.by ? ' by ' + approval.payload.by : ''}` }));
    }

    const diff = (ready && ready.payload && ready.payload.diff) || t.diff;
    box.append(el('h3', { text: 'Diff' }));
    if (diff) {
      const p = (ready && ready.payload) || {};
      if (p.files) box.append(kv([['files', p.files.join(', ')], ['lines', p.lines]]));
      box.append(diffView(diff));
    } else {
      const applied = last(t, ['PATCH_APPLIED']);
      const a = applied && applied.payload;
      box.append(el('p', { class: 'empty', text: a ? `No file diff: ${a.action}${a.removed !== undefined ? `, removed ${a.removed}` : ''}${a.freed_bytes !== undefined ? `, freed ${a.freed_bytes} bytes` : ''}${a.new_limit !== undefined ? `, limit ${a.old_limit} → ${a.new_limit}` : ''}` : 'No patch yet.' }));
    }

    if (ready) {
      const p = ready.payload || {};
      box.append(el('h3', { text: 'Guardrails' }));
      if (ready.type === 'PATCH_BLOCKED') box.append(el('p', { class: 'verdict bad', text: `Blocked by ${p.rule || '?'}: ${p.reason || ''}` }));
      const ul = el('ul', { class: 'guards', 'aria-label': 'Guardrail verdicts' });
      for (const g of p.guardrails || p.verdicts || []) {
        ul.append(el('li', { class: g.ok ? 'pass' : 'fail' }, el('span', { text: g.ok ? '✓' : '✗', 'aria-label': g.ok ? 'pass' : 'fail' }),
          el('b', { text: g.rule }), el('span', { text: g.reason || '' })));
      }
      box.append(ul);
    }

    box.append(el('h3', { text: 'Verification' }));
    if (verify) {
      const p = verify.payload || {};
      box.append(el('p', { class: `verdict ${verify.type === 'VERIFY_PASS' ? 'ok' : 'bad'}`, id: 'verify',
        text: `${verify.type === 'VERIFY_PASS' ? 'Passed' : 'Failed'}${p.window_ms ? `: ${p.window_ms} ms without recurrence` : ''}` }));
      if (p.reason) box.append(el('pre', { class: 'out', text: p.reason }));
    } else box.append(el('p', { class: 'empty', text: end ? 'Not verified.' : 'Not yet.' }));
    if (rb) box.append(el('p', { class: 'verdict warn', text: `Rolled back${rb.payload && rb.payload.restored ? ': ' + [].concat(rb.payload.restored).join(', ') : ''}` }));

    if (end) {
      const p = end.payload || {};
      box.append(el('h3', { text: 'Outcome' }), el('p', { class: `verdict ${kindOf(end.type)}`, id: 'outcome',
        text: `${end.type} in ${ms(p.duration_ms)}${p.tried ? ' · tried ' + [].concat(p.tried).join(', ') : ''}${p.reason ? ' · ' + p.reason : ''}` }));
      if (end.type === 'HEALED' && last(t, ['PATCH_APPLIED']) && !rb) {
        box.append(el('div', { class: 'actions' }, el('button', {
          type: 'button', onclick: async (e) => { if (!(await post(`/traces/${encodeURIComponent(t.id)}/rollback`))) e.target.disabled = true; },
          text: 'Roll back', title: 'Restore the files this heal changed (when heald offers it)',
        })));
      }
    }
  }

  // ---- patch log ---------------------------------------------------------------------------
  const log = $('log');
  function logLine(id, ev, raw) {
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    const k = !ev ? 'info' : ev.type === 'TRIGGERED' ? triggeredKind(ev.payload) : kindOf(ev.type);
    // the payload is what is new in a line: the rest is on the cards
    if (ev && ev.payload) raw = JSON.stringify(ev.payload);
    log.append(el('li', { 'data-id': id, title: ev && ev.trace_id ? ev.trace_id : '' },
      el('span', { class: 't', text: `#${id} ${clock(ev && ev.timestamp)} ` }),
      el('span', { class: `ty k-${k}`, text: ev ? ev.type : 'event' }), ' ',
      el('span', { class: 'raw', text: raw.length > 300 ? raw.slice(0, 300) + '…' : raw })));
    while (log.children.length > MAX_LOG) log.firstElementChild.remove();
    if (stick) log.scrollTop = log.scrollHeight;
  }
  $('log-clear').addEventListener('click', () => log.replaceChildren());

  // ---- loading and the stream --------------------------------------------------------------
  async function loadTrace(id) {
    try {
      const r = await fetch(`${API}/traces/${encodeURIComponent(id)}`);
      if (!r.ok) return;
      const j = await r.json();
      const t = traceOf(id, j);
      for (const ev of j.events || []) addEvent(t, ev);
      if (j.state) t.state = j.state;
      t.loaded = true;
      renderCard(t);
      if (selected === id) renderReasoning();
    } catch (e) { /* shown as not loaded */ }
  }

  async function loadAll() {
    probeFeatures(); // heald may have restarted as another version, with another config
    loadTriggers();
    const s = await loadStatus();
    lastId = (s && s.last_event_id) || 0;
    let rows = [];
    try { rows = (await (await fetch(`${API}/traces?limit=50`)).json()).traces || []; } catch (e) { /* none */ }
    $('traces').replaceChildren();
    traces.clear();
    // the log starts with the last events heald still holds
    try {
      const j = await (await fetch(`${API}/events?since=${Math.max(0, lastId - 100)}&limit=100`)).json();
      log.replaceChildren();
      for (const e of j.events || []) if (e.id <= lastId) logLine(e.id, e.event, JSON.stringify(e.event));
    } catch (e) { /* starts empty */ }
    for (const row of rows.slice().reverse()) renderCard(traceOf(row.trace_id, row));
    await Promise.all(rows.slice(0, DETAIL_PRELOAD).map((r) => loadTrace(r.trace_id)));
    if (rows.length && (!selected || !traces.has(selected))) select(rows[0].trace_id, false);
    else renderReasoning();
    connect();
  }

  function onEvent(m) {
    const id = Number(m.lastEventId) || 0;
    if (id && id <= lastId && es && es.resumed) return; // already seen
    if (id) lastId = Math.max(lastId, id);
    let ev = null;
    try { ev = JSON.parse(m.data); } catch (e) { /* shown raw */ }
    logLine(id, ev, m.data);
    if (ev && ev.type === 'TRIGGERED') { onTriggered(ev); return; } // a cause, not part of a heal
    if (!ev || !ev.trace_id) return;
    if (id) ev.id = id;
    const isNew = !traces.has(ev.trace_id);
    const t = traceOf(ev.trace_id);
    if (isNew) t.loaded = true; // seen from its start
    if (addEvent(t, ev)) renderCard(t, new Set([ev]));
    if (isNew && (!userPicked || !selected)) select(t.id, false);
    else if (selected === t.id) renderReasoning();
    if (ENDS.has(ev.type) || ev.type === 'APPROVAL_REQUIRED') {
      notice(`${t.target || ''} ${t.id}: ${ev.type}`);
      // heald publishes its status snapshot on its own tick: ask now and once more shortly
      loadStatus();
      setTimeout(loadStatus, 1200);
    }
  }

  function connect() {
    if (es) es.close();
    const conn = $('conn');
    es = new EventSource(`${API}/events/stream?since=${lastId}`);
    es.resumed = true;
    es.onopen = () => { conn.textContent = 'live'; conn.className = 'pill on'; };
    es.onerror = () => {
      conn.textContent = es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
      conn.className = 'pill off';
      if (es.readyState === EventSource.CLOSED) setTimeout(loadAll, 3000);
    };
    es.onmessage = onEvent;
    // events were evicted before they reached us, or heald restarted: start over from a snapshot
    es.addEventListener('gap', () => { notice('Some events were missed: reloading.', true); loadAll(); });
    es.addEventListener('reset', () => { notice('heald restarted: reloading.'); lastId = 0; loadAll(); });
  }

  loadAll();
  setInterval(loadStatus, 10000);
})();
