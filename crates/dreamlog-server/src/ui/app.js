// dreamlog's web view: one script, no build step, no dependencies. It reads the same
// /v1 routes every client reads, with the session cookie that POST /ui/session set.
// Agent content is untrusted: every text goes into the page as a text node (h() below
// never parses HTML), and the Content-Security-Policy forbids inline scripts.
'use strict';

// ---------------------------------------------------------------- building blocks

/** An element: attributes (on* are listeners), then children (strings become text). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendKids(el, kids);
  return el;
}

/** An SVG element, as h() does. */
function s(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  appendKids(el, kids);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function appendKids(el, kids) {
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** A hash link to a page of the view: segments are encoded, so any id is safe. */
function href(page, parts, query) {
  let out = '#/' + [page, ...(parts || []).map((p) => encodeURIComponent(String(p)))].join('/');
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? out + '?' + qs : out;
}

function a(text, link, attrs) {
  return h('a', { href: link, ...(attrs || {}) }, text);
}

const short = (id) => (id ? String(id).slice(0, 12) : '');
const time = (ms) => (ms === null || ms === undefined ? '' : new Date(ms).toISOString().replace('T', ' ').replace('Z', ''));
const num = (x, d = 2) => (x === null || x === undefined ? '—' : Number(x).toFixed(d));
const pct = (x) => (x === null || x === undefined ? '—' : (100 * x).toFixed(0) + '%');
const json = (v) => JSON.stringify(v, null, 2);
const clip = (t, n) => (t.length > n ? t.slice(0, n - 1) + '…' : t);
/** A shell word, quoted as the CLI prints it. */
const shq = (w) => (/^[A-Za-z0-9_./:@=-]+$/.test(w) ? w : "'" + String(w).replace(/'/g, "'\\''") + "'");
const seg = (p) => String(p).split('/').map(encodeURIComponent).join('/');

function eventLink(id, text) {
  return a(text || short(id), href('event', [id]), { class: 'id', title: id });
}
function sessionLink(id) {
  return a(id, href('session', [id]), { class: 'session' });
}
function dreamLink(id, text) {
  return a(text || short(id), href('dream', [id]), { class: 'id', title: id });
}

function table(head, rows, attrs) {
  return h('table', attrs || {},
    h('thead', {}, h('tr', {}, head.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A request to the server; writes carry X-Dreamlog-UI (the cookie alone cannot write). */
async function api(path, opts) {
  const { method = 'GET', body, query } = opts || {};
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const url = q.toString() ? path + '?' + q : path;
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    headers['X-Dreamlog-UI'] = '1';
  }
  const r = await fetch(url, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    const msg = (data && data.error && data.error.message) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && !path.startsWith('/ui/session')) signIn(msg);
    throw new ApiError(r.status, msg);
  }
  return data;
}

// ---------------------------------------------------------------- who is signed in

let me = null;

async function whoami() {
  try {
    me = await api('/ui/session');
  } catch (e) {
    me = null;
    if (e.status !== 401) throw e;
  }
  const who = document.getElementById('who');
  who.replaceChildren();
  if (me) {
    who.append(h('span', { class: 'role' }, `${me.tenant} · ${me.role}`));
    if (me.auth_required) {
      who.append(' ', h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
    }
  }
  return me;
}

const canWrite = () => me && (me.role === 'write' || me.role === 'admin');
const isAdmin = () => me && me.role === 'admin';

function signIn(reason) {
  stopLive();
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, id: 'token' });
  const err = h('p', { class: 'error', role: 'alert' }, reason && reason !== 'not signed in' ? reason : '');
  const form = h('form', { class: 'signin', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api('/ui/session', { method: 'POST', body: { token: input.value } });
      input.value = '';
      await whoami();
      route();
    } catch (e) {
      err.textContent = e.message;
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Present a token of this server once; the page keeps a session cookie (HttpOnly, same-site only) until it expires.'),
  h('label', { for: 'token' }, 'Token'), input, h('button', { type: 'submit' }, 'Sign in'), err);
  main().replaceChildren(form);
  input.focus();
}

async function signOut() {
  await fetch('/ui/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'X-Dreamlog-UI': '1' } });
  me = null;
  await whoami();
  signIn();
}

// ---------------------------------------------------------------- routing

const main = () => document.getElementById('main');
let renderSeq = 0;
let live = null;

function stopLive() {
  if (live) { live.close(); live = null; }
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  return { page: parts[0] || 'timeline', args: parts.slice(1), q: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
}

const pages = {
  timeline: timelinePage, event: eventPage, sessions: sessionsPage, session: sessionPage,
  memory: memoryPage, diff: diffPage, history: historyPage, blame: blamePage,
  dreams: dreamsPage, dream: dreamPage, drift: driftPage,
};

async function route() {
  stopLive();
  const ctx = parseHash();
  const seq = ++renderSeq;
  for (const n of document.querySelectorAll('#nav a')) {
    n.classList.toggle('active', n.dataset.page === ctx.page || (n.dataset.page === 'memory' && ['diff', 'history', 'blame'].includes(ctx.page)));
  }
  const render = pages[ctx.page];
  if (!render) {
    main().replaceChildren(h('p', { class: 'error' }, `No page ${ctx.page}.`));
    return;
  }
  if (!me) {
    await whoami();
    if (!me) { signIn(); return; }
  }
  try {
    const node = await render(ctx, () => seq === renderSeq);
    if (seq === renderSeq && node) {
      main().replaceChildren(node);
      document.title = `dreamlog · ${ctx.page}`;
      window.scrollTo(0, 0);
      // What is shown now (tests wait on it; the first-paint benchmark reads the mark).
      document.body.dataset.shown = location.hash;
      performance.mark('dreamlog:shown');
    }
  } catch (e) {
    if (seq === renderSeq && e.status !== 401) {
      main().replaceChildren(h('h1', {}, 'Error'), h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }
}

// ---------------------------------------------------------------- events

/** One line saying what an event is about. */
function summary(e) {
  const b = e.body || {};
  if (e.redacted) return '[redacted]';
  switch (e.kind) {
    case 'session.start': return [b.task_id || '', b.agent ? `agent ${b.agent}` : '', b.store ? `memory ${b.store}` : ''].filter(Boolean).join(' · ');
    case 'session.end': return [b.status, b.result].filter(Boolean).join(' ');
    case 'action': return `${b.name || ''} → ${b.status || ''}`;
    case 'grade': return `${b.result || ''} score ${num(b.score)}${b.rubric ? ' · ' + b.rubric : ''}`;
    case 'message': return `${b.role || ''}: ${clip(textOf(b.content !== undefined ? b.content : b), 120)}`;
    case 'memory': {
      const c = b.command || {};
      return `${b.store} ${c.command} ${c.path || c.old_path || ''}${c.new_path ? ' → ' + c.new_path : ''}`;
    }
    case 'dream': return `${b.dreamer || ''}@${b.version || ''} ${b.store || ''} → ${b.output_store || ''}`;
    case 'revert': return `${b.store} revert: ${clip(b.reason || '', 80)}`;
    case 'tag': return `${b.name} @ ${b.position}`;
    case 'note': return b.type || b.note_type || '';
    default: return clip(JSON.stringify(b), 120);
  }
}

/** The text of message content: a string, content blocks, or GenAI parts. */
function textOf(c) {
  if (c === null || c === undefined) return '';
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map(textOf).filter(Boolean).join('\n');
  if (typeof c === 'object') {
    if (typeof c.text === 'string') return c.text;
    if (c.type === 'tool_use') return `[tool_use ${c.name}] ${JSON.stringify(c.input)}`;
    if (c.type === 'tool_result') return `[tool_result] ${textOf(c.content)}`;
    if (Array.isArray(c.parts)) return textOf(c.parts);
    if (typeof c.content === 'string' || Array.isArray(c.content)) return textOf(c.content);
    return JSON.stringify(c);
  }
  return String(c);
}

function eventRow(e, fresh) {
  return h('tr', { class: fresh ? 'fresh' : null, 'data-position': e.position },
    h('td', { class: 'num' }, String(e.position)),
    h('td', { class: 'time' }, time(e.time)),
    h('td', {}, h('span', { class: 'kind k-' + e.kind.replace('.', '-') }, e.kind)),
    h('td', {}, e.stream.startsWith('session/') ? a(e.stream, href('session', [e.stream.slice(8)])) : e.stream),
    h('td', {}, e.actor),
    h('td', {}, eventLink(e.id, clip(summary(e), 90) || short(e.id))));
}

const EVENT_HEAD = ['#', 'time (UTC)', 'kind', 'stream', 'actor', 'what'];
const KINDS = ['session.start', 'message', 'action', 'grade', 'session.end', 'memory', 'dream', 'tag', 'note',
  'revert', 'store.fork', 'session.link', 'redact', 'checkpoint'];

function matches(e, f) {
  if (f.kind && e.kind !== f.kind) return false;
  if (f.stream && e.stream !== f.stream) return false;
  if (f.session && e.stream !== 'session/' + f.session) return false;
  if (f.actor && !(e.actor === f.actor || (f.actor.endsWith(':') && e.actor.startsWith(f.actor)))) return false;
  if (f.since && e.time < Number(f.since)) return false;
  if (f.until && e.time >= Number(f.until)) return false;
  return true;
}

const toLocal = (ms) => (ms ? new Date(Number(ms) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : '');
const fromLocal = (v) => (v ? String(new Date(v).getTime()) : '');

async function timelinePage(ctx, current) {
  const q = ctx.q;
  const f = {};
  for (const k of ['kind', 'stream', 'session', 'actor', 'since', 'until']) f[k] = q.get(k) || '';
  const before = q.get('before');
  const [page, info] = await Promise.all([
    api('/v1/timeline', { query: { ...f, before, limit: 50 } }),
    api('/v1/info'),
  ]);
  if (!current()) return null;

  const kind = h('select', { name: 'kind' }, h('option', { value: '' }, 'any kind'),
    KINDS.map((k) => h('option', { value: k, selected: k === f.kind }, k)));
  const field = (name, ph) => h('input', { name, value: f[name], placeholder: ph, size: 18 });
  const since = h('input', { type: 'datetime-local', name: 'since', value: toLocal(f.since) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: toLocal(f.until) });
  const fields = { stream: field('stream', 'stream'), session: field('session', 'session id'), actor: field('actor', 'actor (agent: or agent:NAME)') };
  const form = h('form', { class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = href('timeline', [], {
      kind: kind.value, stream: fields.stream.value.trim(), session: fields.session.value.trim(),
      actor: fields.actor.value.trim(), since: fromLocal(since.value), until: fromLocal(until.value),
    });
  } }, kind, fields.stream, fields.session, fields.actor,
  h('label', {}, 'from ', since), h('label', {}, 'before ', until),
  h('button', { type: 'submit' }, 'Filter'), ' ', a('clear', href('timeline')));

  const body = h('tbody', {}, page.events.map((e) => eventRow(e)));
  const tbl = h('table', { class: 'events', id: 'timeline' }, h('thead', {}, h('tr', {}, EVENT_HEAD.map((x) => h('th', {}, x)))), body);
  const status = h('span', { class: 'muted', id: 'live-status' });
  const liveBox = h('input', { type: 'checkbox', id: 'live', checked: !before });
  const startLive = () => {
    stopLive();
    if (!liveBox.checked || before) { status.textContent = before ? 'older page: not live' : 'paused'; return; }
    const from = info.events;
    live = new EventSource('/v1/tail?from=' + from);
    status.textContent = 'live';
    live.onmessage = live.onerror = null;
    const onEvent = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (_) { return; }
      if (!matches(e, f)) return;
      body.prepend(eventRow(e, true));
      while (body.children.length > 500) body.lastChild.remove();
      status.textContent = `live · last event #${e.position}`;
    };
    for (const k of KINDS) live.addEventListener(k, onEvent);
    live.onerror = () => { status.textContent = 'live: reconnecting…'; };
  };
  liveBox.addEventListener('change', startLive);
  const nav = h('p', { class: 'pager' },
    before ? a('← newest', href('timeline', [], f)) : null, ' ',
    page.next_before !== null && page.next_before !== undefined
      ? a('older →', href('timeline', [], { ...f, before: page.next_before }), { id: 'older' }) : h('span', { class: 'muted' }, 'start of the log'),
    ' ', h('span', { class: 'muted' }, `(${page.scanned} examined for this page)`));
  const node = h('section', {},
    h('h1', {}, 'Timeline'),
    h('p', { class: 'muted' }, `${info.events} events in the log${before ? `; showing events before #${before}` : ''}. Newest first.`),
    form,
    h('p', {}, h('label', {}, liveBox, ' live (events arriving now appear on top)'), ' ', status),
    page.events.length ? tbl : h('p', { class: 'muted' }, 'No events match.'),
    nav);
  setTimeout(startLive, 0);
  return node;
}

async function eventPage(ctx, current) {
  const id = ctx.args[0];
  const e = await api('/v1/events/' + encodeURIComponent(id));
  const [cited, causes] = await Promise.all([
    api(`/v1/events/${e.id}/cited_by`, { query: { limit: 200 } }),
    Promise.all(e.causes.slice(0, 64).map((c) => api('/v1/events/' + c).catch(() => null))),
  ]);
  if (!current()) return null;
  const b = e.body || {};
  const related = [];
  if (e.stream.startsWith('session/')) related.push(['session', sessionLink(e.stream.slice(8))]);
  if (e.kind === 'memory' && b.command) {
    const path = b.command.path || b.command.new_path;
    related.push(['memory', [a(`store ${b.store} as of #${e.position}`, href('memory', [b.store], { at: e.position, file: path })),
      ' · ', a('blame', href('blame', [b.store], { path, at: e.position })),
      ' · ', a('history', href('history', [b.store], { path })),
      ' · ', a('diff', href('diff', [b.store], { from: e.position - 1, to: e.position }))]]);
  }
  if (e.kind === 'dream') related.push(['dream', dreamLink(e.id, 'this dream: input, lessons, validation')]);
  if (e.kind === 'revert' || e.kind === 'store.fork') related.push(['memory', a(`store ${b.store || b.new || ''}`, href('memory', [b.store || b.new], { at: e.position }))]);
  const causeRows = e.causes.map((c, i) => {
    const x = causes[i];
    return h('tr', {}, h('td', {}, eventLink(c)), h('td', {}, x ? x.kind : ''), h('td', {}, x ? clip(summary(x), 100) : ''),
      h('td', {}, x && x.stream.startsWith('session/') ? sessionLink(x.stream.slice(8)) : (x ? x.stream : '')));
  });
  return h('section', {},
    h('h1', {}, `Event #${e.position} `, h('span', { class: 'kind k-' + e.kind.replace('.', '-') }, e.kind)),
    dl([
      ['id', h('code', {}, e.id)],
      ['stream', [a(e.stream, href('timeline', [], { stream: e.stream })), ` · version ${e.version}`]],
      ['actor', [a(e.actor, href('timeline', [], { actor: e.actor })), h('span', { class: 'muted' }, ' (asserted by the writer)')]],
      ['time', time(e.time) + ' UTC (event time, as written)'],
      ['received', e.received
        ? [h('b', { class: 'principal' }, e.received.principal), ` (${e.received.role}) at ${time(e.received.at)} UTC, in a batch of ${e.received.events} event(s) from #${e.received.batch}`]
        : h('span', { class: 'muted' }, 'no receipt (written before receipts, or by a library caller)')],
      ['parents', e.parents.length ? e.parents.map((p) => [eventLink(p), ' ']) : '—'],
      e.redacted ? ['redacted', `body removed (${e.redacted.body_len} bytes, hash ${short(e.redacted.body_hash)})`] : null,
      ...related,
    ]),
    h('h2', {}, 'Body'),
    h('pre', { class: 'body' }, json(b)),
    h('h2', {}, `Causes (${e.causes.length})`),
    e.causes.length ? table(['event', 'kind', 'what', 'session'], causeRows) : h('p', { class: 'muted' }, 'None: this event cites nothing.'),
    h('h2', {}, `Cited by (${cited.events.length}${cited.next ? '+' : ''})`),
    cited.events.length ? table(EVENT_HEAD, cited.events.map((x) => eventRow(x))) : h('p', { class: 'muted' }, 'No event cites this one.'));
}

// ---------------------------------------------------------------- sessions

async function sessionsPage(ctx, current) {
  const filter = ctx.q.get('q') || '';
  const per = 50;
  const pageNo = Math.max(0, Number(ctx.q.get('page') || 0));
  const data = await api('/v1/sessions', { query: { limit: per, offset: pageNo * per, q: filter } });
  if (!current()) return null;
  const input = h('input', { name: 'q', value: filter, placeholder: 'id, task, agent, model or store…', size: 30 });
  const rows = data.sessions.map((x) => h('tr', {},
    h('td', {}, sessionLink(x.id)), h('td', { class: 'time' }, time(x.time)), h('td', {}, x.task || ''), h('td', {}, x.agent || ''),
    h('td', {}, h('span', { class: 'result r-' + (x.result || 'none') }, x.result || '—')), h('td', { class: 'num' }, num(x.score)),
    h('td', { class: 'num' }, String(x.steps)), h('td', {}, x.store ? a(x.store, href('memory', [x.store])) : '')));
  const last = Math.max(0, Math.ceil(data.total / per) - 1);
  return h('section', {},
    h('h1', {}, 'Sessions'),
    h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); location.hash = href('sessions', [], { q: input.value.trim() }); } },
      input, h('button', { type: 'submit' }, 'Find')),
    h('p', { class: 'muted' }, `${data.total} sessions${filter ? ` matching “${filter}” (id, task, agent, model or store)` : ''}, newest first; page ${pageNo + 1} of ${last + 1}.`),
    table(['session', 'time (UTC)', 'task', 'agent', 'result', 'score', 'steps', 'memory'], rows, { class: 'sessions' }),
    h('p', { class: 'pager' },
      pageNo > 0 ? a('← newer', href('sessions', [], { q: filter, page: pageNo - 1 })) : null, ' ',
      pageNo < last ? a('older →', href('sessions', [], { q: filter, page: pageNo + 1 }), { id: 'older' }) : null));
}

async function sessionPage(ctx, current) {
  const id = ctx.args.join('/');
  const d = await api('/v1/session/' + seg(id));
  if (!current()) return null;
  const sm = d.summary || {};
  const start = d.events.find((e) => e.kind === 'session.start');
  const grades = d.events.filter((e) => e.kind === 'grade');
  const items = d.events.map((e) => {
    const b = e.body || {};
    if (e.kind === 'message') {
      return h('div', { class: 'msg m-' + (b.role || 'other') }, h('div', { class: 'who' }, b.role || 'message', ' ', eventLink(e.id)),
        h('pre', { class: 'text' }, textOf(b.content !== undefined ? b.content : b)));
    }
    if (e.kind === 'action') {
      return h('div', { class: 'call' + (b.status && b.status !== 'ok' ? ' failed' : '') },
        h('div', { class: 'who' }, 'tool call ', h('b', {}, b.name || ''), ` → ${b.status || ''} `, eventLink(e.id)),
        h('details', {}, h('summary', {}, 'input'), h('pre', {}, json(b.input))),
        b.output !== undefined && b.output !== null ? h('details', { open: true }, h('summary', {}, 'result'), h('pre', {}, typeof b.output === 'string' ? b.output : json(b.output))) : null,
        b.error ? h('p', { class: 'error' }, textOf(b.error)) : null);
    }
    if (e.kind === 'grade') return gradeCard(e);
    return h('div', { class: 'other' }, h('span', { class: 'kind k-' + e.kind.replace('.', '-') }, e.kind), ' ', clip(summary(e), 200), ' ', eventLink(e.id));
  });
  const memRows = (d.memory || []).map((e) => h('tr', {}, h('td', {}, eventLink(e.id)), h('td', { class: 'num' }, String(e.position)), h('td', {}, summary(e))));
  const store = sm.store || (start && start.body.store);
  // A later link (`sessions link --at P`) names the point whose state it ran with.
  const linkedAt = d.link && d.link.meta && Number.isInteger(d.link.meta.at) ? d.link.meta.at : null;
  const ranAt = linkedAt !== null ? linkedAt : (start ? start.position : '');
  return h('section', {},
    h('h1', {}, 'Session ', h('code', {}, id)),
    dl([
      ['task', sm.task || (start && start.body.task_id) || '—'],
      start && start.body.task ? ['task text', h('span', { class: 'pre' }, clip(textOf(start.body.task), 400))] : null,
      ['agent', `${sm.agent || '—'}${sm.model ? ' · ' + sm.model : ''}`],
      ['result', [h('span', { class: 'result r-' + (sm.result || 'none') }, sm.result || '—'), ` score ${num(sm.score)} · ${sm.status || ''}`]],
      ['steps', `${sm.steps} steps · ${sm.messages} messages${sm.input_tokens ? ` · agent ${sm.input_tokens} in / ${sm.output_tokens} out tokens` : ''}${sm.cost_usd ? ` · agent $${num(sm.cost_usd, 4)}` : ''}`
        + `${sm.user_input_tokens ? ` · user simulator ${sm.user_input_tokens} in / ${sm.user_output_tokens} out tokens` : ''}${sm.user_cost_usd ? ` · user simulator $${num(sm.user_cost_usd, 4)}` : ''}`],
      ['started', time(sm.time) + ' UTC'],
      store ? ['memory it ran with', [a(`store ${store} as of #${ranAt}`, href('memory', [store], { at: ranAt })),
        sm.memory_state ? [' · state ', h('code', {}, short(sm.memory_state))] : null]] : null,
      ['events', a('in the timeline', href('timeline', [], { session: id }))],
    ]),
    grades.length ? [h('h2', {}, 'Grades'), grades.map(gradeCard)] : null,
    h('h2', {}, 'Memory commands it made'),
    memRows.length ? table(['event', '#', 'command'], memRows) : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, 'Transcript'),
    h('div', { class: 'transcript' }, items));
}

function gradeCard(e) {
  const b = e.body || {};
  const crit = (b.criteria || []).map((c) => h('tr', { class: c.passed === false ? 'failed' : null },
    h('td', {}, c.name), h('td', {}, c.passed === undefined || c.passed === null ? '' : (c.passed ? 'passed' : 'failed')),
    h('td', { class: 'num' }, num(c.score)), h('td', {}, c.note || '')));
  return h('div', { class: 'grade' },
    h('div', { class: 'who' }, 'grade by ', e.actor, ': ', h('span', { class: 'result r-' + (b.result || 'none') }, b.result || ''), ` score ${num(b.score)} `, eventLink(e.id)),
    crit.length ? table(['criterion', 'outcome', 'score', 'note'], crit, { class: 'criteria' }) : null);
}

// ---------------------------------------------------------------- memory

async function storeHistory(store) {
  const stream = 'memory/' + store;
  const look = await api('/v1/lookup', { method: 'POST', body: { streams: [stream] } });
  const head = look.heads[0];
  if (!head) return { events: [], total: 0 };
  const total = head.version + 1;
  const from = Math.max(0, total - 1000);
  const page = await api('/v1/streams/' + seg(stream), { query: { from, limit: 1000 } });
  return { events: page.events, total, from };
}

async function storesPage(what) {
  const data = await api('/v1/memory');
  return h('section', {}, h('h1', {}, what === 'drift' ? 'Drift' : 'Memory stores'),
    h('p', { class: 'muted' }, what === 'drift' ? 'Grades per memory state of a store, with changes flagged.' : 'Each store as of any point in its history.'),
    h('ul', { class: 'stores' }, data.stores.map((x) => h('li', {}, a(x, href(what, [x]))))));
}

async function memoryPage(ctx, current) {
  if (!ctx.args.length) return storesPage('memory');
  const store = ctx.args[0];
  const atParam = ctx.q.get('at') || 'head';
  const [hist, files, tags] = await Promise.all([
    storeHistory(store),
    api(`/v1/memory/${encodeURIComponent(store)}/files`, { query: { at: atParam } }),
    api('/v1/kinds/tag', { query: { limit: 1000 } }),
  ]);
  if (!current()) return null;
  const evs = hist.events;
  const positions = evs.map((e) => e.position);
  // The slider's value: the last event of the store at or before the point.
  let idx = positions.length - 1;
  while (idx > 0 && positions[idx] >= files.until) idx--;
  const slider = h('input', { type: 'range', id: 'slider', min: 0, max: Math.max(0, evs.length - 1), value: Math.max(0, idx), list: 'tagmarks' });
  const first = positions.length ? positions[0] : 0;
  const storeTags = tags.events.filter((t) => t.body.position >= first);
  const tagVersions = storeTags.map((t) => {
    let i = positions.length - 1;
    while (i > 0 && positions[i] > t.body.position) i--;
    return [t, i];
  });
  const marks = h('datalist', { id: 'tagmarks' }, tagVersions.map(([t, i]) => h('option', { value: i, label: t.body.name })));
  const label = h('span', { id: 'slider-label' });
  const showLabel = () => {
    const e = evs[Number(slider.value)];
    label.textContent = e ? `#${e.position} · ${time(e.time)} · ${summary(e)}` : '';
  };
  slider.addEventListener('input', showLabel);
  slider.addEventListener('change', () => {
    const e = evs[Number(slider.value)];
    if (e) location.hash = href('memory', [store], { at: e.position, file: ctx.q.get('file') });
  });
  showLabel();
  const point = h('input', { name: 'at', value: atParam, size: 24, placeholder: 'position, tag, RFC 3339 time, head' });
  const paths = Object.keys(files.files).sort();
  const chosen = ctx.q.get('file') && files.files[ctx.q.get('file')] !== undefined ? ctx.q.get('file') : paths[0];
  const tree = h('ul', { class: 'tree' }, paths.map((p) => {
    const depth = p.split('/').length - 3;
    return h('li', { class: p === chosen ? 'chosen' : null, 'data-depth': Math.max(0, Math.min(depth, 6)) },
      a(p.replace(/^\/memories\//, ''), href('memory', [store], { at: atParam, file: p })));
  }));
  let viewer = h('p', { class: 'muted' }, 'The store holds no files at this point.');
  if (chosen) {
    const lines = files.files[chosen].split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    viewer = h('div', {},
      h('h2', {}, chosen, ' ',
        a('blame', href('blame', [store], { path: chosen, at: atParam }), { class: 'button' }), ' ',
        a('history', href('history', [store], { path: chosen }), { class: 'button' }), ' ',
        a('diff with head', href('diff', [store], { from: atParam === 'head' ? '' : atParam, to: 'head' }), { class: 'button' })),
      h('table', { class: 'file' }, h('tbody', {}, lines.map((l, i) => h('tr', {}, h('td', { class: 'ln' }, String(i + 1)), h('td', { class: 'code' }, l))))));
  }
  const other = h('input', { name: 'other', placeholder: 'another store (a dream fork)', size: 24 });
  const dfrom = h('input', { name: 'from', placeholder: 'from point', size: 12, value: atParam === 'head' ? '' : atParam });
  const dto = h('input', { name: 'to', placeholder: 'to point', size: 12, value: 'head' });
  return h('section', {},
    h('h1', {}, 'Memory ', h('code', {}, store)),
    h('p', { class: 'muted' }, `As of ${atParam === 'head' ? 'now' : atParam}: the state before position ${files.until} · state hash `, h('code', {}, short(files.state_hash)),
      ` · rules ${files.rules} · ${hist.total} events in the store's history${hist.from ? ` (the slider spans the last ${evs.length})` : ''}.`),
    h('div', { class: 'slider' }, slider, marks, label),
    tagVersions.length ? h('p', { class: 'tags' }, 'Tags: ', tagVersions.map(([t]) => [a(`${t.body.name} (#${t.body.position})`, href('memory', [store], { at: t.body.name }), { class: 'tag' }), ' '])) : null,
    h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); location.hash = href('memory', [store], { at: point.value.trim() || 'head' }); } },
      h('label', {}, 'Point ', point), h('button', { type: 'submit' }, 'Show')),
    h('div', { class: 'split' }, h('nav', { class: 'files' }, h('h2', {}, `${paths.length} file${paths.length === 1 ? '' : 's'}`), tree), h('div', { class: 'viewer' }, viewer)),
    h('h2', {}, 'Compare'),
    h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); location.hash = href('diff', [store], { from: dfrom.value.trim(), to: dto.value.trim() }); } },
      'two points of this store: ', dfrom, dto, h('button', { type: 'submit' }, 'Diff')),
    h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); location.hash = href('diff', [store], { other: other.value.trim(), at: atParam }); } },
      'or this store against ', other, h('button', { type: 'submit' }, 'Diff')));
}

/** Side-by-side rows of one file's unified diff. */
function sideBySide(unified) {
  const rows = [];
  let ln = 0;
  let rn = 0;
  let dels = [];
  let adds = [];
  const flush = () => {
    const n = Math.max(dels.length, adds.length);
    for (let i = 0; i < n; i++) {
      const d = dels[i];
      const x = adds[i];
      rows.push(h('tr', {},
        h('td', { class: 'ln' }, d ? String(d[0]) : ''), h('td', { class: d ? 'del' : 'blank' }, d ? d[1] : ''),
        h('td', { class: 'ln' }, x ? String(x[0]) : ''), h('td', { class: x ? 'add' : 'blank' }, x ? x[1] : '')));
    }
    dels = [];
    adds = [];
  };
  for (const line of unified.split('\n')) {
    if (line.startsWith('---') || line.startsWith('+++')) continue;
    const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (m) {
      flush();
      ln = Number(m[1]);
      rn = Number(m[2]);
      rows.push(h('tr', { class: 'hunk' }, h('td', { colspan: 4 }, line)));
    } else if (line.startsWith('-')) {
      dels.push([ln++, line.slice(1)]);
    } else if (line.startsWith('+')) {
      adds.push([rn++, line.slice(1)]);
    } else if (line.startsWith(' ')) {
      flush();
      rows.push(h('tr', {}, h('td', { class: 'ln' }, String(ln++)), h('td', {}, line.slice(1)), h('td', { class: 'ln' }, String(rn++)), h('td', {}, line.slice(1))));
    }
  }
  flush();
  const cols = h('colgroup', {}, h('col', { class: 'c-ln' }), h('col', { class: 'c-text' }), h('col', { class: 'c-ln' }), h('col', { class: 'c-text' }));
  return h('table', { class: 'sbs' }, cols, h('tbody', {}, rows));
}

/** A whole file as one side of a side-by-side table (added or removed). */
function wholeFile(text, side) {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const unified = `@@ -${side === 'add' ? 0 : 1},${side === 'add' ? 0 : lines.length} +${side === 'add' ? 1 : 0},${side === 'add' ? lines.length : 0} @@\n`
    + lines.map((l) => (side === 'add' ? '+' : '-') + l).join('\n');
  return sideBySide(unified);
}

function diffView(d, leftName, rightName, texts) {
  const list = (title, xs, f) => (xs && xs.length ? [h('h3', {}, `${title} (${xs.length})`), h('ul', {}, xs.map((x) => h('li', {}, f(x))))] : null);
  const whole = (paths, files, side) => (files ? (paths || []).filter((p) => files[p] !== undefined).map((p) => h('div', { class: 'changed' },
    h('h3', {}, p, ' ', h('span', { class: side }, side === 'add' ? 'added' : 'removed')),
    h('div', { class: 'sbs-head' }, h('span', {}, leftName), h('span', {}, rightName)), wholeFile(files[p], side))) : null);
  return h('div', { class: 'diff' },
    h('p', { class: 'muted' }, `${(d.added || []).length} added, ${(d.removed || []).length} removed, ${(d.renamed || []).length} renamed, ${(d.changed || []).length} changed.`),
    list('Added', d.added, (p) => p), list('Removed', d.removed, (p) => p),
    list('Renamed', d.renamed, (r) => `${r[0]} → ${r[1]}`),
    list('Directories added', d.dirs_added, (p) => p), list('Directories removed', d.dirs_removed, (p) => p),
    (d.changed || []).map((c) => h('div', { class: 'changed' },
      h('h3', {}, c.path, ' ', h('span', { class: 'add' }, `+${c.insertions}`), ' ', h('span', { class: 'del' }, `-${c.deletions}`)),
      h('div', { class: 'sbs-head' }, h('span', {}, leftName), h('span', {}, rightName)),
      sideBySide(c.unified))),
    texts ? [whole(d.added, texts.right, 'add'), whole(d.removed, texts.left, 'del')] : null);
}

async function diffPage(ctx, current) {
  const store = ctx.args[0];
  const q = { other: ctx.q.get('other'), from: ctx.q.get('from'), to: ctx.q.get('to'), at: ctx.q.get('at') };
  const files = (name, at) => api(`/v1/memory/${encodeURIComponent(name)}/files`, { query: { at: at || 'head' } }).then((f) => f.files);
  const [d, leftFiles, rightFiles] = await Promise.all([
    api(`/v1/memory/${encodeURIComponent(store)}/diff`, { query: q }),
    q.other ? files(store, q.at) : (q.from ? files(store, q.from) : Promise.resolve({})),
    q.other ? files(q.other, q.at) : files(store, q.to),
  ]);
  if (!current()) return null;
  const left = q.other ? `${store} at ${q.at || 'head'}` : `${store} at ${q.from || 'its start'}`;
  const right = q.other ? `${q.other} at ${q.at || 'head'}` : `${store} at ${q.to || 'head'}`;
  return h('section', {}, h('h1', {}, 'Diff'), h('p', {}, a(`← store ${store}`, href('memory', [store]))),
    h('p', {}, h('b', {}, left), ' ⟶ ', h('b', {}, right)), diffView(d, left, right, { left: leftFiles, right: rightFiles }));
}

async function historyPage(ctx, current) {
  const store = ctx.args[0];
  const path = ctx.q.get('path');
  const data = await api(`/v1/memory/${encodeURIComponent(store)}/history`, { query: { path } });
  if (!current()) return null;
  const rows = data.events.slice().reverse().map((e) => {
    const dream = e.kind === 'memory' && e.causes.length ? e.causes[0] : null;
    return h('tr', {}, h('td', { class: 'num' }, String(e.position)), h('td', { class: 'time' }, time(e.time)), h('td', {}, e.actor),
      h('td', { class: 'principal' }, e.received ? e.received.principal : '—'),
      h('td', {}, eventLink(e.id, clip(summary(e), 80))),
      h('td', {}, dream ? eventLink(dream) : ''),
      h('td', {}, a('view', href('memory', [store], { at: e.position, file: path })), ' · ',
        a('diff', href('diff', [store], { from: e.position - 1, to: e.position }))));
  });
  return h('section', {}, h('h1', {}, 'History ', h('code', {}, path || store)), h('p', {}, a(`← store ${store}`, href('memory', [store], { file: path }))),
    table(['#', 'time (UTC)', 'actor', 'written by', 'event', 'first cause', ''], rows, { class: 'history' }));
}

async function blamePage(ctx, current) {
  const store = ctx.args[0];
  const path = ctx.q.get('path');
  const at = ctx.q.get('at') || 'head';
  const data = await api(`/v1/memory/${encodeURIComponent(store)}/blame`, { query: { path, at } });
  if (!current()) return null;
  let prev = null;
  const rows = data.lines.map((l) => {
    const by = l.restored_by;
    const same = prev && prev.id === l.id && (prev.restored_by || {}).id === (by || {}).id;
    prev = l;
    const ev = (l.evidence || []);
    const restored = by ? h('div', { class: 'blame-restored muted' }, `${by.how === 'revert' ? 'restored' : 'promoted'} by `,
      eventLink(by.id), ` #${by.position} ${by.actor}`, by.reason ? ` (${by.reason})` : '') : '';
    return h('tr', { class: same ? 'same' : 'first' },
      h('td', { class: 'blame-by' }, same ? '' : [eventLink(l.id), ' ', h('span', { class: 'muted' }, `#${l.position} ${l.actor}`),
        l.received ? h('span', { class: 'principal muted' }, ` by ${l.received.principal}`) : '', restored]),
      h('td', { class: 'blame-dream' }, same || !l.dream ? '' : ['dream ', dreamLink(l.dream)]),
      h('td', { class: 'blame-session' }, same || !l.session ? '' : sessionLink(l.session)),
      h('td', { class: 'blame-evidence' }, same || !ev.length ? '' : h('details', {}, h('summary', {}, `${ev.length} evidence`),
        h('ul', {}, ev.map((x) => h('li', {}, eventLink(x)))))),
      h('td', { class: 'ln' }, String(l.line)), h('td', { class: 'code' }, l.text));
  });
  return h('section', {}, h('h1', {}, 'Blame ', h('code', {}, path)),
    h('p', {}, a(`← store ${store}`, href('memory', [store], { at, file: path })), ' · as of ', at),
    h('p', { class: 'muted' }, 'Each line: the event that wrote it, the dream behind it, the session, and the evidence (grades and actions) the dream cited; a line a revert or a promote put back keeps that origin, with the act that restored it below. Follow any link down to the grade and its session.'),
    table(['event', 'dream', 'session', 'evidence', '', 'line'], rows, { class: 'blame' }));
}

// ---------------------------------------------------------------- dreams

async function dreamsPage(ctx, current) {
  const data = await api('/v1/dreams');
  if (!current()) return null;
  const rows = data.dreams.slice().reverse().map((d) => h('tr', {},
    h('td', {}, dreamLink(d.id)), h('td', { class: 'time' }, time(d.time)), h('td', {}, `${d.dreamer}@${d.version}`),
    h('td', {}, a(d.store, href('memory', [d.store]))), h('td', {}, a(d.output_store, href('memory', [d.output_store]))),
    h('td', { class: 'num' }, String(d.meta && d.meta.sessions !== undefined ? d.meta.sessions : '')),
    h('td', { class: 'num' }, String(d.meta && d.meta.commands !== undefined ? d.meta.commands : '')),
    h('td', {}, `[${d.from_position}, ${d.to_position})`)));
  return h('section', {}, h('h1', {}, 'Dreams'),
    rows.length ? table(['dream', 'time (UTC)', 'dreamer', 'store', 'wrote to', 'sessions', 'commands', 'log range'], rows, { class: 'dreams' })
      : h('p', { class: 'muted' }, 'No dream yet.'));
}

function decisionsTable(summaryMeta) {
  const decisions = (summaryMeta && summaryMeta.decisions) || [];
  const rows = [];
  for (const fam of decisions) {
    for (const c of fam.candidates || []) {
      const v = c.validation || {};
      const lift = v.lift || {};
      const t = c.test || {};
      const skip = c.decision && typeof c.decision === 'object' ? c.decision.skip : null;
      const decision = skip !== null && skip !== undefined ? `skip: ${skip}` : (typeof c.decision === 'string' ? c.decision : JSON.stringify(c.decision));
      rows.push(h('tr', { class: skip !== null && skip !== undefined ? 'd-skip' : 'd-' + decision },
        h('td', {}, fam.family), h('td', {}, `${c.advice} ${c.subject}`), h('td', {}, decision),
        h('td', { class: 'num' }, `${(c.tasks || []).length || c.tasks_total || ''}`),
        h('td', { class: 'num' }, t.observed !== undefined ? `${t.observed} (exp. ${num(t.expected, 1)})` : ''),
        h('td', { class: 'num' }, t.p !== undefined ? num(t.p, 4) : ''), h('td', { class: 'num' }, t.q !== undefined ? num(t.q, 4) : ''),
        h('td', {}, v.verdict || ''),
        h('td', { class: 'num' }, lift.estimate !== undefined ? `${num(lift.estimate)} [${(lift.interval || []).map((x) => num(x)).join(', ')}]` : ''),
        h('td', { class: 'num' }, v.sessions !== undefined ? `${v.followed} of ${v.sessions} (${v.tasks} tasks)` : '')));
    }
  }
  return rows.length ? table(['family', 'lesson', 'decision', 'tasks', 'observed', 'p', 'q', 'validation', 'lift [95%]', 'followed'], rows, { class: 'decisions' })
    : h('p', { class: 'muted' }, 'This dreamer recorded no per-lesson statistics.');
}

async function dreamPage(ctx, current) {
  const id = ctx.args[0];
  const d = await api('/v1/dreams/' + encodeURIComponent(id));
  if (!current()) return null;
  const lessons = (d.lessons || []).map((l) => h('div', { class: 'lesson' },
    h('div', { class: 'who' }, eventLink(l.id), ` #${l.position} `, h('b', {}, l.input.command), ' ', l.input.path || '',
      ' ', a('blame', href('blame', [d.output_store], { path: l.input.path, at: l.position }))),
    l.input.file_text || l.input.insert_text || l.input.new_str ? h('pre', { class: 'text' }, l.input.file_text || l.input.insert_text || l.input.new_str) : null,
    h('details', {}, h('summary', {}, `${(l.evidence || []).length} evidence`),
      h('ul', {}, (l.evidence || []).map((x) => h('li', {}, typeof x === 'string' ? eventLink(x)
        : [eventLink(x.id), ` ${x.kind}`, x.session ? [' · ', sessionLink(x.session)] : '', x.result ? ` · ${x.result}` : '', x.score !== null && x.score !== undefined ? ` ${num(x.score)}` : '']))))));
  const replayOut = h('div', { id: 'replay' });
  const actions = h('p', { class: 'actions' });
  if (canWrite()) {
    actions.append(h('button', { type: 'button', id: 'replay-btn', onclick: async () => {
      replayOut.replaceChildren(h('p', { class: 'muted' }, 'Replaying…'));
      try {
        const r = await api(`/v1/dreams/${d.id}/replay`, { method: 'POST', body: {} });
        replayOut.replaceChildren(h('p', { class: r.identical ? 'ok' : 'error' },
          r.identical ? `Reproduced bit for bit (${r.committed} commands).` : `Differs from what was recorded: ${r.committed} committed, ${r.produced} produced.`),
        r.command_diff ? h('pre', {}, r.command_diff) : '');
      } catch (e) { replayOut.replaceChildren(h('p', { class: 'error' }, e.message)); }
    } }, 'Replay and compare'), ' ');
  } else {
    actions.append(h('span', { class: 'muted' }, 'Replay: '), h('code', {}, `dreamlog dream replay ${short(d.id)}`), ' ');
  }
  const hosted = (d.dreamer || '').startsWith('anthropic-hosted');
  const hostedSession = hosted && d.meta && d.meta.anthropic ? d.meta.anthropic.session_id : null;
  if (isAdmin() && hosted) {
    // A hosted dream's stores are mirrors: the change is pushed to the hosted store.
    if (d.output_store !== d.store) {
      actions.append(h('button', { type: 'button', id: 'promote-btn', onclick: () => confirmPush({
        title: `Promote ${d.output_store} into hosted store ${d.store}`,
        command: ['dreamlog', 'memory', 'promote', d.output_store, '--into', d.store],
        store: d.store,
        body: { promote: { fork: d.output_store } },
      }) }, `Promote into ${d.store} (hosted)…`), ' ');
    } else if (hostedSession) {
      actions.append(h('button', { type: 'button', id: 'revert-btn', class: 'danger', onclick: () => confirmPush({
        title: `Revert what hosted dream session ${hostedSession} wrote to ${d.store}`,
        command: ['dreamlog', 'memory', 'revert', d.store, '--session', hostedSession],
        store: d.store,
        body: { revert: { session: hostedSession } },
        reason: true,
      }) }, `Revert in ${d.store} (hosted)…`));
    }
  } else if (isAdmin()) {
    if (d.output_store !== d.store) {
      actions.append(h('button', { type: 'button', id: 'promote-btn', onclick: () => confirmWrite({
        title: `Promote ${d.output_store} into ${d.store}`,
        command: ['dreamlog', 'memory', 'promote', d.output_store, '--into', d.store],
        route: `/v1/memory/${encodeURIComponent(d.output_store)}/promote`,
        body: { into: d.store },
      }) }, `Promote into ${d.store}…`), ' ');
    }
    actions.append(h('button', { type: 'button', id: 'revert-btn', class: 'danger', onclick: () => confirmWrite({
      title: `Revert what dream ${short(d.id)} wrote to ${d.store}`,
      command: ['dreamlog', 'memory', 'revert', d.store, '--dream', short(d.id)],
      route: `/v1/memory/${encodeURIComponent(d.store)}/revert`,
      body: { dream: d.id },
      reason: true,
    }) }, `Revert in ${d.store}…`));
  }
  return h('section', {},
    h('h1', {}, 'Dream ', h('code', {}, short(d.id))),
    dl([
      ['dreamer', `${d.dreamer}@${d.version}`],
      ['store', [a(d.store, href('memory', [d.store])), ' → wrote to ', a(d.output_store, href('memory', [d.output_store]))]],
      ['input', [`log range [${d.from_position}, ${d.to_position}) · ${d.meta ? d.meta.sessions : '?'} graded sessions · base state `, h('code', {}, short(d.base_state)),
        ' · ', a('the range in the timeline', href('timeline', [], { before: d.to_position }))]],
      ['output', ['result state ', h('code', {}, short(d.result_state)), ` · ${d.meta && d.meta.commands != null ? d.meta.commands : '?'} commands`]],
      ['event', eventLink(d.id, `#${d.position} ${short(d.id)}`)],
      ['time', time(d.time) + ' UTC'],
    ]),
    actions, replayOut,
    h('details', {}, h('summary', {}, 'config'), h('pre', {}, json(d.config))),
    h('h2', {}, `Commands written (${(d.lessons || []).length})`),
    lessons.length ? lessons : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, 'Lessons: statistics and validation'),
    h('details', { class: 'decisions' }, h('summary', {}, `Every candidate lesson and its decision (${candidateCount(d.meta && d.meta.summary)})`),
      decisionsTable(d.meta && d.meta.summary)));
}

/** How many candidate lessons a dream's summary decided on. */
function candidateCount(summaryMeta) {
  return ((summaryMeta && summaryMeta.decisions) || []).reduce((n, f) => n + (f.candidates || []).length, 0);
}

/** A write's confirmation: the dry run's exact events and diff first, then the write. */
async function confirmWrite(op) {
  const dialog = document.getElementById('dialog');
  const reason = op.reason ? h('input', { id: 'reason', value: 'reverted from the web view', size: 50, required: true }) : null;
  const body = h('div', { class: 'preview' }, h('p', { class: 'muted' }, 'Asking the server for a dry run…'));
  const cmd = h('pre', { class: 'command', id: 'command' });
  const confirm = h('button', { type: 'button', id: 'confirm', disabled: true, class: 'danger' }, 'Append these events');
  const close = () => dialog.close();
  const payload = () => (op.reason ? { ...op.body, reason: reason.value } : op.body);
  const showCmd = () => { cmd.textContent = [...op.command, ...(op.reason ? ['--reason', reason.value] : [])].map(shq).join(' '); };
  const preview = async () => {
    showCmd();
    confirm.disabled = true;
    try {
      const p = await api(op.route, { method: 'POST', query: { dry_run: 'true' }, body: payload() });
      body.replaceChildren(
        h('p', {}, `${p.events.length} event(s) would be appended to store ${p.store}; its state would go from `, h('code', {}, short(p.state_before)), ' to ', h('code', {}, short(p.state_after)), '. Nothing is deleted.'),
        h('h3', {}, 'Events'), h('pre', { class: 'events-json', id: 'preview-events' }, p.events.map((e) => JSON.stringify(e)).join('\n')),
        h('h3', {}, 'Diff'), diffView(p.diff, 'now', 'after'));
      confirm.disabled = p.events.length === 0;
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  };
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      const r = await api(op.route, { method: 'POST', body: payload() });
      body.replaceChildren(h('p', { class: 'ok', id: 'done' }, `Appended ${r.appended.length} event(s): `, r.appended.map((x) => [eventLink(x.id), ' '])));
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  });
  if (reason) reason.addEventListener('change', preview);
  dialog.replaceChildren(h('div', {}, h('h2', {}, op.title),
    reason ? h('p', {}, h('label', {}, 'Reason (recorded) ', reason)) : null,
    h('p', {}, 'The same write from a terminal:'), cmd, body,
    h('p', { class: 'actions' }, confirm, ' ', h('button', { type: 'button', onclick: close }, 'Close'))));
  dialog.showModal();
  await preview();
}

/** A push to a hosted store (a mirrored store's revert or promote): the API calls a dry
 * run lists first, then each call's outcome. */
async function confirmPush(op) {
  const dialog = document.getElementById('dialog');
  const route = `/v1/memory/${encodeURIComponent(op.store)}/push`;
  const reason = op.reason ? h('input', { id: 'reason', value: 'reverted from the web view', size: 50, required: true }) : null;
  const body = h('div', { class: 'preview' }, h('p', { class: 'muted' }, 'Asking the server which calls it would send…'));
  const cmd = h('pre', { class: 'command', id: 'command' });
  const confirm = h('button', { type: 'button', id: 'confirm', disabled: true, class: 'danger' }, 'Send these calls');
  const payload = (dry) => {
    const b = JSON.parse(JSON.stringify(op.body));
    if (b.revert && reason) b.revert.reason = reason.value;
    return { ...b, dry_run: dry };
  };
  const calls = (r) => h('table', { class: 'push-calls', id: 'push-calls' },
    h('tr', {}, h('th', {}, 'call'), h('th', {}, 'memory'), h('th', {}, 'precondition'), h('th', {}, 'status')),
    r.calls.map((c) => h('tr', { class: c.status },
      h('td', {}, c.op), h('td', {}, c.new_path ? `${c.path} → ${c.new_path}` : c.path, c.memory_id ? [' ', h('code', {}, c.memory_id)] : ''),
      h('td', {}, c.precondition ? h('code', {}, short(c.precondition)) : 'none (a new memory)'),
      h('td', {}, c.status.replace('_', ' '), c.error ? [' — ', c.error] : ''))));
  const preview = async () => {
    cmd.textContent = [...op.command, ...(op.reason ? ['--reason', reason.value] : [])].map(shq).join(' ');
    confirm.disabled = true;
    try {
      const r = await api(route, { method: 'POST', body: payload(true) });
      body.replaceChildren(h('p', {}, `${r.calls.length} call(s) to hosted store ${r.store}, each only if the memory is still as the mirror holds it:`), calls(r));
      confirm.disabled = r.calls.length === 0;
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  };
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      const r = await api(route, { method: 'POST', body: payload(false) });
      body.replaceChildren(
        h('p', { class: r.complete ? 'ok' : 'error', id: 'done' }, r.complete
          ? ['Every call was written; intent ', eventLink(r.intent), '.']
          : 'Not every call was written: the hosted store is as the calls below left it; the same push again sends what is still missing.'),
        calls(r));
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  });
  if (reason) reason.addEventListener('change', preview);
  dialog.replaceChildren(h('div', {}, h('h2', {}, op.title),
    reason ? h('p', {}, h('label', {}, 'Reason (recorded) ', reason)) : null,
    h('p', {}, 'The same push from a terminal (with ANTHROPIC_API_KEY set):'), cmd, body,
    h('p', { class: 'actions' }, confirm, ' ', h('button', { type: 'button', onclick: () => dialog.close() }, 'Close'))));
  dialog.showModal();
  await preview();
}

// ---------------------------------------------------------------- drift

async function driftPage(ctx, current) {
  if (!ctx.args.length) return storesPage('drift');
  const store = ctx.args[0];
  const r = await api('/v1/drift/' + encodeURIComponent(store));
  if (!current()) return null;
  const changeRows = r.changes.map((c) => h('tr', { class: c.flagged ? 'flagged' : null },
    h('td', {}, eventLink(c.events[0], `#${c.position}`)),
    h('td', {}, c.dreams.length ? c.dreams.map((x) => [dreamLink(x), ' ']) : 'edits'),
    h('td', { class: 'num' }, `${num(c.before.mean_score)} → ${num(c.after.mean_score)}`),
    h('td', { class: 'num' }, `${num(c.delta)} [${c.interval ? c.interval.map((x) => num(x)).join(', ') : '—'}]`),
    h('td', { class: 'num' }, `${c.before.sessions} / ${c.after.sessions}`),
    h('td', {}, c.flagged ? h('b', { class: 'error' }, 'DRIFT') : ''),
    h('td', {}, c.flagged ? c.undo.map((u) => h('code', { class: 'undo' }, u)) : '')));
  return h('section', {},
    h('h1', {}, 'Drift ', h('code', {}, store)),
    h('p', { class: 'muted' }, `${r.sessions} graded sessions over ${r.states.length} memory states; ${r.flagged} change(s) flagged (grades fell beyond the 95% bootstrap interval).`),
    driftChart(r),
    h('h2', {}, 'Changes, per dream'),
    changeRows.length ? table(['change', 'dream', 'mean score', 'Δ [95%]', 'sessions', '', 'undo'], changeRows, { class: 'changes' }) : h('p', { class: 'muted' }, 'No change between states sessions ran with.'));
}

/** Mean score per memory state with its interval; changes marked, flagged ones red. */
function driftChart(r) {
  const W = 860;
  const H = 300;
  const L = 48;
  const R = 48;
  const T = 16;
  const B = 56;
  const n = r.states.length;
  const x = (i) => L + (n <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (1 - v) * (H - T - B);
  const g = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'mean score per memory state' });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    g.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }), s('text', { x: L - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, v.toFixed(2)));
  }
  r.changes.forEach((c, i) => {
    if (i + 1 >= n) return;
    const cx = (x(i) + x(i + 1)) / 2;
    g.append(s('line', { x1: cx, x2: cx, y1: T, y2: H - B, class: c.flagged ? 'change flagged' : 'change' }),
      s('text', { x: cx, y: T + 10, class: c.flagged ? 'label flagged' : 'label', 'text-anchor': 'middle' },
        `${c.flagged ? 'DRIFT ' : ''}Δ ${num(c.delta)}${c.dreams.length ? ' dream ' + short(c.dreams[0]).slice(0, 8) : ''}`));
  });
  let path = '';
  r.states.forEach((st, i) => {
    const m = st.grades.mean_score;
    if (m === null || m === undefined) return;
    path += `${path ? 'L' : 'M'}${x(i)},${y(m)}`;
  });
  if (path) g.append(s('path', { d: path, class: 'series' }));
  r.states.forEach((st, i) => {
    const m = st.grades.mean_score;
    if (st.interval) g.append(s('line', { x1: x(i), x2: x(i), y1: y(st.interval[0]), y2: y(st.interval[1]), class: 'interval' }));
    if (m !== null && m !== undefined) {
      g.append(s('circle', { cx: x(i), cy: y(m), r: 5, class: 'point' },
        s('title', {}, `state ${short(st.state)}: mean ${num(m)}${st.interval ? ` [${st.interval.map((v) => num(v)).join(', ')}]` : ''}, ${st.grades.sessions} sessions`)));
    }
    g.append(s('text', { x: x(i), y: H - B + 18, class: 'axis', 'text-anchor': 'middle' }, short(st.state).slice(0, 8)),
      s('text', { x: x(i), y: H - B + 34, class: 'axis muted', 'text-anchor': 'middle' }, `${st.grades.sessions} sessions`));
  });
  return h('figure', {}, g, h('figcaption', { class: 'muted' }, 'Mean score of the sessions that ran with each memory state (dots), with its 95% bootstrap interval over tasks (bars: tasks resampled, since trials of one task are not independent; none with a single task); vertical lines are the changes between states, red where drift was flagged.'));
}

// ---------------------------------------------------------------- start

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('dialog').addEventListener('close', () => { if (parseHash().page === 'dream') route(); });
  route();
});
