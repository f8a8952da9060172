/*
 * AT command channel over a Serial line (3GPP TS 27.007 / V.250 framing):
 *
 * - one command at a time, queued (bounded); each with its own timeout on the Clock;
 * - lines end in CR LF (a lone CR or LF is accepted); empty lines are skipped; a line longer than
 *   `maxLine` is dropped whole (bounded memory);
 * - final result codes: OK, ERROR, +CME ERROR: <n>, +CMS ERROR: <n> (typed AtError), plus per-command
 *   extra finals ('SEND OK' / 'SEND FAIL' on Quectel);
 * - information lines: those starting with the command's `prefix` belong to the command; lines
 *   matching a registered URC prefix go to that handler, also while a command is pending (URCs
 *   interleave with responses); anything else is garbage and is counted and ignored;
 * - binary payloads: an information line can announce N raw bytes that follow it (#XRECVFROM, +QIRD);
 * - a '>' prompt gets the command's payload (AT+QISEND);
 * - a modem that reboots (its start-up line, e.g. 'Ready' or 'RDY') fails the pending and queued
 *   commands with code 'reboot' and calls onReboot, so the driver can set the modem up again.
 *
 * Device code: no Node APIs; no recursion; buffers allocated once.
 */
import type { Clock, Log, Serial, TimerHandle } from '../platform/types';
import { silentLog } from '../platform/types';

export type AtErrorCode = 'error' | 'cme' | 'cms' | 'timeout' | 'reboot' | 'closed' | 'busy';

export class AtError extends Error {
  override readonly name: string = 'AtError';
  readonly code: AtErrorCode;
  /** The command, shortened to its name when long (commandName): never the datagram it carried. */
  readonly command: string;
  /** +CME ERROR / +CMS ERROR number. */
  readonly errorNumber?: number;
  constructor(code: AtErrorCode, command: string, message: string, errorNumber?: number) {
    const name = commandName(command);
    super(message.split(command).join(name));
    this.code = code;
    this.command = name;
    if (errorNumber !== undefined) this.errorNumber = errorNumber;
  }
}

export interface AtCommandOptions {
  /** ms until the command fails with 'timeout' (default 5000; network commands need more). */
  timeoutMs?: number;
  /** Prefix of this command's information lines ('+CEREG:'). Without it every non-URC line is the command's. */
  prefix?: string;
  /** Bytes written after the modem's '>' prompt. */
  payload?: Uint8Array;
  /** Raw bytes that follow an information line (0 or undefined: none). */
  binaryLength?: (line: string) => number | undefined;
  /** Extra final result lines meaning success / failure. */
  finalOk?: readonly string[];
  finalError?: readonly string[];
}

export interface AtResponse {
  /** Information lines, in order. */
  lines: string[];
  /** Raw bytes announced by an information line. */
  data?: Uint8Array;
}

interface Pending {
  command: string;
  options: AtCommandOptions;
  resolve: (r: AtResponse) => void;
  reject: (e: AtError) => void;
  lines: string[];
  data?: Uint8Array;
  timer?: TimerHandle;
}

export interface AtChannelOptions {
  clock: Clock;
  log?: Log;
  /** Longest line kept (default 1100: a 512-byte datagram as hex plus the command). */
  maxLine?: number;
  /** Largest raw payload announced by a line (default 1500). */
  maxBinary?: number;
  /** Commands waiting (default 16); more fail with 'busy'. */
  maxQueue?: number;
  /** Lines the modem prints when it (re)starts. */
  bootLines?: readonly string[];
  defaultTimeoutMs?: number;
}

const CR = 13;
const LF = 10;
const PROMPT = 62; // '>'
const SPACE = 32;

export class AtChannel {
  /** The modem restarted (every pending command has failed with 'reboot'). */
  onReboot?: () => void;
  /** Lines that were neither a response nor a known URC. */
  garbage = 0;
  #serial: Serial;
  #clock: Clock;
  #log: Log;
  #line: Uint8Array;
  #lineLength = 0;
  #lineOverflow = false;
  #binary: Uint8Array | undefined;
  #binaryFilled = 0;
  #awaitingPrompt = false;
  #skipSpace = false;
  #afterCr = false;
  #current: Pending | undefined;
  #queue: Pending[] = [];
  #urc: { prefix: string; handler: (line: string) => void }[] = [];
  #maxBinary: number;
  #maxQueue: number;
  #bootLines: readonly string[];
  #defaultTimeout: number;
  #closed = false;

  constructor(serial: Serial, options: AtChannelOptions) {
    this.#serial = serial;
    this.#clock = options.clock;
    this.#log = options.log ?? silentLog;
    this.#line = new Uint8Array(options.maxLine ?? 1100);
    this.#maxBinary = options.maxBinary ?? 1500;
    this.#maxQueue = options.maxQueue ?? 16;
    this.#bootLines = options.bootLines ?? [];
    this.#defaultTimeout = options.defaultTimeoutMs ?? 5000;
    serial.onReceive = (data) => this.#receive(data);
  }

  /** Calls `handler` for every unsolicited line starting with `prefix` ('+CEREG:', '#XAPOLL:'). */
  onUrc(prefix: string, handler: (line: string) => void): void {
    this.#urc.push({ prefix, handler });
  }

  get busy(): boolean {
    return this.#current !== undefined;
  }

  /** Sends `command` ('AT+CEREG?'), resolves with its information lines on OK. */
  command(command: string, options: AtCommandOptions = {}): Promise<AtResponse> {
    return new Promise<AtResponse>((resolve, reject) => {
      if (this.#closed) return reject(new AtError('closed', command, `${command}: channel closed`));
      if (this.#queue.length >= this.#maxQueue) return reject(new AtError('busy', command, `${command}: ${this.#maxQueue} commands already queued`));
      this.#queue.push({ command, options, resolve, reject, lines: [] });
      if (!this.#current) this.#next();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll('closed', 'channel closed');
    this.#serial.close();
  }

  #next(): void {
    const p = this.#queue.shift();
    this.#current = p;
    if (!p) return;
    this.#awaitingPrompt = p.options.payload !== undefined;
    p.timer = this.#clock.setTimer(() => {
      if (this.#current !== p) return;
      this.#finish(new AtError('timeout', p.command, `${p.command}: no final result in ${p.options.timeoutMs ?? this.#defaultTimeout} ms`));
    }, p.options.timeoutMs ?? this.#defaultTimeout);
    this.#serial.write(ascii(`${p.command}\r`));
  }

  /** Settles the current command and starts the next one. */
  #finish(result: AtResponse | AtError): void {
    const p = this.#current;
    if (!p) return;
    this.#current = undefined;
    this.#awaitingPrompt = false;
    this.#binary = undefined;
    if (p.timer !== undefined) this.#clock.clearTimer(p.timer);
    if (result instanceof AtError) p.reject(result);
    else p.resolve(result);
    this.#next();
  }

  #failAll(code: AtErrorCode, why: string): void {
    const all = this.#current ? [this.#current, ...this.#queue] : [...this.#queue];
    this.#current = undefined;
    this.#queue = [];
    this.#awaitingPrompt = false;
    this.#binary = undefined;
    for (const p of all) {
      if (p.timer !== undefined) this.#clock.clearTimer(p.timer);
      p.reject(new AtError(code, p.command, `${p.command}: ${why}`));
    }
  }

  #receive(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const b = data[i]!;
      if (this.#afterCr) {
        // CR LF ends one line: the LF must not start a payload announced by that line.
        this.#afterCr = false;
        if (b === LF) continue;
      }
      if (this.#binary) {
        // Raw bytes announced by the previous line: copy as many as are here.
        const n = Math.min(this.#binary.length - this.#binaryFilled, data.length - i);
        this.#binary.set(data.subarray(i, i + n), this.#binaryFilled);
        this.#binaryFilled += n;
        i += n - 1;
        if (this.#binaryFilled === this.#binary.length) {
          if (this.#current) this.#current.data = this.#binary;
          this.#binary = undefined;
        }
        continue;
      }
      if (this.#skipSpace) {
        this.#skipSpace = false;
        if (b === SPACE) continue;
      }
      if (b === PROMPT && this.#awaitingPrompt && (this.#lineLength === 0 || this.#onlyNoise())) {
        if (this.#lineLength) this.garbage++;
        this.#lineLength = 0;
        this.#awaitingPrompt = false;
        this.#skipSpace = true;
        const payload = this.#current?.options.payload;
        if (payload) this.#serial.write(payload);
        continue;
      }
      if (b === CR || b === LF) {
        this.#afterCr = b === CR;
        const overflow = this.#lineOverflow;
        const length = this.#lineLength;
        this.#lineLength = 0;
        this.#lineOverflow = false;
        if (overflow) {
          this.garbage++;
          this.#log.debug('AT: over-long line dropped');
        } else if (length > 0) this.#handleLine(latin1(this.#line, length));
        continue;
      }
      if (this.#lineLength < this.#line.length) this.#line[this.#lineLength++] = b;
      else this.#lineOverflow = true;
    }
  }

  /** The partial line holds only bytes no AT line has (noise before a '>' prompt). */
  #onlyNoise(): boolean {
    for (let i = 0; i < this.#lineLength; i++) {
      const c = this.#line[i]!;
      if (c >= 0x20 && c <= 0x7e) return false;
    }
    return true;
  }

  #handleLine(line: string): void {
    if (!isPrintable(line)) {
      this.garbage++;
      return;
    }
    if (this.#bootLines.includes(line)) {
      this.#log.warn(`modem restarted ("${line}")${this.#current ? `: ${this.#current.command} failed` : ''}`);
      this.#failAll('reboot', 'the modem restarted');
      this.onReboot?.();
      return;
    }
    const p = this.#current;
    if (p) {
      if (line === p.command) return; // echo (ATE1)
      if (line === 'OK' || p.options.finalOk?.includes(line)) return this.#finish({ lines: p.lines, ...(p.data ? { data: p.data } : {}) });
      if (line === 'ERROR' || p.options.finalError?.includes(line)) return this.#finish(new AtError('error', p.command, `${p.command}: ${line}`));
      const cme = /^\+CM([ES]) ERROR: ?(\d+)/.exec(line);
      if (cme) {
        const n = Number(cme[2]);
        return this.#finish(new AtError(cme[1] === 'E' ? 'cme' : 'cms', p.command, `${p.command}: ${line}`, n));
      }
      const prefix = p.options.prefix;
      if (prefix !== undefined && line.startsWith(prefix)) return this.#information(p, line);
      if (this.#dispatchUrc(line)) return;
      if (prefix === undefined) return this.#information(p, line);
      this.garbage++;
      return;
    }
    if (!this.#dispatchUrc(line)) this.garbage++;
  }

  #information(p: Pending, line: string): void {
    if (p.lines.length < 32) p.lines.push(line);
    const n = p.options.binaryLength?.(line);
    if (n && n > 0) {
      if (n > this.#maxBinary) {
        this.#log.warn(`AT: ${n}-byte payload above the ${this.#maxBinary}-byte limit`);
        return this.#finish(new AtError('error', p.command, `${p.command}: payload of ${n} bytes too large`));
      }
      this.#binary = new Uint8Array(n);
      this.#binaryFilled = 0;
    }
  }

  #dispatchUrc(line: string): boolean {
    for (const u of this.#urc) {
      if (!line.startsWith(u.prefix)) continue;
      try {
        u.handler(line);
      } catch (e) {
        this.#log.warn(`URC ${u.prefix} handler: ${(e as Error).message}`);
      }
      return true;
    }
    return false;
  }
}

/**
 * A command as errors and logs show it: long commands (a datagram as hex in AT#XSENDTO, with the
 * access token in its URI path) only by name, never their data.
 */
export function commandName(command: string): string {
  if (command.length <= 48) return command;
  const eq = command.indexOf('=');
  return eq > 0 ? `${command.slice(0, eq)}=...` : `${command.slice(0, 16)}...`;
}

/** ASCII bytes of a command (commands are ASCII: hex payloads, quoted IPs, numbers). */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function latin1(bytes: Uint8Array, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function isPrintable(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Splits the parameters of an information line ('+CEREG: 5,"0001","01A2D001",9') at commas outside
 * quotes; quotes are removed. Empty parameters are ''.
 */
export function atParams(line: string): string[] {
  const colon = line.indexOf(':');
  const body = colon >= 0 ? line.slice(colon + 1).trim() : line;
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const HEX = '0123456789ABCDEF';

export function toHex(data: Uint8Array): string {
  let s = '';
  for (let i = 0; i < data.length; i++) s += HEX[data[i]! >> 4]! + HEX[data[i]! & 15]!;
  return s;
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 || !/^[0-9A-Fa-f]*$/.test(s)) throw new RangeError('not a hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
