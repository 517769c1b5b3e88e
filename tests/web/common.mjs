// What the browser tests share: the deadline, Chromium's flags, failures, a raw telnet
// player, and waiting for something to hold in the page.

import net from 'node:net';

export const DEADLINE = Number(process.env.DEADLINE_MS) || 45_000;
export const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export class Failure extends Error {}
export const fail = (message) => { throw new Failure(message); };

// ---- A raw telnet player: negotiation ignored (IAC sequences stripped), colours stripped ----
export class Telnet {
  constructor(address) {
    const i = address.lastIndexOf(':');
    this.host = address.slice(0, i);
    this.port = Number(address.slice(i + 1));
    this.raw = Buffer.alloc(0);
    this.text = ''; // everything received, as a player reads it
    this.seen = 0; // how much of `text` earlier expects consumed
    this.closed = false;
    this.waiters = new Set();
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.socket = net.connect({ host: this.host, port: this.port }, resolve);
      this.socket.once('error', reject);
      this.socket.on('data', (chunk) => this.absorb(chunk));
      this.socket.on('close', () => { this.closed = true; this.wake(); });
    });
  }

  absorb(chunk) {
    this.raw = Buffer.concat([this.raw, chunk]);
    const data = [];
    let i = 0;
    while (i < this.raw.length) {
      const b = this.raw[i];
      if (b !== 255) { data.push(b); i += 1; continue; }
      if (i + 1 >= this.raw.length) break; // incomplete command: wait for more
      const cmd = this.raw[i + 1];
      if (cmd === 255) { data.push(255); i += 2; } // escaped 0xff
      else if (cmd >= 251 && cmd <= 254) { if (i + 2 >= this.raw.length) break; i += 3; } // WILL/WONT/DO/DONT x
      else if (cmd === 250) { // SB ... IAC SE
        let end = -1;
        for (let j = i + 2; j + 1 < this.raw.length; j++) if (this.raw[j] === 255 && this.raw[j + 1] === 240) { end = j; break; }
        if (end < 0) break;
        i = end + 2;
      } else if (cmd === 249 || cmd === 239) { data.push(10); i += 2; } // GA / EOR end a prompt
      else i += 2;
    }
    this.raw = this.raw.subarray(i);
    // Bytes are decoded as UTF-8 per chunk of complete commands; a character split across
    // reads would only garble itself, and the checks here are ASCII.
    this.text += Buffer.from(data).toString('utf8').replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '').replace(/\r/g, '');
    this.wake();
  }

  wake() { for (const w of this.waiters) w(); }

  send(line) { this.socket.write(`${line}\r\n`); }

  /** Waits until `needle` arrives (after what earlier expects consumed); consumes up to it. */
  expect(needle) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const at = this.text.indexOf(needle, this.seen);
        if (at >= 0) {
          this.seen = at + needle.length;
          done();
          resolve();
        } else if (this.closed) {
          done();
          reject(new Failure(`telnet: connection closed while waiting for ${JSON.stringify(needle)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Failure(`telnet: no ${JSON.stringify(needle)} within ${DEADLINE} ms`));
      }, DEADLINE);
      const done = () => { clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  tail(n = 25) { return this.text.split('\n').slice(-n).join('\n'); }

  close() { this.socket?.destroy(); }
}

// ---- The page ----
export async function waitInPage(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: DEADLINE, polling: 100 });
  } catch (error) {
    fail(`page: ${what} did not happen within ${DEADLINE} ms (${error.message.split('\n')[0]})`);
  }
}

