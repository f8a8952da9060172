// The endpoint's JSON reader follows Gson's lenient JsonReader (what ThingsBoard's JsonParser uses):
// everything it accepts beyond RFC 8259 is accepted here, what it rejects is rejected.

import { strict as assert } from 'node:assert';
import { JsonSyntaxError, MAX_JSON_DEPTH, jsonDepth, parseLenientJson } from '../../tools/tb-server/json';

const ok = (text: string, want: unknown): void => assert.deepEqual(parseLenientJson(text), want, text);
const bad = (text: string): void => assert.throws(() => parseLenientJson(text), JsonSyntaxError, text);

describe('tb-server lenient JSON (Gson JsonReader, lenient)', () => {
  it('parses strict JSON exactly like JSON.parse', () => {
    for (const t of ['{"a":1,"b":[true,false,null],"c":{"d":"e\\u00e9\\n"}}', '[1.5e3,-0,0.25]', '"x"', '12', 'null']) ok(t, JSON.parse(t));
  });

  it('unquoted names and values; literals that are not JSON numbers are strings', () => {
    ok('{temperature:25}', { temperature: 25 });
    ok('{mode:eco, on:TRUE, off:False, n:NULL}', { mode: 'eco', on: true, off: false, n: null });
    ok('{a:01, b:+1, c:0x1F, d:25abc, e:NaN, f:1., g:.5, h:trueish}', { a: '01', b: '+1', c: '0x1F', d: '25abc', e: 'NaN', f: '1.', g: '.5', h: 'trueish' });
  });

  it('single quotes, escapes \\\' and backslash-newline, raw control characters in strings', () => {
    ok("{'a':'it\\'s'}", { a: "it's" });
    ok('{"a":"x\\\ny"}', { a: 'x\ny' });
    ok('{"a":"tab\there"}', { a: 'tab\there' });
  });

  it('= and => separate names from values; ; separates elements; comments', () => {
    ok('{a=1;b=>2}', { a: 1, b: 2 });
    ok('[1;2]', [1, 2]);
    ok('// c\n{"a":1 /* x */ # y\n}', { a: 1 });
    ok(")]}'\n{\"a\":1}", { a: 1 });
  });

  it('omitted array elements are null', () => {
    ok('[1,,2]', [1, null, 2]);
    ok('[1,]', [1, null]);
    ok('[,]', [null, null]);
    ok('[]', []);
  });

  it('rejects what Gson rejects', () => {
    for (const t of ['', '   ', '{"a":1,}', '{"a" 1}', '{"a":1 "b":2}', '"\\x"', '"abc', '/* x', '{"a":1}}', '{a:1} x', '[1 2]', '{,}', '{"a"}', ':', 'a/b']) bad(t);
  });

  it('nesting: 255 levels parse, 256 do not; depth of parsed values counted without recursion', () => {
    const nest = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    assert.equal(jsonDepth(parseLenientJson(nest(MAX_JSON_DEPTH))), MAX_JSON_DEPTH);
    bad(nest(MAX_JSON_DEPTH + 1));
    bad(nest(100000));
    assert.ok(jsonDepth(JSON.parse(nest(100000))) > MAX_JSON_DEPTH);
  });

  it('a "__proto__" name is data, as with JSON.parse', () => {
    const v = parseLenientJson('{"__proto__":{"x":1}}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
  });
});
