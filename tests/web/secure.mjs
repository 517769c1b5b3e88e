#!/usr/bin/env node
// The web client over HTTPS and a secure WebSocket (wss://), in a real browser (Debian's
// chromium, driven by playwright-core), with a test certificate the browser is told to take.
//
//   node secure.mjs --web https://127.0.0.1:PORT --reload-cmd "<shell command>"
//
// CHROMIUM overrides the browser (default /usr/bin/chromium); DEADLINE_MS every wait (45000).
// Exit code 0 on success, 1 on a failed check, 2 on bad usage.

import { chromium } from 'playwright-core';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DEADLINE, FLAGS as COMMON_FLAGS, Failure, fail, waitInPage } from './common.mjs';

// The test certificate is self-signed.
const FLAGS = [...COMMON_FLAGS, '--ignore-certificate-errors'];

const log = (message) => console.log(`[secure web test] ${message}`);

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (!['web', 'reload-cmd'].includes(key) || argv[i + 1] === undefined) return null;
    args[key] = argv[i + 1];
  }
  return args.web && args['reload-cmd'] ? args : null;
}

const outputHas = (page, needle) =>
  waitInPage(page, `output containing ${JSON.stringify(needle)}`,
    (n) => document.getElementById('output').textContent.includes(n), needle);

async function typeLine(page, line) {
  await waitInPage(page, 'focus in the input', () => document.activeElement?.id === 'input');
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    console.error('usage: node secure.mjs --web https://127.0.0.1:PORT --reload-cmd "<cmd>"');
    return 2;
  }
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-secure-chromium-'));
  let browser;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
      timeout: DEADLINE,
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));

    log(`opening ${args.web}`);
    const response = await page.goto(args.web, { timeout: DEADLINE })
      .catch((error) => fail(`page: cannot open ${args.web}: ${error.message.split('\n')[0]}`));
    if (!response?.ok()) fail(`page: GET ${args.web} answered ${response?.status()}`);
    await waitInPage(page, 'the WebSocket to connect', () => window.tetherConnections === 1);
    if (!sockets.some((url) => url.startsWith('wss://'))) fail(`no wss:// socket: ${sockets}`);
    await outputHas(page, 'create');

    await typeLine(page, 'create Sealed sealedpass1');
    await outputHas(page, 'Your character has been created.');
    await typeLine(page, 'say over wss');
    await outputHas(page, 'You say, "over wss"');

    log('reloading the core');
    execSync(args['reload-cmd'], { stdio: 'inherit' });
    await typeLine(page, 'say after the reload');
    await outputHas(page, 'You say, "after the reload"');
    const connections = await page.evaluate(() => window.tetherConnections);
    if (connections !== 1) fail(`the WebSocket reconnected (${connections} connections)`);
    log('passed');
    return 0;
  } catch (error) {
    if (error instanceof Failure) {
      console.error(`[secure web test] FAILED: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await browser?.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

process.exitCode = await main();
