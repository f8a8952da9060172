// Issue 14 regressions in src/coap: malformed ELECTIVE options are ignored, not fatal (RFC 7252
// §5.4.3); encode() refuses what decode() would reject or read back differently.

import { strict as assert } from 'node:assert';
import { CoapClient } from '../../src/coap/client';
import { decode, encode, encodeUint } from '../../src/coap/codec';
import { CoapFormatError } from '../../src/coap/errors';
import { Code, CoapType, OptionNumber, type CoapMessage, type CoapResponse } from '../../src/coap/types';
import { encodeUtf8 } from '../../src/coap/utf8';
import { ManualClock } from '../../tools/sim/clock';
import { SeededRandom } from '../../tools/sim/random';
import { FakeDatagram, settle } from './fake-datagram';

const E = new Uint8Array(0);

function setup() {
  const clock = new ManualClock();
  const net = new FakeDatagram(clock);
  const r = new SeededRandom(7);
  const client = new CoapClient(net, { clock, random: { fill: (b) => r.fill(b), next: () => 0 } });
  return { clock, net, client };
}

describe('coap hardening (issue 14)', () => {
  describe('a malformed elective option is ignored, the response is still taken', () => {
    it('5-byte Content-Format on a piggybacked 2.05', async () => {
      const { net, client } = setup();
      const p = client.request({ method: 'GET', path: '/a' });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token,
        options: [{ number: OptionNumber.CONTENT_FORMAT, value: Uint8Array.of(0, 0, 0, 0, 50) }], payload: encodeUtf8('{"x":1}') });
      const res = await p;
      assert.equal(res.code, Code.CONTENT);
      assert.equal(res.contentFormat, undefined, 'ignored');
      assert.equal(client.stats.malformed, 0);
    });

    it('3-byte Content-Format (out of its 0-2 byte range) is ignored too', async () => {
      const { net, client } = setup();
      const p = client.request({ method: 'GET', path: '/a' });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token,
        options: [{ number: OptionNumber.CONTENT_FORMAT, value: Uint8Array.of(0, 0, 50) }], payload: E });
      assert.equal((await p).contentFormat, undefined);
    });

    it('4-byte Observe on the response to a plain GET', async () => {
      const { net, client } = setup();
      const p = client.request({ method: 'GET', path: '/a' });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token,
        options: [{ number: OptionNumber.OBSERVE, value: Uint8Array.of(1, 2, 3, 4) }, { number: OptionNumber.CONTENT_FORMAT, value: encodeUint(50) }], payload: encodeUtf8('ok') });
      const res = await p;
      assert.equal(res.observe, undefined);
      assert.equal(res.contentFormat, 50, 'the well-formed option still counts');
    });

    it('a notification with a 4-byte Observe is taken as one without Observe (RFC 7641 §3.2): delivered, relation ended', async () => {
      const { net, client } = setup();
      const got: CoapResponse[] = [];
      let ended: Error | undefined;
      const obs = client.observe({ method: 'GET', path: '/o' }, (r) => got.push(r), (e) => (ended = e));
      const reg = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: reg.messageId, token: reg.token,
        options: [{ number: OptionNumber.OBSERVE, value: encodeUint(1) }], payload: encodeUtf8('a') });
      await obs.registered;
      net.inject({ type: CoapType.CON, code: Code.CONTENT, messageId: 9, token: reg.token,
        options: [{ number: OptionNumber.OBSERVE, value: Uint8Array.of(0, 0, 0, 2) }], payload: encodeUtf8('b') });
      await settle();
      assert.deepEqual(got.map((r) => new TextDecoder().decode(r.payload)), ['a', 'b']);
      assert.ok(ended, 'ended');
      assert.equal(net.last().type, CoapType.ACK, 'the CON notification is ACKed, not rejected');
    });
  });

  describe('encode refuses what decode would reject or change', () => {
    const base: CoapMessage = { type: CoapType.CON, code: Code.GET, messageId: 1, token: E, options: [], payload: E };
    const refuses = (m: CoapMessage, reason: string): void => {
      assert.throws(() => encode(m), (e: unknown) => e instanceof CoapFormatError && e.reason === reason);
    };

    it('an Empty message (0.00) with a token, an option or a payload', () => {
      refuses({ ...base, type: CoapType.ACK, code: 0, token: Uint8Array.of(1) }, 'empty-with-data');
      refuses({ ...base, type: CoapType.RST, code: 0, options: [{ number: 11, value: E }] }, 'empty-with-data');
      refuses({ ...base, type: CoapType.CON, code: 0, payload: Uint8Array.of(1) }, 'empty-with-data');
      assert.deepEqual(decode(encode({ ...base, type: CoapType.ACK, code: 0 })), { ...base, type: CoapType.ACK, code: 0 });
    });

    it('option number 11.5, NaN or -1', () => {
      refuses({ ...base, options: [{ number: 11.5, value: E }] }, 'option-number');
      refuses({ ...base, options: [{ number: Number.NaN, value: E }] }, 'option-number');
      refuses({ ...base, options: [{ number: -1, value: E }] }, 'option-number');
    });

    it('a type outside 0..3', () => {
      refuses({ ...base, type: 4 as CoapType }, 'type');
      refuses({ ...base, type: 1.5 as CoapType }, 'type');
    });
  });
});
