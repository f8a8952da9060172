/*
 * AT channel: framing, URCs inside responses, typed errors, per-command timeouts on the clock,
 * garbage, raw payloads after a line, the '>' prompt, a modem that restarts mid-command.
 * A scripted Serial on a ManualClock: no wall time.
 */
import { strict as assert } from 'node:assert';
import { AtChannel, AtError, atParams, fromHex, toHex } from '../../src/modem/at';
import type { Serial } from '../../src/platform/types';
import { ManualClock, flushMicrotasks } from '../../tools/sim/clock';

class ScriptedSerial implements Serial {
  onReceive?: (data: Uint8Array) => void;
  written: Uint8Array[] = [];
  closed = false;
  write(data: Uint8Array): void {
    this.written.push(data.slice());
  }
  close(): void {
    this.closed = true;
  }
  /** The commands written, as text. */
  get commands(): string[] {
    return this.written.map((b) => String.fromCharCode(...b));
  }
  feed(s: string | Uint8Array): void {
    this.onReceive?.(typeof s === 'string' ? Uint8Array.from(s, (c) => c.charCodeAt(0)) : s);
  }
}

function setup(bootLines = ['Ready']) {
  const clock = new ManualClock();
  const serial = new ScriptedSerial();
  const at = new AtChannel(serial, { clock, bootLines });
  return { clock, serial, at };
}

async function rejection(p: Promise<unknown>): Promise<AtError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AtError, `not an AtError: ${e}`);
    return e;
  }
  assert.fail('resolved');
}

describe('modem/at: AT channel', () => {
  it('writes one command at a time and returns its information lines on OK', async () => {
    const { serial, at } = setup();
    const a = at.command('AT+CEREG?', { prefix: '+CEREG:' });
    const b = at.command('AT+CGSN');
    assert.deepEqual(serial.commands, ['AT+CEREG?\r'], 'the second waits for the first');
    serial.feed('\r\n+CEREG: 5,1,"0001","01A2D001",9,,,"00100001","00000011"\r\n\r\nOK\r\n');
    assert.deepEqual((await a).lines, ['+CEREG: 5,1,"0001","01A2D001",9,,,"00100001","00000011"']);
    assert.deepEqual(serial.commands, ['AT+CEREG?\r', 'AT+CGSN\r']);
    serial.feed('352656100367872\r\nOK\r\n'); // no prefix: bare lines belong to the command
    assert.deepEqual((await b).lines, ['352656100367872']);
  });

  it('routes URCs that arrive inside a response to their handler', async () => {
    const { serial, at } = setup();
    const urcs: string[] = [];
    at.onUrc('+CEREG:', (l) => urcs.push(l));
    at.onUrc('#XAPOLL:', (l) => urcs.push(l));
    const p = at.command('AT#XSOCKET=1,2,0', { prefix: '#XSOCKET:' });
    serial.feed('#XAPOLL: 0,1\r\n#XSOCKET: 0,2,17\r\n+CEREG: 1,"0001","01A2D001",9\r\nOK\r\n');
    assert.deepEqual((await p).lines, ['#XSOCKET: 0,2,17']);
    assert.deepEqual(urcs, ['#XAPOLL: 0,1', '+CEREG: 1,"0001","01A2D001",9']);
    serial.feed('+CEREG: 2\r\n'); // and outside of any command
    assert.equal(urcs.length, 3);
  });

  it('accepts lines cut anywhere, one byte at a time, CR or LF alone, and the echo', async () => {
    const { serial, at } = setup();
    const p = at.command('AT+CGMR');
    for (const c of 'AT+CGMR\rmfw_nrf9160_1.3.5\nOK\r\n') serial.feed(c);
    assert.deepEqual((await p).lines, ['mfw_nrf9160_1.3.5']);
  });

  it('ERROR and +CME ERROR: n are typed errors; the next command still runs', async () => {
    const { serial, at } = setup();
    const a = at.command('AT+CPSMS=1,,,"00000001","00000001"');
    const b = at.command('AT+CFUN=1');
    const c = at.command('AT+CMGS=1');
    serial.feed('ERROR\r\n');
    const ea = await rejection(a);
    assert.equal(ea.code, 'error');
    serial.feed('+CME ERROR: 30\r\n');
    const eb = await rejection(b);
    assert.equal(eb.code, 'cme');
    assert.equal(eb.errorNumber, 30);
    assert.equal(eb.command, 'AT+CFUN=1');
    serial.feed('+CMS ERROR: 500\r\n');
    assert.equal((await rejection(c)).code, 'cms');
  });

  it('times out on the clock per command and moves on', async () => {
    const { serial, clock, at } = setup();
    const a = at.command('AT+COPS=?', { timeoutMs: 180000 });
    const b = at.command('AT');
    clock.advance(179_999);
    await flushMicrotasks();
    assert.equal(serial.commands.length, 1, 'still waiting');
    clock.advance(1);
    const e = await rejection(a);
    assert.equal(e.code, 'timeout');
    assert.deepEqual(serial.commands, ['AT+COPS=?\r', 'AT\r']);
    serial.feed('OK\r\n');
    await b;
    assert.equal(clock.pending, 0, 'no timer left behind');
  });

  it('ignores garbage: noise bytes, unknown lines, an over-long line', async () => {
    const { serial, at } = setup();
    serial.feed(new Uint8Array([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x80, 0x81, 0x0d, 0x0a]));
    serial.feed('+UNKNOWN: 1\r\n');
    serial.feed('x'.repeat(5000) + '\r\n');
    const p = at.command('AT+CEREG?', { prefix: '+CEREG:' });
    serial.feed('\x00\x01junk\x7f\r\n+WHATEVER: 3\r\n+CEREG: 5,1\r\nOK\r\n');
    assert.deepEqual((await p).lines, ['+CEREG: 5,1']);
    assert.ok(at.garbage >= 5, `garbage counted: ${at.garbage}`);
  });

  it('reads raw bytes announced by a line, CR LF and all', async () => {
    const { serial, at } = setup();
    const p = at.command('AT#XRECVFROM=0,64', { prefix: '#XRECVFROM:', binaryLength: (l) => Number(atParams(l)[0]) });
    const payload = new Uint8Array([0x40, 0x0d, 0x0a, 0x4f, 0x4b, 0x0d, 0x0a, 0x00, 0xff]); // contains "\r\nOK\r\n"
    serial.feed('#XRECVFROM: 9,"127.0.0.1",5683\r\n');
    serial.feed(payload.subarray(0, 4));
    serial.feed(new Uint8Array([...payload.subarray(4), 0x0d, 0x0a, 0x4f, 0x4b, 0x0d, 0x0a]));
    const r = await p;
    assert.deepEqual([...r.data!], [...payload]);
    assert.deepEqual(r.lines, ['#XRECVFROM: 9,"127.0.0.1",5683']);
  });

  it("writes the payload after the '>' prompt and takes SEND OK / SEND FAIL as finals", async () => {
    const { serial, at } = setup();
    const data = new Uint8Array([1, 2, 3, 0x0d, 0x0a]);
    const opts = { payload: data, finalOk: ['SEND OK'], finalError: ['SEND FAIL'] };
    const p = at.command('AT+QISEND=0,5,"127.0.0.1",5683', opts);
    serial.feed('> ');
    assert.deepEqual([...serial.written[1]!], [...data]);
    serial.feed('\r\nSEND OK\r\n');
    await p;
    const q = at.command('AT+QISEND=0,5,"127.0.0.1",5683', opts);
    serial.feed('> SEND FAIL\r\n');
    assert.equal((await rejection(q)).code, 'error');
  });

  it('a modem that restarts mid-command fails it and the queue, and says so', async () => {
    const { serial, at } = setup();
    let reboots = 0;
    at.onReboot = () => reboots++;
    const a = at.command('AT#XSENDTO="127.0.0.1",5683,0,"40"');
    const b = at.command('AT#XRECVFROM=0,64');
    serial.feed('\r\nReady\r\n');
    assert.equal((await rejection(a)).code, 'reboot');
    assert.equal((await rejection(b)).code, 'reboot');
    assert.equal(reboots, 1);
    const c = at.command('AT');
    serial.feed('OK\r\n');
    await c;
    serial.feed('OK\r\n'); // a stray final with nothing pending is garbage, not a crash
  });

  it('bounds the queue and refuses commands after close', async () => {
    const { at, serial } = setup();
    const pending = Array.from({ length: 17 }, () => at.command('AT').catch((e: AtError) => e.code));
    const over = await rejection(at.command('AT'));
    assert.equal(over.code, 'busy');
    at.close();
    assert.ok(serial.closed);
    assert.deepEqual(new Set(await Promise.all(pending)), new Set(['closed']));
    assert.equal((await rejection(at.command('AT'))).code, 'closed');
  });

  it('errors name a long command, never its data (an AT#XSENDTO carries the token in its URI path)', async () => {
    const { serial, at } = setup();
    const secret = Buffer.from('/api/v1/SECRET-TOKEN/telemetry').toString('hex').toUpperCase();
    const p = at.command(`AT#XSENDTO="127.0.0.1",5683,0,"${secret}"`);
    serial.feed('+CME ERROR: 4\r\n');
    const e = await rejection(p);
    assert.equal(e.command, 'AT#XSENDTO=...');
    assert.ok(!e.message.includes(secret) && !e.message.includes('SECRET'), e.message);
    assert.match(e.message, /AT#XSENDTO=\.\.\.: \+CME ERROR: 4/);
  });

  it('hex helpers and parameter splitting', () => {
    assert.equal(toHex(new Uint8Array([0, 0xab, 0x10])), '00AB10');
    assert.deepEqual([...fromHex('00ab10')], [0, 0xab, 0x10]);
    assert.throws(() => fromHex('0g'));
    assert.deepEqual(atParams('+CEREG: 1,"00,01","A",9,,'), ['1', '00,01', 'A', '9', '', '']);
  });
});
