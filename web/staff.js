/*
 * Shared by the counselor console and the supervisor pages: UI strings (ko/en), the
 * staff API (same origin, the HttpOnly `ieum_session` cookie), login/logout, and the
 * transcript renderer with triage highlights.
 */
(function () {
  'use strict';

  var STR = {
    ko: {
      langToggle: 'English', langToggleLabel: 'Switch to English', navCasework: '사례 관리',
      username: '아이디', password: '비밀번호', login: '로그인', logout: '로그아웃',
      loginTitle: '직원 로그인', badCredentials: '아이디 또는 비밀번호가 맞지 않아요.',
      loginFailed: '로그인하지 못했어요. 잠시 후 다시 해 주세요.',
      wrongRoleConsole: '이 페이지는 상담사용이에요. 관리자는 /supervisor 를 쓰세요.',
      wrongRoleSupervisor: '이 페이지는 관리자용이에요. 상담사는 /console 을 쓰세요.',
      signedInAs: function (u, r) { return u + ' (' + (r === 'supervisor' ? '관리자' : '상담사') + ')'; },
      levels: { none: '없음', low: '낮음', medium: '중간', high: '높음', imminent: '긴급' },
      states: { bot: '챗봇', screening: '선별 질문', queued: '대기', with_counselor: '상담 중', closed: '종료' },
      who: { citizen: '시민', bot: '챗봇', safety: '안전 안내', counselor: '상담사' },
      ev: {
        state: function (e) { return '상태: ' + stateName(e.from) + ' → ' + stateName(e.to) + ' (위험도 ' + levelName(e.level) + ')'; },
        queued: function (e) { return '상담 대기열에 들어감 (' + levelName(e.level) + (e.urgent ? ', 긴급' : '') + ')'; },
        counselor_joined: function (e) { return '상담사 ' + e.counselor + ' 참여 · ' + fmtDuration(e.waited_secs) + ' 기다림'; },
        transferred: function (e) { return e.to ? e.from + ' → ' + e.to + ' 에게 넘김' : e.from + ' 님이 대기열로 돌려보냄'; },
        closed: function (e) { return '종료 (' + (e.by === 'counselor' ? '상담사' : e.by === 'citizen' ? '시민' : '시간 초과') + (e.outcome ? ', 결과: ' + outcomeName(e.outcome) : '') + ')'; },
        rating: function (e) { return '만족도 ' + e.value + ' / 5'; }
      },
      outcomes: { resolved: '해결됨', referred: '기관 연계', emergency_dispatched: '긴급 출동 요청', no_response: '응답 없음', other: '기타' },
      triage: '위험 판단', rules: '규칙', intent: '의도',
      secs: function (s) { return s + '초'; },
      mins: function (m, s) { return m + '분 ' + (s ? s + '초' : ''); },
      hours: function (h, m) { return h + '시간 ' + m + '분'; },
      error: '문제가 생겼어요'
    },
    en: {
      langToggle: '한국어', langToggleLabel: '한국어로 바꾸기', navCasework: 'Casework',
      username: 'Username', password: 'Password', login: 'Log in', logout: 'Log out',
      loginTitle: 'Staff login', badCredentials: 'Wrong username or password.',
      loginFailed: 'Could not log in. Please try again shortly.',
      wrongRoleConsole: 'This page is for counselors. Supervisors use /supervisor.',
      wrongRoleSupervisor: 'This page is for supervisors. Counselors use /console.',
      signedInAs: function (u, r) { return u + ' (' + r + ')'; },
      levels: { none: 'none', low: 'low', medium: 'medium', high: 'high', imminent: 'imminent' },
      states: { bot: 'bot', screening: 'screening', queued: 'queued', with_counselor: 'with counselor', closed: 'closed' },
      who: { citizen: 'Citizen', bot: 'Bot', safety: 'Safety', counselor: 'Counselor' },
      ev: {
        state: function (e) { return 'State: ' + stateName(e.from) + ' → ' + stateName(e.to) + ' (level ' + levelName(e.level) + ')'; },
        queued: function (e) { return 'Queued for a counselor (' + levelName(e.level) + (e.urgent ? ', urgent' : '') + ')'; },
        counselor_joined: function (e) { return 'Counselor ' + e.counselor + ' joined after ' + fmtDuration(e.waited_secs); },
        transferred: function (e) { return e.to ? e.from + ' transferred to ' + e.to : e.from + ' returned it to the queue'; },
        closed: function (e) { return 'Closed by ' + e.by + (e.outcome ? ', outcome: ' + outcomeName(e.outcome) : ''); },
        rating: function (e) { return 'Rating ' + e.value + ' / 5'; }
      },
      outcomes: { resolved: 'resolved', referred: 'referred', emergency_dispatched: 'emergency dispatched', no_response: 'no response', other: 'other' },
      triage: 'Triage', rules: 'Rules', intent: 'Intent',
      secs: function (s) { return s + ' s'; },
      mins: function (m, s) { return m + ' min ' + (s ? s + ' s' : ''); },
      hours: function (h, m) { return h + ' h ' + m + ' min'; },
      error: 'Something went wrong'
    }
  };

  var LANG_KEY = 'ieum:staff:lang';
  var lang = 'ko';
  try { lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'ko'; } catch (e) { /* default */ }
  var dicts = [STR];
  var listeners = [];

  function t(key) {
    for (var i = dicts.length - 1; i >= 0; i--) {
      var d = dicts[i][lang];
      if (d && key in d) return d[key];
    }
    return key;
  }
  function levelName(l) { return (t('levels') || {})[l] || l; }
  function stateName(s) { return (t('states') || {})[s] || s; }
  function outcomeName(o) { return (t('outcomes') || {})[o] || o; }

  function fmtDuration(secs) {
    secs = Math.max(0, Math.floor(secs || 0));
    if (secs < 60) return t('secs')(secs);
    var m = Math.floor(secs / 60);
    if (m < 60) return t('mins')(m, secs % 60).trim();
    return t('hours')(Math.floor(m / 60), m % 60);
  }
  function fmtTime(ms) {
    if (!ms) return '';
    var d = new Date(ms);
    function p(n) { return (n < 10 ? '0' : '') + n; }
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  /** Fills every [data-t] element with its string (text) and [data-t-attr="attr:key"]. */
  function applyStrings(scope) {
    document.documentElement.lang = lang;
    Array.prototype.forEach.call((scope || document).querySelectorAll('[data-t]'), function (n) {
      var v = t(n.getAttribute('data-t'));
      if (typeof v === 'string') n.textContent = v;
    });
    Array.prototype.forEach.call((scope || document).querySelectorAll('[data-t-attr]'), function (n) {
      n.getAttribute('data-t-attr').split(';').forEach(function (pair) {
        var kv = pair.split(':');
        var v = t(kv[1]);
        if (typeof v === 'string') n.setAttribute(kv[0], v);
      });
    });
  }

  function setLang(l) {
    lang = l === 'en' ? 'en' : 'ko';
    try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* ignore */ }
    applyStrings();
    listeners.forEach(function (f) { f(lang); });
  }

  /** Calls the staff API; rejects with {status, code, message}. */
  function api(path, opts) {
    opts = opts || {};
    var init = { method: opts.method || 'GET', credentials: 'same-origin', headers: {} };
    if (opts.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    return fetch(path, init).then(function (r) {
      if (r.status === 204) return null;
      return r.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!r.ok) {
          var err = (body && body.error) || {};
          throw { status: r.status, code: err.code || 'http_' + r.status, message: err.message || r.statusText };
        }
        return body;
      });
    });
  }

  /**
   * Login flow: shows #login until a session of `role` exists, then calls onReady(session).
   * Expects #login (form with #username, #password, #login-error), #app, #whoami, #logout.
   */
  function session(role, onReady) {
    var loginBox = document.getElementById('login');
    var form = document.getElementById('login-form');
    var err = document.getElementById('login-error');
    var app = document.getElementById('app');
    var who = document.getElementById('whoami');
    var logout = document.getElementById('logout');
    var current = null;

    function show(s) {
      current = s;
      if (s && (s.role === role || role === '*')) {
        loginBox.hidden = true;
        app.hidden = false;
        logout.hidden = false;
        who.textContent = t('signedInAs')(s.username, s.role);
        onReady(s);
      } else {
        app.hidden = true;
        logout.hidden = true;
        who.textContent = '';
        loginBox.hidden = false;
        if (s) err.textContent = t(role === 'counselor' ? 'wrongRoleConsole' : 'wrongRoleSupervisor');
        document.getElementById('username').focus();
      }
    }
    onLang(function () { if (current) who.textContent = t('signedInAs')(current.username, current.role); });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      err.textContent = '';
      api('/api/login', {
        method: 'POST',
        body: { username: document.getElementById('username').value.trim(), password: document.getElementById('password').value }
      }).then(function (s) {
        document.getElementById('password').value = '';
        show({ username: s.username, role: s.role, expires_at: s.expires_at });
      }, function (e2) {
        err.textContent = e2.code === 'bad_credentials' ? t('badCredentials') : t('loginFailed');
      });
    });
    logout.addEventListener('click', function () {
      api('/api/logout', { method: 'POST' }).then(function () { location.reload(); }, function () { location.reload(); });
    });
    api('/api/me').then(show, function () { show(null); });
  }

  function onLang(f) { listeners.push(f); }

  /** `text` with the [start, end) CHARACTER (code point) spans wrapped in <mark>. */
  function highlighted(text, spans, title) {
    var frag = document.createDocumentFragment();
    var chars = Array.from(text || '');
    var list = (spans || []).map(function (s) { return [Math.max(0, s[0]), Math.min(chars.length, s[1])]; })
      .filter(function (s) { return s[1] > s[0]; })
      .sort(function (a, b) { return a[0] - b[0]; });
    // Merge overlaps.
    var merged = [];
    list.forEach(function (s) {
      var last = merged[merged.length - 1];
      if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
      else merged.push([s[0], s[1]]);
    });
    var at = 0;
    merged.forEach(function (s) {
      if (s[0] > at) frag.appendChild(document.createTextNode(chars.slice(at, s[0]).join('')));
      var m = el('mark', 'hit', chars.slice(s[0], s[1]).join(''));
      if (title) m.title = title;
      frag.appendChild(m);
      at = s[1];
    });
    if (at < chars.length) frag.appendChild(document.createTextNode(chars.slice(at).join('')));
    return frag;
  }

  function badge(level) {
    var b = el('span', 'badge level-' + level, levelName(level));
    return b;
  }

  /** One transcript event as a list item (console and supervisor alike). */
  function renderEvent(e) {
    var li = el('li', 'ev ev-' + e.type);
    li.dataset.seq = String(e.seq);
    var meta = el('div', 'ev-meta');
    meta.appendChild(el('span', 'ev-seq', '#' + e.seq));
    meta.appendChild(el('time', 'ev-at', fmtTime(e.at)));
    var body;
    switch (e.type) {
      case 'citizen': {
        meta.appendChild(el('strong', 'ev-who', t('who').citizen));
        body = el('p', 'ev-text');
        var rules = ((e.triage && e.triage.rules) || []).map(function (r) { return r.id; });
        body.appendChild(highlighted(e.text, e.triage && e.triage.spans, rules.join(', ')));
        li.appendChild(meta);
        li.appendChild(body);
        if (e.triage && (e.triage.level !== 'none' || rules.length)) {
          var tri = el('div', 'triage');
          tri.appendChild(el('span', 'triage-label', t('triage') + ':'));
          tri.appendChild(badge(e.triage.level));
          if (e.triage.conversation_level && e.triage.conversation_level !== e.triage.level) {
            tri.appendChild(el('span', 'triage-conv', '→ ' + levelName(e.triage.conversation_level)));
          }
          if (rules.length) {
            var ul = el('ul', 'rules');
            ul.setAttribute('aria-label', t('rules'));
            (e.triage.rules || []).forEach(function (r) {
              var item = el('li', 'rule', r.id);
              item.title = (r.category || '') + ' · ' + levelName(r.level) + (r.lowered ? ' (lowered)' : '');
              ul.appendChild(item);
            });
            tri.appendChild(ul);
          }
          li.appendChild(tri);
        } else if (e.triage && e.triage.intent) {
          li.appendChild(el('div', 'triage intent', t('intent') + ': ' + e.triage.intent));
        }
        return li;
      }
      case 'bot':
      case 'safety':
        meta.appendChild(el('strong', 'ev-who', t('who')[e.type]));
        li.appendChild(meta);
        li.appendChild(el('p', 'ev-text', e.text));
        if (e.resources && e.resources.length) {
          li.appendChild(el('p', 'ev-res', '☎ ' + e.resources.map(function (r) {
            return (lang === 'en' ? r.name_en : r.name_ko) + (r.phone ? ' ' + r.phone : '');
          }).join(' · ')));
        }
        return li;
      case 'counselor':
        meta.appendChild(el('strong', 'ev-who', t('who').counselor + ' ' + (e.counselor || '')));
        li.appendChild(meta);
        li.appendChild(el('p', 'ev-text', e.text));
        return li;
      default: {
        var f = t('ev')[e.type];
        li.classList.add('ev-status');
        li.appendChild(meta);
        li.appendChild(el('p', 'ev-text', f ? f(e) : e.type));
        return li;
      }
    }
  }

  /** A short beep through the Web Audio API (no audio files). */
  var audioCtx = null;
  function beep() {
    try {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return;
      audioCtx = audioCtx || new AC();
      if (audioCtx.state === 'suspended') audioCtx.resume();
      [0, 0.25, 0.5].forEach(function (offset) {
        var o = audioCtx.createOscillator();
        var g = audioCtx.createGain();
        o.type = 'square';
        o.frequency.value = 880;
        g.gain.setValueAtTime(0.0001, audioCtx.currentTime + offset);
        g.gain.exponentialRampToValueAtTime(0.2, audioCtx.currentTime + offset + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, audioCtx.currentTime + offset + 0.18);
        o.connect(g);
        g.connect(audioCtx.destination);
        o.start(audioCtx.currentTime + offset);
        o.stop(audioCtx.currentTime + offset + 0.2);
      });
      window.__ieumBeeps = (window.__ieumBeeps || 0) + 1;
    } catch (e) { /* no sound: the visual alert still shows */ }
  }

  window.IeumStaff = {
    t: t, el: el, api: api, session: session, setLang: setLang, onLang: onLang,
    lang: function () { return lang; },
    addStrings: function (d) { dicts.push(d); },
    applyStrings: applyStrings, levelName: levelName, stateName: stateName, outcomeName: outcomeName,
    fmtDuration: fmtDuration, fmtTime: fmtTime, highlighted: highlighted, badge: badge,
    renderEvent: renderEvent, beep: beep
  };

  document.addEventListener('DOMContentLoaded', function () {
    var b = document.getElementById('lang');
    if (b) b.addEventListener('click', function () { setLang(lang === 'ko' ? 'en' : 'ko'); });
    applyStrings();
  });
})();
