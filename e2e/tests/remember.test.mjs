// "Remember me": a persistent cookie that outlives a browser restart; without
// it the session cookie ends with the browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Server, Harness, launchPersistent, login, PASSWORD } from './harness.mjs';

let server;
let h;
const profiles = [];

before(async () => {
  server = await Server.start('remember');
  h = new Harness('remember', server);
  server.createUser({ username: 'erin', email: 'erin@example.com' });
});

after(async () => {
  await server?.stop();
  for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
});

function profileDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-profile-'));
  profiles.push(dir);
  return dir;
}

async function open(dir) {
  const context = await launchPersistent(dir);
  const page = context.pages()[0] || (await context.newPage());
  h.watch(page);
  return { context, page };
}

async function sessionCookie(context) {
  const cookies = await context.cookies(server.base);
  return cookies.find((c) => /portcullis_session$/.test(c.name));
}

test('with "remember me" the session survives a browser restart', async () => {
  const dir = profileDir();
  let { context, page } = await open(dir);
  await login(h, page, { username: 'erin', password: PASSWORD, remember: true }, 'dashboard after remembered login');
  assert.equal(new URL(page.url()).pathname, '/dashboard');

  const cookie = await sessionCookie(context);
  assert.ok(cookie, 'a session cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.path, '/');
  const days = (cookie.expires * 1000 - Date.now()) / 86_400_000;
  assert.ok(days > 29 && days <= 30.01, `the cookie lasts REMEMBER_DURATION (30 days), got ${days.toFixed(2)} days`);

  await context.close();
  h.finish();

  ({ context, page } = await open(dir));
  await h.goto(page, '/dashboard', 'dashboard after browser restart (remembered)');
  assert.equal(new URL(page.url()).pathname, '/dashboard', 'still signed in after the restart');
  assert.equal((await page.locator('h1').innerText()).trim(), 'Welcome, erin!');
  await context.close();
  h.finish();
});

test('without "remember me" the session ends with the browser', async () => {
  const dir = profileDir();
  let { context, page } = await open(dir);
  await login(h, page, { username: 'erin', password: PASSWORD }, 'dashboard after login (not remembered)');
  assert.equal(new URL(page.url()).pathname, '/dashboard');

  const cookie = await sessionCookie(context);
  assert.ok(cookie, 'a session cookie is set');
  assert.equal(cookie.expires, -1, 'a browser-session cookie: no Expires/Max-Age');
  assert.equal(cookie.httpOnly, true);

  await context.close();
  h.finish();

  ({ context, page } = await open(dir));
  await h.goto(page, '/dashboard', 'dashboard after browser restart (not remembered)');
  const here = new URL(page.url());
  assert.equal(here.pathname, '/login', 'signed out after the restart');
  assert.equal(here.searchParams.get('next'), '/dashboard');
  assert.equal(await sessionCookie(context), undefined, 'the session cookie is gone');
  await context.close();
  h.finish();
});
