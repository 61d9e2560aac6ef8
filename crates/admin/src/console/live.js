// The live view of a domain: requests per second by outcome, top talkers with one-click actions, the
// "under attack" switch; and the banner every page shows while a domain is under attack.
'use strict';

const LIVE_SERIES = [['hit', '#1f8a4c'], ['miss', '#0a5bd3'], ['limited', '#e08a00'], ['blocked', '#b3261e'],
  ['challenged', '#6b3fb3'], ['upstream_error', '#5b6475'], ['other', '#b9c0cc']];
const HISTORY_SERIES = [['requests', '#0a5bd3'], ['limited', '#e08a00'], ['blocked', '#b3261e'],
  ['challenged', '#6b3fb3']];
const POLL_MS = 3000;
let liveTimer = null;
let historyAt = 0;

function stopLive() {
  clearTimeout(liveTimer);
  liveTimer = null;
}

async function loadLive() {
  stopLive();
  $('live-error').textContent = '';
  historyAt = 0;
  await pollLive();
}

async function pollLive() {
  const base = '/domains/' + enc(state.domain);
  try {
    const step = Number($('live-step').value);
    const [live, top, attack] = await Promise.all([api('GET', base + '/live?step=' + step),
      api('GET', base + '/top-talkers?limit=10'), api('GET', base + '/under-attack')]);
    renderLive(live);
    renderTalkers(top);
    renderAttack(attack);
    if (Date.now() - historyAt > 60000) {
      historyAt = Date.now();
      const h = await api('GET', base + '/stats');
      lineChart($('history-chart'), h.points.map((p) => ({ t: p.point_start_ms, ...p })), HISTORY_SERIES, h.from, h.to);
    }
    $('live-error').textContent = '';
  } catch (e) {
    showErrors($('live-error'), e);
  }
  if (state.tab === 'live' && location.hash.startsWith('#/domain/')) liveTimer = setTimeout(pollLive, POLL_MS);
}

function renderLive(live) {
  stackedBars($('live-chart'), live.points, LIVE_SERIES, live.step_s);
  // The last closed point: the running one is partial.
  const last = live.points[live.points.length - 2] || live.points[live.points.length - 1] || {};
  const sum = (p) => LIVE_SERIES.reduce((a, [k]) => a + (p[k] || 0), 0);
  const total = live.points.reduce((a, p) => a + sum(p), 0);
  $('live-now').textContent = 'Now: ' + (sum(last) / live.step_s).toFixed(1) + ' req/s; ' + total +
    ' requests in 10 minutes';
  $('live-chart').setAttribute('aria-label', 'Requests per second by outcome, last 10 minutes: ' +
    LIVE_SERIES.map(([k]) => k + ' ' + ((last[k] || 0) / live.step_s).toFixed(1)).join(', ') + ' req/s now');
  $('live-legend').replaceChildren(...LIVE_SERIES.map(([key, colour]) => {
    const sw = el('span', { class: 'swatch' });
    sw.style.background = colour;
    return el('span', { 'data-kind': key }, sw,
      key.replace('_', ' ') + ': ' + live.points.reduce((a, p) => a + p[key], 0));
  }));
}

// ---- top talkers ----
const ttl = () => Number($('talkers-ttl').value);

async function talkerAction(what, key) {
  const base = '/domains/' + enc(state.domain);
  const msg = $('talkers-msg');
  msg.textContent = '';
  try {
    if (what === 'block' || what === 'challenge') {
      const ip = key.replace(/\/64$/, '');
      await api('POST', base + '/blocks', { ip, action: what === 'block' ? 'block' : 'bot_detection', ttl: ttl() });
      msg.textContent = (what === 'block' ? 'Blocked ' : 'Challenging ') + key + '. Lift it under Blocks & Challenges.';
    } else if (what === 'challenge-path') {
      await api('POST', base + '/challenge/start', { ttl: ttl(), path: key });
      msg.textContent = 'Challenging ' + key + ' for ' + ttl() + ' s.';
    } else {
      const list = what === 'allow' ? 'allow' : 'deny';
      const acl = await api('GET', base + '/access-control');
      const range = key.includes('/') ? key : key + (key.includes(':') ? '/128' : '/32');
      if (!acl[list].includes(range)) acl[list].push(range);
      await api('PUT', base + '/access-control', { [list]: acl[list] });
      msg.textContent = range + ' added to the ' + list + ' list.';
    }
    msg.className = 'ok';
  } catch (e) {
    msg.className = 'error';
    showErrors(msg, e);
  }
}

const ACTIONS = {
  addresses: [['block', 'Block'], ['challenge', 'Challenge'], ['allow', 'Allow']],
  networks: [['deny', 'Deny'], ['allow', 'Allow']],
  paths: [['challenge-path', 'Challenge']],
  user_agents: [],
};

function renderTalkers(top) {
  // The tables are rebuilt on every poll: keep the keyboard focus on the same action of the same key.
  const focused = document.activeElement?.closest?.('.talkers') && document.activeElement.getAttribute('aria-label');
  const w = top.windows[Number($('talkers-window').value)] || top.windows[0];
  $('talkers-total').textContent = w.total + ' requests in the last ' + Math.round(w.seconds / 60) + ' min';
  for (const [dim, actions] of Object.entries(ACTIONS)) {
    const rows = w[dim].map((t) => el('tr', { 'data-key': t.key },
      el('td', { class: dim === 'paths' || dim === 'user_agents' ? 'key text' : 'key' }, el('code', { text: t.key })),
      el('td', { text: t.requests.toLocaleString() + (t.error ? ' (±' + t.error + ')' : '') }),
      el('td', { text: t.refused.toLocaleString() }),
      ...(actions.length ? [el('td', { class: 'acts' }, ...actions.map(([what, label]) => el('button', {
        type: 'button', text: label, 'data-act': what, 'aria-label': label + ' ' + t.key,
        onclick: () => talkerAction(what, t.key),
      })))] : [])));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: actions.length ? 4 : 3, class: 'hint', text: 'none yet' })));
    $('talkers-' + dim).replaceChildren(...rows);
  }
  if (focused) {
    const again = [...document.querySelectorAll('.talkers button')].find((b) => b.getAttribute('aria-label') === focused);
    again?.focus();
  }
}

$('live-step').addEventListener('change', loadLive);
$('talkers-window').addEventListener('change', loadLive);

// ---- under attack ----
function renderAttack(a) {
  const b = $('attack-switch');
  b.setAttribute('aria-checked', String(a.active));
  b.textContent = a.active ? 'Under attack: ON (switch off)' : 'Under attack: off';
  b.classList.toggle('on', a.active);
  $('attack-state').textContent = a.active ? 'until ' + new Date(a.until_ms).toLocaleTimeString() : '';
}

$('attack-switch').addEventListener('click', async () => {
  const on = $('attack-switch').getAttribute('aria-checked') !== 'true';
  $('live-error').textContent = '';
  try {
    const body = on ? { enabled: true, ttl: Number($('attack-ttl').value) } : { enabled: false };
    renderAttack(await api('PUT', '/domains/' + enc(state.domain) + '/under-attack', body));
    await refreshBanner();
  } catch (e) {
    showErrors($('live-error'), e);
  }
});

async function refreshBanner() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  try {
    const { domains } = await api('GET', '/under-attack');
    const banner = $('attack-banner');
    banner.hidden = !domains.length;
    banner.replaceChildren(...domains.map((d) => el('span', {}, 'Under attack: ',
      el('a', { href: '#/domain/' + enc(d.domain) + '/live', text: d.domain }),
      ' (emergency mode and a challenge of every request until ' + new Date(d.until_ms).toLocaleTimeString() + ') ')));
  } catch (e) {
    // The banner is a courtesy; the page's own call reports errors.
  }
}
setInterval(refreshBanner, 10000);
