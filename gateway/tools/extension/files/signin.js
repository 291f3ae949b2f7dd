/* Callguard extension: on the gateway's /auth/callback page, hand what the sign-in gave to the
 * extension (the page has no script of its own: the gateway's CSP allows none inline). */
(function () {
  'use strict';
  var el = document.getElementById('callguard-signin');
  if (!el) return;
  var data = el.dataset;
  if (data.state === 'ok' && data.token) {
    chrome.runtime.sendMessage({type: 'signed-in', token: data.token, user_id: data.userId,
      expires_at: Number(data.expiresAt)});
  } else if (data.state === 'error') {
    var pre = el.querySelector('pre');
    chrome.runtime.sendMessage({type: 'signin-failed', error: data.error,
      message: pre ? pre.textContent : ''});
  }
})();
