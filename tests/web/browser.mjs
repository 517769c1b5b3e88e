#!/usr/bin/env node
// End-to-end test of tether's web client in a real browser (Debian's chromium, driven by
// playwright-core), alongside a raw telnet player.
//
//   npm install   (once, in tests/web)
//   node browser.mjs --web http://127.0.0.1:PORT --telnet 127.0.0.1:PORT2 \
//                    --reload-cmd "<shell command that reloads the core>" --screenshot out.png
//                    [--upgrade-proxy-cmd "<cmd>"] [--crash-proxy-cmd "<cmd>"]
//                    [--restart-proxy-cmd "<cmd>"]
//
// CHROMIUM overrides the browser (default /usr/bin/chromium); DEADLINE_MS every wait (45000).
// Exit code 0 on success, 1 on a failed check, 2 on bad usage.

import { chromium } from 'playwright-core';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DEADLINE, FLAGS, Failure, Telnet, fail, waitInPage } from './common.mjs';

const log = (message) => console.log(`[web test] ${message}`);

function parseArgs(argv) {
  const wanted = ['web', 'telnet', 'reload-cmd', 'screenshot'];
  const optional = ['upgrade-proxy-cmd', 'crash-proxy-cmd', 'restart-proxy-cmd'];
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (![...wanted, ...optional].includes(key) || argv[i + 1] === undefined) return null;
    args[key] = argv[i + 1];
  }
  return wanted.every((k) => args[k]) ? args : null;
}

const outputHas = (page, needle) =>
  waitInPage(page, `output containing ${JSON.stringify(needle)}`,
    (n) => document.getElementById('output').textContent.includes(n), needle);

async function typeLine(page, line) {
  // Keyboard-first: the focus must already be in the input; nothing is clicked.
  await waitInPage(page, 'focus in the input', () => document.activeElement?.id === 'input');
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

const connections = (page) => page.evaluate(() => window.tetherConnections);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    console.error('usage: node browser.mjs --web http://127.0.0.1:PORT --telnet 127.0.0.1:PORT2 '
      + '--reload-cmd "<shell command that reloads the core>" --screenshot <path.png>');
    return 2;
  }
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    console.error(`[web test] FAILED: no browser at ${executablePath} (apt-get install chromium, or set CHROMIUM)`);
    return 1;
  }

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-web-chromium-'));
  const telnet = new Telnet(args.telnet);
  const pageErrors = [];
  let browser;
  let page;
  try {
    // Exactly the flags above plus the profile, and the pipe playwright talks over (which
    // ignoreDefaultArgs would otherwise drop): none of playwright's own defaults.
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
      timeout: DEADLINE,
    });
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => { if (message.type() === 'error') log(`browser console: ${message.text()}`); });

    log(`opening ${args.web}`);
    const response = await page.goto(args.web, { timeout: DEADLINE })
      .catch((error) => fail(`page: cannot open ${args.web}: ${error.message.split('\n')[0]}`));
    if (!response?.ok()) fail(`page: GET ${args.web} answered ${response?.status()}`);
    await waitInPage(page, 'the WebSocket to connect (window.tetherConnections == 1)', () => window.tetherConnections === 1);
    await outputHas(page, 'create');

    log('creating Webby in the browser');
    await typeLine(page, 'create Webby webpass1');
    await outputHas(page, 'Your character has been created.');

    log(`creating Telly over telnet at ${args.telnet}`);
    await telnet.connect().catch((error) => fail(`telnet: cannot connect to ${args.telnet}: ${error.message}`));
    telnet.send('create Telly telpass1');
    await telnet.expect('Your character has been created.');

    log('browser -> telnet');
    await typeLine(page, 'say hello from the web');
    await telnet.expect('Webby says, "hello from the web"');

    log('telnet -> browser');
    telnet.send('say hello from telnet');
    await outputHas(page, 'Telly says, "hello from telnet"');

    const before = await connections(page);
    log(`reloading the core: ${args['reload-cmd']}`);
    try {
      execSync(args['reload-cmd'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: DEADLINE });
    } catch (error) {
      fail(`the reload command failed: ${error.message.split('\n')[0]}`);
    }

    log('browser -> telnet after the reload');
    const sameConnection = async () => {
      const after = await connections(page);
      if (before !== 1 || after !== 1) {
        fail(`the WebSocket reconnected across the core reload (window.tetherConnections ${before} before, ${after} after; want 1)`);
      }
    };
    try {
      await typeLine(page, 'say still here after the reload');
      await telnet.expect('Webby says, "still here after the reload"');
      telnet.send('say so am I');
      await outputHas(page, 'Telly says, "so am I"');
    } catch (error) {
      await sameConnection(); // the likelier cause, if so
      throw error;
    }
    await sameConnection();

    log('checking the status area (GMCP)');
    await waitInPage(page, 'the character name "Webby" in the status area',
      () => document.getElementById('char-name').textContent.includes('Webby'));
    await waitInPage(page, 'a room name in the status area',
      () => document.getElementById('room-name').textContent.trim() !== '');
    const room = (await page.textContent('#room-name')).trim();
    const output = await page.textContent('#output');
    if (!output.includes(room)) fail(`status area: room name ${JSON.stringify(room)} (from Room.Info) is not the room the game showed`);
    const exits = await page.locator('#exits button').count();
    if (exits === 0) fail('status area: no exits from Room.Info');
    await waitInPage(page, 'the hp bar to show vitals', () => /\d+\/\d+/.test(document.querySelector('#hp .txt').textContent));
    if (pageErrors.length) fail(`page: script errors: ${pageErrors.join('; ')}`);

    await page.screenshot({ path: args.screenshot });
    log(`screenshot: ${args.screenshot}`);

    if (args['upgrade-proxy-cmd']) {
      // A planned proxy upgrade hands the WebSocket over: the page must not notice.
      log(`upgrading the proxy: ${args['upgrade-proxy-cmd']}`);
      execSync(args['upgrade-proxy-cmd'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: DEADLINE });
      await typeLine(page, 'say still here after the proxy upgrade');
      await telnet.expect('Webby says, "still here after the proxy upgrade"');
      telnet.send('say me too');
      await outputHas(page, 'Telly says, "me too"');
      const after = await connections(page);
      if (after !== 1) fail(`the WebSocket reconnected across the proxy upgrade (window.tetherConnections ${after}; want 1)`);
    }

    if (args['crash-proxy-cmd']) {
      // A proxy killed without warning: the supervisor kept the connection, and the next
      // proxy carries it on. The page sees one notice, and must not reconnect.
      log(`crashing the proxy: ${args['crash-proxy-cmd']}`);
      execSync(args['crash-proxy-cmd'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: DEADLINE });
      await outputHas(page, 'The server recovered from a fault');
      await typeLine(page, 'say still here after the proxy crash');
      await telnet.expect('Webby says, "still here after the proxy crash"');
      const after = await connections(page);
      if (after !== 1) fail(`the WebSocket reconnected across a proxy crash (window.tetherConnections ${after}; want 1)`);
    }

    if (args['restart-proxy-cmd']) {
      // The connection does go away (here: proxies that keep dying, until the keeper lets
      // every connection go): the page must come back by itself.
      log(`restarting the proxy: ${args['restart-proxy-cmd']}`);
      execSync(args['restart-proxy-cmd'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: DEADLINE });
      await waitInPage(page, 'the page to reconnect on its own (window.tetherConnections == 2)',
        () => window.tetherConnections === 2);
      await typeLine(page, 'connect Webby webpass1');
      await outputHas(page, 'Welcome back, Webby.');
    }
    log('PASSED');
    return 0;
  } catch (error) {
    console.error(`[web test] FAILED: ${error instanceof Failure ? error.message : error.stack || error}`);
    if (page) {
      const output = await page.innerText('#output').catch(() => null);
      if (output !== null) console.error(`--- page output (last lines) ---\n${output.split('\n').slice(-25).join('\n')}`);
      await page.screenshot({ path: args.screenshot }).catch(() => {});
    }
    if (telnet.text) console.error(`--- telnet transcript (last lines) ---\n${telnet.tail()}`);
    if (pageErrors.length) console.error(`--- page script errors ---\n${pageErrors.join('\n')}`);
    return 1;
  } finally {
    telnet.close();
    await browser?.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

process.exitCode = await main();
