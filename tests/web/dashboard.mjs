#!/usr/bin/env node
// End-to-end test of the operators' dashboard in a real browser (Debian's chromium, driven by
// playwright-core), with a raw telnet player on the other side.
//
//   node dashboard.mjs --web http://127.0.0.1:PORT --telnet 127.0.0.1:PORT2 \
//                      --token TOKEN --screenshot out.png
//
// CHROMIUM overrides the browser (default /usr/bin/chromium); DEADLINE_MS every wait (45000).
// Exit code 0 on success, 1 on a failed check, 2 on bad usage.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DEADLINE, FLAGS, Failure, Telnet, fail, waitInPage } from './common.mjs';

const log = (message) => console.log(`[dashboard test] ${message}`);

function parseArgs(argv) {
  const wanted = ['web', 'telnet', 'token', 'screenshot'];
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (!wanted.includes(key) || argv[i + 1] === undefined) return null;
    args[key] = argv[i + 1];
  }
  return wanted.every((k) => args[k]) ? args : null;
}

const textOf = (page, id) => page.evaluate((i) => document.getElementById(i).textContent, id);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    console.error('usage: node dashboard.mjs --web http://127.0.0.1:PORT --telnet 127.0.0.1:PORT2 '
      + '--token TOKEN --screenshot <path.png>');
    return 2;
  }
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-dashboard-chromium-'));
  const telnet = new Telnet(args.telnet);
  const pageErrors = [];
  let browser;
  let page;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
      timeout: DEADLINE,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));

    log(`a player, Telly, logs in over telnet at ${args.telnet}`);
    await telnet.connect().catch((error) => fail(`telnet: cannot connect: ${error.message}`));
    telnet.send('create Telly telpass1');
    await telnet.expect('Your character has been created.');

    const url = `${args.web}/admin`;
    log(`opening ${url} with a wrong token`);
    const response = await page.goto(url, { timeout: DEADLINE });
    if (!response?.ok()) fail(`page: GET ${url} answered ${response?.status()}`);
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button');
    await waitInPage(page, 'the wrong token to be refused',
      () => document.getElementById('refused').textContent.includes('wrong admin token'));
    if (await page.evaluate(() => !document.getElementById('board').hidden)) {
      fail('page: the board shows after a refusal');
    }

    log('opening it with the admin token');
    await page.fill('#token', args.token);
    await page.click('#login-form button');
    await waitInPage(page, 'Telly in the session list',
      () => [...document.querySelectorAll('#rows tr td:nth-child(2)')].some((td) => td.textContent === 'Telly'));

    log('Telly types, ten lines a second; the chart and the numbers follow');
    const ticksAtStart = await page.evaluate(() => window.tetherTicks || 0);
    for (let n = 0; ; n++) {
      telnet.send(`say warming up ${n}`);
      await telnet.expect(`warming up ${n}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const ticks = await page.evaluate(() => window.tetherTicks || 0);
      if (ticks >= ticksAtStart + 8) break;
      if (n > 10 * DEADLINE / 1000) fail('page: no ticks while Telly typed');
    }
    const rate = await page.evaluate(() => document.getElementById('chart') && window.tetherTicks);
    if (!rate) fail('page: the chart drew nothing');
    await waitInPage(page, 'the core shown as answering',
      () => document.getElementById('core').textContent.includes('answering'));
    await waitInPage(page, 'players counted', () => document.getElementById('players').textContent === '1');

    log('broadcasting from the page');
    await page.fill('#wall-text', 'Maintenance at noon <b>sharp</b>');
    await page.click('#wall button');
    await telnet.expect('[dashboard] Maintenance at noon <b>sharp</b>');
    await waitInPage(page, 'the broadcast in the history',
      () => document.getElementById('moments').textContent.includes('dashboard: wall: Said to everyone.'));

    log('reloading the core from the page');
    await page.click('#reload');
    await waitInPage(page, 'the reload in the history (core attached after a gap)',
      () => document.getElementById('moments').textContent.includes('without one'));
    telnet.send('say still here');
    await telnet.expect('still here');
    // Another tick or two after the reload, for the screenshot's chart.
    const before = await textOf(page, 'uptime');
    await waitInPage(page, 'another tick', (b) => document.getElementById('uptime').textContent !== b, before);

    await page.screenshot({ path: args.screenshot });
    log(`screenshot: ${args.screenshot}`);

    log('kicking Telly from the page');
    page.once('dialog', (dialog) => dialog.accept('testing the dashboard'));
    await page.click('#rows tr button');
    await telnet.expect('Reason: testing the dashboard');
    await waitInPage(page, 'the kick said on the page',
      () => document.getElementById('said').textContent.includes('Telly has been disconnected.'));
    if (pageErrors.length) fail(`page script errors: ${pageErrors.join('; ')}`);
    log('PASSED');
    return 0;
  } catch (error) {
    console.error(`[dashboard test] FAILED: ${error instanceof Failure ? error.message : error.stack || error}`);
    if (page) await page.screenshot({ path: args.screenshot }).catch(() => {});
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
