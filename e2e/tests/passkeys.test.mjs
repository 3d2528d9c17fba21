// Passkeys in Chromium with a virtual authenticator (the DevTools
// protocol's WebAuthn domain): add one, sign out, sign in with it typing no
// password; a credential relabelled for another user is refused; remove it.
// The site runs at http://localhost:PORT: WebAuthn needs a host name.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, Harness, PASSWORD, launchBrowser, flashes, login, logout } from './harness.mjs';

const ctx = {};

before(async () => {
  ctx.server = await Server.start('passkeys', { host: 'localhost' });
  ctx.server.createUser({ username: 'pia', email: 'pia@example.com' });
  ctx.server.createUser({ username: 'quinn', email: 'quinn@example.com' });
  ctx.browser = await launchBrowser();
  ctx.h = new Harness('passkeys', ctx.server);
});

after(async () => {
  await ctx.browser?.close();
  await ctx.server?.stop();
});

/** A page whose browser has a platform authenticator with user verification. */
async function pageWithAuthenticator() {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page, cdp, authenticatorId };
}

async function credentials(a) {
  return (await a.cdp.send('WebAuthn.getCredentials', { authenticatorId: a.authenticatorId })).credentials;
}

/** Adds a passkey named `name` on /account/passkeys. */
async function addPasskey(h, page, name, label) {
  await h.goto(page, '/account/passkeys', `${label}: passkeys page`);
  await page.fill('#passkey-name', name);
  await h.submit(page, page.locator('#add-passkey-button'), `${label}: passkey added`);
  assert.deepEqual(await flashes(page, 'success'), ['Passkey added.']);
  assert.ok((await page.locator('#passkey-list').innerText()).includes(name));
}

/**
 * The user's presence, as the authenticator sees it. With it on, the
 * authenticator answers at once, the autofill request the login page makes
 * on loading included; off, requests wait.
 */
async function presence(a, enabled) {
  await a.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: a.authenticatorId, enabled });
}

/** Opens /login with the authenticator waiting, so the page stays for its checks. */
async function loginPage(h, a, label) {
  await presence(a, false);
  await h.goto(a.page, '/login', label);
}

/**
 * Presses "Sign in with a passkey" with the user present: the button's
 * request replaces the waiting autofill request, and is answered.
 */
async function pressPasskeyButton(a) {
  await presence(a, true);
  await a.page.locator('#passkey-login').click();
}

test('a passkey is added, signs in without a password, and is removed', async () => {
  const { h } = ctx;
  const a = await pageWithAuthenticator();
  const page = a.page;

  await login(h, page, { username: 'pia' }, 'pia signed in with her password');
  await addPasskey(h, page, 'Test laptop', 'pia');
  const creds = await credentials(a);
  assert.equal(creds.length, 1, 'one credential on the authenticator');
  assert.equal(creds[0].isResidentCredential, true, 'a discoverable credential');
  const row = page.locator('tr.passkey', { hasText: 'Test laptop' });
  assert.ok((await row.innerText()).includes('never'), 'not used yet');

  await logout(h, page, 'pia signed out');
  await loginPage(h, a, 'login page with the passkey button');
  assert.equal(await page.getAttribute('#username', 'autocomplete'), 'username webauthn', 'autofill is offered');
  assert.ok(await page.locator('#passkey-login').isVisible(), 'the passkey button shows with the script');
  assert.equal(
    await page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable()),
    true,
    'the browser can offer passkeys in the username field',
  );
  assert.equal(await page.inputValue('#password'), '', 'no password typed');
  const loaded = page.waitForURL('**/dashboard');
  await pressPasskeyButton(a);
  await loaded;
  await h.audit(page, 'pia signed in with her passkey');
  assert.ok((await page.locator('body').innerText()).includes('Welcome, pia!'));

  // Autofill: with the user present, the login page's request for the
  // username field's list is answered, and pia is signed in on arrival.
  await logout(h, page, 'pia signed out before autofill');
  await presence(a, true);
  const landed = page.waitForURL('**/dashboard');
  await page.goto(h.url('/login'));
  await landed;
  // The login page, audited above in the same state, was left before it
  // could be audited again.
  for (const l of h.watch(page).loads) l.audited = true;
  await h.audit(page, 'pia signed in through autofill');
  assert.ok((await page.locator('body').innerText()).includes('Welcome, pia!'));
  await h.goto(page, '/account/passkeys', 'passkeys page after a passkey sign-in');
  assert.ok(!(await page.locator('tr.passkey', { hasText: 'Test laptop' }).innerText()).includes('never'), 'last use shown');

  // Another browser holds pia's key relabelled as quinn's: refused.
  const b = await pageWithAuthenticator();
  await login(h, b.page, { username: 'quinn' }, 'quinn signed in with his password');
  await addPasskey(h, b.page, 'Quinn phone', 'quinn');
  const quinnHandle = (await credentials(b))[0].userHandle;
  await logout(h, b.page, 'quinn signed out');
  await b.cdp.send('WebAuthn.clearCredentials', { authenticatorId: b.authenticatorId });
  const stolen = { ...(await credentials(a))[0], userHandle: quinnHandle };
  await b.cdp.send('WebAuthn.addCredential', { authenticatorId: b.authenticatorId, credential: stolen });
  await loginPage(h, b, 'login page, relabelled credential');
  await pressPasskeyButton(b);
  await b.page.locator('#passkey-error', { hasText: 'could not be verified' }).waitFor();
  await h.audit(b.page, 'relabelled credential refused');
  assert.equal(new URL(b.page.url()).pathname, '/login', 'still signed out');
  await b.context.close();

  // Remove: the password is asked for.
  await h.goto(page, '/account/passkeys', 'passkeys page before removing');
  const remove = page.locator('tr.passkey', { hasText: 'Test laptop' });
  await remove.locator('input[name=password]').fill('not my password');
  await h.submit(page, remove.getByRole('button', { name: 'Remove', exact: true }), 'wrong password: kept');
  assert.equal((await flashes(page, 'error')).length, 1);
  assert.equal(await page.locator('tr.passkey').count(), 1);
  const again = page.locator('tr.passkey', { hasText: 'Test laptop' });
  await again.locator('input[name=password]').fill(PASSWORD);
  await h.submit(page, again.getByRole('button', { name: 'Remove', exact: true }), 'passkey removed');
  assert.deepEqual(await flashes(page, 'success'), ['Passkey removed.']);
  assert.equal(await page.locator('tr.passkey').count(), 0);

  // The authenticator still holds the key; the site no longer knows it.
  await logout(h, page, 'pia signed out again');
  await loginPage(h, a, 'login page after removal');
  await pressPasskeyButton(a);
  await page.locator('#passkey-error', { hasText: 'could not be verified' }).waitFor();
  await h.audit(page, 'removed passkey refused');
  assert.equal(new URL(page.url()).pathname, '/login');

  await a.context.close();
  h.finish();
});
