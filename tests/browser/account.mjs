// The account page in Chromium, as a person with two devices uses it: sign in on both with
// no callbackUrl (and land on the account page), see both sessions from the laptop, end the
// phone's with its button, and watch the phone's next /session answer {}.
//   LATCH_BASE   latch's origin + base_path
//   EMAIL        the identity to sign in as at the dev provider
//   SCREENSHOT   optional: where to save a screenshot of the account page at phone size
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { launch, pageJson, report } from './common.mjs';

const base = process.env.LATCH_BASE;
const who = process.env.EMAIL;
const screenshot = process.env.SCREENSHOT;
const accountUrl = `${base}/account`;

/** Signs in with the dev provider from the sign-in page (no callbackUrl), by clicking. */
async function signIn(page, steps, name) {
  await page.goto(`${base}/signin`);
  await Promise.all([
    page.waitForURL(/\/authorize\?/),
    page.locator('ul.providers button').first().click(),
  ]);
  await page.locator('#email').fill(who);
  const landed = page.waitForURL((u) => u.href === accountUrl);
  await page.getByRole('button', { name: 'Sign in as this user' }).click();
  await landed;
  steps.push(`${name} landed ${page.url()}`);
}

const sessionRows = (page) => page.locator('ul[aria-labelledby=sessions] > li');

await report(async (steps) => {
  const laptop = await launch();
  const phone = await launch();
  try {
    await phone.page.setViewportSize({ width: 390, height: 844 });
    await signIn(laptop.page, steps, 'laptop');
    await signIn(phone.page, steps, 'phone');

    // The phone sees both sessions on a phone-sized screen, with nothing wider than it.
    await phone.page.reload();
    const phoneRows = await sessionRows(phone.page).count();
    const overflow = await phone.page.evaluate(
      () => document.documentElement.scrollWidth - window.innerWidth,
    );
    if (screenshot) {
      mkdirSync(dirname(screenshot), { recursive: true });
      await phone.page.screenshot({ path: screenshot, fullPage: true });
      steps.push(`screenshot ${screenshot}`);
    }

    // The laptop ends the other device's session with that row's button.
    await laptop.page.reload();
    const title = await laptop.page.title();
    const rowsBefore = await sessionRows(laptop.page).allInnerTexts();
    const other = sessionRows(laptop.page).filter({ hasNotText: 'this device' });
    await Promise.all([
      laptop.page.waitForURL((u) => u.href === accountUrl),
      other.getByRole('button').click(),
    ]);
    steps.push('ended the other session');
    const rowsAfter = await sessionRows(laptop.page).allInnerTexts();

    // The phone's next look at its session: signed out. Its account page sends it to sign in.
    await phone.page.goto(`${base}/session`);
    const phoneSession = await pageJson(phone.page);
    await phone.page.goto(accountUrl);
    const phoneAccountLandedAt = phone.page.url();
    await laptop.page.goto(`${base}/session`);
    const laptopSession = await pageJson(laptop.page);
    return {
      title, phoneRows, overflow, rowsBefore, rowsAfter, phoneSession, phoneAccountLandedAt,
      laptopSession, consoleErrors: [...laptop.consoleErrors, ...phone.consoleErrors],
      screenshot: screenshot || null,
    };
  } finally {
    await laptop.close();
    await phone.close();
  }
});
