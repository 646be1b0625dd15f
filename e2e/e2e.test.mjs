// ieum's pages in a real browser: playwright-core driving Debian's /usr/bin/chromium
// (Playwright's own browser download cannot work on our machines; playwright-core brings
// no browser and drives any Chromium through the DevTools protocol).
//
//   IEUM_BIN=target/debug/ieum node --test e2e/e2e.test.mjs
//
// Builds nothing: it is given the binary. It creates staff accounts with `ieum staff add`
// (before serving: sled allows one process), starts `ieum serve` on a free port with a
// temporary data directory, and always stops it at the end. Screenshots go to
// artifacts/e2e/ (IEUM_SCREENSHOTS_TO=docs also writes the README's docs/*.png).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(ROOT, process.env.IEUM_BIN || 'target/debug/ieum');
const CHROMIUM = process.env.IEUM_CHROMIUM || '/usr/bin/chromium';
const ART = path.join(ROOT, 'artifacts', 'e2e');
const DOCS = process.env.IEUM_SCREENSHOTS_TO ? path.resolve(ROOT, process.env.IEUM_SCREENSHOTS_TO) : null;
const PASSWORD = 'a long password for e2e';
const STEP = 15_000; // the longest any single wait may take

let server;
let serverLog = '';
let dataDir;
let base;
let browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function staffAdd(name, role) {
  const r = spawnSync(BIN, ['staff', 'add', name, '--role', role, '--data-dir', dataDir], {
    input: PASSWORD + '\n',
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `ieum staff add ${name}: ${r.stderr}`);
}

async function waitHealthy(url, ms) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch { /* not up yet */ }
    if (server.exitCode !== null) throw new Error(`ieum serve exited ${server.exitCode}:\n${serverLog}`);
    if (Date.now() > end) throw new Error(`ieum serve not healthy after ${ms} ms:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    const s = server;
    setTimeout(() => { if (s.exitCode === null) s.kill('SIGKILL'); }, 5_000).unref();
  }
}
process.on('exit', () => { if (server && server.exitCode === null) server.kill('SIGKILL'); });

async function shot(page, name, opts = {}) {
  fs.mkdirSync(ART, { recursive: true });
  const file = path.join(ART, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  if (DOCS && ['widget', 'console', 'supervisor'].includes(name)) {
    fs.mkdirSync(DOCS, { recursive: true });
    fs.copyFileSync(file, path.join(DOCS, `${name}.png`));
  }
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `no ieum binary at ${BIN} (cargo build first)`);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ieum-e2e-'));
  staffAdd('kim', 'counselor');
  staffAdd('boss', 'supervisor');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, [
    'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir,
    '--rules', path.join(ROOT, 'escalation-rules.toml'), '--intents', path.join(ROOT, 'intents'),
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { serverLog += d; });
  server.stderr.on('data', (d) => { serverLog += d; });
  await waitHealthy(`${base}/healthz`, 20_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
});

after(async () => {
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  stopServer();
  if (server && server.exitCode === null) {
    await new Promise((r) => { server.once('exit', r); setTimeout(r, 6_000).unref(); });
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** `opts` go to the context (e.g. bypassCSP: true, for injecting axe-core). */
async function newPage(viewport, opts = {}) {
  const context = await browser.newContext({ viewport, locale: 'ko-KR', timezoneId: 'Asia/Seoul', ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    // A 401 from /api/me before logging in is expected.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
  });
  return { context, page, errors };
}

async function staffLogin(page, pathName, user) {
  await page.goto(base + pathName);
  await page.getByLabel('아이디', { exact: true }).fill(user);
  await page.getByLabel('비밀번호', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: '로그인' }).click();
  await page.locator('#app').waitFor({ state: 'visible' });
}

/** Opens the widget on the demo page and waits for the greeting. */
async function openWidget(page) {
  await page.goto(base + '/');
  await page.getByRole('button', { name: /이음 채팅 열기/ }).click();
  await page.locator('.msg.bot.greeting').waitFor();
  await page.waitForFunction(() => window.IeumWidget.state().connected);
}

async function say(page, text) {
  const box = page.getByLabel('메시지 입력');
  await box.fill(text);
  await box.press('Enter');
}

async function allSaved(page, n) {
  await page.waitForFunction((n) => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    const mine = root.querySelectorAll('li.me');
    return mine.length === n && Array.from(mine).every((li) => li.dataset.state === 'saved');
  }, n, { timeout: STEP });
}

async function myMessages(page) {
  return page.evaluate(() => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    return Array.from(root.querySelectorAll('li.me')).map((li) => ({
      text: li.querySelector('.bubble').textContent,
      seq: Number(li.dataset.seq),
      state: li.dataset.state,
    }));
  });
}

let story = {};

test('the story: citizen → triage → counselor → reply → supervisor replay', { timeout: 90_000 }, async () => {
  const citizen = await newPage({ width: 360, height: 740 });
  const cp = citizen.page;
  await openWidget(cp);

  // The emergency strip is always there, with tap-to-call links.
  assert.equal(await cp.getByRole('link', { name: /109/ }).first().getAttribute('href'), 'tel:109');
  assert.equal(await cp.getByRole('link', { name: /119/ }).first().getAttribute('href'), 'tel:119');

  const risky = '요즘 너무 힘들어서 죽고 싶어요';
  await say(cp, risky);
  await allSaved(cp, 1);
  // Safety reply with resource cards (tap-to-call), then the queue status.
  await cp.locator('.msg.bot .card-call[href="tel:109"]').first().waitFor();
  await cp.locator('.queue .queue-pos').waitFor();
  const queueText = await cp.locator('.queue').textContent();
  assert.match(queueText, /대기/);
  const conv = (await cp.evaluate(() => window.IeumWidget.state())).conversationId;
  assert.ok(conv);

  // A counselor logs in and sees it at the top of the queue with the rule named.
  const counselor = await newPage({ width: 1280, height: 1000 });
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'kim');
  const top = kp.locator('#queue > li').first();
  await top.waitFor();
  assert.equal(await top.getAttribute('data-id'), conv);
  assert.match(await top.locator('.rules').textContent(), /ideation/);
  assert.match(await top.locator('.badge').first().textContent(), /높음|긴급/);
  assert.ok(await top.locator('mark.hit').count() > 0, 'the triggering words are highlighted');
  await top.getByRole('button', { name: /맡기/ }).click();

  // Claimed: a tab with the transcript, the triggering words highlighted, the rule named.
  const panel = kp.locator(`#panel-${conv}`);
  await panel.locator('.ev-citizen mark.hit').first().waitFor();
  const hit = await panel.locator('.ev-citizen mark.hit').first().textContent();
  assert.ok(risky.includes(hit) && hit.length > 0, `highlight "${hit}" is part of the message`);
  assert.match(await panel.locator('.ev-citizen .rules').first().textContent(), /ideation/);
  // Canned snippets and resources came from the data files.
  assert.ok(await panel.locator('select.canned option').count() > 0);
  assert.ok(await panel.locator('select.res option').count() > 0);

  // The citizen is told a counselor joined.
  await cp.locator('.notice.joined').waitFor();

  const reply = '안녕하세요, 상담사예요. 이야기해 줘서 고마워요. 지금 어떤 마음인지 더 들려줄 수 있어요?';
  await panel.getByLabel('답장').fill(reply);
  await panel.getByLabel('답장').press('Enter');
  await panel.locator('.ev-counselor').waitFor();

  // The citizen sees the counselor, styled apart from the bot.
  await cp.locator('.msg.counselor .bubble', { hasText: '상담사예요' }).waitFor();
  await say(cp, '고마워요. 조금 이야기하고 싶어요');
  await allSaved(cp, 2);
  await panel.locator('.ev-citizen', { hasText: '조금 이야기하고 싶어요' }).waitFor();

  // An imminent arrival raises a visual alert and a beep on the console.
  const second = await newPage({ width: 390, height: 800 });
  await openWidget(second.page);
  await say(second.page, '유서를 써 놨어요');
  await kp.locator('#alert').waitFor({ state: 'visible' });
  const urgentTop = kp.locator('#queue > li').first();
  await urgentTop.locator('.q-top .badge.level-imminent').waitFor();
  assert.match(await urgentTop.locator('.rules').textContent(), /farewell/);
  assert.ok(await kp.evaluate(() => window.__ieumBeeps || 0) >= 1, 'a Web Audio beep');

  await shot(cp, 'widget');
  await kp.evaluate(() => document.querySelectorAll('.transcript').forEach((t) => { t.scrollTop = 0; }));
  await shot(kp, 'console');

  // The supervisor replays it: both sides and the triage annotation.
  const sup = await newPage({ width: 1280, height: 900 });
  const sp = sup.page;
  await staffLogin(sp, '/supervisor', 'boss');
  const row = sp.locator(`#conv-table tr[data-id="${conv}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: /다시 보기/ }).click();
  const timeline = sp.locator('#timeline');
  await timeline.locator('.ev-citizen mark.hit').first().waitFor();
  assert.match(await timeline.locator('.ev-citizen .rules').first().textContent(), /ideation/);
  assert.match(await timeline.locator('.ev-counselor').first().textContent(), /상담사예요/);
  assert.match(await timeline.textContent(), /상담사 kim 참여/);
  assert.match(await timeline.textContent(), /대기열/);

  // Step through with the keyboard, then play at 20×.
  const total = await timeline.locator('> li').count();
  await timeline.focus();
  await sp.keyboard.press('ArrowLeft');
  assert.equal(await timeline.locator('> li:visible').count(), total - 1);
  await sp.keyboard.press('Home');
  assert.equal(await timeline.locator('> li:visible').count(), 0);
  await sp.keyboard.press('ArrowRight');
  assert.equal(await timeline.locator('> li:visible').count(), 1);
  await sp.getByRole('radio', { name: '20×' }).click();
  await sp.locator('#play').click();
  await sp.waitForFunction((n) => document.querySelectorAll('#timeline > li:not([hidden])').length === n, total, { timeout: STEP });

  // Export links point at the redacting endpoint; the file comes back.
  const href = await sp.locator('#export-json').getAttribute('href');
  assert.equal(href, `/api/conversations/${conv}/export?format=json`);
  const exp = await sp.request.get(base + href);
  assert.equal(exp.status(), 200, `export: ${exp.status()}`);
  const exported = await exp.json();
  assert.ok(exported.events.some((e) => e.type === 'citizen'), 'the export holds the transcript');
  story.exportStatus = exp.status();

  await sp.evaluate(() => { window.scrollTo(0, 0); document.getElementById('timeline').scrollTop = 0; });
  await shot(sp, 'supervisor');

  // Live board and audit log.
  await sp.getByRole('button', { name: '실시간 현황' }).click();
  await sp.locator('#level-table tbody tr').first().waitFor();
  await sp.getByRole('button', { name: '감사 기록' }).click();
  await sp.locator('#audit-table tbody tr', { hasText: 'read_transcript' }).first().waitFor();

  // The counselor closes with an outcome; the citizen may rate 1–5.
  await panel.getByLabel('종료 결과').selectOption('resolved');
  await panel.getByRole('button', { name: '대화 종료' }).click();
  await panel.locator('.conv-ended').waitFor({ state: 'visible' });
  await cp.locator('.notice.closed').waitFor();
  await cp.getByRole('button', { name: '5점' }).click();
  await cp.locator('.rating').waitFor({ state: 'hidden' });
  let meta = null;
  for (const end = Date.now() + STEP; Date.now() < end;) {
    meta = (await (await sp.request.get(`${base}/api/conversations/${conv}`)).json()).conversation;
    if (meta.rating === 5) break;
    await sp.waitForTimeout(100);
  }
  assert.equal(meta.outcome, 'resolved');
  assert.equal(meta.rating, 5, JSON.stringify(meta));

  for (const p of [citizen, counselor, sup, second]) {
    assert.deepEqual(p.errors, [], 'no script errors');
    await p.context.close();
  }
});

test('a dropped connection loses nothing and doubles nothing', { timeout: 90_000 }, async () => {
  const citizen = await newPage({ width: 390, height: 800 });
  const { page, context } = citizen;
  await openWidget(page);
  const sent = [];
  const talk = async (text) => { sent.push(text); await say(page, text); };

  await talk('안녕하세요');
  await allSaved(page, 1);

  // The network goes away: the widget says so, and keeps what is typed.
  await context.setOffline(true);
  await page.evaluate(() => window.IeumWidget.dropConnection());
  await page.locator('.banner').waitFor({ state: 'visible' });
  await talk('요즘 잠이 잘 안 와요');
  await talk('밤에 혼자 있으면 외로워요');
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ieum:widget:' + location.origin)));
  assert.equal(stored.pending.length, 2, 'unsent messages are kept in sessionStorage');
  await context.setOffline(false);
  await allSaved(page, 3);
  await page.locator('.banner').waitFor({ state: 'hidden' });

  // The socket drops right after a message went out (its ack may be lost): after the
  // resume, the server's replay or a re-send saves it, exactly once.
  sent.push('친구가 별로 없어요');
  await page.evaluate((text) => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    root.getElementById('ieum-input').value = text;
    root.querySelector('form.compose').requestSubmit();
    window.IeumWidget.dropConnection();
  }, sent[sent.length - 1]);
  await allSaved(page, 4);

  // A reload of the page resumes the same conversation and renders it once.
  await page.reload();
  await page.locator('.msg.bot.greeting').waitFor();
  await allSaved(page, 4);
  await talk('고마워요');
  await allSaved(page, 5);

  const mine = await myMessages(page);
  assert.deepEqual(mine.map((m) => m.text), sent, 'every message once, in order');
  const seqs = await page.evaluate(() => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    return Array.from(root.querySelectorAll('[data-seq]')).map((n) => Number(n.dataset.seq));
  });
  assert.equal(new Set(seqs).size, seqs.length, `no seq rendered twice: ${seqs}`);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'rendered in seq order');

  // The server's transcript, read as the supervisor, holds each message exactly once.
  const conv = (await page.evaluate(() => window.IeumWidget.state())).conversationId;
  const sup = await newPage({ width: 1280, height: 900 });
  await staffLogin(sup.page, '/supervisor', 'boss');
  const t = await (await sup.page.request.get(`${base}/api/conversations/${conv}`)).json();
  const texts = t.events.filter((e) => e.type === 'citizen').map((e) => e.text);
  assert.deepEqual(texts, sent, 'the server stored every message exactly once');

  assert.deepEqual(citizen.errors.filter((e) => !/WebSocket|ERR_INTERNET_DISCONNECTED/.test(e)), []);
  await context.close();
  await sup.context.close();
});

test('errors in plain words, the text kept; English one tap away; end and forget', { timeout: 90_000 }, async () => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  await openWidget(page);

  // Too long: the server refuses it; the text goes back into the box.
  const long = '가'.repeat(2001);
  await say(page, long);
  await page.waitForFunction(() => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    return root.getElementById('ieum-input').value.length === 2001 && !root.querySelector('li.me');
  });
  assert.equal(await page.getByLabel('메시지 입력').inputValue(), long);
  assert.match(await page.locator('.counter').textContent(), /초과/);
  await page.getByLabel('메시지 입력').fill('');

  // English.
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await page.getByRole('link', { name: /109 Suicide prevention/ }).waitFor();
  await page.locator('.actions').getByRole('button', { name: 'Talk to a counselor' }).waitFor();
  await shot(page, 'widget-en');
  await page.getByRole('button', { name: '한국어로 바꾸기' }).click();

  // Ask for a human at any time: the queue status shows.
  await page.locator('.actions').getByRole('button', { name: '상담사와 이야기하기' }).click();
  await page.locator('.queue .queue-pos').waitFor();

  // End and forget: close is sent, sessionStorage cleared, the panel reset.
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: '대화 종료 및 기록 지우기' }).click();
  await page.getByRole('button', { name: '새 대화 시작하기' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ieum:widget:' + location.origin)), null);
  assert.equal(await page.locator('li.msg').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

// ---- the widget on a phone, and accessibility ----

/** Two animation frames: layout, resize observers and scrolling have run. */
async function settle(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/**
 * Where things are on the visible screen (the visual viewport): the log's visible height,
 * the newest item, the message box, and the 109 / 119 tel: links outside the log.
 */
async function phoneLayout(page) {
  return page.evaluate(() => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    const vv = window.visualViewport;
    const top = vv.offsetTop;
    const bottom = vv.offsetTop + vv.height;
    const log = root.querySelector('[role="log"]');
    const lr = log.getBoundingClientRect();
    const items = log.querySelectorAll('li.msg, li.notice');
    const newest = items[items.length - 1];
    const nr = newest.getBoundingClientRect();
    const inView = (r) => r.width > 0 && r.height > 0 && r.top >= top - 0.5 && r.bottom <= bottom + 0.5 &&
      r.left >= -0.5 && r.right <= window.innerWidth + 0.5;
    const reach = (n) => {
      const links = Array.from(root.querySelectorAll(`a[href="tel:${n}"]`)).filter((a) => !log.contains(a));
      return links.some((a) => {
        const r = a.getBoundingClientRect();
        if (!inView(r)) return false;
        const hit = root.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !!hit && (hit === a || a.contains(hit));
      });
    };
    const input = root.getElementById('ieum-input').getBoundingClientRect();
    return {
      visible: vv.height,
      log: Math.max(0, Math.min(lr.bottom, bottom) - Math.max(lr.top, top)),
      newestTopShown: nr.top >= lr.top - 1 && nr.top < lr.bottom,
      newestFits: nr.height <= lr.height,
      newestBottomShown: nr.bottom <= lr.bottom + 1,
      inputInView: inView(input),
      tel109: reach('109'),
      tel119: reach('119'),
    };
  });
}

function assertPhoneLayout(l, what) {
  assert.ok(l.log >= l.visible / 2, `${what}: the log is ${l.log}px of ${l.visible}px visible (at least half)`);
  assert.ok(l.tel109, `${what}: a tel:109 link outside the log is on screen and tappable`);
  assert.ok(l.tel119, `${what}: a tel:119 link outside the log is on screen and tappable`);
  assert.ok(l.inputInView, `${what}: the message box is on screen`);
  assert.ok(l.newestTopShown, `${what}: the newest item is in view (its top)`);
  if (l.newestFits) assert.ok(l.newestBottomShown, `${what}: the newest item fits and is shown whole`);
}

/** Asks for a counselor from the actions and waits for the queue status. */
async function waitInQueue(page) {
  await page.locator('.actions').getByRole('button', { name: '상담사와 이야기하기' }).click();
  await page.locator('.queue .queue-pos').waitFor();
}

test('on a phone, waiting for a counselor: the log keeps half the screen, 109 and 119 in reach', { timeout: 60_000 }, async (t) => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  await openWidget(page);
  await waitInQueue(page);
  // Nobody is online: the holding line says so (and offers two replies, checked below).
  const holding = page.locator('.msg.bot', { hasText: '상담사 선생님이 없어요' }).last();
  await holding.waitFor();
  await page.locator('.quick .qr').first().waitFor({ timeout: 2000 }).catch(() => {});
  await settle(page);

  const tall = await phoneLayout(page);
  t.diagnostic(`360×740 waiting: log ${tall.log}px of ${tall.visible}px`);
  await shot(page, 'widget-phone-queue');
  // The soft keyboard opens (the visible height shrinks to 420).
  await page.getByLabel('메시지 입력').focus();
  await page.setViewportSize({ width: 360, height: 420 });
  await settle(page);
  const short = await phoneLayout(page);
  t.diagnostic(`360×420 waiting: log ${short.log}px of ${short.visible}px`);
  await shot(page, 'widget-phone-keyboard');
  assertPhoneLayout(tall, '360×740');
  assertPhoneLayout(short, '360×420');

  // Keyboard closed again. The holding line's numbers are links; its two replies are there.
  await page.setViewportSize({ width: 360, height: 740 });
  await holding.locator('.bubble a[href="tel:109"]').first().waitFor({ timeout: 2000 });
  assert.equal(await holding.locator('.bubble a[href="tel:15770199"]').textContent(), '1577-0199');
  assert.equal(await holding.locator('.bubble a[href="tel:119"]').count(), 1);
  await page.locator('.quick').getByRole('button', { name: '그대로 기다릴게요' }).waitFor({ timeout: 2000 });
  await page.locator('.quick').getByRole('button', { name: '그동안 이야기할래요' }).waitFor({ timeout: 2000 });
  // The queue status is one line; its longer text is one tap away, numbers as links.
  const status = await page.locator('.queue .queue-pos').boundingBox();
  assert.ok(status.height <= 34, `the queue status is one line (${status.height}px)`);
  assert.equal(await page.locator('.queue-text').isVisible(), false, 'the longer queue text starts folded');
  await page.locator('.queue summary').click();
  await page.locator('.queue-text a[href="tel:109"]').waitFor();
  assert.equal(await page.locator('.queue-text a[href="tel:15770199"]').count(), 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test('on Android the keyboard shrinks only the visual viewport: the panel follows it', { timeout: 60_000 }, async (t) => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  // A stand-in for window.visualViewport whose height and offset the test sets, as an
  // Android keyboard would (the layout viewport keeps its 740 px).
  await context.addInitScript(() => {
    const real = window.visualViewport;
    const fake = new EventTarget();
    let kb = null;
    for (const k of ['width', 'offsetLeft', 'pageLeft', 'pageTop', 'scale']) {
      Object.defineProperty(fake, k, { get: () => real[k] });
    }
    Object.defineProperty(fake, 'height', { get: () => (kb ? kb.height : real.height) });
    Object.defineProperty(fake, 'offsetTop', { get: () => (kb ? kb.top : real.offsetTop) });
    Object.defineProperty(window, 'visualViewport', { value: fake, configurable: true });
    window.__keyboard = (height, top) => {
      kb = height == null ? null : { height, top };
      fake.dispatchEvent(new Event('resize'));
    };
  });
  await openWidget(page);
  await waitInQueue(page);
  await page.getByLabel('메시지 입력').focus();
  for (const offset of [0, 120]) {
    await page.evaluate((o) => window.__keyboard(420, o), offset);
    await settle(page);
    assert.equal(await page.evaluate(() => window.innerHeight), 740, 'the layout viewport did not shrink');
    const l = await phoneLayout(page);
    t.diagnostic(`visual viewport 420 at ${offset}: log ${l.log}px of ${l.visible}px`);
    assertPhoneLayout(l, `visual viewport 420px at offset ${offset}`);
    const box = await page.locator('#ieum-panel').boundingBox();
    assert.ok(Math.abs(box.y - offset) < 1 && Math.abs(box.height - 420) < 1,
      `the panel covers the visible area: ${JSON.stringify(box)}`);
  }
  await page.evaluate(() => window.__keyboard(null));
  await settle(page);
  const box = await page.locator('#ieum-panel').boundingBox();
  assert.ok(Math.abs(box.height - 740) < 1, `keyboard closed: the panel is full height again (${box.height})`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the greeting is read from its first line on open; hours in Korean', { timeout: 60_000 }, async () => {
  for (const viewport of [{ width: 360, height: 740 }, { width: 360, height: 420 }, { width: 1280, height: 800 }]) {
    const { page, context, errors } = await newPage(viewport);
    await openWidget(page);
    await page.locator('.quick .qr').first().waitFor();
    await settle(page);
    const g = await page.evaluate(() => {
      const root = document.getElementById('ieum-widget').shadowRoot;
      const log = root.querySelector('[role="log"]').getBoundingClientRect();
      const greet = root.querySelector('.greeting').getBoundingClientRect();
      return { logTop: log.top, logBottom: log.bottom, top: greet.top };
    });
    const what = `${viewport.width}×${viewport.height}`;
    assert.ok(g.top >= g.logTop - 1 && g.top < g.logBottom, `${what}: the greeting's first line is in view ${JSON.stringify(g)}`);
    // Resource cards give the hours in the language of the page.
    assert.match(await page.locator('.greeting .card-hours').first().textContent(), /^운영: 24시간$/);
    if (viewport.width === 360 && viewport.height === 740) {
      await page.getByRole('button', { name: 'Switch to English' }).click();
      await page.locator('.greeting .card-hours', { hasText: 'Hours: 24h' }).first().waitFor();
    }
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('a quick reply keeps the focus in the conversation', { timeout: 60_000 }, async () => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  await openWidget(page);
  await page.locator('.quick').getByRole('button', { name: '요즘 외로워요' }).click();
  await allSaved(page, 1);
  const focus = await page.evaluate(() => {
    const host = document.getElementById('ieum-widget');
    const a = host.shadowRoot.activeElement;
    return { page: document.activeElement.id || document.activeElement.tagName, inner: a ? a.id || a.className : null };
  });
  assert.deepEqual(focus, { page: 'ieum-widget', inner: 'ieum-input' }, 'the focus is in the message box');
  assert.deepEqual(errors, []);
  await context.close();
});

test('full-screen on a phone, Tab stays in the chat; Escape returns to the launcher', { timeout: 60_000 }, async () => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  await openWidget(page);
  await page.locator('.quick .qr').first().waitFor();
  const where = () => page.evaluate(() => {
    const host = document.getElementById('ieum-widget');
    const a = host.shadowRoot.activeElement;
    const panel = host.shadowRoot.getElementById('ieum-panel');
    return {
      inPanel: document.activeElement === host && !!a && panel.contains(a),
      name: document.activeElement === host ? (a && (a.id || a.className || a.tagName)) : document.activeElement.tagName + ' ' + document.activeElement.textContent.slice(0, 20),
    };
  });
  for (const key of ['Tab', 'Shift+Tab']) {
    const seen = [];
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press(key);
      const w = await where();
      assert.ok(w.inPanel, `${key} ×${i + 1}: the focus left the chat panel for ${w.name} (after ${seen.join(' → ')})`);
      seen.push(w.name);
    }
    assert.ok(seen.filter((n) => n === 'ieum-input').length >= 2, `${key} cycles through the panel: ${seen.join(' → ')}`);
  }
  await page.keyboard.press('Escape');
  await page.locator('#ieum-panel').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.getElementById('ieum-widget').shadowRoot.activeElement.className), 'launcher');
  assert.deepEqual(errors, []);
  await context.close();
});

test('too long: the reason stays beside the text until it is short enough', { timeout: 60_000 }, async () => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 });
  await openWidget(page);
  const box = page.getByLabel('메시지 입력');
  const described = () => page.evaluate(() => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    const input = root.getElementById('ieum-input');
    return (input.getAttribute('aria-describedby') || '').split(/\s+/)
      .map((id) => root.getElementById(id))
      .filter((n) => n && n.getClientRects().length > 0)
      .map((n) => n.textContent).join(' ');
  });
  await box.fill('가'.repeat(2001));
  await box.press('Enter');
  // Refused: the text stays in the box, the reason next to it (and read with it).
  await page.waitForTimeout(1500); // time enough for any answer from the server
  assert.equal(await box.inputValue(), '가'.repeat(2001));
  assert.equal(await page.locator('li.me').count(), 0, 'nothing was sent');
  assert.match(await described(), /2,000자까지 보낼 수 있어요/);
  await page.getByText('2,000자까지 보낼 수 있어요').waitFor({ state: 'visible' });
  // Still there while the text is too long; gone once it is short enough.
  await box.press('End');
  await box.type('나');
  assert.match(await described(), /2,000자까지/);
  await box.press('Backspace');
  await box.press('Backspace');
  assert.equal((await box.inputValue()).length, 2000);
  assert.doesNotMatch(await described(), /2,000자까지/);
  assert.equal(await page.getByText('2,000자까지 보낼 수 있어요').count(), 0);
  // Exactly 2,000 characters go through.
  await box.press('Enter');
  await allSaved(page, 1);
  assert.deepEqual(errors, []);
  await context.close();
});

/** A citizen at 360×740 who said something risky and waits for a counselor. */
async function queuedCitizen(opts) {
  const citizen = await newPage({ width: 360, height: 740 }, opts);
  await openWidget(citizen.page);
  await say(citizen.page, '요즘 너무 힘들어서 죽고 싶어요');
  await citizen.page.locator('.queue .queue-pos').waitFor();
  citizen.conv = (await citizen.page.evaluate(() => window.IeumWidget.state())).conversationId;
  return citizen;
}

/** kim claims `conv` with the keyboard (Enter on its claim button); returns the panel. */
async function claimByKeyboard(kp, conv) {
  const claim = kp.locator(`#queue > li[data-id="${conv}"]`).getByRole('button', { name: /맡기/ });
  await claim.focus();
  await kp.keyboard.press('Enter');
  const panel = kp.locator(`#panel-${conv}`);
  await panel.waitFor({ state: 'visible' });
  return panel;
}

async function closeConversation(panel) {
  await panel.getByLabel('종료 결과').selectOption('resolved');
  await panel.getByRole('button', { name: '대화 종료' }).click();
  await panel.locator('.conv-ended').waitFor({ state: 'visible' });
}

test('console: a claim moves the focus into the conversation; numbers a counselor sends are links', { timeout: 90_000 }, async () => {
  const citizen = await queuedCitizen();
  const cp = citizen.page;
  const counselor = await newPage({ width: 1280, height: 1000 });
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'kim');
  const panel = await claimByKeyboard(kp, citizen.conv);
  await kp.waitForFunction((id) => document.activeElement === document.querySelector(`#panel-${id} .reply-text`),
    citizen.conv, { timeout: 3000 }).catch(() => {});
  const focused = await kp.evaluate(() => {
    const a = document.activeElement;
    return a.tagName + (a.id ? '#' + a.id : '') + (a.className ? '.' + a.className : '');
  });
  assert.equal(focused, `TEXTAREA#reply-text-${citizen.conv}.reply-text`, 'the focus is in the reply box of the claimed conversation');

  // A resource inserted as text, in Korean, and more numbers (and things that are not).
  await panel.locator('select.res').selectOption('suicide_prevention_109');
  await panel.locator('.res-insert').click();
  const inserted = await panel.getByLabel('답장').inputValue();
  assert.match(inserted, /109 ☎ 109 · 24시간/, 'the hours in Korean');
  await panel.getByLabel('답장').fill(inserted +
    '\n서울시자살예방센터 02-984-6777, 정신건강위기상담 1577-0199도 있어요. (2,000자까지, 3번째, 2024년, 10분, 1명, 100%)');
  await panel.getByLabel('답장').press('Enter');
  const bubble = cp.locator('.msg.counselor .bubble', { hasText: '02-984-6777' });
  await bubble.waitFor();
  const links = await bubble.locator('a').evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
  assert.deepEqual(links, [
    ['109', 'tel:109'], ['109', 'tel:109'], ['02-984-6777', 'tel:029846777'], ['1577-0199', 'tel:15770199'],
  ]);
  assert.match(await bubble.textContent(), /2,000자까지, 3번째, 2024년, 10분, 1명, 100%/);

  await closeConversation(panel);
  for (const p of [citizen, counselor]) {
    assert.deepEqual(p.errors, []);
    await p.context.close();
  }
});

/**
 * axe-core on the page as it is: the critical and serious violations, one line each with
 * the rule, its help and the targets ('' when none). Every violation goes to the log.
 */
async function axeSerious(t, page, what) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => JSON.stringify(n.target)),
    }));
  });
  const all = violations.map((v) => `${v.id} [${v.impact}] ${v.targets.length}`).join(', ');
  t.diagnostic(`axe ${what}: ${all || 'no violations'}`);
  return violations.filter((v) => v.impact === 'critical' || v.impact === 'serious')
    .map((v) => `${what}: ${v.id} [${v.impact}] ${v.help}: ${v.targets.join(' ')}`).join('\n');
}

/** Waits until the widget shows `n` bot answers after the greeting. */
async function botAnswers(page, n) {
  await page.waitForFunction((n) => {
    const root = document.getElementById('ieum-widget').shadowRoot;
    return root.querySelectorAll('li.msg.bot:not(.greeting)').length >= n;
  }, n, { timeout: STEP });
}

test('on a phone, a safety plan made with the bot builds up, prints only itself and saves as a file', { timeout: 90_000 }, async (t) => {
  const { page, context, errors } = await newPage({ width: 360, height: 740 }, { bypassCSP: true, acceptDownloads: true });
  await openWidget(page);
  // Medium words, then "no" to each screener question: the screener ends at medium and
  // the bot offers a safety plan.
  await say(page, '아침에 눈 안 떴으면 좋겠어');
  await botAnswers(page, 1);
  for (let i = 0; i < 3; i++) {
    await say(page, '아니요');
    await botAnswers(page, 2 + i);
  }
  await page.locator('.quick').getByRole('button', { name: '네, 같이 만들어요' }).click();
  await page.locator('.msg.bot', { hasText: '1단계' }).waitFor();
  await say(page, '밤에 혼자 방에 있을 때');
  // The plan panel appears, folded to one line, and the log keeps at least half the screen.
  const planSum = page.locator('.plan summary');
  await planSum.waitFor();
  await page.locator('.msg.bot', { hasText: '2단계' }).waitFor();
  assert.match(await planSum.textContent(), /나의 안전계획/);
  await settle(page);
  assertPhoneLayout(await phoneLayout(page), '360×740 with the plan folded');
  // An open keyboard (360×420): the folded plan still leaves the conversation its place.
  await page.setViewportSize({ width: 360, height: 420 });
  await settle(page);
  const compact = await phoneLayout(page);
  t.diagnostic(`360×420 with the plan folded: log ${compact.log}px of ${compact.visible}px`);
  await shot(page, 'widget-phone-plan-keyboard');
  assertPhoneLayout(compact, '360×420 with the plan folded');
  await page.setViewportSize({ width: 360, height: 740 });
  await settle(page);
  // Opened with the keyboard: the steps, the item, print and save, all on screen.
  await planSum.focus();
  await page.keyboard.press('Enter');
  await page.locator('.plan .plan-item', { hasText: '밤에 혼자 방에 있을 때' }).waitFor();
  assert.equal(await page.locator('.plan .plan-step').count(), 6);
  const save = page.getByRole('button', { name: '저장 (안전계획을 파일로 내려받기)' });
  const print = page.getByRole('button', { name: '인쇄 (안전계획만)' });
  for (const b of [save, print]) {
    const r = await b.boundingBox();
    assert.ok(r && r.y >= 0 && r.y + r.height <= 740 && r.height >= 40, `a ${JSON.stringify(r)} button on screen and tappable`);
  }
  await shot(page, 'widget-phone-safety-plan');
  const bad = await axeSerious(t, page, '/ (widget with its safety plan open, 360×740)');
  assert.equal(bad, '', bad);

  // Save: a standalone HTML file with the plan (and no script).
  const [download] = await Promise.all([page.waitForEvent('download'), save.click()]);
  const file = await download.path();
  const html = fs.readFileSync(file, 'utf8');
  assert.match(html, /밤에 혼자 방에 있을 때/);
  assert.match(html, /109/);
  assert.doesNotMatch(html, /<script/i);

  // Print: at the moment of printing, a print-only stylesheet hides the page and shows only
  // a plain copy of the plan; both are gone afterwards.
  await page.evaluate(() => {
    window.__printed = null;
    window.print = () => {
      const copy = document.getElementById('ieum-print');
      const sheet = Array.from(document.querySelectorAll('style')).find((s) => s.media === 'print');
      window.__printed = { text: copy ? copy.textContent : null, sheet: sheet ? sheet.textContent : null };
    };
  });
  await print.click();
  const printed = await page.evaluate(() => window.__printed);
  assert.match(printed.text, /밤에 혼자 방에 있을 때/);
  assert.match(printed.sheet, /body > \*:not\(#ieum-print\)/);
  await page.waitForFunction(() => !document.getElementById('ieum-print'), null, { timeout: 3000 });

  // Reload: the plan comes back with the resume.
  await page.reload();
  await page.locator('.plan summary').waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test('console: the counselor adds to the safety plan; the citizen sees it; the supervisor replay shows it', { timeout: 90_000 }, async () => {
  const citizen = await queuedCitizen();
  const cp = citizen.page;
  const counselor = await newPage({ width: 1280, height: 1000 });
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'kim');
  const panel = await claimByKeyboard(kp, citizen.conv);
  // Six steps, each with a labelled add box; add a person to step 4 with the keyboard.
  assert.equal(await panel.locator('.plan .plan-step').count(), 6);
  const box = panel.getByLabel('4. 도움을 청할 수 있는 사람에 항목 추가');
  await box.fill('언니 (토요일마다 통화)');
  await box.press('Enter');
  await panel.locator('.plan .plan-items li', { hasText: '언니 (토요일마다 통화)' }).waitFor();
  // An empty plan starts with step 5's prefilled lines.
  await panel.locator('.plan .plan-items li', { hasText: '109' }).first().waitFor();
  // The citizen's widget shows the plan.
  await cp.locator('.plan summary').waitFor();
  await cp.locator('.plan summary').click();
  await cp.locator('.plan .plan-item', { hasText: '언니 (토요일마다 통화)' }).waitFor();
  await closeConversation(panel);

  // The supervisor's replay shows the item plainly.
  const sup = await newPage({ width: 1280, height: 900 });
  const sp = sup.page;
  await staffLogin(sp, '/supervisor', 'boss');
  const row = sp.locator(`#conv-table tr[data-id="${citizen.conv}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: /다시 보기/ }).click();
  const item = sp.locator('#timeline .ev-plan_item', { hasText: '언니 (토요일마다 통화)' });
  await item.waitFor({ state: 'attached' });
  assert.match(await item.textContent(), /안전계획 4단계: 언니 \(토요일마다 통화\) \(counselor:kim\)/);
  assert.deepEqual(citizen.errors, []);
  assert.deepEqual(counselor.errors, []);
  await sup.context.close();
  await counselor.context.close();
  await citizen.context.close();
});

test('axe: no critical or serious violations on any page', { timeout: 120_000 }, async (t) => {
  const csp = { bypassCSP: true }; // axe goes in as a script tag
  const failures = [];
  const check = async (page, what) => {
    const bad = await axeSerious(t, page, what);
    if (bad) failures.push(bad);
  };

  // The widget, closed (desktop and phone) and open with a conversation in it.
  const desk = await newPage({ width: 1280, height: 800 }, csp);
  await desk.page.goto(base + '/');
  await desk.page.getByRole('button', { name: /이음 채팅 열기/ }).waitFor();
  await check(desk.page, '/ (widget closed, 1280×800)');
  await openWidget(desk.page);
  await say(desk.page, '요즘 잠이 잘 안 와요');
  await allSaved(desk.page, 1);
  await desk.page.locator('.msg.bot:not(.greeting)').first().waitFor();
  await check(desk.page, '/ (widget open, 1280×800)');

  const citizen = await queuedCitizen(csp);
  const cp = citizen.page;
  await check(cp, '/ (widget open, waiting, 360×740)');
  // (Steps through parts that other tests require are skipped when missing, so that this
  // test reports every page's violations either way.)
  if (await cp.locator('.queue summary').count()) {
    await cp.locator('.queue summary').click();
    await check(cp, '/ (widget open, queue text open, 360×740)');
  }
  await cp.setViewportSize({ width: 360, height: 420 });
  await settle(cp);
  const menu = cp.getByRole('button', { name: /메뉴/ });
  if (await menu.isVisible()) {
    await menu.click();
    await cp.locator('.actions').getByRole('button', { name: '상담사와 이야기하기' }).waitFor();
    await check(cp, '/ (widget compact with its menu open, 360×420)');
    await cp.keyboard.press('Escape');
  } else {
    await check(cp, '/ (widget, 360×420)');
  }
  await cp.setViewportSize({ width: 360, height: 740 });
  await cp.getByRole('button', { name: '채팅 창 닫기 (대화는 유지돼요)' }).click();
  await check(cp, '/ (widget closed, 360×740)');

  // The console: logged in, with a claimed conversation.
  const counselor = await newPage({ width: 1280, height: 1000 }, csp);
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'kim');
  await check(kp, '/console (queue)');
  const panel = await claimByKeyboard(kp, citizen.conv);
  await panel.getByLabel('답장').fill('안녕하세요, 상담사예요. 자살예방상담전화 109 ☎ 109 · 24시간');
  await panel.getByLabel('답장').press('Enter');
  await panel.locator('.ev-counselor').waitFor();
  await cp.locator('.msg.counselor').waitFor({ state: 'attached' });
  await check(kp, '/console (a claimed conversation)');
  await cp.getByRole('button', { name: /이음 채팅 열기/ }).click();
  await cp.locator('.msg.counselor .bubble').waitFor();
  await check(cp, '/ (widget open, with a counselor, 360×740)');

  // The supervisor pages.
  const sup = await newPage({ width: 1280, height: 900 }, csp);
  const sp = sup.page;
  await staffLogin(sp, '/supervisor', 'boss');
  const row = sp.locator(`#conv-table tr[data-id="${citizen.conv}"]`);
  await row.waitFor();
  await check(sp, '/supervisor (conversations)');
  await row.getByRole('button', { name: /다시 보기/ }).click();
  await sp.locator('#timeline .ev-citizen').first().waitFor();
  await check(sp, '/supervisor (replay)');
  await sp.getByRole('button', { name: '실시간 현황' }).click();
  await sp.locator('#level-table tbody tr').first().waitFor();
  await check(sp, '/supervisor (live board)');
  await sp.getByRole('button', { name: '감사 기록' }).click();
  await sp.locator('#audit-table tbody tr').first().waitFor();
  await check(sp, '/supervisor (audit log)');
  // Staff, while the service runs: add a counselor, then disable them.
  await sp.getByRole('button', { name: '직원' }).click();
  await sp.locator('#s-name').fill('park');
  await sp.locator('#s-pass').fill('a long password 3');
  await sp.locator('#staff-form button[type=submit]').click();
  const parkRow = sp.locator('#staff-table tbody tr', { hasText: 'park' });
  await parkRow.getByText('사용 중', { exact: true }).waitFor();
  await check(sp, '/supervisor (staff)');
  await parkRow.getByRole('button', { name: '사용 중지: park' }).click();
  await parkRow.getByText('사용 중지됨').waitFor();
  const parkLogin = await sp.request.post(base + '/api/login', { data: { username: 'park', password: 'a long password 3' } });
  assert.equal(parkLogin.status(), 401, 'a disabled counselor cannot log in');

  await closeConversation(panel);

  // The casework page: a case, the follow-up and referral lists, the statistics.
  await sp.goto(`${base}/casework?conversation=${citizen.conv}`);
  await sp.locator('#case-body').waitFor({ state: 'visible' });
  await check(sp, '/casework (a case with its forms)');
  await sp.getByRole('button', { name: '후속 조치', exact: true }).click();
  await sp.locator('#fu-table').waitFor();
  await check(sp, '/casework (follow-ups)');
  await sp.getByRole('button', { name: '통계' }).click();
  await sp.locator('#st-tables table').first().waitFor();
  await check(sp, '/casework (statistics)');
  for (const p of [desk, citizen, counselor, sup]) {
    assert.deepEqual(p.errors, []);
    await p.context.close();
  }
  assert.ok(failures.length === 0, `axe found critical or serious violations:\n${failures.join('\n')}`);
});

test('casework walk: a safety plan together, a supervisor whispers and takes over, close with a follow-up and a referral, the follow-up comes due, the statistics count it', { timeout: 150_000 }, async () => {
  const citizen = await queuedCitizen();
  const cp = citizen.page;
  const conv = citizen.conv;
  const counselor = await newPage({ width: 1280, height: 1000 });
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'kim');
  const panel = await claimByKeyboard(kp, conv);

  // A safety plan written together: the counselor adds what the person says; it builds up
  // in the person's widget.
  const box = panel.getByLabel('4. 도움을 청할 수 있는 사람에 항목 추가');
  await box.fill('언니에게 전화하기');
  await box.press('Enter');
  await cp.locator('.plan summary').waitFor();
  await cp.locator('.plan summary').click();
  await cp.locator('.plan .plan-item', { hasText: '언니에게 전화하기' }).waitFor();

  // The supervisor watches silently, whispers to the counselor, then takes over.
  const sup = await newPage({ width: 1280, height: 1000 });
  const sp = sup.page;
  sp.on('dialog', (d) => d.accept());
  await staffLogin(sp, '/supervisor', 'boss');
  const row = sp.locator(`#conv-table tr[data-id="${conv}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: /실시간 보기/ }).click();
  await sp.locator('#live-log .ev-citizen').first().waitFor();
  await sp.locator('#whisper-text').fill('안전한 곳에 있는지 먼저 확인해 주세요');
  await sp.locator('#whisper-form button[type=submit]').click();
  await panel.locator('.ev-whisper', { hasText: '안전한 곳에 있는지' }).waitFor();
  await sp.locator('#take-over').click();
  await sp.locator('#live-reply').waitFor({ state: 'visible' });
  await cp.locator('.notice.joined.changed', { hasText: '다른 상담사 선생님이 이어서' }).waitFor();
  const widgetText = await cp.evaluate(() => document.getElementById('ieum-widget').shadowRoot.textContent);
  assert.ok(!widgetText.includes('안전한 곳에 있는지'), 'the citizen never sees a whisper');
  await sp.locator('#live-outcome').selectOption('resolved');
  await sp.locator('#live-close-btn').click();
  await cp.locator('.notice.closed').waitFor();

  // The counselor's case page, one click from the ended conversation: the assessment says
  // what raised it and holds the plan.
  await panel.getByRole('link', { name: '사례 기록·후속 조치' }).click();
  await kp.locator('#case-body').waitFor({ state: 'visible' });
  const assessment = await kp.locator('#assessment').textContent();
  assert.match(assessment, /높음|긴급/);
  assert.match(assessment, /언니에게 전화하기/);
  await kp.getByLabel('새 메모').fill('첫 상담: 다음 주 안부 전화에 동의함');
  await kp.getByRole('button', { name: '저장', exact: true }).click();
  await kp.locator('#notes li', { hasText: '다음 주 안부 전화에 동의함' }).waitFor();

  // Without consent nothing is kept.
  const fu = kp.locator('#fu-form');
  await fu.getByLabel('기한').fill('2026-01-01T09:00');
  await fu.getByLabel('전화번호 (전화일 때)').fill('010-1234-5678');
  await fu.getByRole('button', { name: '계획 저장' }).click();
  await kp.locator('#status.bad').waitFor();
  // With it: a call back, already due (a date in the past), for two weeks.
  await fu.getByLabel('본인이 다시 연락받는 데 동의했어요').check();
  await fu.getByLabel('매주 몇 회 (최대 8회)').fill('2');
  await fu.getByRole('button', { name: '계획 저장' }).click();
  await kp.locator('#status:not(.bad)', { hasText: '저장했어요' }).waitFor();

  const rf = kp.locator('#rf-form');
  await rf.getByLabel('본인이 연계와 아래 공유 내용에 동의했어요').check();
  await rf.getByLabel('종류').selectOption('district_centre');
  await rf.getByLabel('기관 이름').fill('마포구 종합사회복지관');
  await rf.getByLabel('거주 구 (공유 동의 시)').fill('마포구');
  await rf.getByRole('button', { name: '연계 저장' }).click();
  await kp.locator('#status:not(.bad)', { hasText: '저장했어요' }).waitFor();

  // The follow-up list: the one that came due is first; no answer is recorded.
  await kp.getByRole('button', { name: '후속 조치', exact: true }).click();
  const first = kp.locator('#fu-table tbody tr').first();
  await first.waitFor();
  assert.match(await first.textContent(), /기한 도래/);
  assert.match(await first.textContent(), /010-1234-5678/);
  await first.getByRole('button', { name: '부재' }).click();
  await kp.locator('#fu-table tbody tr').first().locator('td:nth-child(7)', { hasText: /^1$/ }).waitFor();

  // The referral moves on.
  await kp.getByRole('button', { name: '연계', exact: true }).click();
  const ref = kp.locator('#rf-table tbody tr', { hasText: '마포구 종합사회복지관' });
  await ref.waitFor();
  await ref.getByRole('combobox').selectOption('accepted');
  await ref.getByRole('button', { name: '변경' }).click();
  await kp.locator('#rf-table tbody tr .badge.rf-accepted').waitFor();
  await shot(kp, 'casework');

  // The supervisor's statistics count the conversation (small counts shown as <5).
  await sp.goto(`${base}/casework`);
  await sp.getByRole('button', { name: '통계' }).click();
  await sp.locator('#st-tables table').first().waitFor();
  await sp.locator('#chart-conv .uplot').waitFor();
  const totals = await sp.locator('#st-tables').textContent();
  assert.match(totals, /합계/);
  assert.match(totals, /<5/, 'small counts are hidden');
  await shot(sp, 'statistics');
  for (const p of [citizen, counselor, sup]) {
    assert.deepEqual(p.errors, []);
    await p.context.close();
  }
});

test('supervisor monitoring: watch silently, whisper to the counselor only, take over', { timeout: 90_000 }, async (t) => {
  const csp = { bypassCSP: true }; // axe goes in as a script tag
  const failures = [];
  const check = async (page, what) => {
    const bad = await axeSerious(t, page, what);
    if (bad) failures.push(bad);
  };
  // The supervisor adds a counselor of their own for this story (kim may be full).
  const sup = await newPage({ width: 1280, height: 900 }, csp);
  const sp = sup.page;
  sp.on('dialog', (d) => d.accept());
  await staffLogin(sp, '/supervisor', 'boss');
  const add = await sp.request.post(base + '/api/staff', { data: { username: 'han', role: 'counselor', password: PASSWORD } });
  assert.ok(add.status() === 201 || add.status() === 409, `add han: ${add.status()}`);

  const citizen = await newPage({ width: 360, height: 740 });
  const cp = citizen.page;
  await openWidget(cp);
  await say(cp, '요즘 너무 힘들어서 죽고 싶어요');
  await cp.locator('.queue .queue-pos').waitFor();
  const conv = (await cp.evaluate(() => window.IeumWidget.state())).conversationId;

  const counselor = await newPage({ width: 1280, height: 1000 }, csp);
  const kp = counselor.page;
  await staffLogin(kp, '/console', 'han');
  await kp.locator(`#queue > li[data-id="${conv}"]`).getByRole('button', { name: /맡기/ }).click();
  const panel = kp.locator(`#panel-${conv}`);
  await panel.locator('.ev-citizen').first().waitFor();
  await cp.locator('.notice.joined').waitFor();

  // Watch: the transcript opens on the supervisor's page; the counselor is told.
  await sp.getByRole('button', { name: '대화 기록' }).click();
  const row = sp.locator(`#conv-table tr[data-id="${conv}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: /실시간 보기/ }).click();
  await sp.locator('#live-log .ev-citizen').first().waitFor();
  await panel.locator('.watch-notice', { hasText: '보고 있어요' }).waitFor();

  // Whisper: set apart on the console, "only you can see this"; nothing on the widget.
  const whisper = '먼저 안전한 곳에 있는지 물어보세요';
  await sp.locator('#whisper-text').fill(whisper);
  await sp.locator('#whisper-form button[type=submit]').click();
  const w = panel.locator('.ev-whisper', { hasText: whisper });
  await w.waitFor();
  assert.match(await w.textContent(), /나만 볼 수 있어요/);
  await sp.locator('#live-log .ev-whisper', { hasText: whisper }).waitFor();
  await cp.waitForTimeout(800);
  const widgetText = await cp.evaluate(() => document.getElementById('ieum-widget').shadowRoot.textContent);
  assert.ok(!widgetText.includes(whisper), 'the citizen never sees a whisper');
  await check(sp, '/supervisor (watching live, after a whisper)');
  await check(kp, '/console (watched, with a whisper)');

  // Take over: the counselor is told and can no longer write; the citizen sees a change.
  await sp.locator('#take-over').click();
  await sp.locator('#live-reply').waitFor({ state: 'visible' });
  await panel.locator('.watch-notice.strong', { hasText: '이어받았어요' }).waitFor();
  assert.ok(await panel.locator('.reply-text').isDisabled(), 'the old counselor cannot write');
  await cp.waitForFunction(() => document.getElementById('ieum-widget').shadowRoot.querySelectorAll('.notice.joined').length >= 2);
  await check(sp, '/supervisor (live, taken over)');
  await check(kp, '/console (taken over)');

  const words = '관리자예요. 제가 이어서 함께할게요.';
  await sp.locator('#live-reply-text').fill(words);
  await sp.locator('#live-reply button[type=submit]').click();
  await cp.locator('.msg.counselor .bubble', { hasText: '제가 이어서' }).waitFor();
  await sp.locator('#live-outcome').selectOption('resolved');
  await sp.locator('#live-close-btn').click();
  await cp.locator('.notice.closed').waitFor();

  for (const p of [sup, citizen, counselor]) {
    assert.deepEqual(p.errors, []);
    await p.context.close();
  }
  assert.ok(failures.length === 0, `axe found critical or serious violations:\n${failures.join('\n')}`);
});
