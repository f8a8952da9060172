/*
 * Malformed input to the device's generated decoders: each case is a ProtoError value with its
 * code, never an exception; random bytes never throw either.
 */
import { strict as assert } from 'node:assert';
import * as gen from './gen/alltypes';
import * as tb from '../../src/proto/gen/thingsboard';
import { profile as deviceProfile } from '../../src/proto/gen/device';
import { ProtoError } from '../../src/proto/wire';
import type { ProtoErrorCode } from '../../src/proto/wire';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

function expectError(input: Uint8Array, code: ProtoErrorCode, what: string): ProtoError {
  let r: unknown;
  assert.doesNotThrow(() => {
    r = gen.decodeAll(input);
  }, what);
  assert.ok(r instanceof ProtoError, `${what}: expected a ProtoError, got ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  assert.equal((r as ProtoError).code, code, `${what}: ${(r as ProtoError).message}`);
  assert.equal((r as ProtoError).name, 'ProtoError');
  return r as ProtoError;
}

describe('proto: malformed input is a typed error', () => {
  const cases: [string, Uint8Array, ProtoErrorCode][] = [
    ['truncated varint value', bytes(0x18, 0x80), 'truncated'],
    ['truncated tag', bytes(0x80), 'truncated'],
    ['varint longer than 10 bytes', bytes(0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 'varint'],
    ['tag varint longer than 10 bytes', bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 'varint'],
    ['truncated double (fixed64)', bytes(0x09, 1, 2, 3), 'truncated'],
    ['truncated float (fixed32)', bytes(0x15, 1, 2), 'truncated'],
    ['string length past the end', bytes(0x72, 0x05, 0x61), 'truncated'],
    ['huge length', bytes(0x72, 0xff, 0xff, 0xff, 0xff, 0x0f), 'truncated'],
    ['nested message length past the end', bytes(0x8a, 0x01, 0x09, 0x08), 'truncated'],
    ['field inside a nested message runs past its end', bytes(0x8a, 0x01, 0x02, 0x08, 0x96, 0x01), 'truncated'],
    ['packed run past its end', bytes(0x82, 0x02, 0x03, 0x80, 0x80, 0x80), 'truncated'],
    ['packed length past the end', bytes(0x82, 0x02, 0x09, 0x01), 'truncated'],
    ['packed fixed32 with a partial element', bytes(0xb2, 0x02, 0x03, 1, 2, 3), 'truncated'],
    ['field number 0', bytes(0x00, 0x01), 'field-number'],
    ['wire type 6', bytes(0x0e), 'wire-type'],
    ['wire type 7', bytes(0x0f), 'wire-type'],
    ['end-group without a start-group', bytes(0xa4, 0x06), 'wire-type'],
    ['group closed with another field number', bytes(0xa3, 0x06, 0xac, 0x06), 'wire-type'],
    ['group never closed', bytes(0xa3, 0x06, 0x08, 0x01), 'truncated'],
    ['groups nested too deep', new Uint8Array(Array.from({ length: 40 }, () => [0xa3, 0x06]).flat()), 'depth'],
    ['invalid UTF-8 (bad continuation)', bytes(0x72, 0x02, 0xc3, 0x28), 'utf8'],
    ['invalid UTF-8 (overlong NUL)', bytes(0x72, 0x02, 0xc0, 0x80), 'utf8'],
    ['invalid UTF-8 (encoded surrogate)', bytes(0x72, 0x03, 0xed, 0xa0, 0x80), 'utf8'],
    ['invalid UTF-8 (sequence cut by the field end)', bytes(0x72, 0x01, 0xe2), 'utf8'],
    ['invalid UTF-8 (above U+10FFFF)', bytes(0x72, 0x04, 0xf4, 0x90, 0x80, 0x80), 'utf8'],
    ['invalid UTF-8 in a nested message', bytes(0x8a, 0x01, 0x03, 0x12, 0x01, 0xff), 'utf8'],
  ];
  for (const [what, input, code] of cases) {
    it(what, () => {
      const e = expectError(input, code, what);
      assert.ok(e.offset >= 0 && e.offset <= input.length, `offset ${e.offset} inside the input`);
    });
  }

  it('empty input is the default message (proto3), not an error', () => {
    const m = gen.decodeAll(new Uint8Array(0));
    assert.ok(!(m instanceof ProtoError));
    assert.equal(m.i32, 0);
    assert.equal(m.s, '');
    assert.deepEqual(m.ri32, []);
    assert.equal(m.oi32, undefined);
  });

  it('a subarray is read within its bounds (byteOffset honoured)', () => {
    const inner = gen.encodeAll({ d: 1.5, f32: 7, s: 'x' });
    const buf = new Uint8Array(inner.length + 6);
    buf.set([0xff, 0xff, 0xff], 0);
    buf.set(inner, 3);
    buf.set([0x0e, 0x0e, 0x0e], 3 + inner.length);
    const m = gen.decodeAll(buf.subarray(3, 3 + inner.length));
    assert.ok(!(m instanceof ProtoError), m instanceof ProtoError ? m.message : '');
    assert.equal(m.d, 1.5);
    assert.equal(m.f32, 7);
  });

  it('20000 random byte strings (and mutated valid messages) never throw', () => {
    let a = 12345;
    const next = (): number => {
      a = (Math.imul(a, 1103515245) + 12345) >>> 0;
      return a >>> 8;
    };
    const valid = gen.encodeAll({ d: 2, s: 'héllo', m: { a: 3, s: 'x', zs: [1, -2] }, ri32: [1, 2, 300], rs: ['a'], cMsg: { a: 1 }, of64: 99 });
    let errors = 0;
    for (let i = 0; i < 20000; i++) {
      let input: Uint8Array;
      if (i % 2) {
        input = new Uint8Array(next() % 40);
        for (let j = 0; j < input.length; j++) input[j] = next() & 0xff;
      } else {
        input = valid.slice(0, next() % (valid.length + 1));
        if (input.length) input[next() % input.length] = next() & 0xff;
      }
      for (const decode of [gen.decodeAll, tb.decodeGetAttributeResponseMsg, tb.decodeAttributeUpdateNotificationMsg, deviceProfile.decodeRpcRequest] as ((b: Uint8Array) => unknown)[]) {
        let r: unknown;
        assert.doesNotThrow(() => {
          r = decode(input);
        }, `input ${Buffer.from(input).toString('hex')}`);
        if (r instanceof ProtoError) errors++;
      }
    }
    assert.ok(errors > 1000, `most random inputs are malformed (${errors} errors)`);
  });
});
