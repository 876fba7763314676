import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { createContext, describeIntegration, integrationEnv, type TestContext } from '../helpers/context';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const message = `chromium not found at ${CHROMIUM} (set CHROMIUM_BIN)`;
  if (process.env.CI === 'true') throw new Error(message);
  process.stderr.write(`\n!!!!!!!!!! SKIPPING BROWSER TEST: ${message} !!!!!!!!!!\n`);
}
const describeBrowser = haveChromium ? describeIntegration : describe.skip;

describeBrowser('the page at /', () => {
  let ctx: TestContext;
  let browser: BrowserContext;
  let profile: string;
  let baseUrl: string;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable');
    ctx = await createContext('browser', env);
    await ctx.startConsumer();
    baseUrl = await ctx.app.listen({ host: '127.0.0.1', port: 0 });
    profile = mkdtempSync(join(tmpdir(), 'aj-chromium-'));
    // A fresh profile per run (playwright's way of passing --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await ctx?.close();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  });

  it('says clearly when the token is refused, and nothing loads without one', async () => {
    const page = await browser.newPage();
    await page.goto(baseUrl);
    expect(await page.getAttribute('#auth-state', 'data-state')).toBe('none');
    await page.fill('#token', 'not-a-valid-token');
    await page.click('#save-token');
    await page.waitForSelector('#auth-state[data-state="refused"]');
    expect(await page.textContent('#auth-state')).toBe('The token was refused (401): the bearer token is not valid');
    expect(await page.locator('#job-type option').count()).toBe(0);
    await page.close();
  });

  it('submits a factorial job with a token and shows it reach succeeded with its result', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(baseUrl);
    await page.fill('#token', ctx.tokens.test);
    await page.click('#save-token');
    await page.waitForSelector('#auth-state[data-state="accepted"]');
    // Kept for this tab only, and never left in the input.
    expect(await page.evaluate(() => sessionStorage.getItem('async-jobs-token'))).toBe(ctx.tokens.test);
    expect(await page.inputValue('#token')).toBe('');
    await page.waitForSelector('#job-type option[value="factorial"]', { state: 'attached' });
    await page.selectOption('#job-type', 'factorial');
    await page.fill('#job-input', '{"n": 20}');
    await page.click('#submit');
    await page.waitForSelector('#status[data-status="succeeded"]', { timeout: 20_000 });
    expect(await page.textContent('#output')).toContain('"result": "2432902008176640000"');
    const href = await page.getAttribute('#job-link', 'href');
    expect(href).toMatch(/^\/v1\/jobs\/[0-9a-f-]{36}$/);
    expect(errors).toEqual([]);
  });

  it('shows the problem details of a rejected job, and a token lacking the scope as refused', async () => {
    const page = await browser.newPage();
    await page.goto(baseUrl);
    await page.fill('#token', ctx.tokens.test);
    await page.click('#save-token');
    await page.waitForSelector('#job-type option[value="sqrt"]', { state: 'attached' });
    await page.selectOption('#job-type', 'sqrt');
    await page.fill('#job-input', '{"x": -1}');
    await page.click('#submit');
    await page.waitForSelector('#status[data-status="rejected"]');
    expect(await page.textContent('#output')).toContain('/input/x');
    // The session's token is reused on reload; a read-only token may not submit.
    await page.evaluate((t) => sessionStorage.setItem('async-jobs-token', t), ctx.tokens.reader);
    await page.reload();
    await page.waitForSelector('#job-type option[value="sqrt"]', { state: 'attached' });
    await page.click('#submit');
    await page.waitForSelector('#status[data-status="refused"]');
    expect(await page.textContent('#auth-state')).toBe(
      'The token is not allowed to do this (403): client "reader" lacks the scope jobs:submit',
    );
  });
});
