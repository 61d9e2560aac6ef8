(function () {
  'use strict';
  var doc = document.documentElement;
  var root = document.getElementById('eg');
  var live = document.getElementById('eg-live');
  var statusEl = document.getElementById('eg-status');
  var statsEl = document.getElementById('eg-stats');
  var bar = document.getElementById('eg-progress');
  var retry = document.getElementById('eg-retry');
  var job = {
    token: root.getAttribute('data-token'),
    challenge: root.getAttribute('data-challenge'),
    difficulty: parseInt(root.getAttribute('data-difficulty'), 10),
    verify: root.getAttribute('data-verify'),
    ret: root.getAttribute('data-return') || '/'
  };
  var expected = Math.pow(2, job.difficulty);
  var workers = [], counts = [], started = Date.now(), finished = false, timer = 0, lastStats = 0;

  function setState(state, text) {
    doc.setAttribute('data-eg-state', state);
    if (text) statusEl.textContent = text;
  }

  function stop() {
    finished = true;
    if (timer) clearInterval(timer);
    for (var i = 0; i < workers.length; i++) workers[i].terminate();
  }

  function fail(text) {
    stop();
    setState('error', text);
    retry.hidden = false;
  }

  function total() {
    var t = 0;
    for (var i = 0; i < counts.length; i++) t += counts[i];
    return t;
  }

  function render(force) {
    var t = total(), ms = Date.now() - started;
    // Chance that a search of t hashes has found an answer: a fair progress figure for a geometric search.
    bar.value = Math.min(99, Math.round(100 * (1 - Math.exp(-t / expected))));
    if (force || ms - lastStats >= 1000) {
      lastStats = ms;
      statsEl.textContent = t.toLocaleString('en') + ' attempts, ' + (ms / 1000).toFixed(1) + ' s';
    }
  }

  function retries() {
    try {
      var n = parseInt(sessionStorage.getItem('eg-retries') || '0', 10) + 1;
      sessionStorage.setItem('eg-retries', String(n));
      return n;
    } catch (e) {
      return 99;
    }
  }

  function found(nonce) {
    stop();
    var elapsed = Date.now() - started, attempts = total();
    doc.setAttribute('data-eg-attempts', String(attempts));
    doc.setAttribute('data-eg-elapsed-ms', String(elapsed));
    bar.value = 100;
    render(true);
    setState('verifying', 'Answer found. Verifying with the server\u2026');
    var body = new URLSearchParams();
    body.set('token', job.token);
    body.set('nonce', nonce);
    body.set('elapsed_ms', String(elapsed));
    body.set('return_to', job.ret);
    send(body, 0);
  }

  function send(body, attempt) {
    fetch(job.verify, { method: 'POST', body: body, credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (res) {
        if (res && res.ok) {
          // Only ever go back to a path on this origin, whatever the server said.
          var target = new URL(String(res.redirect), location.href);
          if (target.origin !== location.origin) target = new URL('/', location.href);
          setState('done', 'Check passed. Loading the page\u2026');
          try { sessionStorage.removeItem('eg-retries'); } catch (e) { /* storage off: nothing to clear */ }
          location.replace(target.pathname + target.search + location.hash);
        } else if (res && (res.error === 'expired' || res.error === 'replayed') && retries() <= 3) {
          // A spent or stale token: a fresh page brings a fresh one.
          location.reload();
        } else if (res && res.error === 'busy' && attempt < 5) {
          // The answer was not used up: post it again after a pause.
          setState('verifying', 'The server is busy. Trying again in a moment\u2026');
          setTimeout(function () { send(body, attempt + 1); }, 1000 * (attempt + 1));
        } else {
          fail('The check did not pass (' + String(res && res.error) + '). Please try again.');
        }
      })
      .catch(function () { fail('The server could not be reached to finish the check. Please try again.'); });
  }

  live.hidden = false;
  setState('solving', 'Checking your browser. This takes a second or two\u2026');
  var url = root.getAttribute('data-worker');
  var n = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
  for (var i = 0; i < n; i++) {
    var w;
    try {
      w = new Worker(url);
    } catch (e) {
      fail('Your browser cannot run the check (no Web Workers).');
      return;
    }
    counts.push(0);
    w.onmessage = (function (idx) {
      return function (ev) {
        var m = ev.data;
        if (finished) return;
        if (m.type === 'progress') counts[idx] = m.tried;
        else if (m.type === 'found') { counts[idx] = m.tried; found(m.nonce); }
        else fail('Your browser computed a wrong hash; the check cannot run here.');
      };
    })(i);
    w.onerror = function () { if (!finished) fail('The check stopped with an error. Please try again.'); };
    w.postMessage({ challenge: job.challenge, difficulty: job.difficulty, start: i, step: n });
    workers.push(w);
  }
  timer = setInterval(function () { render(false); }, 250);
})();
