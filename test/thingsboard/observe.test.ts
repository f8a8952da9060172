/*
 * Observe notifications at the ThingsBoard layer, over an in-memory datagram on a manual clock:
 * bad payloads are logged and dropped without ending the subscription.
 */
import { strict as assert } from 'node:assert';
import { CoapClient } from '../../src/coap/client';
import { encodeUint } from '../../src/coap/codec';
import { CoapType, OptionNumber } from '../../src/coap/types';
import { encodeUtf8 } from '../../src/coap/utf8';
import { ThingsBoardClient } from '../../src/thingsboard/client';
import type { AttributeUpdate } from '../../src/thingsboard/payload';
import { ManualClock, flushMicrotasks } from '../../tools/sim/clock';
import { SeededRandom } from '../../tools/sim/random';
import { memoryLog } from '../helpers/wait';
import { FakeDatagram } from '../coap/fake-datagram';

describe('ThingsBoard Observe notifications', () => {
  it('a notification that is not JSON is logged and dropped; the next one still arrives', async () => {
    const clock = new ManualClock();
    const net = new FakeDatagram(clock);
    const log = memoryLog();
    const tb = new ThingsBoardClient(new CoapClient(net, { clock, random: new SeededRandom(5) }), {
      credentials: { kind: 'token', token: 't' },
      clock,
      log,
    });
    const updates: AttributeUpdate[] = [];
    const ends: (Error | undefined)[] = [];
    const sub = tb.subscribeAttributes((u) => updates.push(u), (r) => ends.push(r));
    const reg = net.last();
    let seq = 0;
    const notify = (payload: string) =>
      net.inject({
        type: seq === 0 ? CoapType.ACK : CoapType.NON,
        code: 0x45,
        messageId: seq === 0 ? reg.messageId : 1000 + seq,
        token: reg.token,
        options: [{ number: OptionNumber.OBSERVE, value: encodeUint(seq++) }],
        payload: encodeUtf8(payload),
      });
    notify('{"a":1}');
    await sub.registered;
    notify('{"a":');
    notify('{"b":2,"deleted":["a"]}');
    await flushMicrotasks();
    assert.deepEqual(updates, [
      { shared: { a: 1 }, deleted: [] },
      { shared: { b: 2 }, deleted: ['a'] },
    ]);
    assert.ok(log.lines.some((l) => /attribute subscription: notification ignored: attribute update: payload is not JSON/.test(l)), log.lines.join('\n'));
    assert.equal(sub.active, true);
    assert.deepEqual(ends, []);
  });
});
