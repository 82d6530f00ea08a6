// The two browser engines of the end-to-end tests, both Debian's packages (never a
// downloaded browser), headless, with fake camera and microphone:
//   - chromium:    /usr/bin/chromium,    driven by playwright-core over CDP;
//   - firefox:     /usr/bin/firefox-esr, driven by puppeteer-core over WebDriver BiDi.
// launch(engine) gives { engine, version, newPeer(base, room, name, options), close() }; a
// peer is one page of the demo in its own browser context (its own cookies, permissions,
// media) with { name, engine, logs, evaluate(fn, arg), close() }, the same for both engines.
// `options` become the page's URL parameters (examples/web/src/app.js: simulcast, camera,
// send), e.g. { simulcast: 1 } or { send: 'none' }.
'use strict';

const fs = require('node:fs');
const { sleep, debug } = require('./host');

const CHROMIUM = '/usr/bin/chromium';
const FIREFOX = '/usr/bin/firefox-esr';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

// Firefox preferences for WebRTC on loopback, headless, without a user.
const FIREFOX_PREFS = {
  // Fake camera and microphone (a synthetic video and a tone), like Chromium's
  // --use-fake-device-for-media-stream ...
  'media.navigator.streams.fake': true,
  // ... and no permission prompt for them.
  'media.navigator.permission.disabled': true,
  // A granted camera/microphone permission: without one Firefox gathers host candidates
  // only on the default-route interface (not on loopback) and ICE to 127.0.0.1 fails.
  'permissions.default.camera': 1,
  'permissions.default.microphone': 1,
  // Gather loopback candidates at all (off by default).
  'media.peerconnection.ice.loopback': true,
  // Real host addresses in candidates rather than mDNS ".local" names.
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  // <audio>/<video> may start playing without a user gesture (0 = allowed).
  'media.autoplay.default': 0,
  // Every peer of a test is a tab of one headless window and all but one are background
  // tabs: keep their timers and media at full speed, as in a foreground tab.
  'dom.min_background_timeout_value': 0,
  'dom.timeout.enable_budget_timer_throttling': false,
  'media.suspend-background-video.enabled': false,
  'media.block-autoplay-until-in-foreground': false,
};

function check(path, what) {
  if (!fs.existsSync(path)) throw new Error(`${path} missing (${what}): run bash tests/e2e/setup.sh`);
}

async function launchChromium() {
  check(CHROMIUM, 'Debian package chromium');
  const { chromium } = require('playwright-core');
  // launch() gives the browser a fresh temporary --user-data-dir and --headless.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  return {
    engine: 'chromium',
    version: browser.version(),
    async newPeer(base, roomId, name, options = {}) {
      const context = await browser.newContext({ viewport: { width: 960, height: 480 } });
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      const peer = makePeer('chromium', name, page, () => context.close());
      page.on('console', (msg) => peer.log(`console.${msg.type()}`, msg.text()));
      page.on('pageerror', (error) => peer.log('pageerror', error.stack || String(error)));
      page.on('crash', () => peer.log('crash', 'page crashed'));
      await page.goto(demoUrl(base, roomId, name, options), { timeout: 15_000 });
      return peer;
    },
    close: () => browser.close(),
  };
}

async function launchFirefox() {
  check(FIREFOX, 'Debian package firefox-esr');
  const puppeteer = require('puppeteer-core');
  // A fresh temporary profile holding FIREFOX_PREFS (on top of puppeteer's defaults).
  const browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: FIREFOX_PREFS,
    timeout: 30_000,
  });
  return {
    engine: 'firefox',
    version: await browser.version(),
    async newPeer(base, roomId, name, options = {}) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.setViewport({ width: 960, height: 480 });
      const peer = makePeer('firefox', name, page, () => context.close());
      page.on('console', (msg) => peer.log(`console.${msg.type()}`, msg.text()));
      page.on('pageerror', (error) => peer.log('pageerror', error.stack || String(error)));
      await page.goto(demoUrl(base, roomId, name, options), { timeout: 15_000 });
      return peer;
    },
    // puppeteer's close() ends the WebDriver BiDi session and Firefox; if that hangs, kill
    // Firefox so that it cannot keep the test process alive.
    async close() {
      await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
      const child = browser.process();
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

function demoUrl(base, roomId, name, options = {}) {
  const query = new URLSearchParams({ room: roomId, peer: name });
  for (const [key, value] of Object.entries(options)) query.set(key, String(value));
  return `${base}/?${query}`;
}

function makePeer(engine, name, page, closeContext) {
  const logs = [];
  return {
    name,
    engine,
    page,
    logs,
    log(kind, text) {
      const line = `[${name} ${kind}] ${text}`;
      logs.push(line);
      if (debug) console.log(line);
    },
    // Runs `fn(arg)` in the page; both drivers take one serialisable argument.
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    close: () => Promise.race([closeContext().catch(() => {}), sleep(5000)]),
  };
}

async function launch(engine) {
  if (engine === 'chromium') return launchChromium();
  if (engine === 'firefox') return launchFirefox();
  throw new Error(`unknown browser engine ${engine}`);
}

module.exports = { launch, CHROMIUM, FIREFOX, FIREFOX_PREFS };
