/*
 * ieum (이음) citizen chat widget.
 *
 * Embed with ONE tag:  <script src="https://HOST/widget.js"></script>
 * The service origin is taken from this script's own src. The widget lives in a shadow
 * root (the host page's CSS cannot break it) and loads HOST/widget.css into it.
 *
 * Protocol: docs/protocol.md (/ws/chat). What it guarantees the person:
 *  - nothing they typed is lost: every message stays in sessionStorage until its `ack`;
 *    after a reconnect it resumes (`?resume=1` + `resume` frame) and re-sends only the
 *    messages that got no ack and were not replayed by the server;
 *  - nothing is shown twice: stored events are rendered once per `seq`.
 */
(function () {
  'use strict';
  if (window.IeumWidget) return;

  var script = document.currentScript;
  if (!script) {
    var all = document.querySelectorAll('script[src*="widget.js"]');
    script = all[all.length - 1];
  }
  var SRC = new URL(script ? script.src : '/widget.js', location.href);
  var ORIGIN = SRC.origin;
  var WS_URL = ORIGIN.replace(/^http/, 'ws') + '/ws/chat';
  var KEY = 'ieum:widget:' + ORIGIN;
  var MAX_CHARS = 2000;

  // ---- UI strings (Korean by default, English one tap away) ----
  var STR = {
    ko: {
      open: '이야기 나누기 · 이음 채팅 열기, 24시간',
      launcher: '이야기 나누기',
      title: '이음 · 24시간 마음 대화',
      subtitle: '외롭거나 힘들 때, 언제든 이야기해 주세요.',
      langToggle: 'English',
      langToggleLabel: 'Switch to English',
      minimize: '채팅 창 닫기 (대화는 유지돼요)',
      emergency: '위급하면 전화',
      call109: '109 자살예방',
      call109Label: '109 자살예방 상담전화 (24시간) 전화 걸기',
      call119: '119 응급',
      call119Label: '119 응급 전화 걸기',
      menu: '메뉴: 상담사 연결, 대화 종료',
      log: '대화 내용',
      inputLabel: '메시지 입력',
      placeholder: '여기에 적어 주세요 (Enter: 보내기, Shift+Enter: 줄바꿈)',
      placeholderShort: '여기에 적어 주세요',
      send: '보내기',
      human: '상담사와 이야기하기',
      humanSent: '상담사 연결을 요청했어요.',
      end: '대화 종료 및 기록 지우기',
      endConfirm: '대화를 끝내고 이 기기에 남은 기록을 지울까요?',
      ended: '대화를 끝냈고, 이 기기에 남은 기록을 지웠어요. 언제든 다시 찾아와 주세요.',
      newChat: '새 대화 시작하기',
      you: '나',
      bot: '이음',
      counselor: '상담사',
      sending: '보내는 중…',
      waitingNet: '연결되면 보낼게요',
      sent: '전송됨',
      saved: '저장됨',
      retry: '다시 보내기',
      edit: '고쳐 쓰기',
      tooLong: '메시지가 너무 길어요. 2,000자까지 보낼 수 있어요. 나눠서 보내 주세요. 적은 글은 입력창에 그대로 있어요.',
      queueMore: '자세히',
      empty: '빈 메시지는 보낼 수 없어요.',
      notSaved: '이 메시지를 저장하지 못했어요. 글은 그대로 있으니 "다시 보내기"를 눌러 주세요.',
      rateLimited: '메시지를 너무 빨리 보내고 있어요. 잠시 후 다시 보내 주세요. 위급하면 109 또는 119로 전화하세요.',
      closedErr: '이 대화는 끝났어요. 새 대화를 시작해 주세요.',
      genericErr: '보내지 못했어요. 다시 보내 주세요.',
      reconnecting: '연결이 끊겼어요. 다시 연결하는 중이에요… 적은 글은 지워지지 않아요. 위급하면 109 또는 119로 전화하세요.',
      offline: '인터넷 연결이 끊겼어요. 연결되면 이어서 보낼게요. 위급하면 109 또는 119로 전화하세요.',
      busy: '지금 연결이 많아요. 잠시 후 자동으로 다시 연결할게요. 위급하면 109(24시간) 또는 119로 바로 전화하세요.',
      resumeFailed: '이전 대화를 이어갈 수 없어 새 대화를 시작했어요.',
      queuePos: function (p) { return '상담사 연결 대기 중 · ' + p + '번째'; },
      queueWait: function (m) { return '예상 대기 약 ' + m + '분'; },
      queueSoon: '곧 연결돼요',
      joined: '상담사가 대화에 들어왔어요. 이제 사람과 이야기하고 있어요.',
      closedBy: {
        citizen: '대화를 끝냈어요.',
        counselor: '상담사가 대화를 마쳤어요. 함께해 줘서 고마워요.',
        timeout: '오랫동안 말이 없어 대화를 마쳤어요. 필요할 때 언제든 다시 찾아와 주세요.'
      },
      rateAsk: '오늘 대화는 어땠나요? (1: 도움이 안 됐어요 – 5: 많이 도움이 됐어요)',
      rateLabel: function (n) { return n + '점'; },
      rateThanks: '알려 줘서 고마워요.',
      hours: '운영',
      thenPress: function (k) { return '연결 후 ' + k + '번'; },
      callLabel: function (name, phone) { return name + ' 전화 걸기 ' + phone; },
      website: '웹사이트',
      charsLeft: function (n) { return n + '자 남음'; },
      charsOver: function (n) { return n + '자 초과'; },
      planTitle: '나의 안전계획',
      planCount: function (n) { return n + '개 적음'; },
      planNone: '아직 적은 것이 없어요',
      planPrint: '인쇄',
      planPrintLabel: '인쇄 (안전계획만)',
      planSave: '저장',
      planSaveLabel: '저장 (안전계획을 파일로 내려받기)',
      planDocTitle: '나의 안전계획 · 이음',
      planHelp: '위급하면 지금 바로 109(자살예방상담, 24시간) 또는 119로 전화하세요. 정신건강위기상담 1577-0199(24시간).',
      planUpdated: '안전계획이 업데이트됐어요.'
    },
    en: {
      open: 'Talk to us · open the ieum chat, 24 hours',
      launcher: 'Talk to us',
      title: 'ieum · 24-hour chat',
      subtitle: 'Lonely or struggling? Talk to us any time.',
      langToggle: '한국어',
      langToggleLabel: '한국어로 바꾸기',
      minimize: 'Close the chat window (the chat is kept)',
      emergency: 'Crisis:',
      call109: '109 Suicide prevention',
      call109Label: '109 Suicide prevention line (24h): call',
      call119: '119 Emergency',
      call119Label: '119 Emergency: call',
      menu: 'Menu: counselor, end the chat',
      log: 'Conversation',
      inputLabel: 'Your message',
      placeholder: 'Type here (Enter: send, Shift+Enter: new line)',
      placeholderShort: 'Type here',
      send: 'Send',
      human: 'Talk to a counselor',
      humanSent: 'You asked for a counselor.',
      end: 'End and forget this chat',
      endConfirm: 'End this chat and delete what this device keeps of it?',
      ended: 'The chat has ended and this device no longer keeps it. You can come back any time.',
      newChat: 'Start a new chat',
      you: 'You',
      bot: 'ieum',
      counselor: 'Counselor',
      sending: 'Sending…',
      waitingNet: 'Will send when connected',
      sent: 'Sent',
      saved: 'Saved',
      retry: 'Send again',
      edit: 'Edit',
      tooLong: 'This message is too long: up to 2,000 characters. Please split it. Your text is still in the box.',
      queueMore: 'More',
      empty: 'An empty message cannot be sent.',
      notSaved: 'We could not save this message. Your text is kept: press "Send again".',
      rateLimited: 'You are sending messages too fast; please wait a moment. In a crisis call 109 or 119.',
      closedErr: 'This chat has ended. Please start a new one.',
      genericErr: 'Not sent. Please send it again.',
      reconnecting: 'Connection lost. Reconnecting… Nothing you typed is lost. In a crisis call 109 or 119.',
      offline: 'You are offline. We will send your messages once you are back. In a crisis call 109 or 119.',
      busy: 'We are very busy. We will reconnect by ourselves in a moment. In a crisis call 109 (24h) or 119 now.',
      resumeFailed: 'We could not continue the earlier chat, so a new one has started.',
      queuePos: function (p) { return 'Waiting for a counselor · number ' + p + ' in line'; },
      queueWait: function (m) { return 'about ' + m + ' min'; },
      queueSoon: 'very soon',
      joined: 'A counselor has joined. You are now talking with a person.',
      closedBy: {
        citizen: 'You ended the chat.',
        counselor: 'The counselor has ended the chat. Thank you for talking with us.',
        timeout: 'The chat ended after a long silence. Come back whenever you need.'
      },
      rateAsk: 'How was this chat? (1: not helpful – 5: very helpful)',
      rateLabel: function (n) { return n + ' out of 5'; },
      rateThanks: 'Thank you for telling us.',
      hours: 'Hours',
      thenPress: function (k) { return 'then press ' + k; },
      callLabel: function (name, phone) { return 'Call ' + name + ' ' + phone; },
      website: 'Website',
      charsLeft: function (n) { return n + ' characters left'; },
      charsOver: function (n) { return n + ' characters over'; },
      planTitle: 'My safety plan',
      planCount: function (n) { return n + (n === 1 ? ' item' : ' items'); },
      planNone: 'Nothing written yet',
      planPrint: 'Print',
      planPrintLabel: 'Print (the safety plan only)',
      planSave: 'Save',
      planSaveLabel: 'Save (download the safety plan as a file)',
      planDocTitle: 'My safety plan · ieum',
      planHelp: 'If you are in danger, call 109 (suicide prevention, 24h) or 119 right now. Mental-health crisis line 1577-0199 (24h).',
      planUpdated: 'Your safety plan was updated.'
    }
  };

  // ---- persisted state (sessionStorage: this tab only, gone when it closes) ----
  function load() {
    try {
      var s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      if (s && typeof s === 'object') return s;
    } catch (e) { /* private mode or bad JSON: start afresh */ }
    return null;
  }
  var saved = load() || {};
  var st = {
    lang: saved.lang || (script && script.getAttribute('data-lang')) || 'ko',
    conversationId: saved.conversationId || null,
    token: saved.token || null,
    greeting: saved.greeting || null,
    pending: Array.isArray(saved.pending) ? saved.pending : [], // [{id, text, state, error}]
    open: !!saved.open,
    closed: saved.closed || null, // {by}
    plan: Array.isArray(saved.plan) ? saved.plan : null // the last safety_plan steps
  };
  if (st.lang !== 'en') st.lang = 'ko';
  function persist() {
    try {
      sessionStorage.setItem(KEY, JSON.stringify({
        lang: st.lang, conversationId: st.conversationId, token: st.token,
        greeting: st.greeting, pending: st.pending, open: st.open, closed: st.closed,
        plan: st.plan
      }));
    } catch (e) { /* storage full or blocked: the chat still works in memory */ }
  }
  function forget() {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
  }
  function t(k) { return STR[st.lang][k]; }

  // ---- runtime state (not persisted) ----
  var ws = null;
  var connected = false;
  var lastSeq = 0;          // highest stored-event seq rendered in THIS page
  var seen = {};            // seq -> true (stored events rendered)
  var attempt = 0;
  var retryTimer = null;
  var resendTimer = null;
  var stopped = false;       // true after "end and forget" until a new chat is started
  var busy = false;
  var queueInfo = null;
  var wantHuman = false;     // asked for a person before the socket was ready

  // ---- DOM ----
  var host = document.createElement('div');
  host.id = 'ieum-widget';
  var root = host.attachShadow({ mode: 'open' });
  var css = document.createElement('link');
  css.rel = 'stylesheet';
  css.href = ORIGIN + '/widget.css';
  root.appendChild(css);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var wrap = el('div', 'ieum');
  wrap.hidden = true; // until the stylesheet is in
  css.addEventListener('load', function () { wrap.hidden = false; });
  css.addEventListener('error', function () { wrap.hidden = false; });
  root.appendChild(wrap);

  var launcher = el('button', 'launcher');
  launcher.type = 'button';
  launcher.setAttribute('aria-controls', 'ieum-panel');
  launcher.setAttribute('aria-expanded', 'false');
  var launcherIcon = el('span', 'launcher-icon');
  launcherIcon.setAttribute('aria-hidden', 'true');
  var launcherText = el('span', 'launcher-text');
  launcher.appendChild(launcherIcon);
  launcher.appendChild(launcherText);
  wrap.appendChild(launcher);

  var panel = el('section', 'panel');
  panel.id = 'ieum-panel';
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-labelledby', 'ieum-title');
  panel.hidden = true;
  wrap.appendChild(panel);

  var head = el('header', 'head');
  var titles = el('div', 'titles');
  var title = el('h2', 'title');
  title.id = 'ieum-title';
  var subtitle = el('p', 'subtitle');
  titles.appendChild(title);
  titles.appendChild(subtitle);
  var langBtn = el('button', 'lang');
  langBtn.type = 'button';
  var minBtn = el('button', 'min', '×');
  minBtn.type = 'button';
  // On a short screen the actions (counselor, end) fold into this menu.
  var menuBtn = el('button', 'menu', '⋯');
  menuBtn.type = 'button';
  menuBtn.setAttribute('aria-controls', 'ieum-actions');
  menuBtn.setAttribute('aria-expanded', 'false');
  head.appendChild(titles);
  head.appendChild(langBtn);
  head.appendChild(menuBtn);
  head.appendChild(minBtn);
  panel.appendChild(head);

  var strip = el('div', 'emergency');
  strip.setAttribute('role', 'note');
  var stripText = el('span', 'emergency-text');
  var a109 = el('a', 'tel');
  a109.href = 'tel:109';
  var a119 = el('a', 'tel');
  a119.href = 'tel:119';
  strip.appendChild(stripText);
  strip.appendChild(a109);
  strip.appendChild(a119);
  panel.appendChild(strip);

  var banner = el('div', 'banner');
  banner.setAttribute('role', 'status');
  banner.setAttribute('aria-live', 'assertive');
  banner.hidden = true;
  panel.appendChild(banner);

  // The log (role=log, the scrolling box) holds a list of messages.
  var logBox = el('div', 'log');
  logBox.setAttribute('role', 'log');
  logBox.setAttribute('aria-live', 'polite');
  logBox.tabIndex = 0;
  var log = el('ol', 'log-list');
  logBox.appendChild(log);
  panel.appendChild(logBox);

  var queueBox = el('div', 'queue');
  queueBox.setAttribute('role', 'status');
  queueBox.setAttribute('aria-live', 'polite');
  queueBox.hidden = true;
  panel.appendChild(queueBox);

  // The safety plan, built up as `safety_plan` frames arrive: folded to one line until
  // opened, with print and save.
  var planBox = el('details', 'plan');
  planBox.id = 'ieum-plan';
  planBox.hidden = true;
  var planSum = el('summary', 'plan-sum');
  var planSumTitle = el('span', 'plan-sum-title');
  var planSumCount = el('span', 'plan-sum-count');
  planSum.appendChild(planSumTitle);
  planSum.appendChild(planSumCount);
  planBox.appendChild(planSum);
  var planBody = el('div', 'plan-body');
  planBody.setAttribute('role', 'region');
  planBody.setAttribute('aria-labelledby', 'ieum-plan-heading');
  var planHeading = el('h3', 'sr-only');
  planHeading.id = 'ieum-plan-heading';
  planBody.appendChild(planHeading);
  // Print and save first, so they are in reach without scrolling the steps.
  var planTools = el('div', 'plan-tools');
  var planPrintBtn = el('button', 'plan-print');
  planPrintBtn.type = 'button';
  var planSaveBtn = el('button', 'plan-save');
  planSaveBtn.type = 'button';
  planTools.appendChild(planPrintBtn);
  planTools.appendChild(planSaveBtn);
  planBody.appendChild(planTools);
  var planList = el('ol', 'plan-steps');
  planBody.appendChild(planList);
  planBox.appendChild(planBody);
  var planLive = el('p', 'sr-only');
  planLive.setAttribute('role', 'status');
  planLive.setAttribute('aria-live', 'polite');
  panel.appendChild(planBox);
  panel.appendChild(planLive);

  var quick = el('div', 'quick');
  panel.appendChild(quick);

  var rating = el('div', 'rating');
  rating.setAttribute('role', 'group');
  rating.hidden = true;
  panel.appendChild(rating);

  var form = el('form', 'compose');
  var inputLabel = el('label', 'sr-only');
  inputLabel.htmlFor = 'ieum-input';
  var input = el('textarea', 'input');
  input.id = 'ieum-input';
  input.rows = 2;
  var counter = el('span', 'counter');
  counter.id = 'ieum-counter';
  counter.setAttribute('aria-live', 'polite');
  // Why the text was not sent (too long): stays until the text is short enough.
  var inputErr = el('p', 'input-err');
  inputErr.id = 'ieum-input-err';
  inputErr.setAttribute('role', 'alert');
  inputErr.hidden = true;
  input.setAttribute('aria-describedby', 'ieum-counter');
  var sendBtn = el('button', 'send');
  sendBtn.type = 'submit';
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(sendBtn);
  form.appendChild(counter);
  form.appendChild(inputErr);
  panel.appendChild(form);

  var actions = el('div', 'actions');
  actions.id = 'ieum-actions';
  var humanBtn = el('button', 'human');
  humanBtn.type = 'button';
  var endBtn = el('button', 'end');
  endBtn.type = 'button';
  var newBtn = el('button', 'new');
  newBtn.type = 'button';
  newBtn.hidden = true;
  actions.appendChild(humanBtn);
  actions.appendChild(endBtn);
  actions.appendChild(newBtn);
  panel.appendChild(actions);

  function applyLang() {
    wrap.setAttribute('lang', st.lang);
    launcher.setAttribute('aria-label', t('open'));
    launcherText.textContent = t('launcher');
    title.textContent = t('title');
    subtitle.textContent = t('subtitle');
    langBtn.textContent = t('langToggle');
    langBtn.setAttribute('aria-label', t('langToggleLabel'));
    langBtn.setAttribute('lang', st.lang === 'ko' ? 'en' : 'ko');
    minBtn.setAttribute('aria-label', t('minimize'));
    menuBtn.setAttribute('aria-label', t('menu'));
    stripText.textContent = t('emergency');
    a109.textContent = t('call109');
    a109.setAttribute('aria-label', t('call109Label'));
    a119.textContent = t('call119');
    a119.setAttribute('aria-label', t('call119Label'));
    logBox.setAttribute('aria-label', t('log'));
    inputLabel.textContent = t('inputLabel');
    setPlaceholder();
    sendBtn.textContent = t('send');
    humanBtn.textContent = t('human');
    endBtn.textContent = t('end');
    newBtn.textContent = t('newChat');
    renderRating();
    renderQueue();
    renderPlan();
    refreshStatuses();
    updateCounter();
    if (inputErr.dataset.key) showInputError(inputErr.dataset.key);
    if (banner.dataset.key) showBanner(banner.dataset.key);
  }

  // ---- rendering ----

  // Keeping the newest item in view. `follow` is 'newest' (show the newest item: its
  // bottom, or its top when it is taller than the log, so a long greeting is read from
  // its first line), 'bottom' (the person scrolled to the end) or null (the person
  // scrolled up to read: leave them there until something new arrives).
  var follow = 'newest';
  var lastScrollSet = -1;
  function keepNewest() {
    if (!follow) return;
    var h = logBox.clientHeight;
    if (!h) return; // hidden: done when it shows (the resize observer)
    var target = logBox.scrollHeight - h;
    var last = log.lastElementChild;
    if (follow === 'newest' && last && last.offsetHeight + 20 > h) {
      target = logBox.scrollTop + last.getBoundingClientRect().top - logBox.getBoundingClientRect().top - 8;
    }
    logBox.scrollTop = Math.max(0, target);
    lastScrollSet = logBox.scrollTop;
  }
  function scrollDown() { follow = 'newest'; keepNewest(); }
  logBox.addEventListener('scroll', function () {
    if (logBox.scrollTop === lastScrollSet) return; // ours
    lastScrollSet = -1;
    var box = logBox.getBoundingClientRect();
    var last = log.lastElementChild;
    if (logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4) follow = 'bottom';
    else if (last && last.getBoundingClientRect().top >= box.top - 2 && last.getBoundingClientRect().top < box.bottom) follow = 'newest';
    else follow = null;
  });
  if (window.ResizeObserver) {
    // The log changes size when the panel opens, a banner, the queue box or quick replies
    // come or go, or the screen (keyboard) changes; an item grows (a status line).
    var ro = new ResizeObserver(function () { keepNewest(); });
    ro.observe(logBox);
    ro.observe(log);
  }

  function codePoints(s) { return Array.from(s).length; }

  function telHref(phone) { return 'tel:' + String(phone).replace(/[^0-9+]/g, ''); }

  // Korean phone numbers in message text: the service numbers (109, 112, 119, 120, 129,
  // 132, ...), 13xx (1350, 1366, 1388, ...), 15xx–18xx-xxxx and 0x(x)-xxx(x)-xxxx; not a
  // number that is part of a longer one, a URL or a decimal, and not a count or a date
  // ("2,000자", "3번째", "2024년", "10분", "1명", "100%", "120만", "제119조").
  var PHONE = /(^|[^0-9A-Za-z.,:\/@#_+\-])(0\d{1,2}[-. ]\d{3,4}[-. ]\d{4}|1[5-8]\d\d-?\d{4}|13\d\d|1(?:0[79]|1[0-47-9]|2[0-35-9]|3[12]|82))(?![0-9]|[.,:\-][0-9]|자|번째|년|분|명|초|일|월|원|개|살|세|층|호|회|건|점|배|%|％|위|등|차|장|시간|주|만|천|억|조|항|쪽|kg|km|cm)/g;

  /** `text` as DOM nodes, every phone number a tel: link (never innerHTML). */
  function linkify(text) {
    var frag = document.createDocumentFragment();
    text = String(text == null ? '' : text);
    var at = 0;
    var m;
    PHONE.lastIndex = 0;
    while ((m = PHONE.exec(text))) {
      var start = m.index + m[1].length;
      if (start > at) frag.appendChild(document.createTextNode(text.slice(at, start)));
      var a = el('a', 'tel-inline', m[2]);
      a.href = telHref(m[2]);
      frag.appendChild(a);
      at = start + m[2].length;
      PHONE.lastIndex = at;
    }
    if (at < text.length) frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }
  function linked(tag, cls, text) {
    var e = el(tag, cls);
    e.appendChild(linkify(text));
    return e;
  }

  function resourceCard(r) {
    var card = el('div', 'card' + (r.emergency ? ' card-emergency' : ''));
    var name = st.lang === 'en' ? (r.name_en || r.name_ko) : (r.name_ko || r.name_en);
    var purpose = st.lang === 'en' ? (r.purpose_en || r.purpose_ko) : (r.purpose_ko || r.purpose_en);
    card.appendChild(el('strong', 'card-name', name));
    if (purpose) card.appendChild(el('span', 'card-purpose', purpose));
    if (r.phone) {
      var a = el('a', 'card-call', '☎ ' + r.phone + (r.then_press ? ' (' + t('thenPress')(r.then_press) + ')' : ''));
      a.href = telHref(r.phone);
      a.setAttribute('aria-label', t('callLabel')(name, r.phone) + (r.then_press ? ', ' + t('thenPress')(r.then_press) : ''));
      card.appendChild(a);
    }
    var hours = st.lang === 'en' ? (r.hours || r.hours_ko) : (r.hours_ko || r.hours);
    if (hours) card.appendChild(linked('span', 'card-hours', t('hours') + ': ' + hours));
    if (r.url && /^https?:\/\//.test(r.url)) {
      var u = el('a', 'card-url', t('website'));
      u.href = r.url;
      u.target = '_blank';
      u.rel = 'noopener noreferrer';
      card.appendChild(u);
    }
    return card;
  }

  function addItem(kind, who, text, seq, resources) {
    var li = el('li', 'msg ' + kind);
    if (seq != null) li.dataset.seq = String(seq);
    if (who) li.appendChild(el('span', 'who', who));
    if (text) li.appendChild(linked('div', 'bubble', text));
    if (resources && resources.length) {
      var cards = el('div', 'cards');
      resources.forEach(function (r) { if (r && r.verified !== false) cards.appendChild(resourceCard(r)); });
      li.appendChild(cards);
    }
    log.appendChild(li);
    scrollDown();
    return li;
  }

  function notice(text, cls) {
    var li = el('li', 'notice' + (cls ? ' ' + cls : ''), text);
    log.appendChild(li);
    scrollDown();
    return li;
  }

  function setQuickReplies(list) {
    quick.textContent = '';
    (list || []).forEach(function (q) {
      var b = el('button', 'qr', q.label);
      b.type = 'button';
      b.addEventListener('click', function () {
        submitText(q.text);
        // The button is gone with the replies: keep the focus in the conversation.
        input.focus();
      });
      quick.appendChild(b);
    });
  }

  function myBubble(p) {
    var li = log.querySelector('li.me[data-id="' + cssEscape(p.id) + '"]');
    if (li) return li;
    li = el('li', 'msg me');
    li.dataset.id = p.id;
    li.appendChild(el('span', 'who', t('you')));
    li.appendChild(el('div', 'bubble', p.text));
    var status = el('div', 'status');
    li.appendChild(status);
    log.appendChild(li);
    scrollDown();
    return li;
  }

  function cssEscape(s) { return String(s).replace(/["\\]/g, '\\$&'); }

  function setStatus(li, state, errText) {
    li.dataset.state = state;
    var status = li.querySelector('.status');
    status.textContent = '';
    var label = state === 'saved' ? '✓ ' + t('saved')
      : state === 'sent' ? t('sent')
      : state === 'failed' ? ''
      : connected ? t('sending') : t('waitingNet');
    if (label) status.appendChild(el('span', 'state', label));
    if (state === 'failed') {
      status.appendChild(linked('span', 'err', errText || t('genericErr')));
      var p = findPending(li.dataset.id);
      if (p) {
        var retryB = el('button', 'retry', t('retry'));
        retryB.type = 'button';
        retryB.addEventListener('click', function () { retry(p.id); });
        var editB = el('button', 'edit', t('edit'));
        editB.type = 'button';
        editB.addEventListener('click', function () { editBack(p.id); });
        status.appendChild(retryB);
        status.appendChild(editB);
      }
    }
  }

  function errorText(code, serverText) {
    switch (code) {
      case 'message_too_long': return t('tooLong');
      case 'empty_message': return t('empty');
      case 'not_saved': return t('notSaved');
      case 'rate_limited': return t('rateLimited');
      case 'conversation_closed': return t('closedErr');
      default: return serverText || t('genericErr');
    }
  }

  function refreshStatuses() {
    st.pending.forEach(function (p) {
      var li = myBubble(p);
      setStatus(li, p.state, p.error ? errorText(p.error) : null);
    });
    Array.prototype.forEach.call(log.querySelectorAll('li.me[data-state="saved"]'), function (li) {
      setStatus(li, 'saved');
    });
  }

  function renderQueue() {
    queueBox.textContent = '';
    if (!queueInfo) { queueBox.hidden = true; return; }
    queueBox.hidden = false;
    var line = t('queuePos')(queueInfo.position);
    if (queueInfo.expected_wait_secs != null) {
      var m = Math.ceil(queueInfo.expected_wait_secs / 60);
      line += ' · ' + (queueInfo.expected_wait_secs < 60 ? t('queueSoon') : t('queueWait')(m));
    }
    // One line of status; the longer text folds away (collapsed unless opened).
    var pos = el('strong', 'queue-pos', line);
    if (!queueInfo.text) { queueBox.appendChild(pos); return; }
    var more = el('details', 'queue-more');
    more.open = queueOpen;
    more.addEventListener('toggle', function () { queueOpen = more.open; });
    var sum = el('summary', 'queue-sum');
    sum.appendChild(pos);
    sum.appendChild(el('span', 'queue-toggle', t('queueMore')));
    more.appendChild(sum);
    more.appendChild(linked('p', 'queue-text', queueInfo.text));
    queueBox.appendChild(more);
  }
  var queueOpen = false;

  // ---- the safety plan ----
  var planSteps = st.plan; // the last `safety_plan` frame's steps (kept for a reload)

  function planItemsCount() {
    return (planSteps || []).reduce(function (n, s) { return n + (s.items || []).length; }, 0);
  }

  function renderPlan() {
    planSumTitle.textContent = t('planTitle');
    planHeading.textContent = t('planTitle');
    planPrintBtn.textContent = t('planPrint');
    planPrintBtn.setAttribute('aria-label', t('planPrintLabel'));
    planSaveBtn.textContent = t('planSave');
    planSaveBtn.setAttribute('aria-label', t('planSaveLabel'));
    if (!planSteps) { planBox.hidden = true; return; }
    planBox.hidden = false;
    planSumCount.textContent = t('planCount')(planItemsCount());
    planList.textContent = '';
    planSteps.forEach(function (s) {
      var li = el('li', 'plan-step');
      li.appendChild(el('h4', 'plan-step-title', s.title));
      var items = s.items || [];
      if (!items.length) {
        li.appendChild(el('p', 'plan-none', t('planNone')));
      } else {
        var ul = el('ul', 'plan-items');
        items.forEach(function (x) { ul.appendChild(linked('li', 'plan-item', x)); });
        li.appendChild(ul);
      }
      planList.appendChild(li);
    });
  }

  function onPlan(steps) {
    var had = !!planSteps;
    planSteps = Array.isArray(steps) ? steps : [];
    st.plan = planSteps;
    persist();
    renderPlan();
    if (had) planLive.textContent = t('planUpdated');
    keepNewest();
  }

  /** The plan as plain DOM for a printed page (text only, never innerHTML). */
  function planPage(doc) {
    var page = doc.createElement('div');
    var h = doc.createElement('h1');
    h.textContent = t('planTitle');
    page.appendChild(h);
    (planSteps || []).forEach(function (s) {
      var h2 = doc.createElement('h2');
      h2.textContent = s.title;
      page.appendChild(h2);
      var ul = doc.createElement('ul');
      var items = s.items || [];
      (items.length ? items : ['']).forEach(function (x) {
        var li = doc.createElement('li');
        li.textContent = x || '—';
        ul.appendChild(li);
      });
      page.appendChild(ul);
    });
    var help = doc.createElement('p');
    help.textContent = t('planHelp');
    page.appendChild(help);
    return page;
  }

  // Print: a print stylesheet hides the host page and shows only a plain copy of the plan,
  // both removed once printing is done.
  planPrintBtn.addEventListener('click', function () {
    var sheet = document.createElement('style');
    sheet.media = 'print';
    sheet.textContent =
      'body > *:not(#ieum-print) { display: none !important; }' +
      '#ieum-print { display: block !important; font: 12pt/1.5 sans-serif; color: #000; }' +
      '#ieum-print h1 { font-size: 18pt; } #ieum-print h2 { font-size: 13pt; margin: 14pt 0 4pt; }';
    var copy = planPage(document);
    copy.id = 'ieum-print';
    copy.setAttribute('lang', st.lang);
    copy.style.display = 'none';
    document.head.appendChild(sheet);
    document.body.appendChild(copy);
    var done = false;
    function cleanup() {
      if (done) return;
      done = true;
      sheet.remove();
      copy.remove();
      window.removeEventListener('afterprint', cleanup);
      planPrintBtn.focus();
    }
    window.addEventListener('afterprint', cleanup);
    window.print();
    setTimeout(cleanup, 1000);
  });

  function escapeHtml(x) {
    return String(x).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }

  // Save: a small standalone HTML file (no scripts), downloaded through a Blob.
  planSaveBtn.addEventListener('click', function () {
    var body = '<h1>' + escapeHtml(t('planTitle')) + '</h1>';
    (planSteps || []).forEach(function (s) {
      body += '<h2>' + escapeHtml(s.title) + '</h2><ul>';
      var items = s.items || [];
      if (!items.length) body += '<li>—</li>';
      items.forEach(function (x) { body += '<li>' + escapeHtml(x) + '</li>'; });
      body += '</ul>';
    });
    body += '<p><strong>' + escapeHtml(t('planHelp')) + '</strong></p>';
    var html = '<!doctype html><html lang="' + st.lang + '"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>' + escapeHtml(t('planDocTitle')) + '</title>' +
      '<style>body{font:16px/1.6 sans-serif;max-width:40em;margin:1em auto;padding:0 1em;color:#111}' +
      'h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .3em}</style></head><body>' +
      body + '</body></html>';
    var blob = new Blob([html], { type: 'text/html;charset=utf-8' });
    var url = URL.createObjectURL(blob);
    var a = document.createElement('a');
    a.href = url;
    a.download = st.lang === 'ko' ? 'ieum-안전계획.html' : 'ieum-safety-plan.html';
    a.style.display = 'none';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  });

  function renderRating() {
    rating.textContent = '';
    var showIt = st.closed && st.closed.by === 'counselor' && !st.closed.rated;
    rating.hidden = !showIt;
    if (!showIt) return;
    var q = el('p', 'rate-ask', t('rateAsk'));
    q.id = 'ieum-rate-ask';
    rating.setAttribute('aria-labelledby', 'ieum-rate-ask');
    rating.appendChild(q);
    for (var n = 1; n <= 5; n++) {
      (function (n) {
        var b = el('button', 'rate', String(n));
        b.type = 'button';
        b.setAttribute('aria-label', t('rateLabel')(n));
        b.addEventListener('click', function () {
          send({ type: 'rating', value: n });
          st.closed.rated = true;
          persist();
          renderRating();
        });
        rating.appendChild(b);
      })(n);
    }
  }

  var bannerTimer = null;
  function showBanner(key, text) {
    banner.dataset.key = key;
    banner.textContent = '';
    banner.appendChild(linkify(text || t(key)));
    banner.hidden = false;
  }
  function hideBanner() {
    delete banner.dataset.key;
    banner.hidden = true;
    banner.textContent = '';
  }

  function updateCounter() {
    var n = codePoints(input.value);
    if (n > MAX_CHARS) counter.textContent = t('charsOver')(n - MAX_CHARS);
    else if (n > MAX_CHARS - 200) counter.textContent = t('charsLeft')(MAX_CHARS - n);
    else counter.textContent = '';
    counter.classList.toggle('over', n > MAX_CHARS);
    if (n <= MAX_CHARS && inputErr.dataset.key === 'tooLong') hideInputError();
  }

  // The explanation beside the box, until the text is short enough.
  function showInputError(key) {
    inputErr.dataset.key = key;
    inputErr.textContent = t(key);
    inputErr.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'ieum-counter ieum-input-err');
  }
  function hideInputError() {
    delete inputErr.dataset.key;
    inputErr.hidden = true;
    inputErr.textContent = '';
    input.removeAttribute('aria-invalid');
    input.setAttribute('aria-describedby', 'ieum-counter');
  }

  function setEndedUi(ended) {
    panel.classList.toggle('ended', ended);
    form.hidden = ended;
    humanBtn.hidden = ended;
    endBtn.hidden = ended && !st.conversationId;
    newBtn.hidden = !ended;
  }

  // ---- pending messages ----
  function findPending(id) {
    for (var i = 0; i < st.pending.length; i++) if (st.pending[i].id === id) return st.pending[i];
    return null;
  }
  function dropPending(id) {
    st.pending = st.pending.filter(function (p) { return p.id !== id; });
    persist();
  }
  function newId() {
    var b = new Uint8Array(9);
    (window.crypto || window.msCrypto).getRandomValues(b);
    return 'w' + Date.now().toString(36) + Array.prototype.map.call(b, function (x) { return (x & 15).toString(16); }).join('');
  }

  function transmit(p) {
    if (!connected) { setStatus(myBubble(p), p.state = 'queued'); persist(); return; }
    if (send({ type: 'message', id: p.id, text: p.text })) {
      p.state = 'sent';
      p.error = null;
    } else {
      p.state = 'queued';
    }
    persist();
    setStatus(myBubble(p), p.state);
  }

  function submitText(text) {
    if (!text || !text.trim()) return false;
    if (st.closed || stopped) startNew();
    var p = { id: newId(), text: text, state: 'queued', error: null };
    st.pending.push(p);
    persist();
    myBubble(p);
    setQuickReplies([]);
    transmit(p);
    ensureConnected();
    return true;
  }

  function retry(id) {
    var p = findPending(id);
    if (!p) return;
    p.state = 'queued';
    p.error = null;
    transmit(p);
    ensureConnected();
  }

  function editBack(id) {
    var p = findPending(id);
    if (!p) return;
    var li = myBubble(p);
    li.remove();
    dropPending(id);
    input.value = input.value ? input.value + '\n' + p.text : p.text;
    updateCounter();
    input.focus();
  }

  function resendUnacked() {
    resendTimer = null;
    st.pending.forEach(function (p) {
      if (p.state === 'queued' || p.state === 'sent') transmit(p);
    });
  }

  function askHuman() {
    if (wantHuman && send({ type: 'request_human' })) {
      wantHuman = false;
      notice(t('humanSent'));
    }
  }

  // ---- the socket ----
  function send(obj) {
    if (!ws || ws.readyState !== 1) return false;
    try { ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
  }

  function ensureConnected() {
    if (stopped || ws || retryTimer) return;
    connect();
  }

  function connect() {
    retryTimer = null;
    if (stopped) return;
    var resume = !!(st.conversationId && st.token);
    var url = WS_URL + '?lang=' + st.lang + (resume ? '&resume=1' : '');
    var sock;
    try { sock = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = function () {
      if (sock !== ws) return;
      if (resume) sock.send(JSON.stringify({ type: 'resume', conversation_id: st.conversationId, token: st.token, last_seq: lastSeq }));
    };
    sock.onmessage = function (ev) {
      if (sock !== ws) return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    sock.onclose = function (ev) {
      if (sock !== ws) return;
      ws = null;
      connected = false;
      if (resendTimer) { clearTimeout(resendTimer); resendTimer = null; }
      refreshStatuses();
      if (stopped) return;
      if (!busy) showBanner(navigator.onLine === false ? 'offline' : 'reconnecting');
      scheduleReconnect(ev && ev.code === 1013 ? 3000 : 0);
    };
  }

  function scheduleReconnect(minDelay) {
    if (retryTimer || stopped) return;
    var base = Math.min(15000, 500 * Math.pow(2, attempt));
    attempt++;
    var delay = Math.max(minDelay || 0, base / 2 + Math.random() * base / 2);
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener('online', function () {
    if (!ws && retryTimer && !stopped) { clearTimeout(retryTimer); retryTimer = null; attempt = 0; connect(); }
  });
  window.addEventListener('offline', function () { if (!connected) showBanner('offline'); });

  function markSeen(seq) {
    if (seq == null) return false;
    if (seen[seq]) return true;
    seen[seq] = true;
    if (seq > lastSeq) lastSeq = seq;
    return false;
  }

  function resetConversationView() {
    log.textContent = '';
    seen = {};
    lastSeq = 0;
    queueInfo = null;
    queueOpen = false;
    renderQueue();
    planSteps = null;
    st.plan = null;
    renderPlan();
    setQuickReplies([]);
  }

  function onFrame(f) {
    if (resendTimer) { clearTimeout(resendTimer); resendTimer = setTimeout(resendUnacked, 300); }
    switch (f.type) {
      case 'welcome': {
        connected = true;
        attempt = 0;
        busy = false;
        hideBanner();
        var fresh = !f.resumed;
        if (fresh && st.conversationId && st.conversationId !== f.conversation_id) {
          // The earlier conversation could not be resumed: a new one has started.
          resetConversationView();
          st.closed = null;
          notice(t('resumeFailed'));
        }
        st.conversationId = f.conversation_id;
        st.token = f.token; // rotated on every welcome
        if (f.greeting) st.greeting = f.greeting;
        persist();
        if (fresh && f.greeting && !log.querySelector('li.greeting')) {
          var g = addItem('bot greeting', t('bot'), f.greeting.text, null, f.greeting.resources);
          g.dataset.greeting = '1';
          if (!st.pending.length) setQuickReplies(f.greeting.quick_replies);
        } else if (!f.resumed) {
          setQuickReplies([]);
        }
        setEndedUi(!!st.closed);
        refreshStatuses();
        askHuman();
        if (f.resumed) {
          // Wait for the replay (it follows the welcome at once), then re-send only what
          // the server neither acknowledged nor replayed.
          resendTimer = setTimeout(resendUnacked, 300);
        } else {
          resendUnacked();
        }
        break;
      }
      case 'ack': {
        markSeen(f.seq);
        var p = findPending(f.id);
        var li = log.querySelector('li.me[data-id="' + cssEscape(f.id) + '"]');
        if (li) { li.dataset.seq = String(f.seq); setStatus(li, 'saved'); }
        if (p) dropPending(f.id);
        break;
      }
      case 'message': {
        // Our own message, replayed after a resume.
        var mine = findPending(f.id);
        var existing = log.querySelector('li.me[data-id="' + cssEscape(f.id) + '"]');
        if (markSeen(f.seq) && existing) break;
        if (!existing) {
          existing = myBubble({ id: f.id, text: f.text });
          if (!mine) {
            // Re-order: a replayed message belongs before anything pending.
            var firstPending = st.pending.length ? log.querySelector('li.me[data-id="' + cssEscape(st.pending[0].id) + '"]') : null;
            if (firstPending) log.insertBefore(existing, firstPending);
          }
        }
        existing.dataset.seq = String(f.seq);
        setStatus(existing, 'saved');
        if (mine) dropPending(f.id);
        setQuickReplies([]); // replies offered before it were answered
        break;
      }
      case 'bot':
        if (markSeen(f.seq)) break;
        addItem('bot', t('bot'), f.text, f.seq, f.resources);
        setQuickReplies(f.quick_replies);
        break;
      case 'safety':
        // An unsaved safety answer (the store refused the write) is not in the transcript
        // and reuses the last stored seq: show it, never de-duplicate it by seq.
        if (f.unsaved) { addItem('bot safety', t('bot'), f.text, null, f.resources); break; }
        if (markSeen(f.seq)) break;
        addItem('bot safety', t('bot'), f.text, f.seq, f.resources);
        break;
      case 'queue':
        // Keeps the quick replies: the holding line just before it offers some (keep
        // waiting / talk meanwhile); the next bot line or message replaces them.
        queueInfo = f;
        renderQueue();
        break;
      case 'counselor_joined':
        queueInfo = null;
        renderQueue();
        if (markSeen(f.seq)) break;
        // A change of person (a supervisor took over) is said plainly, in the server's words.
        var j = notice(f.changed && f.text ? f.text : t('joined'), f.changed ? 'joined changed' : 'joined');
        j.dataset.seq = String(f.seq);
        setQuickReplies([]);
        break;
      case 'counselor':
        if (markSeen(f.seq)) break;
        addItem('counselor', t('counselor'), f.text, f.seq);
        break;
      case 'closed':
        queueInfo = null;
        renderQueue();
        if (markSeen(f.seq)) break;
        var c = notice(t('closedBy')[f.by] || t('closedBy').citizen, 'closed');
        c.dataset.seq = String(f.seq);
        setQuickReplies([]);
        if (!st.closed) st.closed = { by: f.by, rated: false };
        persist();
        renderRating();
        setEndedUi(true);
        break;
      case 'safety_plan':
        onPlan(f.steps);
        break;
      case 'error':
        onError(f);
        break;
      default:
        break;
    }
  }

  function onError(f) {
    if (f.id) {
      var p = findPending(f.id);
      if (!p) return;
      p.state = 'failed';
      p.error = f.code;
      persist();
      setStatus(myBubble(p), 'failed', errorText(f.code, f.message));
      if (f.code === 'message_too_long' && !input.value) {
        // Keep the text: put it back where it can be shortened, with the reason beside it.
        editBack(f.id);
        showInputError('tooLong');
      }
      return;
    }
    if (f.code === 'server_busy' || f.code === 'unavailable') {
      busy = true;
      showBanner('busy', f.message);
    } else if (f.code === 'resume_failed') {
      // A welcome for a new conversation follows (handled there).
    } else if (f.code === 'conversation_closed') {
      if (!st.closed) st.closed = { by: 'timeout', rated: true };
      persist();
      setEndedUi(true);
      notice(t('closedErr'));
    }
  }

  // ---- the screen ----
  // On a phone the panel is full-screen. It follows the visual viewport: when the soft
  // keyboard opens (on Android the layout viewport keeps its height), the panel takes the
  // visible height and offset, and turns compact when that is short. A pinch-zoom is left
  // alone (the person wants things bigger, not squeezed back into view).
  var COMPACT_BELOW = 560;
  var phoneMq = window.matchMedia ? window.matchMedia('(max-width: 480px)') : null;
  function fullScreen() { return !!(phoneMq && phoneMq.matches); }
  function fitViewport() {
    var vv = window.visualViewport;
    var full = fullScreen();
    var h;
    if (full && vv && vv.height > 0 && Math.abs((vv.scale || 1) - 1) < 0.01) {
      panel.style.top = Math.max(0, vv.offsetTop) + 'px';
      panel.style.bottom = 'auto';
      panel.style.height = vv.height + 'px';
      h = vv.height;
    } else {
      panel.style.top = '';
      panel.style.bottom = '';
      panel.style.height = '';
      h = full ? window.innerHeight : Math.min(680, window.innerHeight - 40);
    }
    wrap.classList.toggle('compact', h < COMPACT_BELOW);
    setPlaceholder();
    if (full) panel.setAttribute('aria-modal', 'true');
    else panel.removeAttribute('aria-modal');
    if (!wrap.classList.contains('compact')) setMenu(false);
    keepNewest();
  }
  if (window.visualViewport) {
    window.visualViewport.addEventListener('resize', fitViewport);
    window.visualViewport.addEventListener('scroll', fitViewport);
  }
  window.addEventListener('resize', fitViewport);

  // Full-screen, the panel is modal: Tab and Shift+Tab stay inside it.
  function focusables() {
    return Array.prototype.filter.call(
      panel.querySelectorAll('a[href], button, textarea, input, select, summary, [tabindex]'),
      function (n) {
        return !n.disabled && n.tabIndex >= 0 && n.getClientRects().length > 0;
      });
  }
  function trapTab(e) {
    if (!fullScreen() || panel.hidden) return;
    var list = focusables();
    if (!list.length) return;
    var first = list[0];
    var last = list[list.length - 1];
    var at = root.activeElement;
    if (e.shiftKey && (at === first || list.indexOf(at) < 0)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (at === last || list.indexOf(at) < 0)) {
      e.preventDefault();
      first.focus();
    }
  }

  // A phone's keyboard has no Shift+Enter to explain, and a one-line box no room.
  function setPlaceholder() {
    input.placeholder = t(fullScreen() || wrap.classList.contains('compact') ? 'placeholderShort' : 'placeholder');
  }

  function setMenu(open) {
    actions.classList.toggle('open', open);
    menuBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  // ---- actions ----
  function openPanel() {
    st.open = true;
    persist();
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    launcher.hidden = true;
    fitViewport();
    ensureConnected();
    setTimeout(function () { (form.hidden ? newBtn : input).focus(); }, 0);
  }
  function closePanel() {
    st.open = false;
    persist();
    setMenu(false);
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute('aria-expanded', 'false');
    launcher.focus();
  }

  function endAndForget() {
    if (!window.confirm(t('endConfirm'))) return;
    send({ type: 'close' });
    stopped = true;
    var old = ws;
    ws = null;
    connected = false;
    if (old) setTimeout(function () { try { old.close(1000, 'bye'); } catch (e) { /* ignore */ } }, 300);
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (resendTimer) { clearTimeout(resendTimer); resendTimer = null; }
    forget();
    st.conversationId = null;
    st.token = null;
    st.greeting = null;
    st.pending = [];
    st.closed = null;
    resetConversationView();
    hideBanner();
    input.value = '';
    updateCounter();
    rating.hidden = true;
    notice(t('ended'));
    setEndedUi(true);
    endBtn.hidden = true;
    newBtn.focus();
  }

  function startNew() {
    stopped = false;
    if (ws) { var old = ws; ws = null; try { old.close(1000, 'new chat'); } catch (e) { /* ignore */ } }
    connected = false;
    st.conversationId = null;
    st.token = null;
    st.greeting = null;
    st.closed = null;
    persist();
    resetConversationView();
    setEndedUi(false);
    rating.hidden = true;
    ensureConnected();
  }

  launcher.addEventListener('click', openPanel);
  minBtn.addEventListener('click', closePanel);
  panel.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') {
      if (actions.classList.contains('open')) { setMenu(false); menuBtn.focus(); } else closePanel();
    } else if (e.key === 'Tab') {
      trapTab(e);
    }
  });
  panel.addEventListener('click', function (e) {
    // A tap elsewhere closes the menu.
    if (actions.classList.contains('open') && !actions.contains(e.target) && !menuBtn.contains(e.target)) setMenu(false);
  });
  menuBtn.addEventListener('click', function () {
    var open = !actions.classList.contains('open');
    setMenu(open);
    if (open) {
      var first = focusables().filter(function (n) { return actions.contains(n); })[0];
      if (first) first.focus();
    }
  });
  langBtn.addEventListener('click', function () {
    st.lang = st.lang === 'ko' ? 'en' : 'ko';
    persist();
    applyLang();
    // Nothing said yet: start over so the greeting is in the chosen language.
    if (st.conversationId && lastSeq === 0 && !st.pending.length && !st.closed) {
      send({ type: 'close' });
      startNew();
    }
  });
  humanBtn.addEventListener('click', function () {
    if (actions.classList.contains('open')) { setMenu(false); input.focus(); }
    if (st.closed || stopped) startNew();
    wantHuman = true;
    ensureConnected();
    if (connected) askHuman();
  });
  endBtn.addEventListener('click', function () {
    var wasMenu = actions.classList.contains('open');
    setMenu(false);
    endAndForget();
    if (!stopped && wasMenu) menuBtn.focus(); // not ended: back where the person was
  });
  newBtn.addEventListener('click', function () { startNew(); input.focus(); });
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    if (codePoints(input.value) > MAX_CHARS) {
      // Refused here (the server would refuse it too): the text stays, with the reason.
      showInputError('tooLong');
    } else if (submitText(input.value)) {
      input.value = '';
      updateCounter();
    }
    input.focus();
  });
  input.addEventListener('keydown', function (e) {
    // Never send in the middle of composing Hangul (IME).
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });
  input.addEventListener('input', updateCounter);

  // ---- boot ----
  applyLang();
  if (st.greeting && st.conversationId) {
    var g0 = addItem('bot greeting', t('bot'), st.greeting.text, null, st.greeting.resources);
    g0.dataset.greeting = '1';
  }
  st.pending.forEach(function (p) {
    if (p.state === 'sent') p.state = 'queued';
    myBubble(p);
  });
  refreshStatuses();
  if (st.closed) { renderRating(); setEndedUi(true); }
  (document.body || document.documentElement).appendChild(host);
  if (st.open) openPanel();
  else if (st.conversationId || st.pending.length) ensureConnected();

  // A small public handle (embedding sites and tests).
  window.IeumWidget = {
    open: openPanel,
    close: closePanel,
    /** Drops the socket as a network failure would (tests). */
    dropConnection: function () { if (ws) ws.close(4000, 'dropped'); },
    state: function () {
      return {
        connected: connected,
        conversationId: st.conversationId,
        lastSeq: lastSeq,
        pending: st.pending.map(function (p) { return { id: p.id, state: p.state }; }),
        seqs: Object.keys(seen).map(Number).sort(function (a, b) { return a - b; })
      };
    }
  };
})();
