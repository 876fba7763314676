/**
 * The page at `/`: submit a job and watch its status. No framework and no build step; the script is served
 * from `/app.js` so the page works under a `default-src 'self'` Content-Security-Policy.
 */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>async-jobs</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
  label { display: block; margin-top: .75rem; font-weight: 600; }
  select, textarea, button { font: inherit; }
  textarea { width: 100%; min-height: 5rem; font-family: ui-monospace, monospace; }
  pre { background: #f4f4f4; padding: .75rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
  .status { font-weight: 700; }
  .refused { color: #a00; font-weight: 700; }
  input[type=password] { font: inherit; width: 100%; }
</style>
</head>
<body>
<h1>async-jobs</h1>
<form id="token-form">
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="off" placeholder="paste the token printed by npm run secrets">
  <p><button id="save-token" type="submit">Use token</button>
  <span id="auth-state" data-state="none" role="status">No token: the API answers 401 without one.</span></p>
</form>
<form id="submit-form">
  <label for="job-type">Job type</label>
  <select id="job-type" name="type"></select>
  <label for="job-input">Input (JSON)</label>
  <textarea id="job-input" name="input">{"n": 20}</textarea>
  <p><button id="submit" type="submit">Submit job</button></p>
</form>
<p>Job: <a id="job-link" href="#"></a></p>
<p>Status: <span id="status" class="status" data-status="">-</span></p>
<pre id="output" aria-live="polite"></pre>
<script src="/app.js"></script>
</body>
</html>
`;

export const APP_JS = `'use strict';
(function () {
  var typeSelect = document.getElementById('job-type');
  var inputArea = document.getElementById('job-input');
  var statusEl = document.getElementById('status');
  var output = document.getElementById('output');
  var link = document.getElementById('job-link');
  var tokenInput = document.getElementById('token');
  var authState = document.getElementById('auth-state');
  var examples = {};
  var timer = null;
  // sessionStorage: the token lives as long as this tab, and is never sent anywhere but this origin's API.
  var TOKEN_KEY = 'async-jobs-token';

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
  function setAuth(state, text) {
    authState.setAttribute('data-state', state);
    authState.className = state === 'refused' ? 'refused' : '';
    authState.textContent = text;
  }
  function api(url, options) {
    options = options || {};
    options.headers = options.headers || {};
    if (token()) options.headers.authorization = 'Bearer ' + token();
    return fetch(url, options).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          var why = r.status === 401 ? 'The token was refused (401): ' : 'The token is not allowed to do this (403): ';
          setAuth('refused', why + (body.detail || 'unauthorized'));
          var err = new Error(why + (body.detail || ''));
          err.refused = true;
          throw err;
        });
      }
      return r;
    });
  }

  function show(status, body) {
    statusEl.textContent = status;
    statusEl.setAttribute('data-status', status);
    output.textContent = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  }

  function loadTypes() {
    api('/v1/job-types').then(function (r) { return r.json(); }).then(function (data) {
    setAuth('accepted', 'Token accepted.');
    typeSelect.textContent = '';
    data.items.forEach(function (t) {
      var opt = document.createElement('option');
      opt.value = t.type;
      opt.textContent = t.type + ' - ' + t.description;
      typeSelect.appendChild(opt);
      examples[t.type] = t.example;
    });
    typeSelect.value = 'factorial';
    }).catch(function (err) { if (!err.refused) show('error', String(err)); });
  }
  document.getElementById('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
    tokenInput.value = '';
    loadTypes();
  });
  if (token()) loadTypes();
  typeSelect.addEventListener('change', function () {
    inputArea.value = JSON.stringify(examples[typeSelect.value] || {});
  });

  // crypto.randomUUID only exists in secure contexts (https or localhost); plain http elsewhere needs a fallback.
  function newKey() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    return 'web-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }

  function poll(url) {
    api(url).then(function (r) { return r.json(); }).then(function (job) {
      show(job.status, job);
      if (job.status !== 'succeeded' && job.status !== 'failed') timer = setTimeout(function () { poll(url); }, 500);
    }).catch(function (err) {
      if (err.refused) { show('refused', err.message); return; }
      show('error', String(err));
      timer = setTimeout(function () { poll(url); }, 2000);
    });
  }

  document.getElementById('submit-form').addEventListener('submit', function (event) {
    event.preventDefault();
    if (timer) clearTimeout(timer);
    var input;
    try { input = JSON.parse(inputArea.value); } catch (e) { show('invalid input', String(e)); return; }
    api('/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': newKey() },
      body: JSON.stringify({ type: typeSelect.value, input: input })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (!res.ok) { show('rejected', res.body); return; }
      link.textContent = res.body.id;
      link.href = res.body.links.self;
      show(res.body.status, res.body);
      poll(res.body.links.self);
    }).catch(function (err) { show(err.refused ? 'refused' : 'error', err.message || String(err)); });
  });
})();
`;
