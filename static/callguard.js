/* Callguard: colours the Bitrix24 call popup (design.md 3.6). Tag: src, data-token, [data-url],
 * [data-debug], [data-refused-retry] (seconds between retries after a refused token, 300 at
 * most and by default; for tests). The portal's language (BX.message('LANGUAGE_ID'), else
 * <html lang>) goes to the gateway as ?lang=; a paint's reason shows as one line of text in the
 * popup (.callguard-reason) and as the folded panel's tooltip. Window events 'callguard:hello|paint|clear|error|token|close'
 * carry the message as event.detail ({code, reason, retry} for close: retry is the ms until
 * it reconnects, null until the page is shown); an applied paint's has
 * latency_ms (ring -> colour on screen). */
(function (w, d) {
  'use strict';
  if (w.__callguard) return;
  w.__callguard = 1;
  var tag = source();
  var token = tag && tag.getAttribute('data-token');
  if (!token) return;
  var dbg = /^(|1|true|yes)$/.test(tag.getAttribute('data-debug'));
  // A refused token (4401) may work later (clock fixed, page renewed it): retry, but rarely.
  var REFUSED = Math.min(300, parseFloat(tag.getAttribute('data-refused-retry')) || 300) * 1000;
  var POP = 'im-phone-call-view', MINI = '.im-phone-call-panel-mini', NUM = /\+?\d[\d\s().-]{5,}\d/;
  var ws, ready, refused, parked, bx, timer, done, tries = 0, popAt = 0;
  var cur, outbox = []; // the call on screen; 'ended' frames waiting for the socket
  var why; // the painted call's reason: {text, owner, entity}

  function log(a, b) { if (dbg) try { console.log('[callguard]', a, b === void 0 ? '' : b); } catch (e) {} }
  function safe(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) { log('error', e); } };
  }
  function emit(name, m) {
    try { w.dispatchEvent(new CustomEvent('callguard:' + name, {detail: m})); } catch (e) {}
  }
  function send(m) {
    if (ready) try { ws.send(JSON.stringify(m)); return true; } catch (e) { log(e); }
    return false;
  }
  function lang() {
    var l = '';
    try { l = w.BX && w.BX.message && w.BX.message('LANGUAGE_ID'); } catch (e) {}
    return String(l || d.documentElement.lang || '').slice(0, 2).toLowerCase();
  }
  function uid(p) { return p + Math.random().toString(36).slice(2); }
  function popup() { return d.getElementById(POP); }

  // A style rule survives the popup replacing its layout element.
  function paint(bg) {
    var s = d.getElementById('callguard-style'), c = '#' + POP + ' ', i = ' !important}';
    if (!bg) return s && s.parentNode.removeChild(s);
    if (!s) {
      s = d.createElement('style');
      s.id = 'callguard-style';
      (d.head || d.documentElement).appendChild(s);
    }
    s.textContent = c + '.callguard-reason{position:absolute;left:0;right:0;top:0;z-index:9;' +
      'padding:4px 8px;font:12px/1.4 sans-serif;color:#fff;background:#0008}' + c +
      '.callguard-reason a{color:#fff;text-decoration:underline}' +
      c + '.im-phone-call-wrapper,' + MINI + '{background:' + bg + i +
      c + '.im-phone-btn-arrow{background-color:' + bg + i + c +
      '.im-phone-call-buttons-container{background:linear-gradient(#0003,#0003) ' + bg + i;
  }

  // The reason line: the paint's text, its owner and company (or contact, lead) linked to their
  // portal pages. Built from text nodes only: CRM names never become HTML.
  var PAGES = {owner: '/company/personal/user/', company: '/crm/company/details/',
    contact: '/crm/contact/details/', lead: '/crm/lead/details/'};
  function reason() {
    var p = popup(), el = d.getElementById('callguard-reason'), mini = d.querySelector(MINI);
    if (mini) mini.title = why ? why.text : '';
    if (el && (!why || !p || !p.contains(el))) el.parentNode.removeChild(el);
    else if (el) return;
    if (!why || !p) return;
    el = d.createElement('div');
    el.id = 'callguard-reason';
    el.className = 'callguard-reason';
    var text = why.text, at = 0, marks = [], o = why.owner, e = why.entity;
    if (o) marks.push([o.name, PAGES.owner + o.id + '/']);
    if (e && PAGES[e.type]) marks.push([e.title, PAGES[e.type] + e.id + '/']);
    marks = marks.map(function (k) { return [text.indexOf(k[0]), k[0], k[1]]; })
      .filter(function (k) { return k[1] && k[0] >= 0; }).sort(function (a, b) { return a[0] - b[0]; });
    marks.forEach(function (k) {
      if (k[0] < at) return;
      el.appendChild(d.createTextNode(text.slice(at, k[0])));
      var a = el.appendChild(d.createElement('a'));
      a.textContent = k[1];
      a.href = k[2];
      a.target = '_blank';
      a.rel = 'noopener';
      at = k[0] + k[1].length;
    });
    el.appendChild(d.createTextNode(text.slice(at)));
    p.appendChild(el);
  }

  function digits(p) { return String(p).replace(/\D/g, '').slice(-10); }
  function callMsg() { return {type: 'call', call_id: cur.id, phone: cur.phone, direction: cur.dir}; }
  function start(id, phone, dir, dom) {
    id = String(id || ''); phone = String(phone || '');
    if (!id || !phone || (cur && cur.id === id)) return;
    var t0 = dom && popAt || performance.now(), keep = false;
    if (cur) {
      // A DOM-seen call gets its real id from the pull event: same number, same colour.
      keep = cur.dom && digits(cur.phone) === digits(phone);
      if (keep) t0 = cur.t0;
      end(cur.id, keep);
    }
    cur = {id: id, phone: phone, dir: dir, t0: t0, seq: -1, dom: dom, seen: !!popup()};
    log('call', cur);
    send(callMsg());
  }
  function end(id, keep, quiet) {
    if (!cur || cur.id !== id) return;
    cur = null;
    done = popup(); // a popup outliving its call is not a new call
    if (!keep) { paint(); why = null; reason(); }
    if (quiet) return;
    var m = {type: 'ended', call_id: id};
    if (!send(m)) outbox.push(m);
  }

  function onMessage(ev) {
    var m = JSON.parse(ev.data), t = m.type;
    log('got', t === 'token' ? t : m);
    if (t === 'hello') {
      tries = 0;
      ready = true;
      while (outbox.length) send(outbox.shift());
      if (cur) send(callMsg());
    } else if (t === 'paint') {
      if (!cur || cur.id !== m.call_id || m.seq < cur.seq) return;
      paint(m.colour !== 'none' && m.background);
      why = m.colour !== 'none' && m.text ? {text: String(m.text), owner: m.owner, entity: m.entity} : null;
      reason();
      if (m.seq > cur.seq) {
        cur.seq = m.seq;
        var ms = Math.round((performance.now() - cur.t0) * 10) / 10;
        send({type: 'applied', call_id: m.call_id, seq: m.seq, latency_ms: m.latency_ms = ms});
        log('applied, ms', ms);
      }
    } else if (t === 'clear') end(m.call_id, 0, 1);
    else if (t === 'token' && m.token) token = String(m.token); // the newest, for reconnects
    emit(t, m);
  }

  function connect() {
    timer = 0;
    var u = tag.getAttribute('data-url'), a = d.createElement('a'), p, i;
    if (!u) { // same origin as the script, /ws beside its /static/
      a.href = tag.src;
      p = a.pathname.replace(/^\/?/, '/');
      i = p.lastIndexOf('/static/');
      u = (a.protocol === 'https:' ? 'wss://' : 'ws://') + a.host + (i < 0 ? '' : p.slice(0, i)) + '/ws';
    }
    try {
      ws = new WebSocket(u + (/\?/.test(u) ? '&' : '?') + 'token=' + encodeURIComponent(token) +
        '&lang=' + encodeURIComponent(lang()));
    } catch (e) { log(e); return retry(); }
    ws.onmessage = safe(onMessage);
    ws.onclose = safe(function (e) {
      ready = false;
      if (e.code === 4401) { refused = true; log('token refused'); }
      // The user opened one tab more than the gateway allows and this was the oldest: coming
      // back at once would close the next oldest, and so on round all of them. A hidden tab
      // comes back when it is shown (retry: null in the close event).
      parked = e.code === 1008 && e.reason === 'too many tabs' && d.hidden;
      if (parked) log('too many tabs: reconnecting when shown');
      emit('close', {code: e.code, reason: e.reason,
        retry: parked ? null : retry(e.code === 1001 || e.code === 1012)});
    });
  }
  function shown() {
    if (parked && !d.hidden) { parked = false; retry(true); }
  }
  // A gateway going away (1001, shutdown; 1012, restart) is no failure: come back within a
  // second, to a sibling process, spread so that its tabs do not all arrive at once.
  function retry(soon) {
    if (timer) return;
    var ms = refused ? Math.max(100, REFUSED) : soon ? 100 + Math.random() * 700 :
      Math.max(500, Math.random() * Math.min(20000, 500 * Math.pow(2, tries++)));
    refused = false;
    log(soon ? 'going away: reconnect, ms' : 'reconnect, ms', ms);
    timer = setTimeout(safe(connect), ms);
    return Math.round(ms);
  }

  // The page's events (reference 7.3); BX may load after us.
  function hook(n) {
    var B = w.BX;
    if (!B || typeof B.addCustomEvent !== 'function') {
      if (n < 300) setTimeout(safe(function () { hook(n + 1); }), 200);
      return;
    }
    bx = true;
    B.addCustomEvent(w, 'onPullEvent-voximplant', safe(function (cmd, p) {
      if (cmd === 'invite') start(p.callId, p.callerId, 'in');
      else if (cmd === 'outgoing') start(p.callId, p.phoneNumber, 'out');
    }));
    B.addCustomEvent(w, 'CallCard::EntityChanged', safe(function (e) {
      var ph = e && e.PHONE_NUMBER;
      if (ph && !cur) start(uid('card-'), ph, 'in', true);
    }));
    B.addCustomEvent(w, 'CallCard::AfterClose', safe(function () { if (cur) end(cur.id); }));
  }

  // Where the token and URL come from: the <script> tag; or, where there is none (the browser
  // extension bundles this file), window.callguardConfig {token, url, debug}, set before it and
  // read through the same getAttribute('data-...') calls.
  function source() {
    var c = w.callguardConfig;
    if (!c) return d.currentScript || d.querySelector('script[src*="callguard.js"][data-token]');
    return {src: '', getAttribute: function (n) {
      var v = c[n.replace(/^data-/, '')];
      return v == null ? null : String(v);
    }};
  }

  // Fallback: the popup appearing starts a call (no BX events); it going away ends it.
  function fromDom() {
    var p = popup(), el, num;
    if (cur || !p || p === done) return;
    el = p.querySelector('.im-phone-calling-progress-phone');
    num = NUM.exec(el ? el.textContent : '') || NUM.exec(p.textContent);
    el = p.querySelector('.im-phone-calling-text,.im-phone-call-title-text');
    if (num) start(uid('dom-'), num[0], /сход|outgoing/i.test(el && el.textContent) ? 'out' : 'in', 1);
  }
  function observe() {
    var t = 0;
    new MutationObserver(safe(function () {
      var p = popup();
      popAt = p ? popAt || performance.now() : 0;
      if (why) reason(); // the popup re-rendered: put the line back
      if (cur) {
        if (p || d.querySelector(MINI)) cur.seen = true;
        else if (cur.seen) end(cur.id);
      } else if (p && !t) {
        // With BX, give the pull event (it has the call id) a moment first.
        t = setTimeout(safe(function () { t = 0; fromDom(); }), bx ? 400 : 0);
      }
    })).observe(d.documentElement, {childList: true, subtree: true, characterData: true});
  }

  safe(function () {
    hook(0);
    if (w.MutationObserver) observe();
    d.addEventListener('visibilitychange', safe(shown));
    connect();
  })();
})(window, document);
