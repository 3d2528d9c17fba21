// Two-factor sign-in in Chromium: enrol by reading the secret from the
// page and computing the code here, sign in with the second step, use a
// recovery code, and an administrator's reset.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setup, flashes, login, logout } from './harness.mjs';

const ADMIN_PASSWORD = 'pass phrase here';
const ctx = setup('two_factor', { before, after, afterEach }, ({ server }) => {
  server.createUser({ username: 'admin', email: 'admin@example.com', password: ADMIN_PASSWORD, admin: true });
  server.createUser({ username: 'tess', email: 'tess@example.com' });
});

/** RFC 4648 base32, as authenticator apps read it. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 with HMAC-SHA-1, 6 digits, 30 s steps; `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 30_000) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', secret).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

test('enrol with the page secret, then sign in with password and code', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'tess' });
  await h.goto(page, '/account', 'account');
  await h.submit(page, page.locator('main a', { hasText: 'Two-factor sign-in' }), 'two-factor: off');
  assert.equal(new URL(page.url()).pathname, '/account/two-factor');

  await h.submit(page, page.getByRole('button', { name: 'Set up two-factor sign-in' }), 'two-factor: set up');
  assert.equal(await page.locator('.qr svg').count(), 1, 'a QR code');
  const uri = await page.locator('#totp-uri').textContent();
  assert.match(uri, /^otpauth:\/\/totp\/Portcullis:tess\?/);
  const secret = base32Decode(await page.locator('#totp-secret').textContent());

  await page.fill('#code', '000000');
  await h.submit(page, page.getByRole('button', { name: 'Turn on' }), 'two-factor: wrong code');
  assert.ok((await flashes(page, 'error')).length > 0);

  await page.fill('#code', totp(secret));
  await h.submit(page, page.getByRole('button', { name: 'Turn on' }), 'two-factor: recovery codes');
  const codes = (await page.locator('.recovery-code').allTextContents()).map((c) => c.trim());
  assert.equal(codes.length, 10);
  const download = page.waitForEvent('download');
  await page.click('#recovery-download');
  const file = await download;
  assert.equal(file.suggestedFilename(), 'portcullis-recovery-codes.txt');
  const fs = await import('node:fs');
  const text = fs.readFileSync(await file.path(), 'utf8');
  for (const c of codes) assert.ok(text.includes(c), `the download holds ${c}`);

  await logout(h, page);
  await login(h, page, { username: 'tess' }, 'second step');
  assert.equal(new URL(page.url()).pathname, '/login/two-factor');
  const cookies = await context.cookies();
  assert.ok(!cookies.some((c) => c.name === 'portcullis_session'), 'no session between the steps');
  // The next step's code: the enrolment used this step's.
  await page.fill('#code', totp(secret, 1));
  await h.submit(page, page.getByRole('button', { name: 'Sign in' }), 'dashboard after the second step');
  assert.equal(new URL(page.url()).pathname, '/dashboard');

  // A recovery code works once, and the page says how many remain.
  await logout(h, page);
  await login(h, page, { username: 'tess' }, 'second step again');
  await page.fill('#code', codes[0]);
  await h.submit(page, page.getByRole('button', { name: 'Sign in' }), 'dashboard after a recovery code');
  assert.ok((await flashes(page, 'info')).some((m) => m.includes('9 recovery codes left')));
  await h.goto(page, '/account/two-factor', 'two-factor: on');
  assert.ok((await page.locator('#recovery-left').textContent()).includes('9 recovery codes left'));
  await context.close();

  // The administrator sees who has 2FA and resets it behind a confirmation.
  const admin = await h.newContext(browser);
  const apage = await h.newPage(admin);
  await login(h, apage, { username: 'admin', password: ADMIN_PASSWORD }, 'dashboard as admin');
  await h.goto(apage, '/admin/users', 'admin users with 2FA');
  const row = apage.locator('tr', { hasText: 'tess@example.com' });
  assert.ok((await row.innerText()).includes('2FA'));
  await h.submit(apage, row.locator('a', { hasText: 'Reset two-factor' }), 'reset two-factor: confirm');
  await h.submit(apage, apage.locator('main button[type=submit]', { hasText: 'Reset two-factor' }), 'after the reset');
  assert.ok((await flashes(apage, 'success')).some((m) => m.includes('off for tess')));
  await admin.close();
  h.finish();
});
