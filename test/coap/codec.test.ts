import { strict as assert } from 'node:assert';
import {
  buildUriOptions,
  decode,
  decodeBlock,
  decodeObserve,
  decodeUint,
  encode,
  encodeBlock,
  encodedSize,
  encodeUint,
  getOption,
  getOptions,
  isEmptyMessage,
  emptyMessage,
} from '../../src/coap/codec';
import { CoapFormatError } from '../../src/coap/errors';
import { CoapType, Code, OptionNumber, type CoapMessage } from '../../src/coap/types';
import { decodeUtf8, encodeUtf8, utf8Length } from '../../src/coap/utf8';
import { SeededRandom } from '../../tools/sim/random';

const bytes = (...b: number[]) => Uint8Array.from(b);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const E = new Uint8Array(0);

function msg(partial: Partial<CoapMessage>): CoapMessage {
  return { type: CoapType.CON, code: Code.GET, messageId: 0, token: E, options: [], payload: E, ...partial };
}

function rejects(data: Uint8Array, reason: string): void {
  assert.throws(
    () => decode(data),
    (e: unknown) => e instanceof CoapFormatError && e.reason === reason && e.code === 'format',
    `expected CoapFormatError(${reason})`,
  );
}

describe('coap codec', () => {
  it('encodes the RFC 7252 Appendix A GET /temperature with hand-computed bytes', () => {
    const m = msg({ messageId: 0x7d34, options: buildUriOptions('temperature') });
    const expected = bytes(0x40, 0x01, 0x7d, 0x34, 0xbb, ...ascii('temperature'));
    assert.deepEqual(encode(m), expected);
    assert.equal(encodedSize(m), expected.length);
    const d = decode(expected);
    assert.equal(d.type, CoapType.CON);
    assert.equal(d.code, Code.GET);
    assert.equal(d.messageId, 0x7d34);
    assert.equal(decodeUtf8(getOption(d, OptionNumber.URI_PATH)!.value), 'temperature');
  });

  it('encodes a token and a piggybacked 2.05 payload', () => {
    const req = msg({ messageId: 0x7d35, token: bytes(0x71), options: buildUriOptions('/temperature') });
    assert.deepEqual(encode(req), bytes(0x41, 0x01, 0x7d, 0x35, 0x71, 0xbb, ...ascii('temperature')));
    const ack = msg({ type: CoapType.ACK, code: Code.CONTENT, messageId: 0x7d35, token: bytes(0x71), payload: encodeUtf8('22.3 C') });
    const wire = bytes(0x61, 0x45, 0x7d, 0x35, 0x71, 0xff, ...ascii('22.3 C'));
    assert.deepEqual(encode(ack), wire);
    const d = decode(wire);
    assert.equal(d.type, CoapType.ACK);
    assert.deepEqual(Array.from(d.token), [0x71]);
    assert.equal(decodeUtf8(d.payload), '22.3 C');
  });

  it('round-trips tokens of 0..8 bytes, every type, repeated options in order', () => {
    for (let tkl = 0; tkl <= 8; tkl++) {
      for (const type of [CoapType.CON, CoapType.NON, CoapType.ACK, CoapType.RST]) {
        const token = Uint8Array.from({ length: tkl }, (_, i) => i * 17 + 1);
        const m = msg({
          type,
          code: Code.POST,
          messageId: 0xffff - tkl,
          token,
          options: [...buildUriOptions('/api/v1/TOKEN/telemetry', ['a=1', 'b=2']), { number: OptionNumber.CONTENT_FORMAT, value: encodeUint(50) }],
          payload: encodeUtf8('{"t":21.5}'),
        });
        const d = decode(encode(m));
        assert.equal(d.type, type);
        assert.equal(d.messageId, m.messageId);
        assert.deepEqual(Array.from(d.token), Array.from(token));
        assert.deepEqual(getOptions(d, OptionNumber.URI_PATH).map((o) => decodeUtf8(o.value)), ['api', 'v1', 'TOKEN', 'telemetry']);
        assert.deepEqual(getOptions(d, OptionNumber.URI_QUERY).map((o) => decodeUtf8(o.value)), ['a=1', 'b=2']);
        assert.equal(decodeUint(getOption(d, OptionNumber.CONTENT_FORMAT)!.value), 50);
        assert.equal(decodeUtf8(d.payload), '{"t":21.5}');
      }
    }
  });

  it('sorts options by number on encode, stable for repeats', () => {
    const m = msg({
      options: [
        { number: 15, value: bytes(1) },
        { number: 11, value: bytes(2) },
        { number: 15, value: bytes(3) },
        { number: 11, value: bytes(4) },
      ],
    });
    const d = decode(encode(m));
    assert.deepEqual(d.options.map((o) => [o.number, o.value[0]]), [[11, 2], [11, 4], [15, 1], [15, 3]]);
  });

  it('handles option delta and length extensions at the 12/13/268/269 boundaries', () => {
    for (const number of [12, 13, 268, 269, 270, 1000, 65535]) {
      const m = msg({ options: [{ number, value: bytes(7) }] });
      const wire = encode(m);
      const head = wire[4]!;
      if (number < 13) assert.equal(head >> 4, number);
      else if (number < 269) {
        assert.equal(head >> 4, 13);
        assert.equal(wire[5], number - 13);
      } else {
        assert.equal(head >> 4, 14);
        assert.equal((wire[5]! << 8) | wire[6]!, number - 269);
      }
      const d = decode(wire);
      assert.equal(d.options[0]!.number, number);
      assert.deepEqual(Array.from(d.options[0]!.value), [7]);
    }
    for (const len of [0, 12, 13, 268, 269, 270, 1500]) {
      const value = Uint8Array.from({ length: len }, (_, i) => i & 0xff);
      const m = msg({ options: [{ number: 1, value }], payload: bytes(9) });
      const wire = encode(m);
      assert.equal(wire.length, encodedSize(m));
      const head = wire[4]!;
      if (len < 13) assert.equal(head & 15, len);
      else if (len < 269) {
        assert.equal(head & 15, 13);
        assert.equal(wire[5], len - 13);
      } else {
        assert.equal(head & 15, 14);
        assert.equal((wire[5]! << 8) | wire[6]!, len - 269);
      }
      const d = decode(wire);
      assert.deepEqual(d.options[0]!.value, value);
      assert.deepEqual(Array.from(d.payload), [9]);
    }
    // Both extended at once: option 269 after option 0 with a 269-byte value.
    const both = msg({ options: [{ number: 269, value: new Uint8Array(269) }] });
    const w = encode(both);
    assert.deepEqual(Array.from(w.subarray(4, 9)), [0xee, 0, 0, 0, 0]);
    assert.equal(decode(w).options[0]!.value.length, 269);
  });

  it('encodes uint options in minimal length', () => {
    assert.deepEqual(encodeUint(0), E);
    assert.deepEqual(encodeUint(1), bytes(1));
    assert.deepEqual(encodeUint(255), bytes(255));
    assert.deepEqual(encodeUint(256), bytes(1, 0));
    assert.deepEqual(encodeUint(0x10000), bytes(1, 0, 0));
    assert.deepEqual(encodeUint(0xffffffff), bytes(255, 255, 255, 255));
    assert.equal(decodeUint(bytes(0, 0, 1)), 1);
    assert.equal(decodeUint(bytes(255, 255, 255, 255)), 0xffffffff);
    assert.throws(() => encodeUint(-1), CoapFormatError);
    assert.throws(() => decodeUint(bytes(1, 2, 3, 4, 5)), CoapFormatError);
  });

  it('encodes and decodes Block options and Observe', () => {
    assert.deepEqual(encodeBlock({ num: 0, more: false, szx: 0 }), E);
    assert.deepEqual(encodeBlock({ num: 0, more: true, szx: 6 }), bytes(0x0e));
    assert.deepEqual(encodeBlock({ num: 1, more: false, szx: 4 }), bytes(0x14));
    assert.deepEqual(encodeBlock({ num: 20, more: true, szx: 2 }), bytes(0x01, 0x4a));
    for (const b of [
      { num: 0, more: true, szx: 6 },
      { num: 15, more: false, szx: 0 },
      { num: 4095, more: true, szx: 3 },
      { num: 0xfffff, more: false, szx: 6 },
    ]) {
      assert.deepEqual(decodeBlock(encodeBlock(b)), b);
    }
    assert.throws(() => decodeBlock(bytes(0x07)), (e: unknown) => e instanceof CoapFormatError && e.reason === 'block-szx');
    assert.throws(() => encodeBlock({ num: 0x100000, more: false, szx: 0 }), CoapFormatError);
    assert.equal(decodeObserve(E), 0);
    assert.equal(decodeObserve(bytes(0xff, 0xff, 0xff)), 0xffffff);
    assert.throws(() => decodeObserve(bytes(1, 0, 0, 0)), CoapFormatError);
  });

  it('builds Uri-Path and Uri-Query options, UTF-8 encoded', () => {
    const o = buildUriOptions('/api/v1//x/température/', ['k=ü']);
    assert.deepEqual(o.map((x) => x.number), [11, 11, 11, 11, 15]);
    assert.deepEqual(o.map((x) => decodeUtf8(x.value)), ['api', 'v1', 'x', 'température', 'k=ü']);
    assert.deepEqual(Array.from(o[3]!.value.subarray(4, 6)), [0xc3, 0xa9]);
    assert.deepEqual(buildUriOptions('/'), []);
  });

  it('UTF-8 helpers handle 1-4 byte sequences, surrogates and bad input', () => {
    const s = 'aé€😀';
    const u = encodeUtf8(s);
    assert.deepEqual(Array.from(u), [0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
    assert.equal(utf8Length(s), 10);
    assert.equal(decodeUtf8(u), s);
    assert.deepEqual(Array.from(encodeUtf8('\ud800')), [0xef, 0xbf, 0xbd]);
    assert.equal(decodeUtf8(bytes(0xc3)), '\ufffd');
    assert.equal(decodeUtf8(bytes(0xff, 0x41)), '\ufffdA');
    assert.equal(decodeUtf8(bytes(0xe0, 0x80, 0x80)), '\ufffd'); // overlong
    assert.equal(decodeUtf8(bytes(0xed, 0xa0, 0x80)), '\ufffd'); // encoded surrogate
    // Matches Node's encoder on a mixed string.
    const mixed = 'ThingsBoard ✓ 温度 🌡️ ß';
    assert.deepEqual(Buffer.from(encodeUtf8(mixed)), Buffer.from(mixed, 'utf8'));
  });

  it('empty messages', () => {
    const ack = emptyMessage(CoapType.ACK, 0x1234);
    assert.deepEqual(ack, bytes(0x60, 0x00, 0x12, 0x34));
    const d = decode(ack);
    assert.ok(isEmptyMessage(d));
    assert.equal(d.messageId, 0x1234);
    assert.deepEqual(encode(d), ack);
  });

  describe('rejects malformed input with CoapFormatError', () => {
    it('truncated header', () => {
      rejects(E, 'truncated-header');
      rejects(bytes(0x40, 0x01, 0x00), 'truncated-header');
    });
    it('version != 1', () => {
      for (const v of [0, 2, 3]) rejects(bytes((v << 6) | 0x00, 0x01, 0, 1), 'version');
    });
    it('token length 9..15', () => {
      for (let tkl = 9; tkl <= 15; tkl++) rejects(bytes(0x40 | tkl, 0x01, 0, 1, ...new Array<number>(15).fill(0)), 'token-length');
    });
    it('truncated token', () => {
      rejects(bytes(0x44, 0x01, 0, 1, 1, 2, 3), 'truncated-token');
    });
    it('reserved delta 15 (not the payload marker)', () => {
      rejects(bytes(0x40, 0x01, 0, 1, 0xf0), 'reserved-delta');
      rejects(bytes(0x40, 0x01, 0, 1, 0xf1, 0x00), 'reserved-delta');
    });
    it('reserved length 15', () => {
      rejects(bytes(0x40, 0x01, 0, 1, 0x1f, 0x00), 'reserved-length');
    });
    it('truncated options', () => {
      rejects(bytes(0x40, 0x01, 0, 1, 0xb3, 0x61, 0x62), 'truncated-option'); // value 3 bytes, 2 present
      rejects(bytes(0x40, 0x01, 0, 1, 0xd0), 'truncated-option'); // delta 13, no extension byte
      rejects(bytes(0x40, 0x01, 0, 1, 0xe0, 0x00), 'truncated-option'); // delta 14, 1 of 2 bytes
      rejects(bytes(0x40, 0x01, 0, 1, 0x1d), 'truncated-option'); // length 13, no extension byte
      rejects(bytes(0x40, 0x01, 0, 1, 0x1e, 0x01), 'truncated-option'); // length 14, 1 of 2 bytes
      rejects(bytes(0x40, 0x01, 0, 1, 0x1d, 0x00, 1, 2), 'truncated-option'); // length 13 needs 13 bytes
    });
    it('payload marker with no payload', () => {
      rejects(bytes(0x40, 0x45, 0, 1, 0xff), 'empty-payload-after-marker');
      rejects(bytes(0x41, 0x45, 0, 1, 7, 0xb1, 0x61, 0xff), 'empty-payload-after-marker');
    });
    it('empty message with a token or bytes after the header', () => {
      rejects(bytes(0x61, 0x00, 0, 1, 7), 'empty-with-data');
      rejects(bytes(0x60, 0x00, 0, 1, 0xff, 1), 'empty-with-data');
    });
    it('option number above 65535', () => {
      rejects(bytes(0x40, 0x01, 0, 1, 0xe0, 0xff, 0xff, 0xe0, 0xff, 0xff), 'option-number');
    });
  });

  it('fuzz: 20000 random and mutated inputs give only success or CoapFormatError', () => {
    const rnd = new SeededRandom(0xc0a9);
    const seeds = [
      encode(msg({ messageId: 1, token: bytes(1, 2, 3, 4), options: buildUriOptions('/api/v1/tok/telemetry', ['x=1']), payload: encodeUtf8('{"a":1}') })),
      encode(msg({ type: CoapType.ACK, code: Code.CONTENT, messageId: 9, options: [{ number: 300, value: new Uint8Array(300) }] })),
      emptyMessage(CoapType.RST, 5),
    ];
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 20000; i++) {
      let data: Uint8Array;
      if (i % 2 === 0) {
        data = new Uint8Array(Math.floor(rnd.next() * 40));
        rnd.fill(data);
        if (data.length > 0 && rnd.next() < 0.7) data[0] = (data[0]! & 0x3f) | 0x40; // mostly version 1
      } else {
        const seed = seeds[i % seeds.length]!;
        data = seed.slice(0, Math.floor(rnd.next() * (seed.length + 1)));
        for (let k = 0; k < 3 && data.length > 0; k++) data[Math.floor(rnd.next() * data.length)] = Math.floor(rnd.next() * 256);
      }
      try {
        const d = decode(data);
        // Whatever decodes must re-encode to something that decodes to the same thing.
        const again = decode(encode(d));
        assert.equal(again.options.length, d.options.length);
        assert.deepEqual(again.payload, d.payload);
        ok++;
      } catch (e) {
        if (!(e instanceof CoapFormatError)) throw e;
        rejected++;
      }
    }
    assert.ok(ok > 100 && rejected > 100, `ok=${ok} rejected=${rejected}`);
  });
});
