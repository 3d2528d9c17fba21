// The administrators' overview: server-drawn charts with their tables,
// numbers that match what happened, axe clean at both widths.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setup, login } from './harness.mjs';

const ADMIN_PASSWORD = 'pass phrase here';
const ctx = setup('overview', { before, after, afterEach }, ({ server }) => {
  server.createUser({ username: 'admin', email: 'admin@example.com', password: ADMIN_PASSWORD, admin: true });
  server.createUser({ username: 'judy', email: 'judy@example.com' });
});

test('the overview draws its charts and counts the sign-ins', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  // One failed sign-in, then the administrator's.
  await h.goto(page, '/login', 'login form');
  await page.fill('#username', 'judy');
  await page.fill('#password', 'not her password');
  await h.submit(page, page.getByRole('button', { name: 'Log in' }), 'failed login');
  await login(h, page, { username: 'admin', password: ADMIN_PASSWORD }, 'dashboard as admin');

  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'Admin' }), 'admin overview');
  assert.equal(new URL(page.url()).pathname, '/admin');
  assert.equal(await page.locator('svg.chart').count(), 3);
  assert.equal(await page.locator('svg.chart-sign-ins rect.bar').count(), 30);
  const sum = async (id) => {
    // The tables sit in closed <details>: their text is there, not rendered.
    const cells = await page.locator(`#${id} tbody td:nth-child(2)`).allTextContents();
    return cells.reduce((s, v) => s + Number(v), 0);
  };
  assert.equal(await sum('table-sign-ins'), 1);
  assert.equal(await sum('table-failures'), 1);
  assert.equal(await sum('table-lockouts'), 0);
  assert.equal((await page.locator('#count-users').innerText()).trim(), '2');
  await page.locator('#chart-sign-ins summary').click();
  assert.ok(await page.locator('#table-sign-ins').isVisible());
  await h.audit(page, 'admin overview with a table open');
  await context.close();
  h.finish();
});
