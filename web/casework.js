/*
 * ieum casework page (/casework), for counselors and supervisors: the follow-up list (due and
 * escalated first) with attempts, the referral list (check-due first) with status changes and
 * the printable form, a conversation's case (assessment summary, private notes, planning a
 * follow-up or a referral with the person's consent), and, for supervisors, the statistics
 * with a chart (uPlot, embedded) and CSV/JSON export. Every read is audited by the server.
 */
(function () {
  'use strict';
  var S = window.IeumStaff;
  var t = S.t;
  var el = S.el;

  S.addStrings({
    ko: {
      skip: '본문으로 건너뛰기', cwTitle: '이음 사례 관리', navLabel: '사례 관리 메뉴', backToConsole: '상담 화면',
      navFollowups: '후속 조치', navReferrals: '연계', navCase: '사례 기록', navStats: '통계',
      fuTitle: '후속 조치', fuHint: '기한이 지난 것과 관리자에게 넘어간 것이 먼저 나와요. 연락 결과를 남기면 끝난 후속 조치의 연락처는 바로 지워져요.',
      status: '상태', any: '전체', fOpen: '진행 중', fDue: '기한 도래', fEscalated: '관리자 확인', fMine: '나에게 배정된 것만', refresh: '새로 고침',
      colStatus: '상태', colDue: '기한', colKind: '종류', colLevel: '위험도', colAssigned: '담당', colContact: '연락처',
      colAttempts: '시도', colConv: '대화', colActions: '기록', colTo: '기관', colCheck: '확인일', colBy: '의뢰자',
      fuEmpty: '해당하는 후속 조치가 없어요.', rfTitle: '연계', rfHint: '확인일이 지난 연계가 먼저 나와요. 상태는 기관과 통화한 뒤 직원이 입력해요.',
      rfEmpty: '연계가 없어요.', caseTitle: '사례 기록', convId: '대화 번호', open: '열기', assessment: '평가 요약',
      notes: '상담 메모 (시민에게 보이지 않아요)', newNote: '새 메모', save: '저장', newFollowup: '후속 조치 계획',
      consent: '본인 동의', consentGiven: '본인이 다시 연락받는 데 동의했어요', consentWords: '동의한 말 (선택)',
      kindCall: '전화', kindCheckIn: '안부 확인', sessions: '매주 몇 회 (최대 8회)', assignTo: '담당 (비우면 팀)',
      phone: '전화번호', fuPhone: '전화번호 (전화일 때)', fuNote: '확인할 점 (선택)', plan: '계획 저장', newReferral: '기관 연계',
      rfConsentGiven: '본인이 연계와 아래 공유 내용에 동의했어요', rfName: '기관 이름', district: '거주 구 (공유 동의 시)',
      summary: '요약 (공유 동의 시)', refer: '연계 저장',
      kDistrict: '구 전담기구 (종합사회복지관)', kProgram: '서울연결처방 프로그램', kJob: '일자리 상담 (1350·고용24)',
      kMental: '정신건강 서비스', kLegal: '법률 구조 (132)', kWelfare: '복지 상담 (129·120)', kOther: '기타',
      stTitle: '통계', stHint: '대화 기록의 내용은 열지 않고 기록의 숫자만으로 계산해요. 1~4건은 "<5"로 보여요.',
      from: '시작일', to: '종료일 (포함)', period: '단위', pDay: '일', pWeek: '주', pMonth: '월', show: '보기',
      csv: 'CSV 내려받기', json: 'JSON 내려받기', chartConv: '기간별 대화 수와 상담 연결 (<5 는 그리지 않아요)',
      fuStatus: { scheduled: '예정', due: '기한 도래', escalated: '관리자 확인', done: '연락됨', declined: '거절', failed: '연락 실패', cancelled: '취소' },
      rfStatus: { sent: '의뢰함', accepted: '기관 수락', first_contact: '첫 연락', connected: '연결 유지', declined: '거절', lost: '끊김' },
      kinds: { call: '전화', check_in: '안부 확인', district_centre: '구 전담기구', program: '연결처방', job: '일자리', mental_health: '정신건강', legal: '법률', welfare: '복지', other: '기타' },
      outcomes: { reached: '연락됨', no_answer: '부재', declined: '거절', cancelled: '취소' },
      team: '팀', chatReturn: '채팅으로 돌아올 때', form: '의뢰서', change: '변경', checkDue: '확인일 지남',
      saved: '저장했어요.', needConsent: '본인 동의 없이는 저장하지 않아요. 먼저 물어봐 주세요.',
      aLevel: '위험도', aHandoff: '연결 시 위험도', aWhy: '위험 판단 근거', aScreener: '선별 질문', aPlan: '안전 계획', planStep: function (n) { return n + '단계'; }, aSelf: '외로움 자가진단',
      aOutcome: '결과', none: '—', loadFailed: '불러오지 못했어요.',
      tTotal: '합계', tConversations: '대화', tHandoffs: '상담 연결', tByLevel: '최고 위험도별', tByOutcome: '결과별',
      tByDistrict: '구별', tSelf: '외로움 자가진단 점수', tWait: '상담사 연결까지 (위험도별)', tFollowups: '후속 조치', tReferrals: '연계',
      band: '점수 구간', count: '건수', wReached: '연결', wWithin: '목표 안', wMedian: '중앙값(초)', wTarget: '목표(초)'
    },
    en: {
      skip: 'Skip to content', cwTitle: 'ieum casework', navLabel: 'Casework menu', backToConsole: 'Console',
      navFollowups: 'Follow-ups', navReferrals: 'Referrals', navCase: 'Case', navStats: 'Statistics',
      fuTitle: 'Follow-ups', fuHint: 'Overdue and escalated first. Recording the outcome that ends a follow-up deletes its contact at once.',
      status: 'Status', any: 'All', fOpen: 'Open', fDue: 'Due', fEscalated: 'Escalated', fMine: 'Only mine', refresh: 'Refresh',
      colStatus: 'Status', colDue: 'Due', colKind: 'Kind', colLevel: 'Level', colAssigned: 'Assigned', colContact: 'Contact',
      colAttempts: 'Attempts', colConv: 'Conversation', colActions: 'Record', colTo: 'Service', colCheck: 'Check date', colBy: 'By',
      fuEmpty: 'No follow-ups here.', rfTitle: 'Referrals', rfHint: 'Past their check date first. Staff enter the status after speaking with the service.',
      rfEmpty: 'No referrals.', caseTitle: 'Case', convId: 'Conversation id', open: 'Open', assessment: 'Assessment summary',
      notes: 'Case notes (never shown to the citizen)', newNote: 'New note', save: 'Save', newFollowup: 'Plan a follow-up',
      consent: "The person's consent", consentGiven: 'The person agreed to be contacted again', consentWords: 'Their words (optional)',
      kindCall: 'Call back', kindCheckIn: 'Check-in', sessions: 'Weekly sessions (up to 8)', assignTo: 'Assign to (empty: team)',
      phone: 'Phone number', fuPhone: 'Phone number (for a call)', fuNote: 'What to follow up (optional)', plan: 'Save plan', newReferral: 'Refer',
      rfConsentGiven: 'The person agreed to the referral and to what is shared below', rfName: 'Service name', district: 'District (if agreed)',
      summary: 'Summary (if agreed)', refer: 'Save referral',
      kDistrict: 'District centre (전담기구)', kProgram: '서울연결처방 program', kJob: 'Job counselling (1350, 고용24)',
      kMental: 'Mental-health services', kLegal: 'Legal aid (132)', kWelfare: 'Welfare counselling (129, 120)', kOther: 'Other',
      stTitle: 'Statistics', stHint: 'Computed from the records only; no transcript is opened. Counts of 1 to 4 show as "<5".',
      from: 'From', to: 'To (inclusive)', period: 'Per', pDay: 'day', pWeek: 'week', pMonth: 'month', show: 'Show',
      csv: 'Download CSV', json: 'Download JSON', chartConv: 'Conversations and handoffs per period (<5 not drawn)',
      fuStatus: { scheduled: 'scheduled', due: 'due', escalated: 'escalated', done: 'reached', declined: 'declined', failed: 'failed', cancelled: 'cancelled' },
      rfStatus: { sent: 'sent', accepted: 'accepted', first_contact: 'first contact', connected: 'connected', declined: 'declined', lost: 'lost' },
      kinds: { call: 'call', check_in: 'check-in', district_centre: 'district centre', program: 'program', job: 'job', mental_health: 'mental health', legal: 'legal', welfare: 'welfare', other: 'other' },
      outcomes: { reached: 'Reached', no_answer: 'No answer', declined: 'Declined', cancelled: 'Cancel' },
      team: 'team', chatReturn: 'when they return to the chat', form: 'Form', change: 'Change', checkDue: 'check date passed',
      saved: 'Saved.', needConsent: 'Nothing is kept without the person\'s consent. Please ask them first.',
      aLevel: 'Level', aHandoff: 'Level at handoff', aWhy: 'Why (rules)', aScreener: 'Screener', aPlan: 'Safety plan', planStep: function (n) { return 'Step ' + n; }, aSelf: 'Loneliness self-check',
      aOutcome: 'Outcome', none: '—', loadFailed: 'Could not load.',
      tTotal: 'Total', tConversations: 'Conversations', tHandoffs: 'Handoffs', tByLevel: 'By highest level', tByOutcome: 'By outcome',
      tByDistrict: 'By district', tSelf: 'Loneliness self-check score', tWait: 'Time to a counselor (by level)', tFollowups: 'Follow-ups', tReferrals: 'Referrals',
      band: 'Score band', count: 'Count', wReached: 'Reached', wWithin: 'Within target', wMedian: 'Median (s)', wTarget: 'Target (s)'
    }
  });

  var me = null;
  var status = document.getElementById('status');
  function say(msg, bad) { status.textContent = msg; status.className = 'toast' + (bad ? ' bad' : ''); }
  function fail(e) {
    if (e && e.code === 'consent_required') return say(t('needConsent'), true);
    say((e && e.message) || t('loadFailed'), true);
  }
  function short(id) { return id.slice(0, 8) + '…'; }
  function convLink(id) {
    var a = el('a', null, short(id));
    a.href = '#case:' + id;
    a.addEventListener('click', function (e) { e.preventDefault(); openCase(id); });
    return a;
  }
  function cell(tr, content) {
    var td = el('td');
    if (content instanceof Node) td.appendChild(content); else td.textContent = content == null ? t('none') : content;
    tr.appendChild(td);
    return td;
  }

  // ---- views
  var views = ['followups', 'referrals', 'case', 'stats'];
  function showView(name) {
    views.forEach(function (v) {
      document.getElementById('view-' + v).hidden = v !== name;
      var b = document.querySelector('#nav [data-view="' + v + '"]');
      if (b) { if (v === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current'); }
    });
    if (name === 'followups') loadFollowups();
    if (name === 'referrals') loadReferrals();
    if (name === 'stats') loadStats();
  }
  Array.prototype.forEach.call(document.querySelectorAll('#nav [data-view]'), function (b) {
    b.addEventListener('click', function () { showView(b.getAttribute('data-view')); });
  });

  // ---- follow-ups
  function loadFollowups() {
    var q = [];
    var st = document.getElementById('fu-status').value;
    if (st) q.push('status=' + encodeURIComponent(st));
    if (document.getElementById('fu-mine').checked) q.push('mine=true');
    S.api('/api/followups' + (q.length ? '?' + q.join('&') : '')).then(function (r) {
      var body = document.querySelector('#fu-table tbody');
      body.textContent = '';
      document.getElementById('fu-empty').hidden = r.followups.length > 0;
      r.followups.forEach(function (f) {
        var tr = el('tr');
        tr.setAttribute('data-id', f.id);
        tr.className = 'fu-' + f.status;
        cell(tr, el('span', 'badge st-' + f.status, t('fuStatus')[f.status] || f.status));
        cell(tr, S.fmtTime(f.due_at) + (f.series ? ' (' + f.series.index + '/' + f.series.of + ')' : ''));
        cell(tr, t('kinds')[f.kind] || f.kind);
        cell(tr, S.badge(f.level));
        cell(tr, f.assigned_to || t('team'));
        cell(tr, !f.contact ? t('none') : f.contact.kind === 'phone' ? f.contact.number : t('chatReturn'));
        cell(tr, String(f.attempts.length));
        cell(tr, convLink(f.id.slice(0, 32)));
        var td = cell(tr, '');
        if (['done', 'declined', 'failed', 'cancelled'].indexOf(f.status) < 0) {
          ['reached', 'no_answer', 'declined', 'cancelled'].forEach(function (o) {
            var b = el('button', 'small', t('outcomes')[o]);
            b.type = 'button';
            b.setAttribute('data-outcome', o);
            b.addEventListener('click', function () {
              S.api('/api/followups/' + f.id + '/attempts', { method: 'POST', body: { outcome: o } })
                .then(function () { say(t('saved')); loadFollowups(); }, fail);
            });
            td.appendChild(b);
          });
        }
        body.appendChild(tr);
      });
    }, fail);
  }
  document.getElementById('fu-filters').addEventListener('submit', function (e) { e.preventDefault(); loadFollowups(); });

  // ---- referrals
  var NEXT = {
    sent: ['accepted', 'first_contact', 'declined', 'lost'],
    accepted: ['first_contact', 'connected', 'declined', 'lost'],
    first_contact: ['connected', 'declined', 'lost'],
    connected: ['connected', 'declined', 'lost'],
    declined: [], lost: []
  };
  function loadReferrals() {
    S.api('/api/referrals').then(function (r) {
      var body = document.querySelector('#rf-table tbody');
      body.textContent = '';
      document.getElementById('rf-empty').hidden = r.referrals.length > 0;
      r.referrals.forEach(function (v) {
        var tr = el('tr');
        tr.setAttribute('data-id', v.id);
        if (v.check_due) tr.className = 'breached';
        cell(tr, el('span', 'badge rf-' + v.status, t('rfStatus')[v.status] + (v.check_due ? ' · ' + t('checkDue') : '')));
        cell(tr, v.to.name);
        cell(tr, t('kinds')[v.to.kind] || v.to.kind);
        cell(tr, v.check_at ? S.fmtTime(v.check_at) : null);
        cell(tr, v.created_by);
        cell(tr, convLink(v.id.slice(0, 32)));
        var td = cell(tr, '');
        var form = el('a', null, t('form'));
        form.href = '/api/referrals/' + v.id + '/form';
        form.target = '_blank';
        form.rel = 'noopener';
        td.appendChild(form);
        var next = NEXT[v.status] || [];
        if (next.length) {
          var sel = el('select');
          sel.setAttribute('aria-label', t('colStatus'));
          next.forEach(function (s) { var o = el('option', null, t('rfStatus')[s]); o.value = s; sel.appendChild(o); });
          var b = el('button', 'small', t('change'));
          b.type = 'button';
          b.addEventListener('click', function () {
            S.api('/api/referrals/' + v.id, { method: 'PATCH', body: { status: sel.value } })
              .then(function () { say(t('saved')); loadReferrals(); }, fail);
          });
          td.appendChild(sel);
          td.appendChild(b);
        }
        body.appendChild(tr);
      });
    }, fail);
  }

  // ---- a case
  var current = null;
  function dd(dl, label, value) {
    dl.appendChild(el('dt', null, label));
    var d = el('dd');
    if (value instanceof Node) d.appendChild(value); else d.textContent = value == null || value === '' ? t('none') : value;
    dl.appendChild(d);
  }
  function openCase(id) {
    showView('case');
    document.getElementById('case-id').value = id;
    S.api('/api/conversations/' + encodeURIComponent(id) + '/notes').then(function (r) {
      current = id;
      document.getElementById('case-body').hidden = false;
      var a = r.assessment;
      var dl = document.getElementById('assessment');
      dl.textContent = '';
      dd(dl, t('aLevel'), S.badge(a.level));
      dd(dl, t('aHandoff'), a.handoff_level ? S.levelName(a.handoff_level) : null);
      dd(dl, t('aWhy'), a.why.map(function (w) { return w.rule + ' (' + S.levelName(w.level) + ')'; }).join(', '));
      var sc = el('ol');
      a.screener.forEach(function (q) { sc.appendChild(el('li', null, q.question + ' → ' + q.answer)); });
      dd(dl, t('aScreener'), a.screener.length ? sc : null);
      var plan = el('ol');
      (a.safety_plan || []).forEach(function (st) {
        if (st.items.length) plan.appendChild(el('li', null, t('planStep')(st.step) + ': ' + st.items.join(' · ')));
      });
      dd(dl, t('aPlan'), plan.children.length ? plan : null);
      dd(dl, t('aSelf'), a.selfcheck_score == null ? null : a.selfcheck_score + ' / 9');
      dd(dl, t('aOutcome'), a.outcome ? S.outcomeName(a.outcome) : null);
      var ol = document.getElementById('notes');
      ol.textContent = '';
      r.notes.forEach(function (n) {
        var li = el('li');
        li.appendChild(el('span', 'meta', S.fmtTime(n.at) + ' · ' + n.author));
        li.appendChild(el('p', null, n.text));
        ol.appendChild(li);
      });
      location.hash = 'case:' + id;
    }, fail);
  }
  document.getElementById('case-open').addEventListener('submit', function (e) {
    e.preventDefault();
    openCase(document.getElementById('case-id').value.trim());
  });
  document.getElementById('note-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = document.getElementById('note-text');
    S.api('/api/conversations/' + current + '/notes', { method: 'POST', body: { text: text.value } })
      .then(function () { text.value = ''; say(t('saved')); openCase(current); }, fail);
  });
  document.getElementById('fu-form').addEventListener('submit', function (e) {
    e.preventDefault();
    if (!document.getElementById('fu-consent').checked) return say(t('needConsent'), true);
    var phone = document.getElementById('fu-phone').value.trim();
    var body = {
      conversation: current,
      kind: document.getElementById('fu-kind').value,
      due_at: new Date(document.getElementById('fu-due').value).getTime(),
      sessions: parseInt(document.getElementById('fu-sessions').value, 10) || 1,
      consent: { given: true, words: document.getElementById('fu-words').value },
      contact: phone ? { kind: 'phone', number: phone } : { kind: 'chat_return' },
      note: document.getElementById('fu-note').value
    };
    var who = document.getElementById('fu-assign').value.trim();
    if (who) body.assigned_to = who;
    S.api('/api/followups', { method: 'POST', body: body }).then(function () {
      say(t('saved'));
      document.getElementById('fu-form').reset();
    }, fail);
  });
  document.getElementById('rf-form').addEventListener('submit', function (e) {
    e.preventDefault();
    if (!document.getElementById('rf-consent').checked) return say(t('needConsent'), true);
    var check = document.getElementById('rf-check').value;
    var body = {
      conversation: current,
      to: { kind: document.getElementById('rf-kind').value, name: document.getElementById('rf-name').value },
      consent: { given: true },
      shared: {
        summary: document.getElementById('rf-summary').value,
        contact: document.getElementById('rf-contact').value,
        district: document.getElementById('rf-district').value
      }
    };
    if (check) body.check_at = new Date(check + 'T09:00:00+09:00').getTime();
    S.api('/api/referrals', { method: 'POST', body: body }).then(function () {
      say(t('saved'));
      document.getElementById('rf-form').reset();
    }, fail);
  });

  // ---- statistics (supervisors)
  var plot = null;
  function num(v) { return typeof v === 'number' ? v : null; }
  function statsQuery(format) {
    var q = ['period=' + document.getElementById('st-period').value];
    var from = document.getElementById('st-from').value;
    var to = document.getElementById('st-to').value;
    if (from) q.push('from=' + from);
    if (to) {
      var d = new Date(to + 'T00:00:00+09:00');
      d.setTime(d.getTime() + 86400000);
      q.push('to=' + d.getTime());
    }
    if (format) q.push('format=' + format);
    return '/api/stats?' + q.join('&');
  }
  function table(caption, headers, rows) {
    var tb = el('table', 'table');
    tb.appendChild(el('caption', null, caption));
    var hr = el('tr');
    headers.forEach(function (h) { var th = el('th', null, h); th.scope = 'col'; hr.appendChild(th); });
    var thead = el('thead'); thead.appendChild(hr); tb.appendChild(thead);
    var body = el('tbody');
    rows.forEach(function (r) {
      var tr = el('tr');
      r.forEach(function (c, i) { var td = el('td', i ? 'num' : null, c == null ? t('none') : String(c)); tr.appendChild(td); });
      body.appendChild(tr);
    });
    tb.appendChild(body);
    return tb;
  }
  function pairs(obj, names) {
    return Object.keys(obj || {}).map(function (k) { return [(names && names[k]) || k, obj[k]]; });
  }
  function loadStats() {
    document.getElementById('st-csv').href = statsQuery('csv');
    document.getElementById('st-json').href = statsQuery('json');
    S.api(statsQuery()).then(function (r) {
      var xs = r.rows.map(function (_, i) { return i; });
      var data = [xs, r.rows.map(function (x) { return num(x.conversations); }), r.rows.map(function (x) { return num(x.handoffs); })];
      var box = document.getElementById('chart-conv');
      if (plot) { plot.destroy(); plot = null; }
      box.textContent = '';
      if (window.uPlot && r.rows.length) {
        var U = window.uPlot;
        plot = new U({
          width: Math.min(760, box.clientWidth || 760), height: 240,
          scales: { x: { time: false, range: function () { return [-0.5, r.rows.length - 0.5]; } },
            y: { range: function (u, min, max) { return [0, Math.max(5, max || 0)]; } } },
          axes: [
            { splits: function () { return xs; },
              values: function (u, ticks) { return ticks.map(function (i) { return r.rows[i] ? r.rows[i].period : ''; }); } },
            {}
          ],
          series: [{},
            { label: t('tConversations'), stroke: '#1c5fb8', fill: 'rgba(28,95,184,0.25)', width: 1,
              paths: U.paths && U.paths.bars ? U.paths.bars({ size: [0.6, 60] }) : undefined },
            { label: t('tHandoffs'), stroke: '#c0392b', width: 2, points: { show: true, size: 7 } }]
        }, data, box);
      }
      var out = document.getElementById('st-tables');
      out.textContent = '';
      out.appendChild(table(t('tTotal'), [t('period'), t('tConversations'), t('tHandoffs')],
        r.rows.map(function (x) { return [x.period, x.conversations, x.handoffs]; })
          .concat([[t('tTotal'), r.total.conversations, r.total.handoffs]])));
      out.appendChild(table(t('tByLevel'), [t('colLevel'), t('tConversations')], pairs(r.total.by_level, t('levels'))));
      out.appendChild(table(t('tByOutcome'), [t('aOutcome'), t('tConversations')], pairs(r.total.by_outcome)));
      out.appendChild(table(t('tByDistrict'), [t('district'), t('tConversations')], pairs(r.total.by_district)));
      out.appendChild(table(t('tSelf'), [t('band'), t('tConversations')], pairs(r.total.selfcheck)));
      out.appendChild(table(t('tWait'), [t('colLevel'), t('wReached'), t('wWithin'), t('wMedian'), t('wTarget')],
        Object.keys(r.total.time_to_counselor).map(function (k) {
          var w = r.total.time_to_counselor[k];
          return [S.levelName(k), w.reached, w.within_target, w.median_secs, w.target_secs];
        })));
      out.appendChild(table(t('tFollowups'), [t('colStatus'), t('count')], pairs(r.total.followups, t('fuStatus'))));
      out.appendChild(table(t('tReferrals'), [t('colStatus'), t('count')], pairs(r.total.referrals, t('rfStatus'))));
    }, fail);
  }
  document.getElementById('st-form').addEventListener('submit', function (e) { e.preventDefault(); loadStats(); });

  S.session('*', function (s) {
    me = s;
    document.getElementById('nav').hidden = false;
    document.getElementById('nav-stats').hidden = me.role !== 'supervisor';
    document.getElementById('back').href = me.role === 'supervisor' ? '/supervisor' : '/console';
    var m = /^#case:([0-9a-f]{32})$/.exec(location.hash);
    var q = /[?&]conversation=([0-9a-f]{32})/.exec(location.search);
    if (m || q) openCase((m || q)[1]);
    else showView('followups');
  });
})();
