// Shared machinery for the browser tests: the server under test, Chromium,
// and the checks run on every page a test visits (screenshots at two widths,
// axe, Content-Security-Policy errors, server errors).
//
// Every page a test loads must be passed through `audit()` (the helpers
// `goto()` and `submit()` do it); `finish()` fails the test when a loaded
// document was never audited, so no page slips past the checks.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, '..');
export const ROOT = path.resolve(E2E_DIR, '..');
export const BIN = process.env.PORTCULLIS_BIN || path.join(ROOT, 'target', 'debug', 'portcullis');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS = path.join(E2E_DIR, 'artifacts');
export const SCREENSHOTS = path.join(ARTIFACTS, 'screenshots');
export const LOGS = path.join(ARTIFACTS, 'logs');
export const AXE_RESULTS = path.join(ARTIFACTS, 'axe-results.jsonl');

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Impacts that fail a test. */
const FAILING_IMPACTS = new Set(['serious', 'critical']);
const IMPACTS = ['critical', 'serious', 'moderate', 'minor'];

const AXE_SOURCE = fs.readFileSync(path.join(E2E_DIR, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** A password that passes the policy and is on no common list. */
export const PASSWORD = 'correct horse battery staple 42';

fs.mkdirSync(SCREENSHOTS, { recursive: true });
fs.mkdirSync(LOGS, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * GET on a connection that is closed afterwards (an idle keep-alive
 * connection would hold up the server's graceful shutdown). 0 when refused.
 */
function healthz(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `target/debug/portcullis serve` on a free port with a fresh data directory. */
export class Server {
  /**
   * `host` names the site in its base URL (WebAuthn needs a name such as
   * `localhost`, never an IP address); the server listens on 127.0.0.1.
   */
  static async start(name, { host = '127.0.0.1' } = {}) {
    if (!fs.existsSync(BIN)) {
      throw new Error(`${BIN} is missing: build it first with \`cargo build\` (or run e2e/run.sh)`);
    }
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `portcullis-e2e-${name}-`));
    const base = `http://${host}:${port}`;
    const env = {
      ...process.env,
      PORTCULLIS_BIND: `127.0.0.1:${port}`,
      PORTCULLIS_BASE_URL: base,
      PORTCULLIS_DATA_DIR: dataDir,
      PORTCULLIS_RATE_LIMIT_PER_MINUTE: '0',
      PORTCULLIS_ARGON2_MEMORY_KIB: '1024',
      PORTCULLIS_ARGON2_ITERATIONS: '1',
      NO_COLOR: '1',
    };
    const log = fs.openSync(path.join(LOGS, `server-${name}.log`), 'w');
    const child = spawn(BIN, ['serve'], { cwd: dataDir, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const server = new Server(child, base, dataDir, env, name);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`portcullis serve exited with ${child.exitCode}; see ${path.join(LOGS, `server-${name}.log`)}`);
      }
      if ((await healthz(`http://127.0.0.1:${port}/healthz`)) === 200) break;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error('portcullis serve did not answer GET /healthz with 200 within 60 s');
      }
      await sleep(100);
    }
    return server;
  }

  constructor(child, base, dataDir, env, name) {
    this.child = child;
    this.base = base;
    this.dataDir = dataDir;
    this.env = env;
    this.name = name;
    this.onExit = () => child.kill('SIGKILL');
    process.on('exit', this.onExit);
  }

  url(p) {
    return new URL(p, this.base).toString();
  }

  /** `portcullis user create … --password-stdin` with the server's configuration. */
  createUser({ username, email, password = PASSWORD, admin = false, verified = true }) {
    const args = ['user', 'create', '--username', username, '--email', email];
    if (admin) args.push('--admin');
    if (verified) args.push('--verified');
    args.push('--password-stdin');
    try {
      execFileSync(BIN, args, { cwd: this.dataDir, env: this.env, input: `${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`portcullis user create --username ${username} failed: ${String(e.stderr || e.message).trim()}`);
    }
    return { username, email, password };
  }

  /** Mail written to the dev outbox, newest last, as raw text. */
  outbox() {
    const dir = path.join(this.dataDir, 'outbox');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.eml'))
      .map((f) => ({ f, t: fs.statSync(path.join(dir, f)).mtimeMs }))
      .sort((a, b) => a.t - b.t)
      .map(({ f }) => fs.readFileSync(path.join(dir, f), 'utf8'));
  }

  async stop() {
    process.off('exit', this.onExit);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((r) => {
      timer = setTimeout(() => r(true), 10_000);
    });
    const timedOut = await Promise.race([exited.then(() => false), timeout]);
    clearTimeout(timer);
    if (timedOut) {
      console.log('note: the server did not stop within 10 s of SIGTERM; killing it');
      this.child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

/** A browser with a profile on disk, so a restart keeps what Chromium keeps. */
export function launchPersistent(userDataDir, options = {}) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    args: LAUNCH_ARGS,
    viewport: DESKTOP,
    ...options,
  });
}

function slug(s) {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
}

/**
 * One per test file: watches pages, audits them, keeps the file's screenshot
 * numbering.
 */
export class Harness {
  constructor(suite, server) {
    this.suite = suite;
    this.server = server;
    this.count = 0;
    this.watched = [];
  }

  url(p) {
    return this.server.url(p);
  }

  /** Options every context gets: the desktop size, no bypassCSP. */
  contextOptions(extra = {}) {
    return { viewport: DESKTOP, ...extra };
  }

  async newContext(browser, extra = {}) {
    const context = await browser.newContext(this.contextOptions(extra));
    assert.ok(!extra.bypassCSP, 'contexts must enforce the Content-Security-Policy');
    return context;
  }

  async newPage(context) {
    const page = await context.newPage();
    this.watch(page);
    return page;
  }

  /** Records console errors, page errors, CSP violations and documents loaded. */
  watch(page) {
    if (this.watched.some((w) => w.page === page)) return this.watched.find((w) => w.page === page);
    const w = { page, consoleErrors: [], pageErrors: [], loads: [], serverErrors: [], missing: [] };
    page.on('console', (msg) => {
      if (msg.type() === 'error') w.consoleErrors.push({ url: page.url(), text: msg.text() });
    });
    page.on('pageerror', (err) => w.pageErrors.push({ url: page.url(), text: String(err && err.message) }));
    page.on('load', () => {
      const url = page.url();
      if (!url.startsWith('about:')) w.loads.push({ url, audited: false });
    });
    page.on('response', (res) => {
      if (res.request().isNavigationRequest()) {
        if (res.status() >= 500) w.serverErrors.push(`${res.status()} ${res.url()}`);
      } else if (res.status() >= 400) {
        w.missing.push(`${res.request().method()} ${new URL(res.url()).pathname} → ${res.status()}`);
      }
    });
    this.watched.push(w);
    return w;
  }

  /** Navigates and audits. Returns the main response. */
  async goto(page, p, label) {
    const res = await page.goto(this.url(p));
    await this.audit(page, label);
    return res;
  }

  /** Clicks something that loads a new document, waits for it, audits it. */
  async submit(page, locator, label) {
    const loaded = page.waitForEvent('load');
    await locator.click();
    await loaded;
    await this.audit(page, label);
  }

  /** Presses a key that loads a new document, waits for it, audits it. */
  async press(page, key, label) {
    const loaded = page.waitForEvent('load');
    await page.keyboard.press(key);
    await loaded;
    await this.audit(page, label);
  }

  /**
   * Screenshots at desktop and phone width, axe at both, and the CSP/error
   * checks. Fails on serious or critical axe violations.
   */
  async audit(page, label) {
    const w = this.watch(page);
    await page.waitForLoadState('load');
    this.count += 1;
    const name = `${this.suite}-${String(this.count).padStart(2, '0')}-${slug(label)}`;
    const pathname = new URL(page.url()).pathname;
    const found = new Map();
    const overflow = [];
    for (const [width, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
      await page.setViewportSize(size);
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${width}.png`), fullPage: true });
      const pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      if (pageWidth > size.width) overflow.push(`${width}: the page is ${pageWidth}px wide in a ${size.width}px window`);
      const violations = await runAxe(page);
      for (const v of violations) {
        const key = v.id;
        const prev = found.get(key);
        const targets = v.nodes.map((n) => n.target.join(' '));
        if (prev) {
          for (const t of targets) if (!prev.targets.includes(t)) prev.targets.push(t);
          if (!prev.widths.includes(width)) prev.widths.push(width);
        } else {
          found.set(key, { id: v.id, impact: v.impact, help: v.help, targets, widths: [width], summary: v.nodes[0]?.failureSummary });
        }
      }
    }
    await page.setViewportSize(DESKTOP);
    if (w.loads.length) w.loads[w.loads.length - 1].audited = true;

    const byImpact = Object.fromEntries(IMPACTS.map((i) => [i, 0]));
    for (const v of found.values()) byImpact[v.impact] = (byImpact[v.impact] || 0) + v.targets.length;
    const counts = IMPACTS.map((i) => `${i} ${byImpact[i]}`).join(', ');
    console.log(`axe: ${this.suite} · ${label} (${pathname}): ${counts}`);
    for (const v of found.values()) {
      console.log(`  axe ${v.impact} ${v.id} [${v.widths.join('+')}]: ${v.help} — ${v.targets.slice(0, 5).join(' | ')}`);
    }
    fs.appendFileSync(
      AXE_RESULTS,
      `${JSON.stringify({ suite: this.suite, label, path: pathname, byImpact, violations: [...found.values()] })}\n`,
    );

    this.assertNoCspErrors(w, label);
    assert.deepEqual(overflow, [], `"${label}" (${pathname}) scrolls sideways`);
    const failing = [...found.values()].filter((v) => FAILING_IMPACTS.has(v.impact));
    assert.equal(
      failing.length,
      0,
      `axe found serious/critical problems on "${label}" (${pathname}):\n` +
        failing.map((v) => `- ${v.impact} ${v.id}: ${v.help}\n  ${v.targets.join('\n  ')}\n  ${v.summary || ''}`).join('\n'),
    );
  }

  assertNoCspErrors(w, label) {
    const csp = (e) => /content.security.policy|refused to/i.test(e.text);
    const bad = [...w.consoleErrors.filter(csp), ...w.pageErrors.filter(csp)];
    assert.deepEqual(bad, [], `CSP errors on "${label}": ${JSON.stringify(bad, null, 2)}`);
    assert.deepEqual(w.pageErrors, [], `uncaught script errors on "${label}"`);
    assert.deepEqual(w.serverErrors, [], `server errors on "${label}"`);
  }

  /** Every document loaded was audited, and no CSP error came after. */
  finish() {
    for (const w of this.watched) {
      this.assertNoCspErrors(w, 'end of test');
      const missed = w.loads.filter((l) => !l.audited).map((l) => l.url);
      assert.deepEqual(missed, [], 'pages loaded but never audited');
      // Not failures, but worth seeing. Chromium also logs every 4xx document
      // ("Failed to load resource"); those are expected here (403, 404 pages).
      for (const e of w.consoleErrors) {
        if (!/^Failed to load resource/.test(e.text)) console.log(`note: console error on ${e.url}: ${e.text}`);
      }
      for (const m of new Set(w.missing)) console.log(`note: subresource ${m}`);
    }
    this.watched = [];
  }
}

export async function runAxe(page) {
  // page.evaluate is not subject to the page's CSP, so axe goes in without
  // bypassCSP and the page's own scripts and styles stay under the policy.
  const present = await page.evaluate(() => typeof window.axe === 'object');
  if (!present) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ['violations'] }),
  );
  return result.violations;
}

/** Text of the flash messages on the page. */
export async function flashes(page, category) {
  const sel = category ? `div.flash.${category}` : 'div.flash';
  return (await page.locator(sel).allTextContents()).map((s) => s.trim());
}

export async function login(h, page, { username, password = PASSWORD, remember = false }, label = 'after login') {
  if (new URL(page.url()).pathname !== '/login') await h.goto(page, '/login', 'login form');
  await page.fill('#username', username);
  await page.fill('#password', password);
  if (remember) await page.check('#remember_me');
  await h.submit(page, page.locator('form.stack button[type=submit]'), label);
}

export async function logout(h, page, label = 'after logout') {
  await h.submit(page, page.locator('nav.site-nav button', { hasText: 'Logout' }), label);
}

/** Shared lifecycle: server + browser per test file. */
export function setup(suite, { before, after, afterEach }, init = () => {}) {
  const ctx = {};
  before(async () => {
    ctx.server = await Server.start(suite);
    ctx.browser = await launchBrowser();
    ctx.h = new Harness(suite, ctx.server);
    await init(ctx);
  });
  afterEach(() => {
    if (ctx.h) ctx.h.watched = [];
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.server?.stop();
  });
  return ctx;
}
