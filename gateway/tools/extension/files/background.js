/* Callguard extension: the background (a service worker in Chromium, a script in Firefox).
 * Signs in by opening the gateway's /auth/start in a tab (the user is signed in to the portal,
 * so the portal sends it straight back), keeps the token in chrome.storage.local, and shows
 * on the toolbar badge when something needs the user. */
'use strict';
var CONFIG = __CALLGUARD_CONFIG__;
// Automatic sign-ins (a portal page without a good token) at most this often, all in one tab:
// a user not signed in to the portal leaves that tab on the portal's login form, and the next
// portal page after they sign in drives the same tab again instead of opening another.
var AUTO_EVERY = 30 * 1000;
var START = CONFIG.gateway + '/auth/start';

function badge(text, title) {
  chrome.action.setBadgeText({text: text});
  chrome.action.setTitle({title: title || 'Callguard'});
}

function openTab(interactive, tabs) {
  chrome.tabs.create({url: START, active: interactive}, function (tab) {
    var kept = (tabs || []).slice(-10);
    kept.push({id: tab.id, interactive: interactive});
    var change = {signin_tabs: kept};
    if (!interactive) change.auto_tab = tab.id;
    chrome.storage.local.set(change);
  });
}

function signIn(interactive) {
  chrome.storage.local.get(['last_auto', 'auto_tab', 'signin_tabs'], function (s) {
    if (interactive) return openTab(true, s.signin_tabs);
    if (s.last_auto && Date.now() - s.last_auto < AUTO_EVERY) return;
    chrome.storage.local.set({last_auto: Date.now()});
    if (s.auto_tab == null) return openTab(false, s.signin_tabs);
    chrome.tabs.update(s.auto_tab, {url: START}, function () {
      if (chrome.runtime.lastError) openTab(false, s.signin_tabs); // the user closed it
    });
  });
}

function fromCallback(sender) {
  var url = sender.url || (sender.tab && sender.tab.url) || '';
  return sender.id === chrome.runtime.id && url.indexOf(CONFIG.gateway + '/auth/callback') === 0;
}

function closeSigninTab(tabId, ok) {
  chrome.storage.local.get(['signin_tabs'], function (s) {
    var tabs = s.signin_tabs || [], mine = null;
    tabs.forEach(function (t) { if (t.id === tabId) mine = t; });
    if (!mine) return;
    chrome.storage.local.set({signin_tabs: tabs.filter(function (t) { return t.id !== tabId; })});
    if (!mine.interactive) chrome.storage.local.remove('auto_tab');
    // A failed sign-in the user started stays on screen: it says what went wrong.
    if (ok || !mine.interactive) chrome.tabs.remove(tabId);
  });
}

chrome.runtime.onMessage.addListener(function (m, sender) {
  if (!m || typeof m.type !== 'string') return;
  if (m.type === 'signed-in' && fromCallback(sender)) {
    chrome.storage.local.set({token: m.token, user_id: m.user_id, expires_at: m.expires_at,
      issued_at: Math.floor(Date.now() / 1000), error: null});
    badge('', 'Callguard: ' + m.user_id);
    if (sender.tab) closeSigninTab(sender.tab.id, true);
  } else if (m.type === 'signin-failed' && fromCallback(sender)) {
    chrome.storage.local.set({error: String(m.error) + ': ' + String(m.message)});
    badge('!', 'Callguard: ' + String(m.message));
    if (sender.tab) closeSigninTab(sender.tab.id, false);
  } else if (m.type === 'refused') {
    chrome.storage.local.remove(['token', 'expires_at', 'issued_at']);
    badge('!', 'Callguard');
    signIn(false);
  } else if (m.type === 'renew') {
    signIn(false);
  } else if (m.type === 'signin') {
    signIn(true);
  }
});

chrome.action.onClicked.addListener(function () { chrome.runtime.openOptionsPage(); });
