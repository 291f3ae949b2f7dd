/* The demo portal page (see the comment in index.html).
 *
 * Three parts, as on a real portal page:
 *  - a tiny BX shim: addCustomEvent / onCustomEvent / message('USER_ID') (reference §7.3, §7.4);
 *  - the "phone controller": on the pull event `onPullEvent-voximplant` it opens the call popup with
 *    the DOM of reference §7.2, swaps the simple layout for the CRM layout with replaceChild (firing
 *    CallCard::EntityChanged), folds into `.im-phone-call-panel-mini`, and closes (firing
 *    CallCard::BeforeClose / CallCard::AfterClose);
 *  - the demo controls, which play the part of the telephony server and the manager;
 *  - the company status panel: the current manager changes a company's status as if in the
 *    portal (POST /demo/api/company-status) and the page says what the gateway's guard did.
 * The snippet itself is loaded from the gateway like on a portal; the page only listens to the
 * snippet's public window events ('callguard:hello|paint|clear|error|close') to show what happens.
 */
(function () {
  'use strict';

  var query = new URLSearchParams(location.search);
  var userId = query.get('user') || '';
  var PORTAL_LINE = '+7 (495) 000-00-00';
  // How long the `outgoing` pull event takes to follow a dial (?pull_ms=, default 200 ms).
  var PULL_MS = Math.max(0, parseInt(query.get('pull_ms') || '200', 10) || 0);

  function $(id) {
    return document.getElementById(id);
  }

  // Build an element: h('div', 'a b', [children or text], {attr: value}).
  function h(tag, cls, kids, attrs) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    Object.keys(attrs || {}).forEach(function (k) {
      el.setAttribute(k, attrs[k]);
    });
    [].concat(kids === undefined ? [] : kids).forEach(function (kid) {
      el.appendChild(typeof kid === 'string' ? document.createTextNode(kid) : kid);
    });
    return el;
  }

  function clock(seconds) {
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return (m < 10 ? '0' : '') + m + ':' + (s < 10 ? '0' : '') + s;
  }

  // ---- the event log shown on the page -------------------------------------------------------

  function log(kind, text) {
    var list = $('cg-log');
    var time = new Date().toTimeString().slice(0, 8);
    list.insertBefore(h('li', 'cg-log-' + kind, [h('time', '', time), ' ' + text]), list.firstChild);
    while (list.children.length > 40) list.removeChild(list.lastChild);
  }

  // ---- BX shim -------------------------------------------------------------------------------

  var handlers = {};
  var bxShim = {
    addCustomEvent: function (target, name, handler) {
      if (typeof target === 'string') {
        handler = name;
        name = target;
      }
      (handlers[name] = handlers[name] || []).push(handler);
    },
    removeCustomEvent: function (target, name, handler) {
      if (typeof target === 'string') {
        handler = name;
        name = target;
      }
      handlers[name] = (handlers[name] || []).filter(function (f) {
        return f !== handler;
      });
    },
    // Like BX: every handler is called with the arguments spread; one failing handler is
    // reported (as an uncaught page error) and does not stop the others.
    onCustomEvent: function (target, name, args) {
      (handlers[name] || []).slice().forEach(function (handler) {
        try {
          handler.apply(target, args || []);
        } catch (err) {
          setTimeout(function () {
            throw err;
          });
        }
      });
    },
    message: function (key) {
      return key === 'USER_ID' ? userId : '';
    },
  };
  // ?bx=0 imitates a page without BX: the controller still works, the snippet cannot hook it.
  if (query.get('bx') !== '0') window.BX = bxShim;

  function fire(name, args) {
    log('page', name + (args && args.length ? ' ' + JSON.stringify(args).slice(0, 120) : ''));
    bxShim.onCustomEvent(window, name, args || []);
  }

  // ---- the call popup (PhoneCallView imitation) ----------------------------------------------

  var view = null; // {callId, phone, direction, popup, overlay, mini, layout, crm, folded, ...}

  function button(cls, text, onClick) {
    var b = h('span', 'im-phone-call-btn ' + cls, text, {role: 'button', tabindex: '0'});
    b.addEventListener('click', onClick);
    return b;
  }

  function callButtons() {
    var kids = [];
    if (view.direction === 'in' && !view.answered) {
      kids.push(button('im-phone-call-btn-green', 'Ответить (Answer)', answer));
    }
    kids.push(button('im-phone-call-btn-red', 'Завершить (Hang up)', hangUp));
    return h('div', 'im-phone-call-buttons-container', kids);
  }

  function topButtons() {
    return h('div', 'im-phone-call-buttons-container-top', [
      button('im-phone-call-btn-gray im-phone-call-btn-fold', 'Свернуть (Fold)', fold),
    ]);
  }

  function title() {
    return view.direction === 'in' ? 'Входящий звонок (Incoming call)' : 'Исходящий звонок (Outgoing call)';
  }

  function status() {
    if (view.answered) return 'Разговор (talking)';
    return view.direction === 'in' ? 'Ожидание ответа… (ringing…)' : 'Соединение… (connecting…)';
  }

  // Simple layout, shown until the CRM card is loaded (550 x 492).
  function simpleLayout() {
    return h('div', 'im-phone-call-wrapper', [
      h('div', 'im-phone-call-container', [
        h('div', 'im-phone-calling-section', [h('div', 'im-phone-calling-text', title())]),
        h('div', 'im-phone-call-section im-phone-calling-progress-section', [
          h('div', 'im-phone-calling-progress-container', [
            h('div', 'im-phone-calling-progress-container-block-l', [h('div', 'cg-avatar', '☎')]),
            h('div', 'im-phone-calling-progress-container-block-c', [h('div', 'cg-dots', '• • •')]),
            h('div', 'im-phone-calling-progress-container-block-r', [h('div', 'cg-avatar', 'B24')]),
          ]),
          h('div', 'im-phone-calling-progress-phone', view.phone),
          h('div', 'im-phone-calling-progress-customer', view.customer || 'Клиент (customer)'),
        ]),
        h('div', 'im-phone-call-section', [h('div', 'im-phone-calling-process-status', status())]),
        callButtons(),
        topButtons(),
      ]),
    ]);
  }

  // CRM layout, which replaces the simple one when the CRM card is loaded (550 x 650).
  function crmLayout() {
    var closeBtn = h('div', 'im-phone-call-top-close-btn', '×', {title: 'Закрыть (close)'});
    closeBtn.addEventListener('click', hangUp);
    var card = (view.customer || '').split(' — ');
    return h('div', 'im-phone-call-top-level', [
      h('div', 'im-phone-call-top-level-buttons', [closeBtn]),
      h('div', 'im-phone-call-wrapper im-phone-call-wrapper-without-sidebar', [
        h('div', 'im-phone-call-container im-phone-call-container-without-sidebar', [
          h('div', 'im-phone-call-header-container', [
            h('div', 'im-phone-call-header', [
              h('div', 'im-phone-call-title-text', title() + ': ' + view.phone),
            ]),
          ]),
          h('div', 'im-phone-call-crm-card', [
            h('div', '', [
              h('div', 'cg-card-title', card[0] || 'Не найден в CRM (not in CRM)'),
              h('div', 'cg-card-detail', card.slice(1).join(' — ')),
              h('div', 'cg-card-phone', view.phone),
            ], {id: 'crm-card-detail-container'}),
          ]),
          h('div', 'im-phone-call-section', [
            h('div', 'im-phone-call-status-description', [
              h('div', 'im-phone-call-status-description-item', status()),
            ]),
          ]),
          h('div', 'im-phone-call-section', [
            h('div', 'im-phone-call-status-timer', [
              h('div', 'im-phone-call-status-timer-item', clock(view.seconds)),
            ]),
          ]),
          h('div', 'im-phone-call-section', [
            h('div', 'im-phone-call-comments', [
              h('textarea', 'im-phone-call-comments-textarea', [], {
                placeholder: 'Комментарий к звонку (call comment)',
                rows: '2',
              }),
            ]),
          ]),
          h('div', 'im-phone-call-section', [
            h('div', 'im-phone-call-crm-buttons', [
              h('span', 'cg-crm-btn', '+ Сделка (deal)'),
              h('span', 'cg-crm-btn', '+ Дело (task)'),
            ]),
          ]),
          callButtons(),
          topButtons(),
        ]),
      ]),
    ]);
  }

  function rerender() {
    var next = view.crm ? crmLayout() : simpleLayout();
    view.content.replaceChild(next, view.layout);
    view.layout = next;
  }

  function openView(direction, phone, callId) {
    if (view) close();
    view = {
      callId: callId || '',
      phone: phone,
      direction: direction,
      customer: labelOf(phone),
      seconds: 0,
      answered: direction === 'out',
      crm: false,
      folded: false,
    };
    view.overlay = h('div', 'popup-window-overlay', [], {id: 'popup-window-overlay-im-phone-call-view'});
    view.layout = simpleLayout();
    view.content = h('div', 'popup-window-content', [view.layout], {
      id: 'popup-window-content-im-phone-call-view',
    });
    view.popup = h('div', 'popup-window', [view.content], {id: 'im-phone-call-view'});
    document.body.appendChild(view.overlay);
    document.body.appendChild(view.popup);
    document.body.classList.add('im-phone-call-disable-scroll');
    view.ticker = setInterval(tick, 1000);
    log('page', 'popup opened: ' + title() + ' ' + phone);
  }

  function tick() {
    if (!view) return;
    view.seconds += 1;
    var text = clock(view.seconds);
    [].forEach.call(
      document.querySelectorAll('.im-phone-call-status-timer-item, .im-phone-call-panel-mini-time'),
      function (el) {
        el.textContent = text;
      }
    );
  }

  function answer() {
    if (!view) return;
    view.answered = true;
    rerender();
    fire('CallCard::CallStateChanged', ['connected', {}]);
  }

  // loadCrmCard: the simple layout element is replaced by a new CRM layout element.
  function loadCrmCard() {
    if (!view) return;
    view.crm = true;
    rerender();
    var kind = /company|contact|lead/.exec(view.customer || '');
    fire('CallCard::EntityChanged', [
      {CRM_ENTITY_TYPE: kind ? kind[0].toUpperCase() : '', CRM_ENTITY_ID: '', PHONE_NUMBER: view.phone},
    ]);
  }

  function fold() {
    if (!view) return;
    if (view.folded) return unfold();
    view.folded = true;
    view.popup.classList.add('im-phone-call-view-folding');
    view.overlay.classList.add('popup-window-overlay-im-phone-call-view-folding');
    view.popup.style.display = 'none';
    view.overlay.style.display = 'none';
    var expand = h('div', 'im-phone-call-panel-mini-expand', '⤢', {title: 'Развернуть (expand)'});
    expand.addEventListener('click', unfold);
    view.mini = h('div', 'im-phone-call-panel-mini', [
      h('div', 'im-phone-call-panel-mini-name', view.phone),
      h('div', 'im-phone-call-panel-mini-time', clock(view.seconds)),
      h('div', 'im-phone-call-panel-mini-buttons', [
        button('im-phone-call-btn-red', '✕', hangUp),
        expand,
      ]),
    ]);
    document.body.appendChild(view.mini);
    log('page', 'popup folded into the mini panel');
  }

  function unfold() {
    if (!view || !view.folded) return;
    view.folded = false;
    view.mini.parentNode.removeChild(view.mini);
    view.mini = null;
    view.popup.classList.remove('im-phone-call-view-folding');
    view.overlay.classList.remove('popup-window-overlay-im-phone-call-view-folding');
    view.popup.style.display = '';
    view.overlay.style.display = '';
    log('page', 'popup unfolded');
  }

  function close() {
    if (!view) return;
    fire('CallCard::BeforeClose', []);
    var closing = view;
    view = null;
    clearInterval(closing.ticker);
    clearTimeout(closing.pending);
    [closing.popup, closing.overlay, closing.mini].forEach(function (el) {
      if (el && el.parentNode) el.parentNode.removeChild(el);
    });
    document.body.classList.remove('im-phone-call-disable-scroll');
    fire('CallCard::AfterClose', []);
    showDecision(null);
  }

  function hangUp() {
    close();
  }

  // The controller listens to the pull events, as BX.Voximplant.PhoneCallsController does.
  bxShim.addCustomEvent(window, 'onPullEvent-voximplant', function (command, params) {
    if (command === 'invite') {
      openView('in', params.callerId, params.callId);
    } else if (command === 'outgoing') {
      if (view && view.direction === 'out' && !view.callId) view.callId = params.callId;
      else openView('out', params.phoneNumber, params.callId);
    }
  });

  // ---- the telephony server's part -----------------------------------------------------------

  function newCallId() {
    return 'externalCall.demo.' + Date.now().toString(36) + '.' + Math.random().toString(36).slice(2, 8);
  }

  function phone() {
    return $('cg-phone').value.trim();
  }

  function incoming() {
    var number = phone();
    if (!number) return;
    fire('onPullEvent-voximplant', [
      'invite',
      {
        callId: newCallId(),
        callerId: number,
        phoneNumber: PORTAL_LINE,
        lineNumber: 'reg1',
        isCallback: false,
        isTransfer: false,
        showCrmCard: true,
        CRM: {FOUND: 'N'},
        config: {},
      },
      {server_time: new Date().toISOString()},
    ]);
  }

  // Like BXIM.phoneTo: the popup opens at once; the server's `outgoing` pull event (with the call
  // id) follows a moment later, as on a portal.
  function outgoing() {
    var number = phone();
    if (!number) return;
    openView('out', number, '');
    var opened = view;
    opened.pending = setTimeout(function () {
      if (view !== opened) return;
      fire('onPullEvent-voximplant', [
        'outgoing',
        {callId: newCallId(), phoneNumber: number, callDevice: 'WEBRTC', showCrmCard: true, config: {}},
        {server_time: new Date().toISOString()},
      ]);
    }, PULL_MS);
  }

  // ---- what the snippet reports --------------------------------------------------------------

  function showDecision(paint) {
    var box = $('cg-decision');
    box.setAttribute('data-colour', paint ? paint.colour : '');
    $('cg-swatch').style.background = paint && paint.background ? paint.background : '';
    $('cg-rule').textContent = paint
      ? paint.rule || 'без цвета (no colour)'
      : 'Нет звонка (no call)';
    $('cg-reason').textContent = paint && paint.text ? paint.text : '';
    $('cg-latency').textContent =
      paint && paint.latency_ms !== undefined ? 'звонок → цвет (ring → colour): ' + paint.latency_ms + ' ms' : '';
  }

  function connState(state, text) {
    $('cg-conn').setAttribute('data-state', state);
    $('cg-conn-text').textContent = text;
  }

  window.addEventListener('callguard:hello', function (e) {
    connState('connected', 'подключено (connected), user ' + e.detail.user_id);
    log('server', 'hello ' + JSON.stringify(e.detail));
  });
  window.addEventListener('callguard:paint', function (e) {
    showDecision(e.detail);
    log('server', 'paint ' + e.detail.colour + ' ' + (e.detail.rule || '') + ' seq ' + e.detail.seq);
  });
  window.addEventListener('callguard:clear', function (e) {
    log('server', 'clear ' + e.detail.call_id);
  });
  window.addEventListener('callguard:token', function (e) {
    log('server', 'token renewed, expires ' + new Date(e.detail.expires_at * 1000).toISOString());
  });
  window.addEventListener('callguard:error', function (e) {
    log('server', 'error ' + e.detail.code + ': ' + e.detail.message);
  });
  window.addEventListener('callguard:close', function (e) {
    if (e.detail.code === 4401) connState('refused', 'токен отклонён (token refused)');
    else connState('connecting', 'переподключение… (reconnecting…)');
    log('server', 'socket closed, code ' + e.detail.code);
  });

  // ---- the company status panel --------------------------------------------------------------

  var companies = [];
  var statuses = [];
  var me = null; // the current manager, {id, name, departments}

  function statusName(code) {
    if (!code) return 'без статуса (no status)';
    var found = statuses.filter(function (s) {
      return s.code === code;
    })[0];
    if (!found) return code;
    return found.name + (found.name_en ? ' (' + found.name_en + ')' : '');
  }

  function companyById(id) {
    return companies.filter(function (c) {
      return String(c.id) === String(id);
    })[0];
  }

  function showCompany() {
    var c = companyById($('cg-company').value);
    $('cg-company-hint').textContent = c
      ? 'Сейчас (now): ' + statusName(c.status) + ' · ответственный (responsible): ' + c.assigned_name
      : '';
  }

  function fillStatuses(list) {
    statuses = list;
    var select = $('cg-status-code');
    select.textContent = '';
    list.forEach(function (s) {
      select.appendChild(h('option', '', statusName(s.code), {value: s.code}));
    });
    select.appendChild(h('option', '', statusName(null), {value: ''}));
  }

  // Refilled after every change; the chosen company stays chosen.
  function fillCompanies(list) {
    var select = $('cg-company');
    var chosen = select.value;
    companies = list;
    select.textContent = '';
    list.forEach(function (c) {
      select.appendChild(h('option', '', c.title + ' (#' + c.id + ')', {value: String(c.id)}));
    });
    if (chosen && companyById(chosen)) select.value = chosen;
    showCompany();
  }

  function changeAsText() {
    var who = me ? me.name + ' (#' + me.id + ')' : '#' + userId;
    $('cg-status-as').textContent = 'Изменить как ' + who;
    $('cg-status-as-en').textContent = 'Change as ' + who;
  }

  function showOutcome(action, verdict, why, note, ringable) {
    var box = $('cg-status-outcome');
    box.hidden = false;
    box.setAttribute('data-action', action);
    $('cg-status-verdict').textContent = verdict;
    $('cg-status-why').textContent = why;
    $('cg-status-note').textContent = note;
    $('cg-status-ring').hidden = !ringable;
  }

  function describe(outcome, company, wanted) {
    var title = company ? company.title : '#' + outcome.company_id;
    var ringable = !!(company && company.phones && company.phones.length);
    $('cg-status-ring-en').textContent = 'Ring the company again' + (ringable ? ': ' + company.phones[0] : '');
    if (outcome.action === 'approved') {
      showOutcome(
        'approved',
        'Одобрено (approved): «' + title + '» теперь ' + statusName(outcome.status) + '.',
        'Почему (why): ' + outcome.why + '. Шлюз заново решил цвет открытых звонков этой компании — ' +
          'позвоните снова (the gateway decided the colour of open calls again — ring again).',
        '',
        ringable
      );
    } else if (outcome.action === 'reverted') {
      showOutcome(
        'reverted',
        'Отменено (reverted): ' + statusName(wanted) + ' возвращён на ' + statusName(outcome.status) + '.',
        'Почему (why): ' + outcome.why + '. Уведомление, которое получит пользователь портала ' +
          '(the notification the portal user gets):',
        outcome.notification || '',
        ringable
      );
    } else if (outcome.action === 'unchanged') {
      showOutcome(
        'unchanged',
        'Без изменений (unchanged): у «' + title + '» уже ' + statusName(outcome.status) + '.',
        '',
        '',
        ringable
      );
    } else {
      showOutcome(
        outcome.action,
        outcome.action + ': «' + title + '» — ' + statusName(outcome.status) + '.',
        outcome.why || '',
        outcome.notification || '',
        ringable
      );
    }
  }

  function changeStatus() {
    var company = companyById($('cg-company').value);
    if (!company) return;
    var wanted = $('cg-status-code').value || null;
    var button = $('cg-status-change');
    button.disabled = true;
    $('cg-status-outcome').setAttribute('data-action', 'busy');
    log('page', 'company-status ' + company.id + ' → ' + wanted + ' as user ' + userId);
    fetch('/demo/api/company-status', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({company_id: company.id, status: wanted, as_user: userId}),
    })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.message || 'HTTP ' + r.status);
          return body;
        });
      })
      .then(function (outcome) {
        log('server', 'company-status ' + outcome.action + ' ' + outcome.status);
        company.status = outcome.status;
        showCompany();
        describe(outcome, company, wanted);
        return getJson('/demo/api/users').then(function (data) {
          fillCompanies(data.companies || []);
          fillNumbers(data.numbers || []);
        });
      })
      .catch(function (err) {
        showOutcome('error', 'Ошибка (error): ' + err.message, '', '', false);
        log('page', String(err));
      })
      .then(function () {
        // Counted once the panel shows everything, so a reader of data-done sees the end state.
        var box = $('cg-status-outcome');
        box.setAttribute('data-done', String(parseInt(box.getAttribute('data-done'), 10) + 1));
        button.disabled = false;
      });
  }

  function ringCompany() {
    var company = companyById($('cg-company').value);
    if (!company || !company.phones || !company.phones.length) return;
    $('cg-phone').value = company.phones[0];
    incoming();
  }

  // ---- start-up: users, numbers, token, snippet ----------------------------------------------

  var labels = {};

  function digits(number) {
    return String(number || '').replace(/\D/g, '').slice(-10);
  }

  function labelOf(number) {
    return labels[digits(number)] || '';
  }

  function getJson(url) {
    return fetch(url, {credentials: 'same-origin'}).then(function (r) {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }

  function fillUsers(users) {
    var select = $('cg-user');
    users.forEach(function (u) {
      select.appendChild(h('option', '', u.name + ' (#' + u.id + ')', {value: String(u.id)}));
    });
    if (!userId && users.length) {
      userId = String(users[0].id);
      query.set('user', userId);
      history.replaceState(null, '', '?' + query.toString());
    }
    select.value = userId;
    select.addEventListener('change', function () {
      query.set('user', select.value);
      query.delete('token');
      location.search = '?' + query.toString();
    });
    me = users.filter(function (u) {
      return String(u.id) === userId;
    })[0] || null;
    changeAsText();
    if (me && me.departments && me.departments.length) {
      $('cg-user-hint').textContent = 'Отдел (department): ' + [].concat(me.departments).join(', ');
    }
  }

  // Refilled after a status change: the labels carry the companies' statuses.
  function fillNumbers(numbers) {
    var list = $('cg-numbers');
    var options = $('cg-phones');
    labels = {};
    list.textContent = '';
    options.textContent = '';
    numbers.forEach(function (n) {
      if (!labels[digits(n.phone)]) labels[digits(n.phone)] = n.label;
      options.appendChild(h('option', '', [], {value: n.phone, label: n.label}));
      var item = h('li', '', [h('b', '', n.phone), h('span', '', n.label)], {tabindex: '0'});
      item.addEventListener('click', function () {
        $('cg-phone').value = n.phone;
      });
      list.appendChild(item);
    });
  }

  function loadSnippet(token) {
    var s = document.createElement('script');
    s.src = '/static/callguard.js';
    s.async = true;
    s.setAttribute('data-token', token);
    s.setAttribute('data-debug', '1');
    if (query.get('ws')) s.setAttribute('data-url', query.get('ws'));
    if (query.get('refused_retry')) s.setAttribute('data-refused-retry', query.get('refused_retry'));
    document.head.appendChild(s);
  }

  $('cg-incoming').addEventListener('click', incoming);
  $('cg-outgoing').addEventListener('click', outgoing);
  $('cg-crm').addEventListener('click', loadCrmCard);
  $('cg-fold').addEventListener('click', fold);
  $('cg-hangup').addEventListener('click', hangUp);
  $('cg-company').addEventListener('change', showCompany);
  $('cg-status-change').addEventListener('click', changeStatus);
  $('cg-status-ring').addEventListener('click', ringCompany);

  getJson('/demo/api/users')
    .then(function (data) {
      fillUsers(data.users || []);
      fillNumbers(data.numbers || []);
      fillStatuses(data.statuses || []);
      fillCompanies(data.companies || []);
      var token = query.get('token');
      if (token) return token;
      return getJson('/demo/api/token?user=' + encodeURIComponent(userId)).then(function (t) {
        return t.token;
      });
    })
    .then(loadSnippet)
    .catch(function (err) {
      connState('refused', 'ошибка (error): ' + err.message);
      log('page', String(err));
    });
})();
