// "What normal looks like here": what normal and emergency mode learned of the domain's own traffic
// (GET /domains/{name}/baseline), with the thresholds they apply and what the detector holds in force.
'use strict';

const MEASURES = {
  client_requests_10s: 'Requests of one client in 10 s',
  client_requests_60s: 'Requests of one client in 60 s',
  client_404s_10s: '404s of one client in 10 s',
  path_requests_10s: 'Requests for one path in 10 s (all clients)',
  login_failures_300s: 'Failed logins of one client in 5 min',
  path_unseen_queries_10s: 'Requests for one path with a new query string in 10 s',
  new_clients_10s: 'New clients in 10 s (whole domain)',
};

const pct = (perMille) => (perMille / 10).toFixed(1) + '%';
const perSecond = (per10s) => (per10s / 10).toFixed(1) + '/s';

function fact(list, term, value) {
  list.append(el('dt', { text: term }), el('dd', { text: value }));
}

async function loadBaseline() {
  clearErrors($('bl-error'));
  let b;
  try {
    b = await api('GET', '/domains/' + enc(state.domain) + '/baseline');
  } catch (e) {
    showErrors($('bl-error'), e);
    return;
  }
  const m = Object.fromEntries(b.measures.map((x) => [x.measure, x]));
  $('bl-state').textContent = !b.learning
    ? 'This domain runs neither normal nor emergency mode: nothing is learned or enforced from its baseline.'
    : b.warming_up
      ? 'Still warming up: until enough traffic was seen, the fixed floors decide.'
      : 'Learned from this domain\'s own traffic.';
  const facts = $('bl-facts');
  facts.replaceChildren();
  const learned = (name, show) => {
    const x = m[name];
    if (!x) return '-';
    return x.p999 == null ? 'not learned yet (threshold ' + x.threshold + ')'
      : show(x.p999) + ' at p99.9 (threshold ' + x.threshold + ')';
  };
  fact(facts, 'Per-client request rate', learned('client_requests_10s', (v) => v + ' requests in 10 s'));
  fact(facts, 'New-client arrival rate', learned('new_clients_10s', (v) => perSecond(v)));
  const s = b.shares || { requests: 0, status_classes: [] };
  fact(facts, 'Requests that miss the cache with a new query string',
    s.requests ? pct(s.unseen_query_per_mille) + ' of ' + s.requests + ' requests' : 'none learned yet');
  fact(facts, 'Status classes', s.status_classes.some((c) => c.responses)
    ? s.status_classes.filter((c) => c.responses).map((c) => c.class + ' ' + pct(c.per_mille)).join(', ')
    : 'none learned yet');
  fact(facts, 'In force now', b.paths_in_surge + ' paths in surge, ' + b.networks_flagged
    + ' networks with login requests challenged');
  $('bl-measures').replaceChildren(...b.measures.map((x) => el('tr', { 'data-measure': x.measure },
    el('td', { text: MEASURES[x.measure] || x.measure }),
    el('td', { text: String(x.events) }),
    el('td', { text: x.p99 == null ? '-' : String(x.p99) }),
    el('td', { text: x.p999 == null ? '-' : String(x.p999) }),
    el('td', { text: String(x.threshold) }))));
  $('bl-paths').replaceChildren(...(b.top_paths || []).slice(0, 10).map((p) => el('tr', {},
    el('td', {}, el('code', { text: p.path })),
    el('td', { text: String(p.requests_10s) }),
    el('td', { text: String(p.peak_10s) }))));
  if (!(b.top_paths || []).length) {
    $('bl-paths').append(el('tr', {}, el('td', { colspan: '3', class: 'hint', text: 'No paths learned yet.' })));
  }
}

$('bl-refresh').addEventListener('click', loadBaseline);
