// The admin area: the users list, search, and an action behind its
// confirmation page.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setup, flashes, login } from './harness.mjs';

const ADMIN_PASSWORD = 'pass phrase here';
const ctx = setup('admin', { before, after, afterEach }, ({ server }) => {
  server.createUser({ username: 'admin', email: 'admin@example.com', password: ADMIN_PASSWORD, admin: true });
  server.createUser({ username: 'heidi', email: 'heidi@example.com' });
  server.createUser({ username: 'ivan', email: 'ivan@example.com', verified: false });
});


test('a non-admin is refused the admin area', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'heidi' });
  assert.equal(await page.locator('nav.site-nav a', { hasText: 'Admin' }).count(), 0);
  const res = await h.goto(page, '/admin/users', 'admin users as a non-admin: 403');
  assert.equal(res.status(), 403);
  await context.close();
  h.finish();
});

test('admin: list, search, lock behind a confirmation, unlock', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'admin', password: ADMIN_PASSWORD }, 'dashboard as admin');

  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'Admin' }), 'admin overview');
  await h.submit(page, page.locator('main a', { hasText: 'Users' }), 'admin users');
  assert.equal(new URL(page.url()).pathname, '/admin/users');
  const all = await page.locator('table tbody').innerText();
  for (const name of ['admin', 'heidi', 'ivan']) assert.ok(all.includes(name), `lists ${name}`);

  await page.fill('#q', 'heid');
  await h.submit(page, page.getByRole('button', { name: 'Search' }), 'admin users: search');
  assert.equal(new URL(page.url()).searchParams.get('q'), 'heid');
  const rows = page.locator('table tbody tr');
  assert.equal(await rows.count(), 1, 'one match');
  assert.ok((await rows.first().innerText()).includes('heidi@example.com'));

  await page.fill('#q', 'nobody-like-this');
  await h.submit(page, page.getByRole('button', { name: 'Search' }), 'admin users: no match');
  assert.ok((await page.locator('table tbody').innerText()).includes('No users match.'));

  await h.goto(page, '/admin/users?q=heidi', 'admin users: heidi');
  const row = page.locator('table tbody tr', { hasText: 'heidi@example.com' });

  // Delete asks first; Cancel leaves the user alone.
  await h.submit(page, row.getByRole('link', { name: 'Delete' }), 'admin: delete confirmation');
  assert.match((await page.locator('h1').innerText()).trim(), /^Delete user: heidi\?$/);
  await h.submit(page, page.getByRole('link', { name: 'Cancel' }), 'admin users after cancelling');
  assert.equal(new URL(page.url()).pathname, '/admin/users');
  assert.ok((await page.locator('table tbody').innerText()).includes('heidi'));

  await h.goto(page, '/admin/users?q=heidi', 'admin users: heidi');
  await h.submit(page, row.getByRole('link', { name: 'Lock' }), 'admin: lock confirmation');
  assert.match((await page.locator('h1').innerText()).trim(), /^Lock account: heidi\?$/);
  await h.submit(page, page.locator('main form button[type=submit]'), 'admin users after locking');
  assert.ok((await flashes(page, 'success')).length > 0, 'a success flash');
  await h.goto(page, '/admin/users?q=heidi', 'admin users: heidi locked');
  assert.ok((await row.locator('.badge.locked').count()) === 1, 'heidi shows as locked');

  // heidi cannot log in while locked.
  const other = await h.newContext(browser);
  const page2 = await h.newPage(other);
  await login(h, page2, { username: 'heidi' }, 'login while locked');
  assert.equal(new URL(page2.url()).pathname, '/login');
  assert.ok((await flashes(page2, 'error')).length > 0, 'an error flash');

  await h.submit(page, row.getByRole('link', { name: 'Unlock' }), 'admin: unlock confirmation');
  await h.submit(page, page.locator('main form button[type=submit]'), 'admin users after unlocking');
  await login(h, page2, { username: 'heidi' }, 'login after unlock');
  assert.equal(new URL(page2.url()).pathname, '/dashboard');

  // The audit log has the lock and unlock, and filters by user.
  const res = await h.goto(page, '/admin/audit', 'admin audit log');
  if (res.status() === 404) {
    console.log('note: /admin/audit is not there yet; not checked');
  } else {
    assert.equal(res.status(), 200);
    await page.fill('#user', 'heidi');
    await h.submit(page, page.getByRole('button', { name: 'Filter' }), 'admin audit log: heidi');
    assert.equal(new URL(page.url()).searchParams.get('user'), 'heidi');
    assert.ok((await page.locator('table tbody tr').count()) >= 1);
  }

  await other.close();
  await context.close();
  h.finish();
});
