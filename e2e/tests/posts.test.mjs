// Posts: write one, edit it, and only its author may edit it.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setup, flashes, login } from './harness.mjs';

const ctx = setup('posts', { before, after, afterEach }, ({ server }) => {
  server.createUser({ username: 'frank', email: 'frank@example.com' });
  server.createUser({ username: 'grace', email: 'grace@example.com' });
});
let postPath;


test('create a post and edit it', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'frank' });

  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'New Post' }), 'new post form');
  // An empty form is refused with messages, not a crash.
  await h.submit(page, page.getByRole('button', { name: 'Publish' }), 'new post: empty form refused');
  assert.equal(new URL(page.url()).pathname, '/posts/new');
  assert.ok((await flashes(page, 'error')).length > 0 || (await page.locator('[aria-invalid=true]').count()) > 0,
    'the empty form is refused with a visible error');

  await page.fill('#title', 'First light');
  await page.fill('#content', 'The gate opens at dawn.\n\nSecond paragraph, with <b>markup</b> that must stay text.');
  await h.submit(page, page.getByRole('button', { name: 'Publish' }), 'post after publishing');
  postPath = new URL(page.url()).pathname;
  assert.match(postPath, /^\/posts\/[^/]+$/, 'lands on the new post');
  assert.equal((await page.locator('h1').innerText()).trim(), 'First light');
  assert.ok((await page.locator('div.post-body').innerText()).includes('<b>markup</b>'), 'HTML in content is escaped');
  assert.equal(await page.locator('div.post-body b').count(), 0);

  await h.submit(page, page.locator('a.button', { hasText: 'Edit' }), 'edit post form');
  assert.equal(new URL(page.url()).pathname, `${postPath}/edit`);
  assert.equal(await page.inputValue('#title'), 'First light');
  await page.fill('#title', 'First light, revised');
  await h.submit(page, page.getByRole('button', { name: 'Save changes' }), 'post after editing');
  assert.equal(new URL(page.url()).pathname, postPath);
  assert.ok((await flashes(page, 'success')).includes('Post updated successfully'));
  assert.equal((await page.locator('h1').innerText()).trim(), 'First light, revised');

  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'Dashboard' }), 'dashboard with a post');
  assert.ok((await page.locator('ul.post-list').innerText()).includes('First light, revised'));
  await h.submit(page, page.locator('nav.site-nav a', { hasText: 'Home' }), 'home with a post');
  assert.ok((await page.locator('ul.post-list').innerText()).includes('First light, revised'));

  await context.close();
  h.finish();
});

test("another user's edit is refused", async () => {
  const { h, browser } = ctx;
  assert.ok(postPath, 'the previous test made a post');
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'grace' });

  await h.goto(page, postPath, "someone else's post");
  assert.equal(await page.locator('a', { hasText: 'Edit' }).count(), 0, 'no Edit button for a stranger');
  assert.equal(await page.locator('button', { hasText: 'Delete' }).count(), 0, 'no Delete button for a stranger');

  const res = await h.goto(page, `${postPath}/edit`, "edit someone else's post: 403");
  assert.equal(res.status(), 403);
  assert.ok((await page.locator('main').innerText()).includes('You can only edit your own posts'));

  // The same from a real form POST: take grace's own new-post form and point
  // it at frank's post.
  await h.goto(page, '/posts/new', 'new post form');
  await page.evaluate((action) => {
    document.querySelector('main form').setAttribute('action', action);
  }, `${postPath}/edit`);
  await page.fill('#title', 'Hijacked');
  await page.fill('#content', 'Not yours.');
  const responded = page.waitForResponse((r) => r.request().method() === 'POST');
  await h.submit(page, page.getByRole('button', { name: 'Publish' }), "POST an edit to someone else's post: 403");
  assert.equal((await responded).status(), 403);
  assert.ok((await page.locator('main').innerText()).includes('You can only edit your own posts'));

  await h.goto(page, postPath, 'the post is unchanged');
  assert.equal((await page.locator('h1').innerText()).trim(), 'First light, revised');

  await context.close();
  h.finish();
});

test('an unknown post is a 404 page', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  const res = await h.goto(page, '/posts/999999', 'unknown post: 404');
  assert.equal(res.status(), 404);
  assert.equal(await page.locator('header.site-header').count(), 1, "the site's own error page");
  await context.close();
  h.finish();
});

test('the author deletes the post', async () => {
  const { h, browser } = ctx;
  const context = await h.newContext(browser);
  const page = await h.newPage(context);
  await login(h, page, { username: 'frank' });
  await h.goto(page, postPath, 'own post');
  await h.submit(page, page.locator('button.danger', { hasText: 'Delete' }), 'after deleting the post');
  assert.ok((await flashes(page)).some((m) => /deleted/i.test(m)));
  const res = await h.goto(page, postPath, 'deleted post: 404');
  assert.equal(res.status(), 404);
  await context.close();
  h.finish();
});
