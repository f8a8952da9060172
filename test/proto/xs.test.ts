/*
 * The Protobuf device code on XS, the engine it ships on (xsnap-worker, see docs/xs.md): the
 * fixture test/proto/fixtures/xs-proto.ts runs on XS and on Node and the results must be equal,
 * byte for byte (random messages of every field type, 64-bit values as bigint, floats with and
 * without a FloatScratch, malformed input, the payload codec).
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import * as fixture from './fixtures/xs-proto';

describe('proto: generated code and codec on XS (xsnap-worker)', function () {
  this.timeout(90000);

  it('encodes and decodes exactly as on Node', async () => {
    assertWorker();
    const { code } = await bundle(path.join(__dirname, 'fixtures/xs-proto.ts'));
    const run = await runOnXs<Outcome<ReturnType<typeof fixture.scenario>>>(code, { timeoutMs: 60000 });
    const out = run.value;
    if (!out.ok) assert.fail(`threw on XS: ${out.error?.name}: ${out.error?.message}\n${out.error?.stack ?? ''}\n${run.output}`);
    const xs = out.value!;
    const node = JSON.parse(JSON.stringify(fixture.scenario())) as typeof xs;
    assert.equal(xs.messages.length, 50);
    xs.messages.forEach((m, i) => {
      assert.equal(m.hex, node.messages[i]!.hex, `message ${i}: XS and Node encode differently`);
      assert.equal(m.sameWithScratch, true, `message ${i}: FloatScratch path differs on XS`);
      assert.equal(m.decoded, node.messages[i]!.decoded, `message ${i}: decoded differently`);
    });
    assert.deepEqual(xs.malformed, node.malformed);
    assert.ok(xs.malformed.every((m) => m.startsWith('ProtoError ')), xs.malformed.join(', '));
    assert.deepEqual(xs, node);
    assert.equal(xs.telemetry.length, 29 * 2);
    assert.deepEqual(xs.update, { shared: { reportingInterval: 5, big: '9223372036854775807', j: { a: [1, 2] } }, deleted: ['gone'] });
    // field 1 "a,b", field 2 "reportingInterval"; no keys: an empty message
    assert.deepEqual(xs.attributeRequest, ['0a03612c62121172' + Buffer.from('eportingInterval').toString('hex'), '']);
    assert.deepEqual(xs.rpc, { id: 3, method: 'setInterval', params: { interval: 30 } });
    assert.deepEqual(xs.dflt, { id: 27, method: 'echo', params: { a: 1 } });
    assert.match(xs.error, /^PayloadError: RPC request: /);
  });
});
