// The docker-compose demo in Chromium (tests/it/container.rs): open the protected page, get
// sent to latch's sign-in, sign in with the dev provider, land on the page with the user.
//   DEMO_URL     the demo's protected page, e.g. http://localhost:8080/
//   EMAIL        the identity to sign in as
//   SCREENSHOT   where to save a screenshot of the protected page
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { launch, report } from './common.mjs';

const demo = process.env.DEMO_URL;
const who = process.env.EMAIL;
const screenshot = process.env.SCREENSHOT;

await report(async (steps) => {
  const { context, page, consoleErrors, close } = await launch();
  try {
    const first = await page.goto(demo);
    const signinUrl = page.url();
    steps.push(`opened ${demo}: ${first.status()} at ${signinUrl}`);
    const title = await page.title();

    await Promise.all([
      page.waitForURL(/\/authorize\?/),
      page.locator('ul.providers button').first().click(),
    ]);
    steps.push(`at provider ${new URL(page.url()).pathname}`);

    const landed = page.waitForURL((u) => u.href === demo);
    await page.locator('#email').fill(who);
    await page.getByRole('button', { name: 'Sign in as this user' }).click();
    await landed;
    steps.push(`landed ${page.url()}`);
    const text = (id) => page.locator(`#${id}`).innerText();
    const shown = {
      heading: await page.locator('h1').innerText(),
      email: await text('email'),
      name: await text('name'),
      user: await text('user'),
    };
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    steps.push(`screenshot ${screenshot}`);
    const cookies = (await context.cookies()).map(({ name, value, domain, path }) => ({
      name, value, domain, path,
    }));
    return { signinUrl, title, shown, cookies, consoleErrors };
  } finally {
    await close();
  }
});
