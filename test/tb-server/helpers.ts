// Shared helpers for the tb-server tests: temp servers, a node-coap client with bounded waits,
// the admin HTTP API, and the libcoap command-line client.

import * as coap from 'coap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import { generate, parse } from 'coap-packet';
import type { ParsedPacket } from 'coap-packet';
import { startTbServer } from '../../tools/tb-server/server';
import type { TbServer, TbServerOptions } from '../../tools/tb-server/server';

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tb-server-test-'));
}

export async function startTemp(opts: TbServerOptions = {}): Promise<TbServer & { dataDir: string; lines: string[] }> {
  const dataDir = opts.dataDir ?? tempDir();
  const lines: string[] = [];
  const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir, log: (l) => lines.push(l), ...opts });
  return Object.assign(tb, { dataDir, lines });
}

export interface CoapResult { code: string; payload: Buffer; text: string; json: unknown; headers: Record<string, unknown> }

export interface ReqOpts {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  pathname: string;
  query?: string;
  payload?: string | Buffer;
  confirmable?: boolean;
  contentFormat?: string;
  timeoutMs?: number;
}

function toResult(res: coap.IncomingMessage, payload?: Buffer): CoapResult {
  const p = payload ?? res.payload ?? Buffer.alloc(0);
  const text = p.toString('utf8');
  let json: unknown;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { code: res.code, payload: p, text, json, headers: res.headers as Record<string, unknown> };
}

export class Client {
  // Own socket: node-coap's Agent closes a socket it created as soon as no request is in flight,
  // which races with the next request (ERR_SOCKET_DGRAM_NOT_RUNNING).
  readonly socket = dgram.createSocket('udp4');
  readonly agent = new coap.Agent({ socket: this.socket });
  constructor(readonly port: number) {}

  request(o: ReqOpts): Promise<CoapResult> {
    const timeoutMs = o.timeoutMs ?? 3000;
    return new Promise((resolve, reject) => {
      const req = coap.request({
        hostname: '127.0.0.1', port: this.port, pathname: o.pathname, query: o.query,
        method: o.method ?? 'GET', confirmable: o.confirmable ?? true, agent: this.agent,
      });
      if (o.contentFormat) req.setOption('Content-Format', o.contentFormat);
      const t = setTimeout(() => reject(new Error(`no CoAP response in ${timeoutMs} ms for ${o.method ?? 'GET'} ${o.pathname}`)), timeoutMs);
      req.on('response', (res: coap.IncomingMessage) => { clearTimeout(t); resolve(toResult(res)); });
      req.on('error', (e: Error) => { clearTimeout(t); reject(e); });
      req.end(o.payload);
    });
  }

  /** Like request, but resolves null if nothing arrives within waitMs. */
  async maybe(o: ReqOpts, waitMs: number): Promise<CoapResult | null> {
    try { return await this.request({ ...o, timeoutMs: waitMs }); } catch (e) {
      if (/no CoAP response/.test((e as Error).message)) return null;
      throw e;
    }
  }

  observe(pathname: string, opts: { confirmable?: boolean; timeoutMs?: number } = {}): Promise<Observer> {
    const timeoutMs = opts.timeoutMs ?? 3000;
    return new Promise((resolve, reject) => {
      const req = coap.request({
        hostname: '127.0.0.1', port: this.port, pathname, method: 'GET', observe: true,
        confirmable: opts.confirmable ?? true, agent: this.agent,
      });
      const t = setTimeout(() => reject(new Error(`no observe response in ${timeoutMs} ms for ${pathname}`)), timeoutMs);
      req.on('response', (res: coap.ObserveReadStream) => { clearTimeout(t); resolve(new Observer(res)); });
      req.on('error', (e: Error) => { clearTimeout(t); reject(e); });
      req.end();
    });
  }

  close(): Promise<void> {
    this.agent.close();
    return new Promise((r) => this.socket.close(() => r()));
  }
}

export interface Notification { code: string; observe: unknown; text: string; json: unknown; confirmable: boolean }

export class Observer {
  readonly received: Notification[] = [];
  private waiters: (() => void)[] = [];
  private consumed = 0;
  constructor(readonly stream: coap.ObserveReadStream) {
    stream.on('data', (payload: Buffer) => {
      const text = payload ? payload.toString('utf8') : '';
      let json: unknown;
      try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
      const s = stream as unknown as { code: string; headers: Record<string, unknown>; _packet: { confirmable: boolean } };
      this.received.push({ code: s.code, observe: s.headers.Observe, text, json, confirmable: false });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Next not yet consumed notification (the first one is the registration response). */
  async next(timeoutMs = 2000): Promise<Notification> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length <= this.consumed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no notification within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return this.received[this.consumed++];
  }

  /** Asserts nothing new arrives for ms. */
  async none(ms: number): Promise<void> {
    const before = this.received.length;
    await sleep(ms);
    if (this.received.length !== before) {
      throw new Error(`unexpected notification: ${this.received.slice(before).map((n) => n.text).join(', ')}`);
    }
  }

  close(): void { this.stream.close(); }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function http(tb: { httpPort: number; adminToken: string }, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 8000);
  try {
    const res = await fetch(`http://127.0.0.1:${tb.httpPort}${p}`, {
      method, signal: ac.signal,
      headers: { authorization: `Bearer ${tb.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  } finally {
    clearTimeout(t);
  }
}

export const COAP_CLIENT = '/usr/bin/coap-client-notls';

/** Runs libcoap's coap-client-notls; fails (not skips) with an install hint when it is missing. */
export function coapClient(args: string[], timeoutMs = 8000): Promise<{ stdout: string; stderr: string }> {
  if (!fs.existsSync(COAP_CLIENT)) {
    return Promise.reject(new Error(`${COAP_CLIENT} not found: install it with "apt-get install libcoap3-bin"`));
  }
  return new Promise((resolve, reject) => {
    execFile(COAP_CLIENT, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException & { killed?: boolean }).killed) {
        reject(new Error(`coap-client-notls timed out: ${args.join(' ')}`));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}

/** Polls cond until true or timeout. */
export async function waitFor(cond: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// Timers as they were when this module loaded: waits in the helpers below keep working while a
// test runs node-coap's timers on a fake clock (node:test mock.timers).
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

type CoapPacketInput = Parameters<typeof generate>[0];

/** A raw UDP peer speaking coap-packet datagrams, for wire-level checks. */
export class RawPeer {
  readonly sock = dgram.createSocket('udp4');
  readonly inbox: ParsedPacket[] = [];
  received = 0;
  /** false: count datagrams only (a flood's answers would otherwise pile up in the inbox). */
  keep = true;
  private waiters: (() => void)[] = [];
  constructor(readonly port: number) {
    this.sock.on('message', (m) => {
      this.received++;
      if (!this.keep) return;
      this.inbox.push(parse(m));
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async bind(): Promise<this> { await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r())); return this; }
  get address(): string { const a = this.sock.address(); return `${a.address}:${a.port}`; }
  send(p: CoapPacketInput): void {
    this.sock.send(generate(p, 65000), this.port, '127.0.0.1');
  }
  sendRaw(b: Buffer): void { this.sock.send(b, this.port, '127.0.0.1'); }
  async next(timeoutMs = 2000): Promise<ParsedPacket> {
    const deadline = Date.now() + timeoutMs;
    while (!this.inbox.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no datagram within ${timeoutMs} ms`);
      await new Promise<void>((r) => { const t = realSetTimeout(r, left); this.waiters.push(() => { realClearTimeout(t); r(); }); });
    }
    return this.inbox.shift()!;
  }
  ack(p: { messageId: number }): void {
    this.send({ messageId: p.messageId, code: '0.00', confirmable: false, ack: true, reset: false, options: [], token: Buffer.alloc(0) });
  }
  close(): Promise<void> { return new Promise((r) => this.sock.close(() => r())); }
}

export const uriPath = (p: string): { name: 'Uri-Path'; value: Buffer }[] =>
  p.split('/').filter(Boolean).map((s) => ({ name: 'Uri-Path' as const, value: Buffer.from(s) }));

/** Lets pending I/O callbacks and immediates run (real timers). */
export const settle = (ms = 20): Promise<void> => new Promise((r) => realSetTimeout(r, ms));
