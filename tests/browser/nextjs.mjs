// examples/nextjs in Chromium, built (`next build`) and running (`next start`) beside latch:
// signed out, /dashboard sends to sign-in (middleware -> latch /verify); signIn('dev') from
// next-auth/react; the dashboard (a server component) shows the user from latch's /session;
// the API verifies the in-memory access token; after it expires, five parallel calls share
// ONE POST /refresh and are retried once; signOut() ends at sign-in (middleware again); and an
// API that refuses even a fresh token gets one refresh, one retry, then a sign-out (no loop);
// once the session ended elsewhere, a refused refresh leads to sign-in.
//   APP    the Next.js app's origin (latch's public_url; latch at base_path /api/auth)
//   EMAIL  the identity to sign in as at the dev provider
//   SCREENSHOT  optional: where to save a screenshot of the dashboard after the five calls
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { launch, report } from './common.mjs';

const app = process.env.APP;
const email = process.env.EMAIL;
const pathOf = (u) => new URL(u).pathname;
const atSignin = (u) => u.origin === app && u.pathname === '/api/auth/signin';

/** The claims of a JWT (no verification: the test reads `exp` to know when to go on). */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

await report(async (steps) => {
  const { context, page, consoleErrors, close } = await launch();
  try {
    // Every answer from the app's origin, in order: {method, path, status}.
    const log = [];
    let lastToken = null;
    page.on('response', async (r) => {
      const url = new URL(r.url());
      if (url.origin !== app) return;
      log.push({ method: r.request().method(), path: url.pathname, status: r.status() });
      if (['/api/auth/token', '/api/auth/refresh'].includes(url.pathname) && r.status() === 200) {
        lastToken = (await r.json()).access_token;
      }
    });
    // latch's /session with the browser's cookies (not fetched from a latch page: their CSP
    // allows no fetch).
    const sessionNow = async () => (await context.request.get(`${app}/api/auth/session`)).json();
    const since = (mark) => log.slice(mark);
    const count = (entries, method, path, status) =>
      entries.filter((e) => e.method === method && e.path === path && (status === undefined || e.status === status)).length;
    const result = async (round) => {
      const el = page.locator(`#result[data-round="${round}"]`);
      await el.waitFor();
      const attr = async (n) => Number(await el.getAttribute(`data-${n}`));
      const answer = await page.locator('#answer').innerText();
      return { ok: await attr('ok'), failed: await attr('failed'), refreshes: await attr('refreshes'), answer: JSON.parse(answer) };
    };
    const devSignIn = async () => {
      await page.waitForURL((u) => u.pathname === '/api/auth/dev/dev/authorize');
      await page.locator('#email').fill(email);
      await Promise.all([
        page.waitForURL(`${app}/dashboard`),
        page.getByRole('button', { name: 'Sign in as this user' }).click(),
      ]);
    };

    // 1. Signed out: the middleware sends /dashboard to latch's sign-in page.
    let mark = log.length;
    await page.goto(`${app}/dashboard`);
    const signedOutDashboard = { url: page.url(), answers: since(mark) };
    steps.push(`signed out /dashboard -> ${page.url()}`);

    // 2. The home page: useSession() says unauthenticated; signIn('dev') goes to the provider.
    await page.goto(`${app}/`);
    const statusBefore = await page.locator('#status', { hasText: 'signed out' }).innerText();
    await page.locator('#signin').click();
    await devSignIn();
    steps.push('signed in, at /dashboard');
    const dashboard = {
      name: await page.locator('#user-name').innerText(),
      email: await page.locator('#user-email').innerText(),
      id: await page.locator('#user-id').innerText(),
    };
    const session = await sessionNow();

    // 3. The API with a fresh token (POST /api/auth/token, then GET /api/me).
    mark = log.length;
    await page.locator('#call').click();
    const firstCall = { ...(await result(1)), answers: since(mark) };
    steps.push('called the API');
    const token = lastToken;
    // Where script could find it: Web Storage (next-auth keeps its cross-tab message there)
    // and the cookies script can read.
    const storage = await page.evaluate(() => ({
      keys: [...Object.keys(localStorage), ...Object.keys(sessionStorage)],
      text: [document.cookie, ...Object.values(localStorage), ...Object.values(sessionStorage)].join('\n'),
    }));
    const tokenStored = token === null || storage.text.includes(token);

    // 4. Let the access token expire (its own exp, plus a little for the second's rounding).
    const { exp, iat } = claims(token);
    await page.waitForTimeout(Math.max(0, exp * 1000 - Date.now()) + 300);
    steps.push('access token expired');

    // 5. Five calls at once: five 401s, ONE refresh, five retries that succeed.
    mark = log.length;
    await page.locator('#call5').click();
    const parallel = { ...(await result(2)), answers: since(mark) };
    steps.push('five calls after expiry');
    if (process.env.SCREENSHOT) {
      mkdirSync(dirname(process.env.SCREENSHOT), { recursive: true });
      await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    }

    // useSession() on the home page shows the same user.
    await page.goto(`${app}/`);
    const homeEmail = await page.locator('#email').innerText();
    await page.goto(`${app}/dashboard`);

    // 6. signOut(): back to /dashboard, which the middleware sends to sign-in.
    mark = log.length;
    await Promise.all([page.waitForURL(atSignin), page.locator('#signout').click()]);
    const signedOut = {
      url: page.url(),
      answers: since(mark),
      session: await sessionNow(),
    };
    steps.push('signed out, at sign-in');

    // 7. An API that refuses every token: one refresh, one retry, then sign-out, no loop.
    await page.locator('ul.providers button').first().click();
    await devSignIn();
    steps.push('signed in again');
    let refused = 0;
    await page.route(`${app}/api/me`, (route) => {
      refused += 1;
      return route.fulfill({
        status: 401,
        contentType: 'application/json',
        headers: { 'www-authenticate': 'Bearer realm="api", error="invalid_token"' },
        body: '{"error":"invalid_token"}',
      });
    });
    mark = log.length;
    await Promise.all([page.waitForURL(atSignin), page.locator('#call').click()]);
    // Nothing more after landing: give a loop the chance to show itself.
    await page.waitForTimeout(500);
    const refusingApi = {
      url: page.url(),
      apiCalls: refused,
      answers: since(mark),
      session: await sessionNow(),
    };
    steps.push('refusing API: signed out');

    // 8. The session ends elsewhere (POST /api/auth/revoke with this browser's cookies, as
    //    another tab's sign-out would): the next 401 (forced here, the token itself is still
    //    unexpired) meets a refused refresh, and signIn() takes the browser to sign in.
    await page.locator('ul.providers button').first().click();
    await devSignIn();
    await page.unroute(`${app}/api/me`);
    await page.locator('#call').click();
    const beforeRevoke = await result(1);
    const revoke = await context.request.post(`${app}/api/auth/revoke`);
    await page.route(`${app}/api/me`, (route) =>
      route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"invalid_token"}' }));
    mark = log.length;
    await Promise.all([page.waitForURL(atSignin), page.locator('#call').click()]);
    await page.waitForTimeout(500);
    const refusedRefresh = {
      ok: beforeRevoke.ok,
      revoke: revoke.status(),
      url: page.url(),
      answers: since(mark),
      session: await sessionNow(),
    };
    steps.push('session revoked: at sign-in');

    const summary = (entries) => ({
      token: count(entries, 'POST', '/api/auth/token', 200),
      refresh: count(entries, 'POST', '/api/auth/refresh'),
      refreshOk: count(entries, 'POST', '/api/auth/refresh', 200),
      me200: count(entries, 'GET', '/api/me', 200),
      me401: count(entries, 'GET', '/api/me', 401),
      signout: count(entries, 'POST', '/api/auth/signout', 200),
    });
    return {
      signedOutDashboard, statusBefore, dashboard, session, firstCall, storageKeys: storage.keys,
      tokenStored, tokenLifetime: exp - iat, parallel, homeEmail, signedOut, refusingApi,
      counts: {
        firstCall: summary(firstCall.answers),
        parallel: summary(parallel.answers),
        signedOut: summary(signedOut.answers),
        refusingApi: summary(refusingApi.answers),
        refusedRefresh: summary(refusedRefresh.answers),
      },
      refusedRefresh,
      consoleErrors: consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e)),
    };
  } finally {
    await close();
  }
});
