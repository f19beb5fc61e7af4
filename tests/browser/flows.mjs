// A real sign-in and sign-out in Chromium, as a user would do it.
//   LATCH_BASE   latch's origin + base_path
//   MODE         dev-click | dev-keyboard | oidc-click
//   EMAIL        dev provider: the identity to sign in as; oidc: the login name
//   SCREENSHOT   optional: where to save a screenshot of the sign-in page
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { launch, pageJson, report } from './common.mjs';

const base = process.env.LATCH_BASE;
const mode = process.env.MODE;
const who = process.env.EMAIL;
const screenshot = process.env.SCREENSHOT;
const keyboard = mode === 'dev-keyboard';
const sessionUrl = `${base}/session`;

/** Presses Tab until the focused element matches `selector`; returns the number of presses. */
async function tabTo(page, selector, max = 25) {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return i;
  }
  throw new Error(`Tab never reached ${selector} on ${page.url()}`);
}

await report(async (steps) => {
  const { page, consoleErrors, close } = await launch();
  try {
    const signinUrl = `${base}/signin?callbackUrl=${encodeURIComponent(sessionUrl)}`;
    const signin = await page.goto(signinUrl);
    steps.push(`signin page ${signin.status()}`);
    const title = await page.title();
    const buttons = await page.locator('ul.providers button').allInnerTexts();
    if (screenshot) {
      mkdirSync(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      steps.push(`screenshot ${screenshot}`);
    }
    const tabs = {};

    // Choose the provider.
    if (keyboard) {
      tabs.signin = await tabTo(page, 'ul.providers button');
      await Promise.all([page.waitForURL(/\/authorize\?/), page.keyboard.press('Enter')]);
    } else {
      await Promise.all([
        page.waitForURL(mode === 'oidc-click' ? /\/interaction\// : /\/authorize\?/),
        page.locator('ul.providers button').first().click(),
      ]);
    }
    steps.push(`at provider ${new URL(page.url()).pathname}`);
    const providerUrl = page.url();

    // Sign in at the provider.
    const landed = page.waitForURL((u) => u.href === sessionUrl);
    if (mode === 'oidc-click') {
      await page.locator('#login').fill(who);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    } else if (keyboard) {
      tabs.email = await tabTo(page, '#email');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type(who);
      await page.keyboard.press('Enter');
    } else {
      await page.locator('#email').fill(who);
      await page.getByRole('button', { name: 'Sign in as this user' }).click();
    }
    await landed;
    steps.push(`landed ${page.url()}`);
    const landedUrl = page.url();
    const sessionAfterSignIn = await pageJson(page);

    // Sign out through the confirmation page.
    await page.goto(`${base}/signout?callbackUrl=${encodeURIComponent(sessionUrl)}`);
    const signoutText = await page.locator('body').innerText();
    const out = page.waitForURL((u) => u.href === sessionUrl);
    if (keyboard) {
      tabs.signout = await tabTo(page, 'button[type=submit]');
      await page.keyboard.press('Enter');
    } else {
      await page.getByRole('button', { name: 'Sign out' }).click();
    }
    await out;
    steps.push('signed out');
    const sessionAfterSignOut = await pageJson(page);
    const cookies = (await page.context().cookies()).map((c) => c.name);
    return {
      title, buttons, providerUrl, landedUrl, sessionAfterSignIn, signoutText,
      sessionAfterSignOut, cookiesAfterSignOut: cookies, tabs, consoleErrors,
      screenshot: screenshot || null,
    };
  } finally {
    await close();
  }
});
