// next-auth/react, unchanged, in a real browser against latch at base_path /api/auth.
// The npm package is bundled as a Next.js app's build would bundle it (esbuild, with
// process.env inlined) and served on latch's own origin at /app (a route this script
// answers inside Chromium; latch never sees it), so its relative /api/auth/* calls,
// cookies and window.location navigations behave exactly as in a Next.js page.
//   LATCH_ORIGIN  latch's origin (latch runs with base_path = "/api/auth")
//   EMAIL         the identity to sign in as at the dev provider
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { launch, report } from './common.mjs';

const origin = process.env.LATCH_ORIGIN;
const email = process.env.EMAIL;
const appUrl = `${origin}/app`;
const here = dirname(fileURLToPath(import.meta.url));

const bundle = await build({
  stdin: {
    contents: [
      "export { getProviders, getCsrfToken, getSession, signIn, signOut } from 'next-auth/react';",
      // For useSession().update(), which lives in a component under SessionProvider.
      "export { SessionProvider, useSession } from 'next-auth/react';",
      "export { createElement } from 'react';",
      "export { createRoot } from 'react-dom/client';",
    ].join('\n'),
    resolveDir: here,
  },
  bundle: true,
  write: false,
  format: 'iife',
  globalName: 'NextAuthReact',
  platform: 'browser',
  logLevel: 'silent',
  define: {
    'process.env.NEXTAUTH_URL': JSON.stringify(`${origin}/api/auth`),
    'process.env.NEXTAUTH_URL_INTERNAL': 'undefined',
    'process.env.VERCEL_URL': 'undefined',
    'process.env.NODE_ENV': '"production"',
  },
});
const script = bundle.outputFiles[0].text;

await report(async (steps) => {
  const { page, consoleErrors, close } = await launch();
  try {
    await page.route(`${origin}/app.js`, (r) =>
      r.fulfill({ contentType: 'text/javascript', body: script }));
    await page.route((u) => u.href.startsWith(appUrl) && !u.pathname.endsWith('.js'), (r) =>
      r.fulfill({
        contentType: 'text/html',
        body: '<!doctype html><title>app</title><script src="/app.js"></script>',
      }));
    // What next-auth's POSTs send and what latch answers, passed through unchanged (read
    // here because the page navigates away before it could read them).
    const exchanges = [];
    await page.route((u) => /^\/api\/auth\/(signin\/|signout|session$)/.test(u.pathname), async (route) => {
      const req = route.request();
      if (req.method() !== 'POST') return route.continue();
      const json = (req.headers()['content-type'] ?? '').startsWith('application/json');
      const response = await route.fetch({ maxRedirects: 0 });
      const text = await response.text();
      let body = text;
      try { body = JSON.parse(text); } catch { /* not JSON */ }
      exchanges.push({
        path: new URL(req.url()).pathname, status: response.status(),
        request: json ? JSON.parse(req.postData())
          : Object.fromEntries(new URLSearchParams(req.postData() ?? '')),
        body,
      });
      await route.fulfill({ response, body: text });
    });

    await page.goto(appUrl);
    await page.waitForFunction(() => typeof window.NextAuthReact?.signIn === 'function');
    steps.push('next-auth/react loaded');
    const call = (fn, ...args) =>
      page.evaluate(([fn, args]) => window.NextAuthReact[fn](...args), [fn, args]);

    const providers = await call('getProviders');
    const csrfToken = await call('getCsrfToken');
    const sessionBefore = await call('getSession');
    steps.push('providers, csrf, session read');

    // signIn(): v4 POSTs csrfToken, callbackUrl, json=true to /api/auth/signin/dev, reads
    // {url} and, for an OAuth provider, navigates there even with redirect:false.
    const atProvider = page.waitForURL((u) => u.pathname === '/api/auth/dev/dev/authorize');
    const signInReturned = await call('signIn', 'dev', { redirect: false, callbackUrl: appUrl })
      .then((v) => (v === undefined ? 'undefined' : v))
      .catch((e) => `navigated away: ${e.message.split('\n')[0]}`);
    await atProvider;
    const providerUrl = page.url();
    steps.push('at the dev provider');

    // The provider step, in the browser: enter the email and submit.
    const back = page.waitForURL((u) => u.href === appUrl);
    await page.locator('#email').fill(email);
    await page.getByRole('button', { name: 'Sign in as this user' }).click();
    await back;
    // Playwright's route() does not see a redirect's target, so latch (not this script)
    // answered the landing on /app; load the app page there again, as the app would be.
    await page.goto(appUrl);
    await page.waitForFunction(() => typeof window.NextAuthReact?.getSession === 'function');
    steps.push('back at the app');

    const sessionAfterSignIn = await call('getSession');

    // useSession().update(data) in a component under SessionProvider: v4 POSTs
    // {csrfToken, data} as JSON to /api/auth/session and takes the answer as the session.
    await page.evaluate(() => {
      const { createElement, createRoot, SessionProvider, useSession } = window.NextAuthReact;
      function Expose() { window.sessionHook = useSession(); return null; }
      const root = document.body.appendChild(document.createElement('div'));
      createRoot(root).render(createElement(SessionProvider, null, createElement(Expose)));
    });
    await page.waitForFunction(() => window.sessionHook?.status === 'authenticated');
    const updateReturned = await page.evaluate(() => window.sessionHook.update({
      user: { email: 'mallory@example.com', name: 'Mallory' },
    }));
    const sessionAfterUpdate = await call('getSession');
    steps.push('session updated');
    const signOutReturned = await call('signOut', { redirect: false, callbackUrl: appUrl });
    const sessionAfterSignOut = await call('getSession');
    steps.push('signed out');
    return {
      providers, csrfToken, sessionBefore, signInReturned, providerUrl, sessionAfterSignIn,
      updateReturned, sessionAfterUpdate, signOutReturned, sessionAfterSignOut, exchanges, consoleErrors,
    };
  } finally {
    await close();
  }
});
