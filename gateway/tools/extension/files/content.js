/* Callguard extension: the content script on the portal's pages (written by `callguard
 * extension`). It runs the same snippet as the <script> tag, bundled below, once the extension
 * has a token; the token comes from storage, and the snippet's renewals go back to it. */
(function () {
  'use strict';
  var CONFIG = __CALLGUARD_CONFIG__;
  var KEYS = ['token', 'expires_at', 'issued_at', 'user_id'];
  var started = false;

  function valid(s) { return !!(s && s.token && s.expires_at * 1000 > Date.now()); }
  // Past 60% of its life, a fresh token is asked for while this one still works.
  function ageing(s) {
    var now = Date.now() / 1000, life = s.expires_at - (s.issued_at || s.expires_at - 43200);
    return s.expires_at - now < 0.4 * life;
  }
  function ask(kind) {
    try { chrome.runtime.sendMessage({type: kind}); } catch (e) { /* extension reloaded */ }
  }

  function run(s) {
    if (started) return;
    started = true;
    window.callguardConfig = {token: s.token, url: CONFIG.ws, debug: CONFIG.debug ? '1' : null};
    // The gateway renews a tab's token over its socket; keep the newest for the next page.
    addEventListener('callguard:token', function (e) {
      var m = e.detail || {};
      if (m.token && m.expires_at) {
        chrome.storage.local.set({token: m.token, expires_at: m.expires_at,
          issued_at: Math.floor(Date.now() / 1000)});
      }
    });
    addEventListener('callguard:close', function (e) {
      if (e.detail && e.detail.code === 4401) ask('refused');
    });
    snippet();
  }

  chrome.storage.local.get(KEYS, function (s) {
    if (valid(s)) {
      run(s);
      if (ageing(s)) ask('renew');
      return;
    }
    chrome.storage.onChanged.addListener(function (changes, area) {
      if (area !== 'local' || !changes.token) return;
      chrome.storage.local.get(KEYS, function (n) { if (valid(n)) run(n); });
    });
    ask('renew');
  });

  function snippet() {
/* ---- static/callguard.js, bundled as it is served ---- */
__CALLGUARD_SNIPPET__
  }
})();
