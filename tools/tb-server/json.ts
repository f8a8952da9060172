// JSON as ThingsBoard reads device payloads: Gson's JsonParser, which parses LENIENTLY
// (JsonParser.parseReader switches the reader to lenient mode). ThingsBoard's own CoAP guide posts
// `{temperature:25}` and ThingsBoard stores it, so the local endpoint must accept it too.
//
// What Gson's lenient JsonReader accepts beyond RFC 8259, and so what this parser accepts (and
// nothing more):
//   - unquoted names and string values: a run of characters other than whitespace and
//     { } [ ] : , ; = # / \   (`{temperature:25}`, `{mode:eco}` -> "eco")
//   - a literal that is not a valid JSON number is a string: `01`, `+1`, `0x1F`, `25abc`, `NaN`
//   - true/false/null in any letter case (`TRUE`, `Null`), when not followed by literal characters
//   - single-quoted names and strings; escapes \' and backslash-newline as well as JSON's
//   - name/value separator `:` or `=` or `=>`; element separator `,` or `;`
//   - comments: // and # to the end of the line, /* ... */
//   - in arrays an omitted element is null: [1,,2] -> [1,null,2], [1,] -> [1,null], [,] -> [null,null]
//   - raw control characters inside quoted strings (Gson does not check them)
//   - the non-execute prefix )]}' at the very start
// Still rejected as Gson rejects them: a trailing comma in an object `{"a":1,}`, a missing
// separator, unknown escapes (\x), unterminated strings/comments, anything after the top-level value.
//
// Hardening (reachable by any client): nesting is bounded at 255 levels, Gson's default
// nesting limit (JsonReader.setNestingLimit, Gson 2.11); the parser is iterative over the input
// and recursive only per nesting level, so depth is the only stack cost. Objects are built with own
// properties only (a "__proto__" key is data, as in JSON.parse).

import type { JsonValue } from './store';

export const MAX_JSON_DEPTH = 255;

export class JsonSyntaxError extends Error {
  constructor(message: string, readonly position: number) { super(`${message} at ${position}`); }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0c]);
/** Characters that end an unquoted literal (Gson JsonReader.isLiteral returns false). */
const NOT_LITERAL = new Set(['{', '}', '[', ']', ':', ',', ';', '=', '#', '/', '\\', ' ', '\t', '\f', '\r', '\n'].map((c) => c.charCodeAt(0)));
const NUMBER_RE = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/;

function setOwn(o: { [k: string]: JsonValue }, k: string, v: JsonValue): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

class Parser {
  pos = 0;
  constructor(readonly s: string, readonly maxDepth: number) {}

  fail(msg: string): never { throw new JsonSyntaxError(msg, this.pos); }

  /** Skips whitespace and comments; returns the next character code or -1 at the end. */
  peek(): number {
    const s = this.s;
    for (;;) {
      if (this.pos >= s.length) return -1;
      const c = s.charCodeAt(this.pos);
      if (WS.has(c)) { this.pos++; continue; }
      if (c === 0x23 /* # */) { this.skipLine(); continue; }
      if (c === 0x2f /* / */) {
        const n = s.charCodeAt(this.pos + 1);
        if (n === 0x2f) { this.skipLine(); continue; }
        if (n === 0x2a /* * */) {
          const end = s.indexOf('*/', this.pos + 2);
          if (end < 0) this.fail('Unterminated comment');
          this.pos = end + 2;
          continue;
        }
      }
      return c;
    }
  }

  skipLine(): void {
    const s = this.s;
    while (this.pos < s.length && s.charCodeAt(this.pos) !== 0x0a && s.charCodeAt(this.pos) !== 0x0d) this.pos++;
  }

  document(): JsonValue {
    // )]}' followed by a newline, only at the very beginning (JsonReader.consumeNonExecutePrefix)
    if (this.s.startsWith(")]}'\n") || this.s.startsWith(")]}'\r")) this.pos = 5;
    if (this.peek() < 0) this.fail('Empty document');
    const v = this.value(0);
    if (this.peek() >= 0) this.fail('Did not consume the entire document');
    return v;
  }

  value(depth: number): JsonValue {
    const c = this.peek();
    switch (c) {
      case 0x7b /* { */: return this.object(depth + 1);
      case 0x5b /* [ */: return this.array(depth + 1);
      case 0x22 /* " */: case 0x27 /* ' */: return this.quoted(c);
      case -1: return this.fail('End of input');
      default: return this.literal();
    }
  }

  object(depth: number): JsonValue {
    if (depth > this.maxDepth) this.fail(`Nesting limit ${this.maxDepth} reached`);
    this.pos++; // {
    const o: { [k: string]: JsonValue } = {};
    if (this.peek() === 0x7d /* } */) { this.pos++; return o; }
    for (;;) {
      const c = this.peek();
      let name: string;
      if (c === 0x22 || c === 0x27) name = this.quoted(c);
      else if (c >= 0 && !NOT_LITERAL.has(c)) name = this.unquoted();
      else this.fail('Expected name');
      const sep = this.peek();
      if (sep === 0x3a /* : */) this.pos++;
      else if (sep === 0x3d /* = */) {
        this.pos++;
        if (this.s.charCodeAt(this.pos) === 0x3e /* > */) this.pos++;
      } else this.fail("Expected ':'");
      setOwn(o, name, this.value(depth));
      const n = this.peek();
      if (n === 0x7d) { this.pos++; return o; }
      if (n === 0x2c || n === 0x3b /* , ; */) { this.pos++; continue; }
      this.fail('Unterminated object');
    }
  }

  array(depth: number): JsonValue {
    if (depth > this.maxDepth) this.fail(`Nesting limit ${this.maxDepth} reached`);
    this.pos++; // [
    const a: JsonValue[] = [];
    if (this.peek() === 0x5d /* ] */) { this.pos++; return a; }
    for (;;) {
      const c = this.peek();
      // an omitted element (before , ; or ]) is null in lenient mode
      if (c === 0x2c || c === 0x3b || c === 0x5d) a.push(null);
      else a.push(this.value(depth));
      const n = this.peek();
      if (n === 0x5d) { this.pos++; return a; }
      if (n === 0x2c || n === 0x3b) {
        this.pos++;
        continue;
      }
      this.fail('Unterminated array');
    }
  }

  quoted(q: number): string {
    const s = this.s;
    this.pos++;
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('Unterminated string');
      const c = s.charCodeAt(this.pos);
      if (c === q) {
        out += s.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c !== 0x5c /* \ */) { this.pos++; continue; }
      out += s.slice(start, this.pos);
      const e = s[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case 'u': {
          const hex = s.slice(this.pos, this.pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('Malformed Unicode escape');
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 'f': out += '\f'; break;
        case '\n': case "'": case '"': case '\\': case '/': out += e; break;
        default: this.fail('Invalid escape sequence');
      }
      start = this.pos;
    }
  }

  unquoted(): string {
    const s = this.s;
    const start = this.pos;
    while (this.pos < s.length && !NOT_LITERAL.has(s.charCodeAt(this.pos))) this.pos++;
    return s.slice(start, this.pos);
  }

  literal(): JsonValue {
    const c = this.s.charCodeAt(this.pos);
    if (NOT_LITERAL.has(c)) this.fail('Expected value');
    const text = this.unquoted();
    const lower = text.toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
    if (lower === 'null') return null;
    if (NUMBER_RE.test(text)) {
      const n = Number(text);
      // Gson keeps the digits (LazilyParsedNumber); a double that overflows stays as text here
      return Number.isFinite(n) ? n : text;
    }
    return text; // unquoted string
  }
}

/** Parses like ThingsBoard (Gson, lenient). Throws JsonSyntaxError. */
export function parseLenientJson(text: string, maxDepth = MAX_JSON_DEPTH): JsonValue {
  return new Parser(text, maxDepth).document();
}

/**
 * Nesting depth of an already parsed value, without recursion (for strict JSON.parse results,
 * whose parser does not bound depth while JSON.stringify recurses). Stops counting at `limit` + 1.
 */
export function jsonDepth(v: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth]);
    }
  }
  return max;
}
