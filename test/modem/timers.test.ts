/*
 * 3GPP TS 24.008 timer encodings: GPRS Timer 3 (T3412 extended), GPRS Timer 2 (T3324), eDRX cycle
 * and paging time window. Both ways, edges, rounding up to the next encodable value, deactivated.
 */
import { strict as assert } from 'node:assert';
import {
  TIMER2_MAX_S,
  TIMER3_MAX_S,
  TimerRangeError,
  decodeEdrx,
  decodePtw,
  decodeTimer2,
  decodeTimer3,
  encodeEdrx,
  encodePtw,
  encodeTimer2,
  encodeTimer3,
} from '../../src/modem/timers';

const octets = (): string[] => Array.from({ length: 256 }, (_, i) => i.toString(2).padStart(8, '0'));

describe('modem/timers: GPRS Timer 3 (T3412 extended)', () => {
  it('decodes every unit of Table 10.5.163a', () => {
    assert.equal(decodeTimer3('00000001'), 600); // 10 min
    assert.equal(decodeTimer3('00100001'), 3600); // 1 h
    assert.equal(decodeTimer3('01000001'), 36000); // 10 h
    assert.equal(decodeTimer3('01100001'), 2); // 2 s
    assert.equal(decodeTimer3('10000001'), 30); // 30 s
    assert.equal(decodeTimer3('10100001'), 60); // 1 min
    assert.equal(decodeTimer3('11000001'), 1_152_000); // 320 h
    assert.equal(decodeTimer3('11100101'), null); // deactivated, whatever the value bits
    assert.equal(decodeTimer3('01011111'), 31 * 36000);
    assert.equal(decodeTimer3(0x21), 3600);
  });

  it('encodes to the smallest value not below the request', () => {
    assert.equal(encodeTimer3(null), '11100000');
    assert.equal(encodeTimer3(0), '01100000');
    assert.equal(encodeTimer3(1), '01100001'); // 2 s, never 0
    assert.equal(encodeTimer3(60), '01111110'); // 30 x 2 s (the finer unit on a tie)
    assert.equal(encodeTimer3(61), '01111111'); // 62 s
    assert.equal(encodeTimer3(63), '10000011'); // 90 s: 2 s units end at 62
    assert.equal(decodeTimer3(encodeTimer3(3600)), 3600);
    assert.equal(encodeTimer3(3601), '00000111'); // 1 h + 1 s -> 7 x 10 min (4200 s): 2 x 1 h would be 7200
  });

  it('round-trips every octet and never rounds down', () => {
    for (const o of octets()) {
      const v = decodeTimer3(o);
      if (v === null) continue;
      assert.equal(decodeTimer3(encodeTimer3(v)), v, o);
    }
    const values = [...new Set(octets().map((o) => decodeTimer3(o)).filter((v): v is number => v !== null))].sort((a, b) => a - b);
    for (let r = 0; r <= 40000; r += 7) {
      const got = decodeTimer3(encodeTimer3(r))!;
      assert.ok(got >= r, `${r} -> ${got}`);
      assert.ok(!values.some((v) => v >= r && v < got), `${r}: a smaller value than ${got} exists`);
    }
  });

  it('the edges: the largest value, and above it', () => {
    assert.equal(encodeTimer3(TIMER3_MAX_S), '11011111');
    assert.throws(() => encodeTimer3(TIMER3_MAX_S + 1), TimerRangeError);
    assert.throws(() => encodeTimer3(-1), TimerRangeError);
    assert.throws(() => encodeTimer3(Number.NaN), TimerRangeError);
    assert.throws(() => decodeTimer3('0010001'), TimerRangeError);
    assert.throws(() => decodeTimer3('0010001x'), TimerRangeError);
  });
});

describe('modem/timers: GPRS Timer 2 (T3324 active time)', () => {
  it('decodes 2 s, 1 min, decihours, deactivated; other units as 1 min', () => {
    assert.equal(decodeTimer2('00000101'), 10);
    assert.equal(decodeTimer2('00100011'), 180);
    assert.equal(decodeTimer2('01000010'), 720);
    assert.equal(decodeTimer2('11100000'), null);
    assert.equal(decodeTimer2('01100001'), 60); // unit 011: "interpreted as multiples of 1 minute"
    assert.equal(decodeTimer2('11000010'), 120);
  });

  it('encodes with rounding up and the deactivated code', () => {
    assert.equal(encodeTimer2(null), '11100000');
    assert.equal(encodeTimer2(0), '00000000');
    assert.equal(encodeTimer2(10), '00000101');
    assert.equal(encodeTimer2(11), '00000110'); // 12 s
    assert.equal(encodeTimer2(62), '00011111');
    assert.equal(encodeTimer2(63), '00100010'); // 2 min
    assert.equal(encodeTimer2(3600), '01001010'); // 10 decihours
    assert.equal(encodeTimer2(TIMER2_MAX_S), '01011111');
    assert.throws(() => encodeTimer2(TIMER2_MAX_S + 1), TimerRangeError);
    for (const o of octets()) {
      const v = decodeTimer2(o);
      if (v === null) continue;
      assert.equal(decodeTimer2(encodeTimer2(v)), v, o);
    }
    for (let r = 0; r <= TIMER2_MAX_S; r += 13) assert.ok(decodeTimer2(encodeTimer2(r))! >= r);
  });
});

describe('modem/timers: eDRX and paging time window (24.008 §10.5.5.32)', () => {
  it('eDRX cycle per access technology', () => {
    assert.equal(decodeEdrx('0000', 'lte-m'), 5.12);
    assert.equal(decodeEdrx('0101', 'lte-m'), 81.92);
    assert.equal(decodeEdrx('1111', 'nb-iot'), 10485.76);
    assert.equal(decodeEdrx('0000', 'nb-iot'), 20.48); // not defined on NB-S1: read as 0010
    assert.equal(encodeEdrx(20, 'nb-iot'), '0010');
    assert.equal(encodeEdrx(5, 'nb-iot'), '0010');
    assert.equal(encodeEdrx(50, 'lte-m'), '0100'); // 61.44
    assert.equal(encodeEdrx(50, 'nb-iot'), '0101'); // 61.44 does not exist on NB-S1: 81.92
    assert.equal(encodeEdrx(81.92, 'nb-iot'), '0101');
    assert.throws(() => encodeEdrx(10486, 'lte-m'), TimerRangeError);
  });

  it('paging time window: 1.28 s steps on LTE-M, 2.56 s on NB-IoT', () => {
    assert.equal(decodePtw('0000', 'lte-m'), 1.28);
    assert.equal(decodePtw('1111', 'lte-m'), 20.48);
    assert.equal(decodePtw('0000', 'nb-iot'), 2.56);
    assert.equal(decodePtw('1111', 'nb-iot'), 40.96);
    assert.equal(encodePtw(2.56, 'nb-iot'), '0000');
    assert.equal(encodePtw(2.57, 'nb-iot'), '0001');
    assert.equal(encodePtw(10, 'lte-m'), '0111'); // 10.24 s
    assert.throws(() => encodePtw(41, 'nb-iot'), TimerRangeError);
  });
});
