// The web terminal in a real browser: headless Chromium opens an access link to a private pod's terminal through the
// gateway, as a user would (http://localhost-7681.pod-<slug>.localhost:<port>/ resolves to 127.0.0.1 in Chromium),
// gets the cookie and the xterm.js page, types into it, and sees the pod's bash answer; resizing the window resizes
// the pod's terminal.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { startBrowser } from './support/browser.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';

const TERMINAL_PORT = 7681;
const slug = uniqueSlug('web');
let pods: PodWorld;
let browser: Browser;

beforeAll(async () => {
  [pods, browser] = await Promise.all([startPodWorld({ image: await testPodImage(), portRange: '38370-38379' }), startBrowser()]);
  await pods.createPod({ slug, services: [{ name: 'app', port: 3000 }, { name: 'terminal', port: TERMINAL_PORT }] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pods?.close();
});

// The page's `term` is a top-level const of its script: visible to code evaluated as a string in the page's global
// scope (not as a property of window).
const SCREEN = `(() => { const b = term.buffer.active; const rows = [];
  for (let i = 0; i < b.length; i++) rows.push(b.getLine(i)?.translateToString(true) ?? '');
  return rows.join('\\n'); })()`;

/** Wait until what the terminal shows (xterm.js's own buffer, as the user sees it) matches `expected`; return it. */
async function screenMatching(page: Page, expected: RegExp): Promise<string> {
  await page.waitForFunction(`new RegExp(${JSON.stringify(expected.source)}, 'm').test(${SCREEN})`, null, { timeout: 20_000 });
  return page.evaluate(SCREEN);
}

async function typeAndWait(page: Page, line: string, expected: RegExp): Promise<string> {
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
  return screenMatching(page, expected);
}

const size = (page: Page): Promise<string> => page.evaluate('`${term.rows} ${term.cols}`');

describe('the web terminal in Chromium, through the gateway', () => {
  it('opens from an access link, runs what is typed, and follows the window size', async () => {
    const link = await pods.api('POST', `/v1/pods/${slug}/links`, { port: TERMINAL_PORT, expiresIn: '1h' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    url.port = String(pods.gw.gateway.httpPort);

    const context = await browser.newContext({ viewport: { width: 1000, height: 600 } });
    try {
      const page = await context.newPage();
      const failed: string[] = [];
      page.on('requestfailed', (r) => failed.push(r.url()));
      const response = await page.goto(url.href);
      // The link's redirect left the token out of the address bar; the cookie opens the page.
      expect(page.url()).toBe(`http://${url.host}/`);
      expect(response?.status()).toBe(200);
      expect(await page.title()).toBe('pod terminal');
      const cookies = await context.cookies();
      expect(cookies.map((c) => c.name)).toContain('podgate_access');

      // The prompt shows once the WebSocket is up; then the browser's keystrokes reach bash and its answer comes back.
      // The terminal opens in the pod's workspace.
      await screenMatching(page, new RegExp(`^dev@${slug}:/workspace\\$ ?$`));
      await page.click('#terminal');
      expect(await typeAndWait(page, 'echo "sum=$((6*7)) term=$TERM"', /^sum=42 term=xterm-256color$/)).toMatch(/^sum=42/m);

      // The terminal fits the window, and the pod's pty follows it.
      const before = await size(page);
      expect(await typeAndWait(page, 'echo "pty=$(stty size)"', new RegExp(`^pty=${before}$`))).toContain(`pty=${before}`);
      await page.setViewportSize({ width: 700, height: 400 });
      await page.waitForFunction(`\`\${term.rows} \${term.cols}\` !== ${JSON.stringify(before)}`);
      const after = await size(page);
      expect(after).not.toBe(before);
      expect(await typeAndWait(page, 'echo "pty=$(stty size)"', new RegExp(`^pty=${after}$`))).toContain(`pty=${after}`);
      expect(failed).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
