// edgeguard console: a thin client of /api/v1/. No framework, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'edgeguard-admin-token';
const state = { domain: null, tab: 'access', rules: [], ip: null, editing: null, page: 1, pageSize: 20 };
const TABS = ['live', 'access', 'security', 'stats'];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => e.message).join('; '));
    this.status = status;
    this.errors = errors;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '') };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch('/api/v1' + path, init);
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/login';
    throw new ApiError(401, [{ message: 'Please log in.' }]);
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({ errors: [{ message: 'HTTP ' + res.status }] }));
  if (!res.ok) throw new ApiError(res.status, data.errors || [{ message: 'HTTP ' + res.status }]);
  return data;
}

function showErrors(target, err) {
  target.replaceChildren();
  const errors = err instanceof ApiError ? err.errors : [{ message: String(err) }];
  for (const e of errors) {
    const where = [e.rule ? 'rule ' + e.rule : '', e.field || ''].filter(Boolean).join(', ');
    const text = (where ? where + ': ' : '') + e.message;
    if (target.tagName === 'UL') target.append(el('li', { text }));
    else target.textContent = text;
  }
}

function clearErrors(...targets) {
  for (const t of targets) t.replaceChildren();
}

function show(view) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + view;
  $('nav').hidden = view === 'login';
  $('main').focus({ preventScroll: true });
}

const enc = encodeURIComponent;

// ---- login ----
$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  try {
    await api('GET', '/domains');
    $('login-error').textContent = '';
    location.hash = '#/domains';
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'That token is not accepted.' : e.message;
    sessionStorage.removeItem(TOKEN_KEY);
  }
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '#/login';
});

// ---- domain list ----
async function loadDomains() {
  show('domains');
  const { domains } = await api('GET', '/domains');
  const rows = domains.map((d) => {
    const ip = d.ip_access_limit || {};
    const rl = d.rate_limiting || {};
    return el('tr', {},
      el('td', { text: d.name }),
      el('td', { text: (d.origins || []).join(', ') }),
      el('td', { text: (d.parents || []).join(', ') || '-' }),
      el('td', { text: ip.enabled ? 'on' + (ip.qps ? ' (' + ip.qps + ' QPS)' : ' (recommended)') : 'off' }),
      el('td', { text: rl.enabled ? 'on, ' + rl.mode : 'off' }),
      el('td', {}, el('a', { href: '#/domain/' + enc(d.name) + '/access', 'data-domain': d.name, class: 'manage',
        text: 'Manage' }), ' ', el('a', { href: '#/domain/' + enc(d.name) + '/live', 'data-domain': d.name,
        class: 'live', text: 'Live' })));
  });
  $('domain-rows').replaceChildren(...rows);
}

// ---- a domain ----
function selectTab(tab) {
  state.tab = tab;
  for (const t of TABS) {
    $('tab-' + t).setAttribute('aria-selected', String(t === tab));
    $('tab-' + t).tabIndex = t === tab ? 0 : -1;
    $('panel-' + t).hidden = t !== tab;
  }
}
for (const t of TABS) {
  $('tab-' + t).addEventListener('click', () => { location.hash = '#/domain/' + enc(state.domain) + '/' + t; });
}
document.querySelector('[role=tablist]').addEventListener('keydown', (ev) => {
  const order = TABS;
  const i = order.indexOf(state.tab);
  const step = ev.key === 'ArrowRight' ? 1 : ev.key === 'ArrowLeft' ? -1 : 0;
  if (!step) return;
  const next = order[(i + step + order.length) % order.length];
  location.hash = '#/domain/' + enc(state.domain) + '/' + next;
  $('tab-' + next).focus();
});

async function loadDomain(name, tab) {
  state.domain = name;
  show('domain');
  $('domain-title').textContent = name;
  selectTab(tab);
  if (tab === 'live') await loadLive();
  else if (tab === 'access') { await loadAccess(); await loadAccessLists(); }
  else if (tab === 'security') { await loadSecurity(); await loadChallenge(); await loadBaseline(); }
  else await loadStats();
}

function renderIp(ip) {
  state.ip = ip;
  $('ip-switch').checked = ip.enabled;
  $('ip-qps').textContent = ip.effective_qps == null ? '-' : ip.effective_qps + ' QPS';
  $('ip-source').textContent = ip.qps == null
    ? '(recommended default from the last 30 days; ' + (ip.recommended_qps ?? '?') + ' QPS)'
    : '(set; recommended default: ' + (ip.recommended_qps ?? '?') + ' QPS)';
}

async function loadAccess() {
  const base = '/domains/' + enc(state.domain);
  renderIp(await api('GET', base + '/ip-access-limit'));
  const o = await api('GET', base + '/origin-addresses');
  $('origin-addresses').replaceChildren(...o.addresses.map((a) => el('li', { text: a })),
    el('li', { class: 'hint', text: o.via === 'parents' ? 'via the parent nodes' : 'this node goes to the origin' }));
}

async function putIp(body) {
  $('ip-error').textContent = '';
  try {
    renderIp(await api('PUT', '/domains/' + enc(state.domain) + '/ip-access-limit', body));
    return true;
  } catch (e) {
    showErrors($('ip-error'), e);
    return false;
  }
}

$('ip-switch').addEventListener('change', async (ev) => {
  if (!(await putIp({ enabled: ev.target.checked }))) ev.target.checked = !ev.target.checked;
});
$('ip-edit').addEventListener('click', () => {
  $('qps-input').value = state.ip ? (state.ip.qps ?? state.ip.recommended_qps ?? 10) : 10;
  $('qps-hint').textContent = 'Recommended default: ' + (state.ip?.recommended_qps ?? '?') + ' QPS.';
  $('qps-error').textContent = '';
  $('qps-dialog').showModal();
});
$('qps-cancel').addEventListener('click', () => $('qps-dialog').close());
$('qps-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const qps = Number($('qps-input').value);
  try {
    renderIp(await api('PUT', '/domains/' + enc(state.domain) + '/ip-access-limit', { qps }));
    $('qps-dialog').close();
    $('ip-edit').focus();
  } catch (e) {
    showErrors($('qps-error'), e);
  }
});

// ---- security settings ----
function renderRateLimiting(rl) {
  $('rl-switch').checked = !!rl.enabled;
  $('rl-mode').value = rl.mode || 'normal';
  $('rl-param').checked = !!rl.parameter_check;
  const byName = new Map((rl.rules || []).map((r) => [r.name, r]));
  const order = rl.evaluation_order && rl.evaluation_order.length ? rl.evaluation_order : [...byName.keys()];
  state.rules = order.map((n) => byName.get(n)).filter(Boolean);
  const rows = state.rules.map((r, i) => el('tr', { 'data-rule': r.name },
    el('td', { text: String(i + 1) }),
    el('td', { text: r.name }), el('td', { text: r.uri }), el('td', { text: r.match }),
    el('td', { text: r.object }), el('td', { text: r.interval + ' s' }), el('td', {}, el('code', { text: r.criteria })),
    el('td', { text: { bot_detection: 'Bot Detection', log: 'Log only' }[r.action] || 'Block' }), el('td', { text: r.ttl + ' s' }),
    el('td', {},
      el('button', { type: 'button', text: 'Up', 'aria-label': 'Move ' + r.name + ' up', onclick: () => move(i, -1) }), ' ',
      el('button', { type: 'button', text: 'Down', 'aria-label': 'Move ' + r.name + ' down', onclick: () => move(i, 1) }), ' ',
      el('button', { type: 'button', text: 'Edit', 'aria-label': 'Edit ' + r.name, onclick: () => openRule(r) }), ' ',
      el('button', { type: 'button', text: 'Delete', 'aria-label': 'Delete ' + r.name, onclick: () => deleteRule(r.name) }))));
  $('rule-rows').replaceChildren(...rows);
  $('add-rule').disabled = state.rules.length >= 5;
}

async function loadSecurity() {
  clearErrors($('rl-error'), $('rules-error'));
  renderRateLimiting(await api('GET', '/domains/' + enc(state.domain) + '/rate-limiting'));
}

async function saveRateLimiting() {
  clearErrors($('rl-error'));
  try {
    renderRateLimiting(await api('PUT', '/domains/' + enc(state.domain) + '/rate-limiting', {
      enabled: $('rl-switch').checked, mode: $('rl-mode').value, parameter_check: $('rl-param').checked,
    }));
    await loadBaseline();
  } catch (e) {
    showErrors($('rl-error'), e);
  }
}
$('rl-save').addEventListener('click', saveRateLimiting);
$('rl-switch').addEventListener('change', saveRateLimiting);

async function move(i, step) {
  const j = i + step;
  if (j < 0 || j >= state.rules.length) return;
  const names = state.rules.map((r) => r.name);
  [names[i], names[j]] = [names[j], names[i]];
  clearErrors($('rules-error'));
  try {
    await api('PUT', '/domains/' + enc(state.domain) + '/rate-limiting/rules/order', { names });
    await loadSecurity();
  } catch (e) {
    showErrors($('rules-error'), e);
  }
}

async function deleteRule(name) {
  if (!confirm('Delete rule ' + name + '?')) return;
  clearErrors($('rules-error'));
  try {
    await api('DELETE', '/domains/' + enc(state.domain) + '/rate-limiting/rules/' + enc(name));
    await loadSecurity();
  } catch (e) {
    showErrors($('rules-error'), e);
  }
}

const RULE_FIELDS = ['name', 'uri', 'match', 'object', 'interval', 'criteria', 'action', 'ttl'];

function openRule(rule) {
  state.editing = rule ? rule.name : null;
  $('rule-title').textContent = rule ? 'Edit Rule ' + rule.name : 'Add Rule';
  const r = rule || { name: '', uri: '', match: 'prefix', object: 'ip', interval: 10, criteria: '', action: 'block', ttl: 600 };
  for (const f of RULE_FIELDS) {
    $('rule-' + f).value = r[f];
    $('err-' + f).textContent = '';
    $('rule-' + f).removeAttribute('aria-invalid');
  }
  clearErrors($('rule-error'));
  $('rule-dialog').showModal();
  $('rule-name').focus();
}
$('add-rule').addEventListener('click', () => openRule(null));
$('rule-cancel').addEventListener('click', () => $('rule-dialog').close());
$('rule-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  for (const f of RULE_FIELDS) body[f] = $('rule-' + f).value;
  body.interval = Number(body.interval);
  body.ttl = Number(body.ttl);
  const old = state.rules.find((r) => r.name === state.editing);
  if (old && old.priority != null) body.priority = old.priority;
  for (const f of RULE_FIELDS) {
    $('err-' + f).textContent = '';
    $('rule-' + f).removeAttribute('aria-invalid');
  }
  clearErrors($('rule-error'));
  const base = '/domains/' + enc(state.domain) + '/rate-limiting/rules';
  try {
    if (state.editing) await api('PUT', base + '/' + enc(state.editing), body);
    else await api('POST', base, body);
    $('rule-dialog').close();
    await loadSecurity();
  } catch (e) {
    if (!(e instanceof ApiError)) return showErrors($('rule-error'), e);
    const rest = [];
    for (const err of e.errors) {
      const f = err.field && $('err-' + err.field);
      if (f) {
        f.textContent = err.message;
        $('rule-' + err.field).setAttribute('aria-invalid', 'true');
        $('rule-' + err.field).setAttribute('aria-describedby', 'err-' + err.field);
      } else {
        rest.push(err);
      }
    }
    if (rest.length) showErrors($('rule-error'), new ApiError(400, rest));
    const first = e.errors.find((err) => err.field && $('rule-' + err.field));
    if (first) $('rule-' + first.field).focus();
  }
});

// ---- statistics chart ----
const SERIES = [['requests', '#0a5bd3'], ['limited', '#e08a00'], ['blocked', '#b3261e'], ['challenged', '#6b3fb3']];

async function loadStats() {
  const data = await api('GET', '/domains/' + enc(state.domain) + '/stats');
  lineChart($('chart'), data.points.map((p) => ({ t: p.point_start_ms, ...p })), SERIES, data.from, data.to);
  $('chart-legend').replaceChildren(...SERIES.map(([key]) =>
    el('span', {}, el('span', { class: 'swatch s-' + key }), key + ': ' + data.points.reduce((a, p) => a + p[key], 0))));
}

// ---- activity log ----
function toMs(v) {
  return v ? String(new Date(v).getTime()) : '';
}

async function loadActivity() {
  show('activity');
  const q = new URLSearchParams();
  for (const k of ['domain', 'rule', 'object', 'action']) {
    const v = $('f-' + k).value.trim();
    if (v) q.set(k, v);
  }
  if ($('f-from').value) q.set('from', toMs($('f-from').value));
  if ($('f-to').value) q.set('to', toMs($('f-to').value));
  q.set('page', String(state.page));
  q.set('page_size', String(state.pageSize));
  $('activity-error').textContent = '';
  try {
    const page = await api('GET', '/activity?' + q);
    $('activity-rows').replaceChildren(...page.records.map((r) => el('tr', {},
      el('td', { text: new Date(r.time_ms).toLocaleString() }), el('td', { text: r.node }), el('td', { text: r.domain }),
      el('td', { text: r.rule }), el('td', { text: r.object_type + ' ' + r.object_value }), el('td', { text: r.action }),
      el('td', { text: r.ttl_s + ' s' }), el('td', {}, el('code', { text: r.detail })))));
    const pages = Math.max(1, Math.ceil(page.total / page.page_size));
    $('page-info').textContent = `Page ${page.page} of ${pages} (${page.total} records)`;
    $('page-prev').disabled = page.page <= 1;
    $('page-next').disabled = page.page >= pages;
  } catch (e) {
    showErrors($('activity-error'), e);
  }
}
$('activity-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.page = 1;
  loadActivity();
});
$('page-prev').addEventListener('click', () => { state.page = Math.max(1, state.page - 1); loadActivity(); });
$('page-next').addEventListener('click', () => { state.page += 1; loadActivity(); });

// ---- routing ----
async function route() {
  const hash = location.hash || '#/domains';
  if (!sessionStorage.getItem(TOKEN_KEY) && hash !== '#/login') {
    location.hash = '#/login';
    return;
  }
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  stopLive();
  if (parts[0] !== 'login') refreshBanner();
  try {
    if (parts[0] === 'login') { show('login'); $('token').focus(); }
    else if (parts[0] === 'domain' && parts[1]) await loadDomain(parts[1], parts[2] || 'access');
    else if (parts[0] === 'activity') { state.page = 1; await loadActivity(); }
    else if (parts[0] === 'blocks') await loadBlocks();
    else await loadDomains();
  } catch (e) {
    if (e.status !== 401) alert(e.message);
  }
}
window.addEventListener('hashchange', route);
// After every deferred script has run (the views' code lives in chart.js, live.js, blocks.js, settings.js).
document.addEventListener('DOMContentLoaded', route);
