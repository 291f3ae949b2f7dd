/* Callguard extension: the options page: who is signed in, until when, the last error, and a
 * button that signs in again. */
(function () {
  'use strict';
  var CONFIG = __CALLGUARD_CONFIG__, T = CONFIG.texts;
  function $(id) { return document.getElementById(id); }
  function show() {
    chrome.storage.local.get(['token', 'user_id', 'expires_at', 'error'], function (s) {
      var ok = s.token && s.expires_at * 1000 > Date.now();
      $('status').textContent = ok ?
        T.signed_in.replace('{user}', s.user_id).replace('{until}',
          new Date(s.expires_at * 1000).toLocaleString(CONFIG.lang)) : T.signed_out;
      $('status').dataset.user = ok ? s.user_id : '';
      $('error').hidden = !s.error;
      $('error').textContent = s.error || '';
    });
  }
  $('portal-label').textContent = T.portal;
  $('gateway-label').textContent = T.gateway;
  $('status-label').textContent = T.status;
  $('portal').textContent = CONFIG.portal;
  $('gateway').textContent = CONFIG.gateway;
  $('signin').textContent = T.sign_in;
  $('signin').addEventListener('click', function () {
    chrome.runtime.sendMessage({type: 'signin'});
  });
  chrome.storage.onChanged.addListener(show);
  show();
})();
