// Shared by the scripts: launch the system Chromium (never a downloaded one) and report.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const STEP_TIMEOUT = 10000;

export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'latch-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 800, height: 700 },
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, consoleErrors, close };
}

/** The JSON body of the page the browser is showing (Chromium wraps it in <pre>). */
export async function pageJson(page) {
  return JSON.parse(await page.locator('body').innerText());
}

/** Runs `main`, prints one JSON line `{ok, ...result}` or `{ok:false, error, steps}`. */
export async function report(main) {
  const steps = [];
  try {
    const result = await main(steps);
    process.stdout.write(JSON.stringify({ ok: true, steps, ...result }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, steps, error: String(e && e.stack || e) }) + '\n');
  }
}
