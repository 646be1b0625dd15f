/*
 * ieum supervisor pages: conversation list with filters, replay (step or play at 1×/5×/20×),
 * export links (server-side redaction), the live board (GET /api/queue every 2 s) and the
 * audit log. Every transcript read is audited by the server before it is served.
 */
(function () {
  'use strict';
  var S = window.IeumStaff;
  var t = S.t;
  var el = S.el;

  S.addStrings({
    ko: {
      skip: '본문으로 건너뛰기', supTitle: '이음 관리자', navLabel: '관리 메뉴',
      navList: '대화 기록', navBoard: '실시간 현황', navAudit: '감사 기록',
      listTitle: '대화 기록', from: '시작일', to: '종료일', minLevel: '최소 위험도', state: '상태',
      counselor: '상담사', search: '검색', any: '전체',
      lvLow: '낮음 이상', lvMedium: '중간 이상', lvHigh: '높음 이상', lvImminent: '긴급',
      stBot: '챗봇', stScreening: '선별 질문', stQueued: '대기', stWith: '상담 중', stClosed: '종료',
      colCreated: '시작', colLevel: '위험도', colState: '상태', colCounselor: '상담사', colOutcome: '결과',
      colRating: '만족도', colEvents: '기록 수', colActions: '동작', listEmpty: '조건에 맞는 대화가 없어요.',
      replay: '다시 보기', replayLabel: function (id) { return '대화 ' + id + ' 다시 보기'; },
      replayTitle: '대화 다시 보기', back: '← 목록으로', export: '내보내기 (식별 번호 가림)',
      exportJson: 'JSON 내려받기', exportCsv: 'CSV 내려받기', player: '재생 도구',
      first: '« 처음', prev: '◀ 이전', play: '▶ 재생', pause: '■ 멈춤', next: '다음 ▶', last: '끝 »', speed: '재생 속도',
      pos: function (i, n) { return i + ' / ' + n + ' 단계'; },
      keysHint: '키보드: ← → 한 단계, 스페이스 재생/멈춤, Home/End 처음/끝', timeline: '대화 타임라인',
      mCreated: '시작', mState: '상태', mLevel: '위험도', mCounselors: '상담사', mOutcome: '결과', mRating: '만족도',
      mWait: '대기 시간', mLang: '언어',
      boardTitle: '실시간 현황', levelCaption: '위험도별 대기 (목표 대비)', entryCaption: '대기열 (순서대로)',
      colWaiting: '대기 중', colLongest: '가장 긴 대기', colTarget: '목표', colBreaches: '목표 초과 누적',
      colWaited: '기다린 시간', colRules: '규칙', colId: '대화',
      online: function (n) { return '접속한 상담사: ' + n + '명'; },
      updated: function (s) { return ' · ' + s + ' 갱신'; },
      auditTitle: '감사 기록', auditHint: '직원의 모든 열람과 로그인이 해시 사슬로 기록돼요. 이 화면을 연 것도 기록됩니다.',
      colAt: '시각', colActor: '직원', colRole: '역할', colAction: '동작', colRemote: '주소', colHash: '해시',
      loadFailed: '불러오지 못했어요.', none: '—',
      navStaff: '직원', staffTitle: '직원',
      staffHint: '서비스를 멈추지 않고 상담사를 추가하거나 사용 중지할 수 있어요. 사용 중지하면 바로 로그아웃되고 다시 로그인할 수 없어요.',
      sName: '아이디', sNewName: '새 직원 아이디', sRole: '역할', sPass: '처음 비밀번호 (10자 이상)', sAdd: '추가', sStatus: '상태',
      roleCounselor: '상담사', roleSupervisor: '관리자', active: '사용 중', disabled: '사용 중지됨',
      disable: '사용 중지', enable: '다시 사용', added: function (n) { return n + ' 계정을 추가했어요.'; },
      staffErrors: { exists: '이미 있는 아이디예요.', bad_request: '아이디는 2–32자 영문 소문자·숫자·.·_·-, 비밀번호는 10자 이상이어야 해요.', forbidden: '관리자만 할 수 있어요.' },
      watch: '실시간 보기', watchLabel: function (id) { return '실시간 보기: 대화 ' + id + ' (조용히)'; },
      liveTitle: '실시간 대화', liveBack: '← 목록으로 (보기 마침)', liveLog: '실시간 대화 기록',
      liveNote: '조용히 보는 중이에요. 상담받는 분에게는 알리지 않고, 담당 상담사에게는 관리자가 보고 있다고 알려요. 모든 동작은 감사 기록에 남아요.',
      whisperLabel: '상담사에게 귓속말 (상담받는 분에게는 보이지 않아요)', whisperSend: '귓속말 보내기',
      takeOver: '이 대화 이어받기', takeOverConfirm: '이 대화를 이어받을까요? 담당 상담사는 더 이상 보낼 수 없고, 상담받는 분에게는 다른 상담사가 이어간다고 알려요.',
      replyLabel: '상담받는 분에게 답장', replySend: '보내기', outcomeLabel: '종료 결과', closeConv: '대화 종료',
      liveWho: function (state, holder) { return '상태: ' + state + (holder ? ' · 담당: ' + holder : ' · 담당 없음'); },
      liveMine: '내가 이어받았어요. 답장하고 종료할 수 있어요.', liveReleased: '이 대화는 이제 내 담당이 아니에요.',
      liveDown: '연결이 끊겼어요. 목록에서 다시 열어 주세요.',
      whisperWho: function (n) { return '🔒 귓속말 (' + n + ')'; }, changedTo: function (a, b) { return a + ' → ' + b + ': 관리자가 이어받음'; },
      liveErrors: { not_held: '담당 상담사가 없어 귓속말을 보낼 수 없어요. 이어받아 직접 이야기하세요.', conversation_closed: '이미 끝난 대화예요.',
        not_waiting: '아직 챗봇과 이야기 중인 대화는 이어받을 수 없어요.', not_yours: '내 담당이 아니에요.', gone: '대화를 찾을 수 없어요.',
        forbidden: '관리자만 할 수 있어요.', not_saved: '기록(감사 기록 포함)을 저장하지 못해 아무것도 하지 않았어요.' }
    },
    en: {
      skip: 'Skip to content', supTitle: 'ieum supervisor', navLabel: 'Supervisor menu',
      navList: 'Conversations', navBoard: 'Live board', navAudit: 'Audit log',
      listTitle: 'Conversations', from: 'From', to: 'To', minLevel: 'Minimum level', state: 'State',
      counselor: 'Counselor', search: 'Search', any: 'Any',
      lvLow: 'low or above', lvMedium: 'medium or above', lvHigh: 'high or above', lvImminent: 'imminent',
      stBot: 'bot', stScreening: 'screening', stQueued: 'queued', stWith: 'with counselor', stClosed: 'closed',
      colCreated: 'Started', colLevel: 'Level', colState: 'State', colCounselor: 'Counselor', colOutcome: 'Outcome',
      colRating: 'Rating', colEvents: 'Events', colActions: 'Actions', listEmpty: 'No conversation matches.',
      replay: 'Replay', replayLabel: function (id) { return 'Replay conversation ' + id; },
      replayTitle: 'Replay', back: '← Back to the list', export: 'Export (identifying numbers redacted)',
      exportJson: 'Download JSON', exportCsv: 'Download CSV', player: 'Player',
      first: '« First', prev: '◀ Previous', play: '▶ Play', pause: '■ Pause', next: 'Next ▶', last: 'Last »', speed: 'Speed',
      pos: function (i, n) { return 'step ' + i + ' of ' + n; },
      keysHint: 'Keys: ← → one step, Space play/pause, Home/End first/last', timeline: 'Timeline',
      mCreated: 'Started', mState: 'State', mLevel: 'Level', mCounselors: 'Counselors', mOutcome: 'Outcome', mRating: 'Rating',
      mWait: 'Queue wait', mLang: 'Language',
      boardTitle: 'Live board', levelCaption: 'Waiting per level (against targets)', entryCaption: 'Queue (in order)',
      colWaiting: 'Waiting', colLongest: 'Longest wait', colTarget: 'Target', colBreaches: 'Breaches so far',
      colWaited: 'Waited', colRules: 'Rules', colId: 'Conversation',
      online: function (n) { return 'Counselors online: ' + n; },
      updated: function (s) { return ' · updated ' + s; },
      auditTitle: 'Audit log', auditHint: 'Every staff read and login is recorded in a hash chain, including opening this page.',
      colAt: 'Time', colActor: 'Staff', colRole: 'Role', colAction: 'Action', colRemote: 'Address', colHash: 'Hash',
      loadFailed: 'Could not load.', none: '—',
      navStaff: 'Staff', staffTitle: 'Staff',
      staffHint: 'Add or disable counselors without stopping the service. Disabling logs the person out at once and blocks new logins.',
      sName: 'Username', sNewName: 'New staff username', sRole: 'Role', sPass: 'First password (10+ characters)', sAdd: 'Add', sStatus: 'Status',
      roleCounselor: 'counselor', roleSupervisor: 'supervisor', active: 'active', disabled: 'disabled',
      disable: 'Disable', enable: 'Enable', added: function (n) { return 'Added ' + n + '.'; },
      staffErrors: { exists: 'That username exists already.', bad_request: 'Usernames are 2–32 of a-z, 0-9, . _ -; passwords need 10+ characters.', forbidden: 'Only supervisors can do this.' },
      watch: 'Watch live', watchLabel: function (id) { return 'Watch live: conversation ' + id + ' (silently)'; },
      liveTitle: 'Live conversation', liveBack: '← Back to the list (stop watching)', liveLog: 'Live transcript',
      liveNote: 'Watching silently. The person is not told; the counselor holding it is told a supervisor is watching. Everything here is in the audit log.',
      whisperLabel: 'Whisper to the counselor (the person never sees it)', whisperSend: 'Send whisper',
      takeOver: 'Take over this conversation', takeOverConfirm: 'Take over this conversation? The counselor can no longer write to it, and the person is told another counselor continues.',
      replyLabel: 'Reply to the person', replySend: 'Send', outcomeLabel: 'Outcome', closeConv: 'Close conversation',
      liveWho: function (state, holder) { return 'State: ' + state + (holder ? ' · held by ' + holder : ' · nobody holds it'); },
      liveMine: 'You took it over: reply and close here.', liveReleased: 'This conversation is no longer yours.',
      liveDown: 'Disconnected. Open it again from the list.',
      whisperWho: function (n) { return '🔒 Whisper (' + n + ')'; }, changedTo: function (a, b) { return a + ' → ' + b + ': a supervisor took over'; },
      liveErrors: { not_held: 'Nobody holds it, so there is no one to whisper to. Take it over to talk with the person.', conversation_closed: 'The conversation has ended.',
        not_waiting: 'A conversation still with the bot cannot be taken over.', not_yours: 'This conversation is not yours.', gone: 'The conversation cannot be found.',
        forbidden: 'Only supervisors can do this.', not_saved: 'Could not store the record (or the audit entry); nothing happened.' }
    }
  });

  var $ = function (id) { return document.getElementById(id); };
  var view = 'list';
  var boardTimer = null;
  var rows = [];
  var replay = { id: null, meta: null, events: [], index: 0, playing: false, speed: 1, timer: null };

  S.session('supervisor', function () {
    $('nav').hidden = false;
    show('list'); // loads the list (each list read is audited)
  });
  S.onLang(function () {
    renderList();
    if (replay.id) { renderMeta(); renderTimeline(); }
    if (view === 'board') loadBoard();
  });

  function status(text) { $('status').textContent = text || ''; }

  // ---- navigation ----
  Array.prototype.forEach.call(document.querySelectorAll('#nav button'), function (b) {
    b.addEventListener('click', function () { show(b.dataset.view); });
  });
  function show(v) {
    view = v;
    if (v !== 'live') stopWatching();
    ['list', 'replay', 'live', 'board', 'audit', 'staff'].forEach(function (x) { $('view-' + x).hidden = x !== v; });
    Array.prototype.forEach.call(document.querySelectorAll('#nav button'), function (b) {
      if (b.dataset.view === v || ((v === 'replay' || v === 'live') && b.dataset.view === 'list')) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    clearInterval(boardTimer);
    boardTimer = null;
    if (v !== 'replay') stop();
    if (v === 'board') { loadBoard(); boardTimer = setInterval(loadBoard, 2000); }
    if (v === 'audit') loadAudit();
    if (v === 'staff') loadStaff();
    if (v === 'list') loadList();
  }

  // ---- list ----
  $('filters').addEventListener('submit', function (e) { e.preventDefault(); loadList(); });

  function dayStart(value, plusDays) {
    if (!value) return null;
    var p = value.split('-').map(Number);
    return new Date(p[0], p[1] - 1, p[2] + (plusDays || 0)).getTime();
  }

  function loadList() {
    var q = [];
    var from = dayStart($('f-from').value);
    var to = dayStart($('f-to').value, 1); // the whole "to" day
    if (from != null) q.push('from=' + from);
    if (to != null) q.push('to=' + to);
    if ($('f-level').value) q.push('min_level=' + encodeURIComponent($('f-level').value));
    if ($('f-state').value) q.push('state=' + encodeURIComponent($('f-state').value));
    if ($('f-counselor').value.trim()) q.push('counselor=' + encodeURIComponent($('f-counselor').value.trim()));
    S.api('/api/conversations' + (q.length ? '?' + q.join('&') : '')).then(function (b) {
      rows = b.conversations || [];
      renderList();
      status('');
    }, function (e) { status(t('loadFailed') + ' (' + e.code + ')'); });
  }

  function renderList() {
    var tb = $('conv-table').querySelector('tbody');
    tb.textContent = '';
    $('list-empty').hidden = rows.length > 0;
    rows.forEach(function (r) {
      var tr = el('tr', 'level-row-' + r.level);
      tr.dataset.id = r.id;
      tr.appendChild(el('td', null, S.fmtTime(r.created_at)));
      var lv = el('td');
      lv.appendChild(S.badge(r.level));
      tr.appendChild(lv);
      tr.appendChild(el('td', null, S.stateName(r.state)));
      tr.appendChild(el('td', null, (r.counselors || []).join(', ') || t('none')));
      tr.appendChild(el('td', null, r.outcome ? S.outcomeName(r.outcome) : t('none')));
      tr.appendChild(el('td', null, r.rating != null ? r.rating + ' / 5' : t('none')));
      tr.appendChild(el('td', 'num', String(r.events)));
      var act = el('td');
      var b = el('button', 'replay-btn', t('replay'));
      b.type = 'button';
      b.setAttribute('aria-label', t('replayLabel')(r.id.slice(0, 8)));
      b.addEventListener('click', function () { openReplay(r.id); });
      act.appendChild(b);
      if (r.state !== 'closed') {
        // A live conversation: open it silently over the staff socket.
        var w = el('button', 'watch-btn', t('watch'));
        w.type = 'button';
        w.setAttribute('aria-label', t('watchLabel')(r.id.slice(0, 8)));
        w.addEventListener('click', function () { openLive(r.id); });
        act.appendChild(document.createTextNode(' '));
        act.appendChild(w);
      }
      tr.appendChild(act);
      tb.appendChild(tr);
    });
  }

  // ---- replay ----
  $('back').addEventListener('click', function () { show('list'); });

  function openReplay(id) {
    S.api('/api/conversations/' + encodeURIComponent(id)).then(function (b) {
      stop();
      replay.id = id;
      replay.meta = b.conversation;
      replay.events = b.events || [];
      replay.index = replay.events.length; // everything shown; step back or play from the start
      $('replay-id').textContent = id;
      $('export-json').href = '/api/conversations/' + encodeURIComponent(id) + '/export?format=json';
      $('export-csv').href = '/api/conversations/' + encodeURIComponent(id) + '/export?format=csv';
      show('replay');
      renderMeta();
      renderTimeline();
      $('timeline').focus();
    }, function (e) { status(t('loadFailed') + ' (' + e.code + ')'); });
  }

  function renderMeta() {
    var m = replay.meta;
    if (!m) return;
    var dl = $('replay-meta');
    dl.textContent = '';
    var waits = replay.events.filter(function (e) { return e.type === 'counselor_joined'; })
      .map(function (e) { return S.fmtDuration(e.waited_secs); });
    [['mCreated', S.fmtTime(m.created_at)], ['mState', S.stateName(m.state)], ['mLevel', S.levelName(m.level)],
      ['mCounselors', (m.counselors || []).join(', ') || t('none')], ['mWait', waits.join(', ') || t('none')],
      ['mOutcome', m.outcome ? S.outcomeName(m.outcome) : t('none')],
      ['mRating', m.rating != null ? m.rating + ' / 5' : t('none')], ['mLang', m.lang || t('none')]].forEach(function (p) {
      var d = el('div');
      d.appendChild(el('dt', null, t(p[0])));
      d.appendChild(el('dd', null, p[1]));
      dl.appendChild(d);
    });
  }

  /** A transcript event; a safety-plan item plainly (step, words, who wrote it). */
  function renderEvent(e) {
    if (e.type !== 'plan_item') return S.renderEvent(e);
    var li = el('li', 'ev ev-plan_item ev-status');
    li.dataset.seq = String(e.seq);
    var meta = el('div', 'ev-meta');
    meta.appendChild(el('span', 'ev-seq', '#' + e.seq));
    meta.appendChild(el('time', 'ev-at', S.fmtTime(e.at)));
    li.appendChild(meta);
    var who = e.by === 'citizen' ? (S.lang() === 'en' ? 'citizen' : '본인')
      : e.by === 'bot' ? (S.lang() === 'en' ? 'prefilled' : '자동') : e.by;
    li.appendChild(el('p', 'ev-text', (S.lang() === 'en' ? 'Safety plan, step ' : '안전계획 ') + e.step +
      (S.lang() === 'en' ? ': ' : '단계: ') + e.text + ' (' + who + ')'));
    return li;
  }

  function renderTimeline() {
    var ol = $('timeline');
    ol.textContent = '';
    replay.events.forEach(function (e, i) {
      var li = renderEvent(e);
      li.hidden = i >= replay.index;
      if (i === replay.index - 1) li.classList.add('current');
      ol.appendChild(li);
    });
    updatePos();
  }

  function setIndex(i) {
    replay.index = Math.max(0, Math.min(replay.events.length, i));
    var items = $('timeline').children;
    for (var k = 0; k < items.length; k++) {
      items[k].hidden = k >= replay.index;
      items[k].classList.toggle('current', k === replay.index - 1);
    }
    var cur = items[replay.index - 1];
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: 'nearest' });
    updatePos();
  }

  function updatePos() {
    $('pos').textContent = t('pos')(replay.index, replay.events.length);
    $('play').textContent = replay.playing ? t('pause') : t('play');
    $('play').setAttribute('aria-pressed', replay.playing ? 'true' : 'false');
  }

  function stop() {
    replay.playing = false;
    clearTimeout(replay.timer);
    replay.timer = null;
    if (replay.id) updatePos();
  }

  /** Waits the real gap between events divided by the speed, capped at 2 s. */
  function playStep() {
    if (!replay.playing) return;
    if (replay.index >= replay.events.length) { stop(); return; }
    setIndex(replay.index + 1);
    var cur = replay.events[replay.index - 1];
    var nxt = replay.events[replay.index];
    if (!nxt) { stop(); return; }
    var gap = Math.max(0, (nxt.at - cur.at) / replay.speed);
    replay.timer = setTimeout(playStep, Math.min(2000, Math.max(120, gap)));
  }

  function togglePlay() {
    if (replay.playing) { stop(); return; }
    if (replay.index >= replay.events.length) setIndex(0);
    replay.playing = true;
    updatePos();
    playStep();
  }

  $('first').addEventListener('click', function () { stop(); setIndex(0); });
  $('prev').addEventListener('click', function () { stop(); setIndex(replay.index - 1); });
  $('next').addEventListener('click', function () { stop(); setIndex(replay.index + 1); });
  $('last').addEventListener('click', function () { stop(); setIndex(replay.events.length); });
  $('play').addEventListener('click', togglePlay);
  Array.prototype.forEach.call(document.querySelectorAll('.sp'), function (b) {
    b.addEventListener('click', function () {
      replay.speed = Number(b.dataset.speed);
      Array.prototype.forEach.call(document.querySelectorAll('.sp'), function (x) {
        x.setAttribute('aria-checked', x === b ? 'true' : 'false');
      });
    });
  });
  $('view-replay').addEventListener('keydown', function (e) {
    var tag = (e.target.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'select' || tag === 'textarea') return;
    if (e.key === 'ArrowRight') { e.preventDefault(); stop(); setIndex(replay.index + 1); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); stop(); setIndex(replay.index - 1); }
    else if (e.key === 'Home') { e.preventDefault(); stop(); setIndex(0); }
    else if (e.key === 'End') { e.preventDefault(); stop(); setIndex(replay.events.length); }
    else if (e.key === ' ' && tag !== 'button' && tag !== 'a') { e.preventDefault(); togglePlay(); }
  });

  // ---- live conversation: watch, whisper, take over (over /ws/counselor) ----
  var live = { id: null, ws: null, me: null, events: {}, holder: null, state: null, mine: false, pending: [] };

  function liveSend(obj) {
    if (live.ws && live.ws.readyState === 1) { live.ws.send(JSON.stringify(obj)); return true; }
    live.pending.push(obj);
    if (!live.ws || live.ws.readyState > 1) liveConnect();
    return true;
  }

  function liveConnect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/counselor';
    var sock = new WebSocket(url);
    live.ws = sock;
    sock.onopen = function () {
      var p = live.pending;
      live.pending = [];
      p.forEach(function (o) { sock.send(JSON.stringify(o)); });
    };
    sock.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onLiveFrame(f);
    };
    sock.onclose = function () {
      if (live.ws !== sock) return;
      live.ws = null;
      if (live.id && view === 'live') status(t('liveDown'));
    };
  }

  function openLive(id) {
    stop();
    stopWatching();
    live.id = id;
    live.events = {};
    live.holder = null;
    live.state = null;
    live.mine = false;
    $('live-id').textContent = id;
    $('live-log').textContent = '';
    $('live-who').textContent = '';
    show('live');
    renderLiveControls();
    liveSend({ type: 'watch', conversation: id });
  }

  function stopWatching() {
    if (live.id && !live.mine) liveSend({ type: 'unwatch', conversation: live.id });
    live.id = null;
  }

  function onLiveFrame(f) {
    if (f.type === 'hello') { live.me = f.username; return; }
    if (f.type === 'error') {
      if (!f.conversation_id || f.conversation_id === live.id) {
        status((t('liveErrors') || {})[f.code] || f.message || t('loadFailed'));
      }
      return;
    }
    if (f.conversation_id !== live.id) return;
    switch (f.type) {
      case 'watching':
        live.holder = f.holder;
        live.state = f.state;
        // Taken over earlier (before a reload): still mine to write to and close.
        live.mine = !!f.holder && f.holder === live.me;
        (f.events || []).forEach(addLiveEvent);
        break;
      case 'claimed':
        live.mine = true;
        live.holder = live.me || live.holder;
        live.state = 'with_counselor';
        (f.events || []).forEach(addLiveEvent);
        status(t('liveMine'));
        break;
      case 'event':
        addLiveEvent(f.event);
        break;
      case 'released':
        live.mine = false;
        status(t('liveReleased'));
        break;
      default:
        break;
    }
    renderLiveControls();
  }

  function addLiveEvent(e) {
    if (live.events[e.seq]) return;
    live.events[e.seq] = e;
    // What the events say about the state and the holder.
    if (e.type === 'state') live.state = e.to;
    if (e.type === 'counselor_joined') live.holder = e.counselor;
    if (e.type === 'counselor_changed') live.holder = e.to;
    if (e.type === 'transferred' || e.type === 'closed') live.holder = null;
    var li;
    if (e.type === 'whisper') {
      li = el('li', 'ev ev-whisper');
      li.dataset.seq = String(e.seq);
      var meta = el('div', 'ev-meta');
      meta.appendChild(el('span', 'ev-seq', '#' + e.seq));
      meta.appendChild(el('time', 'ev-at', S.fmtTime(e.at)));
      meta.appendChild(el('strong', 'ev-who', t('whisperWho')(e.supervisor)));
      li.appendChild(meta);
      li.appendChild(el('p', 'ev-text', e.text));
    } else {
      li = S.renderEvent(e);
      if (e.type === 'counselor_changed') {
        var p = li.querySelector('.ev-text');
        if (p) p.textContent = t('changedTo')(e.from, e.to);
      }
    }
    var list = $('live-log');
    var after = null;
    Array.prototype.some.call(list.children, function (n) {
      if (Number(n.dataset.seq) > e.seq) { after = n; return true; }
      return false;
    });
    list.insertBefore(li, after);
    list.scrollTop = list.scrollHeight;
  }

  function renderLiveControls() {
    var closed = live.state === 'closed';
    $('live-who').textContent = live.state ? t('liveWho')(S.stateName(live.state), live.holder) : '';
    $('whisper-form').hidden = live.mine || closed;
    $('take-over').hidden = live.mine || closed;
    $('live-reply').hidden = !live.mine || closed;
    $('live-close').hidden = !live.mine || closed;
    Array.prototype.forEach.call($('live-outcome').options, function (o) { o.textContent = S.outcomeName(o.value); });
  }

  $('live-back').addEventListener('click', function () { show('list'); });
  $('whisper-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = $('whisper-text').value;
    if (!text.trim() || !live.id) return;
    if (liveSend({ type: 'whisper', conversation: live.id, text: text })) $('whisper-text').value = '';
  });
  $('take-over').addEventListener('click', function () {
    if (!live.id || !window.confirm(t('takeOverConfirm'))) return;
    liveSend({ type: 'take_over', conversation: live.id });
  });
  $('live-reply').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = $('live-reply-text').value;
    if (!text.trim() || !live.id) return;
    if (liveSend({ type: 'message', conversation_id: live.id, text: text })) $('live-reply-text').value = '';
  });
  $('live-close-btn').addEventListener('click', function () {
    if (live.id) liveSend({ type: 'close', conversation_id: live.id, outcome: $('live-outcome').value });
  });

  // ---- live board ----
  function loadBoard() {
    S.api('/api/queue').then(function (b) {
      $('board-online').textContent = t('online')(b.counselors_online) + t('updated')(S.fmtTime(Date.now()).slice(11));
      var tb = $('level-table').querySelector('tbody');
      tb.textContent = '';
      (b.levels || []).slice().reverse().forEach(function (l) {
        var over = l.wait_target_secs != null && l.longest_wait_secs > l.wait_target_secs;
        var tr = el('tr', over ? 'breached' : '');
        var lv = el('td');
        lv.appendChild(S.badge(l.level));
        tr.appendChild(lv);
        tr.appendChild(el('td', 'num', String(l.waiting)));
        tr.appendChild(el('td', 'num', l.waiting ? S.fmtDuration(l.longest_wait_secs) : t('none')));
        tr.appendChild(el('td', 'num', l.wait_target_secs != null ? S.fmtDuration(l.wait_target_secs) : t('none')));
        tr.appendChild(el('td', 'num', String(l.breaches)));
        tb.appendChild(tr);
      });
      var eb = $('entry-table').querySelector('tbody');
      eb.textContent = '';
      (b.entries || []).forEach(function (e, i) {
        var tr = el('tr', e.breached ? 'breached' : '');
        tr.appendChild(el('td', 'num', String(i + 1)));
        var lv = el('td');
        lv.appendChild(S.badge(e.level));
        tr.appendChild(lv);
        tr.appendChild(el('td', 'num', S.fmtDuration(e.waiting_secs)));
        tr.appendChild(el('td', 'num', e.wait_target_secs != null ? S.fmtDuration(e.wait_target_secs) : t('none')));
        tr.appendChild(el('td', null, (e.rules || []).join(', ')));
        tr.appendChild(el('td', null, e.conversation_id.slice(0, 8)));
        eb.appendChild(tr);
      });
    }, function (e) { status(t('loadFailed') + ' (' + e.code + ')'); });
  }

  // ---- audit ----
  // ---- staff ----
  $('staff-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var name = $('s-name').value.trim();
    $('staff-error').textContent = '';
    S.api('/api/staff', { method: 'POST', body: { username: name, role: $('s-role').value, password: $('s-pass').value } })
      .then(function () {
        $('s-name').value = '';
        $('s-pass').value = '';
        status(t('added')(name));
        loadStaff();
      }, function (err) {
        $('staff-error').textContent = (t('staffErrors') || {})[err.code] || err.message || t('loadFailed');
      });
  });

  function loadStaff() {
    S.api('/api/staff').then(function (b) {
      var tb = $('staff-table').querySelector('tbody');
      tb.textContent = '';
      (b.staff || []).forEach(function (a) {
        var tr = el('tr');
        tr.appendChild(el('td', null, a.username));
        tr.appendChild(el('td', null, a.role === 'supervisor' ? t('roleSupervisor') : t('roleCounselor')));
        tr.appendChild(el('td', null, S.fmtTime(a.created_at)));
        tr.appendChild(el('td', null, a.disabled ? t('disabled') : t('active')));
        var td = el('td');
        var b2 = el('button', null, a.disabled ? t('enable') : t('disable'));
        b2.type = 'button';
        b2.setAttribute('aria-label', (a.disabled ? t('enable') : t('disable')) + ': ' + a.username);
        b2.addEventListener('click', function () {
          S.api('/api/staff/' + encodeURIComponent(a.username) + (a.disabled ? '/enable' : '/disable'), { method: 'POST', body: {} })
            .then(loadStaff, function (err) { $('staff-error').textContent = err.message || t('loadFailed'); });
        });
        td.appendChild(b2);
        tr.appendChild(td);
        tb.appendChild(tr);
      });
    }, function (e) { status(t('loadFailed') + ' (' + e.code + ')'); });
  }

  function loadAudit() {
    S.api('/api/audit').then(function (b) {
      var tb = $('audit-table').querySelector('tbody');
      tb.textContent = '';
      (b.records || []).slice().reverse().forEach(function (r) {
        var tr = el('tr');
        tr.appendChild(el('td', 'num', String(r.seq)));
        tr.appendChild(el('td', null, S.fmtTime(r.at)));
        tr.appendChild(el('td', null, r.actor));
        tr.appendChild(el('td', null, r.role));
        tr.appendChild(el('td', null, r.action));
        tr.appendChild(el('td', null, r.conversation_id ? String(r.conversation_id).slice(0, 8) : t('none')));
        tr.appendChild(el('td', null, r.remote || t('none')));
        var h = el('td', 'hash');
        h.appendChild(el('code', null, String(r.hash || '').slice(0, 12)));
        h.title = r.hash || '';
        tr.appendChild(h);
        tb.appendChild(tr);
      });
    }, function (e) { status(t('loadFailed') + ' (' + e.code + ')'); });
  }
})();
