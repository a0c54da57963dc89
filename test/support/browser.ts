// A real browser for the tests that need one: Debian's Chromium (scripts/setup.sh installs it), headless, driven by
// playwright-core (which gives every launch a new empty profile). `*.localhost` names resolve to 127.0.0.1 inside
// Chromium without any DNS.
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.PODGATE_CHROMIUM ?? '/usr/bin/chromium';

/** Headless Chromium; background networking off (this machine's network is closed, and only loopback is tested). */
export function startBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
