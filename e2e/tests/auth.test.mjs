// Register, log out, log in; wrong password; the login redirect back to a
// protected page; keyboard-only login; the password show/hide toggle.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setup, flashes, login, logout, PASSWORD } from './harness.mjs';

const ctx = setup('auth', { before, after, afterEach });

test('register, log out, log in', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);

  await h.goto(page, '/', 'home, signed out');
  assert.deepEqual(await page.locator('nav.site-nav li').allInnerTexts(), ['Home', 'Login', 'Register']);

  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'Register' }), 'register form');
  await page.fill('#username', 'alice');
  await page.fill('#email', 'alice@example.com');
  await page.fill('#password', PASSWORD);
  await h.submit(page, page.getByRole('button', { name: 'Register' }), 'dashboard after registering');
  assert.equal(new URL(page.url()).pathname, '/dashboard');
  assert.equal((await page.locator('h1').innerText()).trim(), 'Welcome, alice!');
  const nav = await page.locator('nav.site-nav').innerText();
  for (const item of ['Home', 'Dashboard', 'New Post', 'Welcome, alice!', 'Logout']) {
    assert.ok(nav.includes(item), `navigation shows ${item}: ${nav}`);
  }

  // GET /logout asks first; its button logs out.
  await h.goto(page, '/logout', 'logout confirmation');
  await h.submit(page, page.locator('main button[type=submit]', { hasText: 'Log out' }), 'home after logout');
  assert.equal(new URL(page.url()).pathname, '/');
  assert.ok((await flashes(page, 'info')).some((m) => /logged out/i.test(m)));
  await h.goto(page, '/dashboard', 'dashboard after logout redirects to login');
  assert.equal(new URL(page.url()).pathname, '/login');

  await login(h, page, { username: 'alice' }, 'dashboard after login');
  assert.equal(new URL(page.url()).pathname, '/dashboard');
  assert.equal((await page.locator('h1').innerText()).trim(), 'Welcome, alice!');

  // A signed-in visitor asking for /login goes to the dashboard.
  await h.goto(page, '/login', 'login while signed in');
  assert.equal(new URL(page.url()).pathname, '/dashboard');

  // The Logout button in the navigation.
  await logout(h, page, 'home after logout from the navigation');
  assert.equal(new URL(page.url()).pathname, '/');
  assert.ok(await page.locator('nav.site-nav a', { hasText: 'Login' }).isVisible());

  // Logging in by email works too.
  await login(h, page, { username: 'alice@example.com' }, 'dashboard after login by email');
  assert.equal(new URL(page.url()).pathname, '/dashboard');

  await context.close();
  h.finish();
});

test('registration errors are shown on the form', async () => {
  const { h, browser, server } = ctx;
  server.createUser({ username: 'taken', email: 'taken@example.com' });
  const context = await h.newContext(browser);
  const page = await h.newPage(context);

  await h.goto(page, '/register', 'register form');
  await page.fill('#username', 'Taken');
  await page.fill('#email', 'other@example.com');
  await page.fill('#password', PASSWORD);
  await h.submit(page, page.getByRole('button', { name: 'Register' }), 'register: username taken');
  assert.ok((await page.content()).includes('Username already exists'), 'says the username exists');
  assert.equal(await page.inputValue('#email'), 'other@example.com', 'keeps what was typed');

  await page.fill('#username', 'newname');
  await page.fill('#email', 'TAKEN@example.com');
  await page.fill('#password', PASSWORD);
  await h.submit(page, page.getByRole('button', { name: 'Register' }), 'register: email taken');
  assert.ok((await page.content()).includes('Email already registered'), 'says the email is registered');

  await page.fill('#username', 'newname');
  await page.fill('#email', 'new@example.com');
  await page.fill('#password', 'short');
  await h.submit(page, page.getByRole('button', { name: 'Register' }), 'register: password too short');
  assert.ok((await page.content()).includes('Password must be at least 8 characters'), 'says the password is short');

  await context.close();
  h.finish();
});

test('a wrong password shows "Invalid username or password"', async () => {
  const { h, browser, server } = ctx;
  server.createUser({ username: 'bob', email: 'bob@example.com' });
  const context = await h.newContext(browser);
  const page = await h.newPage(context);

  await login(h, page, { username: 'bob', password: 'not the right one' }, 'login: wrong password');
  assert.equal(new URL(page.url()).pathname, '/login');
  const errors = await flashes(page, 'error');
  assert.ok(errors.includes('Invalid username or password'), `flash: ${JSON.stringify(errors)}`);
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');

  // An unknown account gets the same answer.
  await login(h, page, { username: 'nobody-here', password: 'not the right one' }, 'login: unknown user');
  assert.ok((await flashes(page, 'error')).includes('Invalid username or password'));

  await context.close();
  h.finish();
});

test('a protected page sends you to log in and back again', async () => {
  const { h, browser, server } = ctx;
  server.createUser({ username: 'carol', email: 'carol@example.com' });
  const context = await h.newContext(browser);
  const page = await h.newPage(context);

  await h.goto(page, '/posts/new', 'new post, signed out: login form');
  const here = new URL(page.url());
  assert.equal(here.pathname, '/login');
  assert.equal(here.searchParams.get('next'), '/posts/new');

  await page.fill('#username', 'carol');
  await page.fill('#password', PASSWORD);
  await h.submit(page, page.getByRole('button', { name: 'Log in' }), 'new post after login');
  assert.equal(new URL(page.url()).pathname, '/posts/new');
  assert.equal((await page.locator('h1').innerText()).trim(), 'New post');

  // next pointing off the site lands on the dashboard instead.
  await logout(h, page);
  await h.goto(page, '/login?next=https%3A%2F%2Fevil.example%2F', 'login with an off-site next');
  await page.fill('#username', 'carol');
  await page.fill('#password', PASSWORD);
  await h.submit(page, page.getByRole('button', { name: 'Log in' }), 'dashboard after login with an off-site next');
  assert.equal(page.url(), h.url('/dashboard'));

  await context.close();
  h.finish();
});

test('keyboard: the skip link comes first and the login form works without a mouse', async () => {
  const { h, browser, server } = ctx;
  server.createUser({ username: 'dave', email: 'dave@example.com' });
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await h.goto(page, '/login', 'login form');

  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      return {
        tag: el.tagName.toLowerCase(),
        id: el.id,
        cls: el.className,
        text: (el.innerText || el.value || '').trim(),
        type: el.getAttribute('type'),
      };
    });

  await page.keyboard.press('Tab');
  let f = await focused();
  assert.equal(f.cls, 'skip-link', `first Tab stop is the skip link, got ${JSON.stringify(f)}`);
  assert.equal(f.text, 'Skip to content');
  const box = await page.locator('a.skip-link').boundingBox();
  assert.ok(box && box.y >= 0 && box.height > 0, 'the focused skip link is on screen');
  await h.audit(page, 'login form, skip link focused');

  await page.keyboard.press('Enter');
  f = await focused();
  assert.equal(f.id, 'main', 'the skip link moves focus to main');

  await page.keyboard.press('Tab');
  f = await focused();
  assert.equal(f.id, 'username', `after main comes the username field, got ${JSON.stringify(f)}`);
  await page.keyboard.type('dave');

  await page.keyboard.press('Tab');
  f = await focused();
  assert.equal(f.id, 'password');
  await page.keyboard.type(PASSWORD);

  await page.keyboard.press('Tab');
  f = await focused();
  assert.ok(/toggle-password/.test(f.cls), `then the show-password button, got ${JSON.stringify(f)}`);
  await page.keyboard.press('Space');
  assert.equal(await page.getAttribute('#password', 'type'), 'text', 'Space on the toggle shows the password');
  await page.keyboard.press('Space');
  assert.equal(await page.getAttribute('#password', 'type'), 'password');

  await page.keyboard.press('Tab');
  f = await focused();
  assert.equal(f.id, 'remember_me');
  await page.keyboard.press('Space');
  assert.ok(await page.isChecked('#remember_me'));

  await page.keyboard.press('Tab');
  f = await focused();
  assert.equal(f.tag, 'button');
  assert.equal(f.text, 'Log in');
  await h.press(page, 'Enter', 'dashboard after keyboard login');
  assert.equal(new URL(page.url()).pathname, '/dashboard');
  assert.equal((await page.locator('h1').innerText()).trim(), 'Welcome, dave!');

  await context.close();
  h.finish();
});

test('the show/hide password toggle works under the CSP', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);

  for (const [p, label] of [['/login', 'login form'], ['/register', 'register form']]) {
    await h.goto(page, p, label);
    const input = page.locator('#password');
    const toggle = page.locator('div.password-field button.toggle-password');
    assert.equal(await toggle.count(), 1, `${p}: password.js added the toggle`);
    assert.equal(await input.getAttribute('type'), 'password');
    assert.equal((await toggle.innerText()).trim(), 'Show');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');

    await page.fill('#password', 'secret words here');
    await toggle.click();
    assert.equal(await input.getAttribute('type'), 'text', `${p}: clicking shows the password`);
    assert.equal((await toggle.innerText()).trim(), 'Hide');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await h.audit(page, `${label}, password shown`);

    await toggle.click();
    assert.equal(await input.getAttribute('type'), 'password', `${p}: clicking again hides it`);
  }

  // The strength hint on the register form, also from password.js.
  await page.fill('#password', '');
  await page.locator('#password').pressSequentially('a much longer pass phrase 7');
  const strength = await page.locator('#password-strength').innerText();
  assert.ok(strength.length > 0, 'strength hint is filled in');
  await h.audit(page, 'register form, strength hint');

  await context.close();
  h.finish();
});
