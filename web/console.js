/*
 * ieum counselor console: the live queue from /ws/counselor (hello, queue, alert), one tab
 * per claimed conversation, canned snippets and resources, transfer and close.
 */
(function () {
  'use strict';
  var S = window.IeumStaff;
  var t = S.t;
  var el = S.el;

  S.addStrings({
    ko: {
      skip: '본문으로 건너뛰기', consoleTitle: '이음 상담사 콘솔', queueTitle: '대기열',
      queueEmpty: '기다리는 대화가 없어요.', workTitle: '내 대화',
      noTabs: '대기열에서 대화를 맡으면 여기에 열려요. 최대 3개까지 동시에 맡을 수 있어요.',
      connected: '● 연결됨', disconnected: '○ 연결 끊김 · 다시 연결 중',
      claim: '맡기', claimLabel: function (lvl, w) { return '이 대화 맡기: 위험도 ' + lvl + ', ' + w + ' 기다림'; },
      waiting: '기다린 시간', target: function (s) { return '목표 ' + s; }, breached: '목표 초과',
      urgent: '긴급', count: function (n) { return '(' + n + ')'; },
      alert: function (lvl) { return '⚠ 긴급 대화가 들어왔어요 (' + lvl + '). 대기열 맨 위를 확인하세요.'; },
      dismiss: '알림 닫기',
      reply: '답장', send: '보내기', transcript: '대화 기록 (화살표 키로 스크롤)', replyPh: '답장을 적으세요 (Enter: 보내기, Shift+Enter: 줄바꿈)',
      canned: '상용 문구', insert: '넣기', resources: '기관 안내',
      transferTo: '넘길 상담사', transfer: '넘기기', requeue: '대기열로 돌려보내기',
      noColleague: '지금 넘길 수 있는 동료 상담사가 없어요.',
      colleague: function (c) { return c.username + ' (' + c.held + '/' + c.capacity + (c.held >= c.capacity ? ', 가득 참' : '') + ')'; },
      raised: '위험도를 올린 말', firstLines: '처음 한 말',
      offer: function (lvl) { return '동료가 대화를 넘겼어요 (' + lvl + '). 대기열에서 "맡기"를 눌러 이어 주세요.'; },
      reservedFor: function (n) { return n + ' 상담사에게 넘겨지는 중'; },
      outcome: '종료 결과', closeConv: '대화 종료',
      ended: '이 대화는 더 이상 내 담당이 아니에요 (종료 또는 넘김).', closeTab: '탭 닫기', caseLink: '사례 기록·후속 조치',
      errors: {
        not_yours: '내가 맡은 대화가 아니에요.', not_waiting: '이미 다른 상담사가 맡았거나 대기 중이 아니에요.',
        at_capacity: '동시에 3개까지만 맡을 수 있어요.', conversation_closed: '이미 끝난 대화예요.',
        gone: '대화를 찾을 수 없어요.',
        transfer_refused: '넘길 수 없어요: 그 상담사가 접속해 있지 않거나 이미 가득 찼어요. 목록에서 골라 주세요. 대화는 그대로 내 담당이에요.',
        reserved: '동료에게 넘겨지는 중인 대화예요.'
      },
      whisperWho: function (n) { return '관리자 ' + n + '의 귓속말'; },
      whisperOnly: '나만 볼 수 있어요 · 상담받는 분에게는 보이지 않아요',
      watching: function (n) { return '👁 관리자 ' + n + '님이 이 대화를 보고 있어요 (상담받는 분은 모름).'; },
      watchLeft: function (n) { return '관리자 ' + n + '님이 보기를 마쳤어요.'; },
      takenOver: function (n) { return '관리자 ' + n + '님이 이 대화를 이어받았어요. 이제 내 담당이 아니고, 더 보낼 수 없어요.'; },
      changedTo: function (a, b) { return a + ' → ' + b + ': 관리자가 대화를 이어받음'; }
    },
    en: {
      skip: 'Skip to content', consoleTitle: 'ieum counselor console', queueTitle: 'Queue',
      queueEmpty: 'Nobody is waiting.', workTitle: 'My conversations',
      noTabs: 'Claim a conversation from the queue to open it here. You can hold up to 3 at once.',
      connected: '● connected', disconnected: '○ disconnected · reconnecting',
      claim: 'Claim', claimLabel: function (lvl, w) { return 'Claim this conversation: level ' + lvl + ', waiting ' + w; },
      waiting: 'Waiting', target: function (s) { return 'target ' + s; }, breached: 'past target',
      urgent: 'urgent', count: function (n) { return '(' + n + ')'; },
      alert: function (lvl) { return '⚠ An urgent conversation arrived (' + lvl + '). Check the top of the queue.'; },
      dismiss: 'Dismiss',
      reply: 'Reply', send: 'Send', transcript: 'Transcript (scroll with the arrow keys)', replyPh: 'Write a reply (Enter: send, Shift+Enter: new line)',
      canned: 'Canned response', insert: 'Insert', resources: 'Resource',
      transferTo: 'Pass to colleague', transfer: 'Transfer', requeue: 'Back to the queue',
      noColleague: 'No colleague is online to take it right now.',
      colleague: function (c) { return c.username + ' (' + c.held + '/' + c.capacity + (c.held >= c.capacity ? ', full' : '') + ')'; },
      raised: 'What raised the level', firstLines: 'First lines',
      offer: function (lvl) { return 'A colleague passed you a conversation (' + lvl + '). Claim it from the queue.'; },
      reservedFor: function (n) { return 'being passed to ' + n; },
      outcome: 'Outcome', closeConv: 'Close conversation',
      ended: 'This conversation is no longer yours (closed or transferred).', closeTab: 'Close tab', caseLink: 'Case notes and follow-up',
      errors: {
        not_yours: 'This conversation is not yours.', not_waiting: 'Someone else took it, or it is not waiting.',
        at_capacity: 'You can hold at most 3 conversations.', conversation_closed: 'The conversation has ended.',
        gone: 'The conversation cannot be found.',
        transfer_refused: 'Cannot pass it on: that colleague is not online or is full. Choose one from the list. The conversation stays with you.',
        reserved: 'This conversation is being passed to a colleague.'
      },
      whisperWho: function (n) { return 'Whisper from supervisor ' + n; },
      whisperOnly: 'Only you can see this · the person does not',
      watching: function (n) { return '👁 Supervisor ' + n + ' is watching this conversation (the person is not told).'; },
      watchLeft: function (n) { return 'Supervisor ' + n + ' stopped watching.'; },
      takenOver: function (n) { return 'Supervisor ' + n + ' took over this conversation. It is no longer yours; you cannot write to it.'; },
      changedTo: function (a, b) { return a + ' → ' + b + ': a supervisor took over'; }
    }
  });

  // The safety plan panel (Stanley–Brown, six steps).
  S.addStrings({
    ko: {
      planTitle: '안전계획 (함께 쓰기)', planAdd: '추가', planAddLabel: function (title) { return title + '에 항목 추가'; },
      planNone: '아직 없음', planBy: { citizen: '본인', bot: '자동' },
      planSteps: ['1. 나의 위험 신호', '2. 혼자서 할 수 있는 일', '3. 기분을 돌려 주는 사람과 장소',
        '4. 도움을 청할 수 있는 사람', '5. 전문가와 기관', '6. 주변을 더 안전하게'],
      planEvent: function (e) { return '안전계획 ' + e.step + '단계 · ' + e.text + ' (' + e.by + ')'; }
    },
    en: {
      planTitle: 'Safety plan (written together)', planAdd: 'Add', planAddLabel: function (title) { return 'Add an item to ' + title; },
      planNone: 'nothing yet', planBy: { citizen: 'citizen', bot: 'prefilled' },
      planSteps: ['1. My warning signs', '2. Things I can do on my own to cope', '3. People and places that take my mind off things',
        '4. People I can ask for help', '5. Professionals and services', '6. Making my surroundings safer'],
      planEvent: function (e) { return 'Safety plan step ' + e.step + ' · ' + e.text + ' (' + e.by + ')'; }
    }
  });

  /** A transcript event; plan items plainly (staff.js renders the other types). */
  function renderEvent(e) {
    if (e.type !== 'plan_item') return S.renderEvent(e);
    var li = el('li', 'ev ev-plan_item ev-status');
    li.dataset.seq = String(e.seq);
    var meta = el('div', 'ev-meta');
    meta.appendChild(el('span', 'ev-seq', '#' + e.seq));
    meta.appendChild(el('time', 'ev-at', S.fmtTime(e.at)));
    li.appendChild(meta);
    li.appendChild(el('p', 'ev-text', t('planEvent')(e)));
    return li;
  }

  var ws = null;
  var attempt = 0;
  var queue = [];
  var queueAt = Date.now();
  var convs = {};      // id -> {id, level, events:{seq:ev}, tab, panel, ended}
  var order = [];      // tab order
  var active = null;
  var canned = [];
  var resources = [];
  var colleagues = [];
  var me = null;
  var claiming = null; // the conversation this counselor just asked to claim (focus goes there)

  var $ = function (id) { return document.getElementById(id); };

  S.session('counselor', function () {
    loadTools();
    connect();
    setInterval(tick, 1000);
  });
  S.onLang(function () {
    renderQueue();
    order.forEach(function (id) { labelPanel(convs[id]); relabelTab(convs[id]); rerender(convs[id]); renderPlan(convs[id]); });
    setConn(ws && ws.readyState === 1);
  });

  function loadTools() {
    S.api('/api/content/canned').then(function (b) { canned = b.canned || []; fillTools(); }, function () { /* tools optional */ });
    S.api('/api/content/resources').then(function (b) { resources = b.resources || []; fillTools(); }, function () { /* optional */ });
  }

  function setConn(ok) {
    var c = $('conn');
    c.textContent = ok ? t('connected') : t('disconnected');
    c.className = 'conn ' + (ok ? 'ok' : 'down');
  }

  function connect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/counselor';
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () { attempt = 0; setConn(true); };
    sock.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      setConn(false);
      var delay = Math.min(10000, 500 * Math.pow(2, attempt++));
      setTimeout(function () {
        // A logged-out or expired session cannot reconnect: back to the login form.
        S.api('/api/me').then(connect, function (e) { if (e.status === 401) location.reload(); else connect(); });
      }, delay);
    };
  }

  function send(obj) {
    if (!ws || ws.readyState !== 1) { toast(t('disconnected')); return false; }
    ws.send(JSON.stringify(obj));
    return true;
  }

  function onFrame(f) {
    switch (f.type) {
      case 'hello':
        me = f.username;
        // Reopen the tabs of conversations we still hold.
        (f.held || []).forEach(function (id) { send({ type: 'claim', conversation_id: id }); });
        break;
      case 'queue':
        queue = f.entries || [];
        queueAt = Date.now();
        renderQueue();
        break;
      case 'alert':
        showAlert(f.entry);
        break;
      case 'offer':
        showAlert(f.entry, t('offer')(S.levelName(f.entry.level)));
        break;
      case 'colleagues':
        colleagues = f.colleagues || [];
        order.forEach(function (id) { fillColleagues(convs[id]); });
        break;
      case 'claimed':
        openConv(f.conversation_id, f.level, f.events || []);
        break;
      case 'event':
        addEvent(f.conversation_id, f.event);
        break;
      case 'safety_plan':
        if (convs[f.conversation_id]) { convs[f.conversation_id].plan = f.steps || []; renderPlan(convs[f.conversation_id]); }
        break;
      case 'released':
        markEnded(f.conversation_id);
        break;
      case 'supervisor_watching':
        watchNotice(f.conversation_id, f.supervisor, true);
        break;
      case 'supervisor_left':
        watchNotice(f.conversation_id, f.supervisor, false);
        break;
      case 'taken_over':
        if (convs[f.conversation_id]) {
          setNotice(convs[f.conversation_id], t('takenOver')(f.by), true);
          markEnded(f.conversation_id);
        }
        toast(t('takenOver')(f.by), true);
        break;
      case 'error':
        toast((t('errors') || {})[f.code] || f.message || t('error'), true);
        if (claiming && f.conversation_id === claiming) {
          // The claim failed and its card may be gone: keep the focus on the queue.
          claiming = null;
          if (focusLost()) focusQueue();
        }
        break;
      default:
        break;
    }
  }

  // ---- queue ----
  function waited(entry) { return entry.waiting_secs + Math.floor((Date.now() - queueAt) / 1000); }
  function isBreached(entry) {
    return entry.breached || (entry.wait_target_secs != null && waited(entry) > entry.wait_target_secs);
  }

  function focusLost() { return !document.activeElement || document.activeElement === document.body; }
  function focusQueue() {
    var first = $('queue').querySelector('.claim');
    if (first) { first.focus(); return; }
    var h = $('queue-title');
    h.tabIndex = -1;
    h.focus();
  }

  function renderQueue() {
    var list = $('queue');
    // The list is drawn afresh: a focused claim button keeps its focus (same conversation).
    var had = document.activeElement;
    var focusId = had && had.classList && had.classList.contains('claim') && list.contains(had) ? had.closest('li').dataset.id : null;
    list.textContent = '';
    $('queue-count').textContent = t('count')(queue.length);
    $('queue-empty').hidden = queue.length > 0;
    queue.forEach(function (e) {
      var li = el('li', 'q-item level-' + e.level + (e.urgent ? ' urgent' : ''));
      li.dataset.id = e.conversation_id;
      var top = el('div', 'q-top');
      top.appendChild(S.badge(e.level));
      if (e.urgent && e.level !== 'imminent') top.appendChild(el('span', 'badge urgent-badge', t('urgent')));
      var w = el('span', 'q-wait');
      top.appendChild(w);
      if (e.wait_target_secs != null) top.appendChild(el('span', 'q-target', t('target')(S.fmtDuration(e.wait_target_secs))));
      var br = el('span', 'q-breach', t('breached'));
      top.appendChild(br);
      li.appendChild(top);
      if (e.reserved_for) li.appendChild(el('p', 'q-reserved', t('reservedFor')(e.reserved_for)));
      // First what made it urgent (the lines that raised the level, the words that fired
      // highlighted), then how it began.
      var raised = e.raised || [];
      if (raised.length) {
        var rl = el('ul', 'q-lines q-raised');
        rl.setAttribute('aria-label', t('raised'));
        raised.slice().reverse().forEach(function (r) {
          var l = el('li');
          l.appendChild(S.badge(r.level));
          l.appendChild(document.createTextNode(' '));
          l.appendChild(S.highlighted(r.text, r.spans || []));
          rl.appendChild(l);
        });
        li.appendChild(rl);
      }
      var seen = raised.map(function (r) { return r.text; });
      var lines = el('ul', 'q-lines');
      lines.setAttribute('aria-label', t('firstLines'));
      (e.first_lines || []).forEach(function (line, i) {
        if (seen.indexOf(line) >= 0) return;
        var l = el('li');
        l.appendChild(S.highlighted(line, (e.spans || [])[i] || []));
        lines.appendChild(l);
      });
      if (lines.children.length) li.appendChild(lines);
      if (e.rules && e.rules.length) {
        var rules = el('ul', 'rules');
        rules.setAttribute('aria-label', t('rules'));
        e.rules.forEach(function (r) { rules.appendChild(el('li', 'rule', r)); });
        li.appendChild(rules);
      }
      var claim = el('button', 'claim', t('claim'));
      claim.type = 'button';
      claim.addEventListener('click', function () {
        if (send({ type: 'claim', conversation_id: e.conversation_id })) claiming = e.conversation_id;
      });
      li.appendChild(claim);
      li._entry = e;
      li._wait = w;
      li._breach = br;
      li._claim = claim;
      list.appendChild(li);
      if (focusId === e.conversation_id) claim.focus();
    });
    // The focused card left the queue (claimed by me or someone else).
    if (focusId && focusLost() && claiming !== focusId) focusQueue();
    tick();
  }

  function tick() {
    Array.prototype.forEach.call($('queue').children, function (li) {
      var e = li._entry;
      if (!e) return;
      var secs = waited(e);
      li._wait.textContent = t('waiting') + ' ' + S.fmtDuration(secs);
      var b = isBreached(e);
      li.classList.toggle('breached', b);
      li._breach.hidden = !b;
      li._claim.setAttribute('aria-label', t('claimLabel')(S.levelName(e.level), S.fmtDuration(secs)));
    });
  }

  function showAlert(entry, text) {
    var a = $('alert');
    a.textContent = '';
    a.appendChild(el('span', null, text || t('alert')(S.levelName(entry.level))));
    var d = el('button', 'dismiss', t('dismiss'));
    d.type = 'button';
    d.addEventListener('click', function () { a.hidden = true; document.body.classList.remove('alerting'); });
    a.appendChild(d);
    a.hidden = false;
    document.body.classList.add('alerting');
    S.beep();
  }

  var toastTimer = null;
  function toast(text, bad) {
    var n = $('toast');
    n.textContent = text;
    n.className = 'toast' + (bad ? ' bad' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { n.textContent = ''; }, 8000);
  }

  // ---- conversations ----
  function openConv(id, level, events) {
    var c = convs[id];
    if (!c) {
      c = { id: id, level: level, events: {}, ended: false };
      convs[id] = c;
      order.push(id);
      c.tab = el('button', 'tab');
      c.tab.type = 'button';
      c.tab.id = 'tab-' + id;
      c.tab.setAttribute('role', 'tab');
      c.tab.setAttribute('aria-controls', 'panel-' + id);
      c.tab.addEventListener('click', function () { activate(id); });
      c.tab.addEventListener('keydown', tabKeys);
      $('tabs').appendChild(c.tab);
      c.panel = $('conv-template').content.firstElementChild.cloneNode(true);
      c.panel.id = 'panel-' + id;
      c.panel.setAttribute('aria-labelledby', 'tab-' + id);
      buildPlanPanel(c);
      $('panels').appendChild(c.panel);
      wirePanel(c);
      labelPanel(c);
      fillTools();
    }
    c.level = level;
    c.ended = false;
    events.forEach(function (e) { c.events[e.seq] = e; });
    c.plan = foldPlan(c);
    rerender(c);
    renderPlan(c);
    relabelTab(c);
    activate(id);
    $('no-tabs').hidden = true;
    if (claiming === id) {
      // Claimed by this counselor just now: straight to the reply box (the claim button
      // is gone with the queue card). Reopened tabs after a reconnect take no focus.
      claiming = null;
      c.panel.querySelector('.reply-text').focus();
    }
  }

  function relabelTab(c) {
    c.tab.textContent = '';
    c.tab.appendChild(S.badge(c.level));
    c.tab.appendChild(el('span', 'tab-id', ' ' + c.id.slice(0, 8)));
    if (c.unread) c.tab.appendChild(el('span', 'unread', ' ●'));
    if (c.ended) c.tab.classList.add('ended');
  }

  function labelPanel(c) {
    var p = c.panel;
    var q = function (s) { return p.querySelector(s); };
    var uid = c.id;
    [['.reply-text', '.reply-label', 'reply'], ['.canned', '.canned-label', 'canned'], ['.res', '.res-label', 'resources'],
      ['.transfer-to', '.transfer-label', 'transferTo'], ['.outcome', '.outcome-label', 'outcome']].forEach(function (x) {
      var input = q(x[0]);
      input.id = x[0].slice(1) + '-' + uid;
      q(x[1]).htmlFor = input.id;
      q(x[1]).textContent = t(x[2]);
    });
    q('.reply-text').placeholder = t('replyPh');
    q('.reply-send').textContent = t('send');
    q('.canned-insert').textContent = t('insert');
    q('.res-insert').textContent = t('insert');
    q('.transfer').textContent = t('transfer');
    q('.requeue').textContent = t('requeue');
    q('.close-conv').textContent = t('closeConv');
    Array.prototype.forEach.call(q('.outcome').options, function (o) { o.textContent = S.outcomeName(o.value); });
    q('.conv-id').textContent = c.id;
    q('.transcript-log').setAttribute('aria-label', S.levelName(c.level) + ' ' + c.id.slice(0, 8));
    q('.transcript').setAttribute('aria-label', t('transcript'));
    var ended = q('.conv-ended');
    ended.textContent = t('ended');
    fillTools();
  }

  function fillTools() {
    order.forEach(function (id) {
      var p = convs[id].panel;
      var cs = p.querySelector('.canned');
      var keep = cs.value;
      cs.textContent = '';
      canned.forEach(function (c) {
        var text = S.lang() === 'en' ? c.en : c.ko;
        var o = el('option', null, text.length > 60 ? text.slice(0, 58) + '…' : text);
        o.value = c.id;
        cs.appendChild(o);
      });
      if (keep) cs.value = keep;
      var rs = p.querySelector('.res');
      keep = rs.value;
      rs.textContent = '';
      resources.forEach(function (r) {
        var o = el('option', null, (S.lang() === 'en' ? r.name_en : r.name_ko) + (r.phone ? ' · ' + r.phone : ''));
        o.value = r.id;
        rs.appendChild(o);
      });
      if (keep) rs.value = keep;
      fillColleagues(convs[id]);
    });
  }

  // Only colleagues who are online, other than me; a full one is listed but cannot be
  // chosen (the server refuses anyway, and the conversation stays where it is).
  function fillColleagues(c) {
    var sel = c.panel.querySelector('.transfer-to');
    var keep = sel.value;
    sel.textContent = '';
    var others = colleagues.filter(function (x) { return x.username !== me; });
    others.forEach(function (x) {
      var o = el('option', null, t('colleague')(x));
      o.value = x.username;
      o.disabled = x.held >= x.capacity;
      sel.appendChild(o);
    });
    var any = others.some(function (x) { return x.held < x.capacity; });
    if (!others.length) {
      var none = el('option', null, t('noColleague'));
      none.value = '';
      sel.appendChild(none);
    }
    if (keep && others.some(function (x) { return x.username === keep; })) sel.value = keep;
    c.panel.querySelector('.transfer').disabled = !any || c.ended;
  }

  function insertText(c, text) {
    var ta = c.panel.querySelector('.reply-text');
    var s = ta.selectionStart != null ? ta.selectionStart : ta.value.length;
    var e = ta.selectionEnd != null ? ta.selectionEnd : ta.value.length;
    ta.value = ta.value.slice(0, s) + text + ta.value.slice(e);
    ta.focus();
    ta.selectionStart = ta.selectionEnd = s + text.length;
  }

  function wirePanel(c) {
    var p = c.panel;
    var q = function (s) { return p.querySelector(s); };
    var form = q('.reply');
    var ta = q('.reply-text');
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var text = ta.value;
      if (!text.trim() || c.ended) return;
      if (send({ type: 'message', conversation_id: c.id, text: text })) ta.value = '';
    });
    ta.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    q('.canned-insert').addEventListener('click', function () {
      var id = q('.canned').value;
      var item = canned.filter(function (x) { return x.id === id; })[0];
      if (item) insertText(c, S.lang() === 'en' ? item.en : item.ko);
    });
    q('.res-insert').addEventListener('click', function () {
      var id = q('.res').value;
      var r = resources.filter(function (x) { return x.id === id; })[0];
      if (!r) return;
      var en = S.lang() === 'en';
      // The hours in the language the counselor writes in (hours_ko in Korean).
      var hours = en ? (r.hours || r.hours_ko) : (r.hours_ko || r.hours);
      var text = (en ? r.name_en : r.name_ko) + (r.phone ? ' ☎ ' + r.phone : '') +
        (r.then_press ? (en ? ' (then press ' + r.then_press + ')' : ' (연결 후 ' + r.then_press + '번)') : '') +
        (hours ? ' · ' + hours : '') + (r.url ? ' · ' + r.url : '');
      insertText(c, text);
    });
    q('.transfer').addEventListener('click', function () {
      var to = q('.transfer-to').value;
      if (to) send({ type: 'transfer', conversation_id: c.id, to: to });
    });
    q('.requeue').addEventListener('click', function () { send({ type: 'transfer', conversation_id: c.id }); });
    q('.close-conv').addEventListener('click', function () {
      send({ type: 'close', conversation_id: c.id, outcome: q('.outcome').value });
    });
  }

  function rerender(c) {
    var list = c.panel.querySelector('.transcript');
    list.textContent = '';
    Object.keys(c.events).map(Number).sort(function (a, b) { return a - b; }).forEach(function (seq) {
      list.appendChild(renderEv(c.events[seq]));
    });
    list.scrollTop = list.scrollHeight;
    setEnded(c);
  }

  function addEvent(id, e) {
    var c = convs[id];
    if (!c || c.events[e.seq]) return;
    c.events[e.seq] = e;
    if (e.type === 'citizen' && e.triage && e.triage.conversation_level) c.level = e.triage.conversation_level;
    var list = c.panel.querySelector('.transcript');
    var li = renderEv(e);
    // Keep seq order even if events arrive out of order.
    var after = null;
    Array.prototype.some.call(list.children, function (n) {
      if (Number(n.dataset.seq) > e.seq) { after = n; return true; }
      return false;
    });
    list.insertBefore(li, after);
    list.scrollTop = list.scrollHeight;
    if (active !== id) c.unread = true;
    relabelTab(c);
  }

  // ---- the safety plan panel ----
  /** The plan from the transcript's plan_item events (until a safety_plan frame comes). */
  function foldPlan(c) {
    var steps = t('planSteps').map(function (title, i) { return { step: i + 1, title: title, items: [] }; });
    Object.keys(c.events).map(Number).sort(function (a, b) { return a - b; }).forEach(function (seq) {
      var e = c.events[seq];
      if (e.type === 'plan_item' && steps[e.step - 1]) steps[e.step - 1].items.push(e.text);
    });
    return steps;
  }

  function buildPlanPanel(c) {
    var box = el('section', 'plan');
    var h = el('h3', 'plan-title');
    h.id = 'plan-title-' + c.id;
    box.setAttribute('aria-labelledby', h.id);
    box.appendChild(h);
    var ol = el('ol', 'plan-steps');
    box.appendChild(ol);
    c.planBox = box;
    var tools = c.panel.querySelector('.tools');
    c.panel.insertBefore(box, tools);
  }

  function renderPlan(c) {
    if (!c.planBox) return;
    var steps = c.plan && c.plan.length ? c.plan : foldPlan(c);
    var titles = t('planSteps');
    c.planBox.querySelector('.plan-title').textContent = t('planTitle');
    var ol = c.planBox.querySelector('.plan-steps');
    // Keep what the counselor is typing across a re-render.
    var typed = {};
    Array.prototype.forEach.call(ol.querySelectorAll('input.plan-input'), function (i) { typed[i.dataset.step] = i.value; });
    var focused = document.activeElement && document.activeElement.classList.contains('plan-input') ? document.activeElement.dataset.step : null;
    ol.textContent = '';
    steps.forEach(function (s) {
      var li = el('li', 'plan-step');
      var title = s.title || titles[s.step - 1] || String(s.step);
      li.appendChild(el('h4', 'plan-step-title', title));
      var items = s.items || [];
      if (items.length) {
        var ul = el('ul', 'plan-items');
        items.forEach(function (x) { ul.appendChild(el('li', null, x)); });
        li.appendChild(ul);
      } else {
        li.appendChild(el('p', 'plan-none', t('planNone')));
      }
      var form = el('form', 'plan-add');
      var input = el('input', 'plan-input');
      input.type = 'text';
      input.maxLength = 500;
      input.dataset.step = String(s.step);
      input.id = 'plan-' + c.id + '-' + s.step;
      input.value = typed[s.step] || '';
      var label = el('label', 'sr-only', t('planAddLabel')(title));
      label.htmlFor = input.id;
      var btn = el('button', 'plan-add-btn', t('planAdd'));
      btn.type = 'submit';
      form.appendChild(label);
      form.appendChild(input);
      form.appendChild(btn);
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var text = input.value;
        if (!text.trim() || c.ended) return;
        if (send({ type: 'plan_item', conversation_id: c.id, step: s.step, text: text })) input.value = '';
      });
      input.disabled = btn.disabled = !!c.ended;
      li.appendChild(form);
      ol.appendChild(li);
      if (focused === String(s.step)) input.focus();
    });
  }

  function setEnded(c) {
    var p = c.panel;
    p.querySelector('.conv-ended').hidden = !c.ended;
    Array.prototype.forEach.call(p.querySelectorAll('.reply textarea, .reply button, .tools button, .tools select, .tools input'), function (n) {
      n.disabled = c.ended;
    });
    var head = p.querySelector('.conv-head');
    var x = head.querySelector('.close-tab');
    // After the chat: notes, a follow-up (with consent) and referrals on the casework page.
    if (c.ended && !head.querySelector('.case-link')) {
      var a = el('a', 'case-link', t('caseLink'));
      a.href = '/casework?conversation=' + c.id;
      head.appendChild(a);
    }
    if (c.ended && !x) {
      x = el('button', 'close-tab', t('closeTab'));
      x.type = 'button';
      x.addEventListener('click', function () { dropTab(c.id); });
      head.appendChild(x);
    }
  }

  function markEnded(id) {
    var c = convs[id];
    if (!c) return;
    c.ended = true;
    setEnded(c);
    renderPlan(c);
    relabelTab(c);
  }

  function dropTab(id) {
    var c = convs[id];
    if (!c) return;
    c.tab.remove();
    c.panel.remove();
    delete convs[id];
    order = order.filter(function (x) { return x !== id; });
    $('no-tabs').hidden = order.length > 0;
    if (active === id) { active = null; if (order.length) activate(order[order.length - 1]); }
  }

  function activate(id) {
    active = id;
    order.forEach(function (x) {
      var c = convs[x];
      var on = x === id;
      c.tab.setAttribute('aria-selected', on ? 'true' : 'false');
      c.tab.tabIndex = on ? 0 : -1;
      c.panel.hidden = !on;
      if (on) { c.unread = false; relabelTab(c); }
    });
  }

  function tabKeys(e) {
    var i = order.indexOf(active);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      var n = order[(i + (e.key === 'ArrowRight' ? 1 : order.length - 1)) % order.length];
      activate(n);
      convs[n].tab.focus();
    }
  }

  // ---- supervisors (issue 19): whispers, watching, take-over ----
  // A whisper is set apart and says plainly that only this counselor sees it.
  function renderEv(e) {
    if (e.type === 'whisper') {
      var li = el('li', 'ev ev-whisper');
      li.dataset.seq = String(e.seq);
      var meta = el('div', 'ev-meta');
      meta.appendChild(el('span', 'ev-seq', '#' + e.seq));
      meta.appendChild(el('time', 'ev-at', S.fmtTime(e.at)));
      meta.appendChild(el('strong', 'ev-who', '🔒 ' + t('whisperWho')(e.supervisor)));
      li.appendChild(meta);
      li.appendChild(el('p', 'ev-text', e.text));
      li.appendChild(el('p', 'whisper-only', t('whisperOnly')));
      return li;
    }
    if (e.type === 'counselor_changed') {
      var c = S.renderEvent(e);
      var p = c.querySelector('.ev-text');
      if (p) p.textContent = t('changedTo')(e.from, e.to);
      return c;
    }
    return S.renderEvent(e);
  }

  function setNotice(c, text, strong) {
    var head = c.panel.querySelector('.conv-head');
    var n = head.querySelector('.watch-notice');
    if (!n) {
      n = el('p', 'watch-notice');
      n.setAttribute('role', 'status');
      head.appendChild(n);
    }
    n.textContent = text;
    n.hidden = !text;
    n.classList.toggle('strong', !!strong);
  }

  function watchNotice(id, who, on) {
    var c = convs[id];
    if (!c) return;
    c.watchers = c.watchers || {};
    if (on) c.watchers[who] = true; else delete c.watchers[who];
    var names = Object.keys(c.watchers);
    setNotice(c, names.length ? t('watching')(names.join(', ')) : t('watchLeft')(who), false);
    if (on) toast(t('watching')(who));
  }

  // Test and debugging hook.
  window.IeumConsole = { convs: function () { return Object.keys(convs); } };
})();
