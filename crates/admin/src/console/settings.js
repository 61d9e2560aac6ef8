// Domain settings beyond the first console: IP allow/deny lists, cache purge, the challenge settings and
// timed challenges, and what each custom rule did in the last hour (from the activity log).
'use strict';

const lines = (v) => v.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

async function loadAccessLists() {
  clearErrors($('acl-error'));
  const acl = await api('GET', '/domains/' + enc(state.domain) + '/access-control');
  $('acl-allow').value = acl.allow.join('\n');
  $('acl-deny').value = acl.deny.join('\n');
}

$('acl-save').addEventListener('click', async () => {
  clearErrors($('acl-error'));
  try {
    await api('PUT', '/domains/' + enc(state.domain) + '/access-control',
      { allow: lines($('acl-allow').value), deny: lines($('acl-deny').value) });
    await loadAccessLists();
  } catch (e) {
    showErrors($('acl-error'), e);
  }
});

$('purge-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const kind = $('purge-kind').value;
  const values = lines($('purge-value').value);
  const body = kind === 'prefix' ? { prefix: values[0] || '' } : { [kind]: values };
  try {
    const r = await api('POST', '/domains/' + enc(state.domain) + '/purge', body);
    $('purge-result').textContent = r.purged + ' objects purged';
  } catch (e) {
    showErrors($('purge-result'), e);
  }
});

async function loadChallenge() {
  clearErrors($('ch-error'));
  const c = await api('GET', '/domains/' + enc(state.domain) + '/challenge');
  $('ch-enabled').checked = !!c.enabled;
  $('ch-difficulty').value = c.difficulty ?? 20;
  $('ch-ttl').value = c.clearance_ttl ?? '1h';
  $('ch-paths').value = (c.paths || []).join(' ');
  $('timed-list').replaceChildren(...(c.timed || []).map((t) => el('li', {},
    (t.object_type === 'domain' ? 'whole domain' : t.object_type) + ' until ' + new Date(t.until_ms).toLocaleString())));
  ruleResults();
}

$('challenge-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearErrors($('ch-error'));
  try {
    await api('PUT', '/domains/' + enc(state.domain) + '/challenge', { enabled: $('ch-enabled').checked,
      difficulty: Number($('ch-difficulty').value), clearance_ttl: $('ch-ttl').value, paths: lines($('ch-paths').value) });
    await loadChallenge();
  } catch (e) {
    showErrors($('ch-error'), e);
  }
});

$('timed-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { ttl: Number($('timed-ttl').value) };
  if ($('timed-path').value.trim()) body.path = $('timed-path').value.trim();
  try {
    await api('POST', '/domains/' + enc(state.domain) + '/challenge/start', body);
    $('timed-result').textContent = 'Started.';
    await loadChallenge();
  } catch (e) {
    showErrors($('timed-result'), e);
  }
});

// "This rule blocked (challenged; a log rule: would have blocked) N addresses in the last hour", from its
// triggers in the activity log.
async function ruleResults() {
  const to = Date.now();
  for (const r of state.rules) {
    const row = document.querySelector('#rule-rows tr[data-rule="' + CSS.escape(r.name) + '"]');
    if (!row) continue;
    const q = new URLSearchParams({ domain: state.domain, rule: r.name, from: String(to - 3600000),
      to: String(to + 1), page_size: '100' });
    try {
      const page = await api('GET', '/activity?' + q);
      const objects = new Set(page.records.filter((x) => x.action !== 'lift').map((x) => x.object_value));
      const verb = { bot_detection: 'challenged', log: 'would have blocked' }[r.action] || 'blocked';
      const n = objects.size + (page.total > 100 ? '+' : '');
      const what = r.object === 'ip' ? (objects.size === 1 ? 'address' : 'addresses') : 'objects';
      const note = el('div', { class: 'hint rule-result', text: verb + ' ' + n + ' ' + what + ' in the last hour' });
      row.cells[1].querySelector('.rule-result')?.remove();
      row.cells[1].append(note);
    } catch (e) {
      // Leave the row as it is.
    }
  }
}
