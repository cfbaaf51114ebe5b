import { expect, test } from '@jupyterlab/galata';

test('a planned stop shows as a notification and goes when called off', async ({ page }) => {
  const stopAt = new Date(Date.now() + 240 * 1000).toISOString();
  const put = (body: unknown) =>
    page.evaluate(async body => {
      const xsrf = document.cookie.match(/_xsrf=([^;]+)/)?.[1] ?? '';
      const r = await fetch('/backendai-hub/cull', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf },
        body: JSON.stringify(body)
      });
      return r.status;
    }, body);

  expect(await put({ stop_at: stopAt, reason: 'max session lifetime of 3600 s reached' })).toBe(200);
  const toast = page.locator('.Toastify__toast', { hasText: 'This session stops at' });
  await expect(toast).toBeVisible({ timeout: 20000 });
  await expect(toast).toContainText('max session lifetime of 3600 s reached');

  expect(await put({ stop_at: null, reason: null })).toBe(200);
  await expect(toast).toHaveCount(0, { timeout: 20000 });
});
