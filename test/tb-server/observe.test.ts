import { strict as assert } from 'node:assert';
import { Client, http, sleep, startTemp, waitFor } from './helpers';

type Tb = Awaited<ReturnType<typeof startTemp>>;

describe('tb-server Observe: shared attributes, server-side RPC, PSM', () => {
  let tb: Tb;
  let c: Client;

  before(async () => {
    tb = await startTemp();
    c = new Client(tb.coapPort);
  });
  after(async () => {
    await c.close();
    await tb.close();
  });

  it('attribute observe: snapshot of all shared attributes, then changed keys only, then deletions', async () => {
    tb.store.createDevice('obs-1', { token: 'OBS_1' });
    await http(tb, 'POST', '/api/devices/obs-1/attributes/shared', { a: 1, b: 'x' });
    tb.store.setClientAttributes(tb.store.findDevice('obs-1')!.id, { clientOnly: 1 });
    const o = await c.observe('/api/v1/OBS_1/attributes');
    try {
      const first = await o.next();
      assert.equal(first.code, '2.05');
      assert.equal(first.observe, 0, 'first notification carries Observe 0');
      assert.deepEqual(first.json, { a: 1, b: 'x' }, 'snapshot is the flat shared map (no client section)');

      await http(tb, 'POST', '/api/devices/obs-1/attributes/shared', { b: 'y', c: true });
      const n1 = await o.next();
      assert.equal(n1.code, '2.05');
      assert.deepEqual(n1.json, { b: 'y', c: true });
      assert.equal(n1.observe, 1);

      const del = await http(tb, 'DELETE', '/api/devices/obs-1/attributes/shared?keys=a,nope');
      assert.deepEqual(del.json, { deleted: ['a'] });
      const n2 = await o.next();
      assert.deepEqual(n2.json, { deleted: ['a'] });
      await o.none(200);
    } finally {
      o.close();
    }
  });

  it('attribute observe with no shared attributes starts with {}', async () => {
    tb.store.createDevice('obs-2', { token: 'OBS_2' });
    const o = await c.observe('/api/v1/OBS_2/attributes');
    try {
      assert.deepEqual((await o.next()).json, {});
    } finally {
      o.close();
    }
  });

  it('RPC observe: 2.03 registration, RPC as 2.05 notification, reply resolves the admin call', async () => {
    tb.store.createDevice('rpc-1', { token: 'RPC_1' });
    const o = await c.observe('/api/v1/RPC_1/rpc');
    try {
      const reg = await o.next();
      assert.equal(reg.code, '2.03');
      assert.equal(reg.text, '');
      assert.equal(reg.observe, 0);

      const call = http(tb, 'POST', '/api/devices/rpc-1/rpc', { method: 'setGpio', params: { pin: 4, value: 1 }, timeoutMs: 3000 });
      const n = await o.next();
      assert.equal(n.code, '2.05');
      const rpc = n.json as { id: number; method: string; params: unknown };
      assert.equal(rpc.method, 'setGpio');
      assert.deepEqual(rpc.params, { pin: 4, value: 1 });
      assert.equal(typeof rpc.id, 'number');

      const replies: unknown[] = [];
      tb.events.on('rpc-reply', (e) => replies.push(e));
      const r = await c.request({ method: 'POST', pathname: `/api/v1/RPC_1/rpc/${rpc.id}`, payload: '{"ok":true}' });
      assert.equal(r.code, '2.01');
      const res = await call;
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { id: rpc.id, response: { ok: true } });
      assert.equal(replies.length, 1);
      // stale id still 2.01
      assert.equal((await c.request({ method: 'POST', pathname: '/api/v1/RPC_1/rpc/999', payload: '{}' })).code, '2.01');
      // string params stay strings
      const call2 = http(tb, 'POST', '/api/devices/rpc-1/rpc', { method: 'echo', params: 'hi', timeoutMs: 3000 });
      const n2 = (await o.next()).json as { id: number; params: unknown };
      assert.equal(n2.params, 'hi');
      await c.request({ method: 'POST', pathname: `/api/v1/RPC_1/rpc/${n2.id}`, payload: '{"r":"hi"}' });
      assert.equal((await call2).status, 200);
    } finally {
      o.close();
    }
  });

  it('RPC without a reply times out with 504', async () => {
    tb.store.createDevice('rpc-2', { token: 'RPC_2' });
    const r = await http(tb, 'POST', '/api/devices/rpc-2/rpc', { method: 'x', timeoutMs: 300 });
    assert.equal(r.status, 504);
    assert.deepEqual(r.json, { error: 'timeout' });
    const log = await http(tb, 'GET', '/api/devices/rpc-2/rpc');
    assert.equal(log.json[0].status, 'EXPIRED');
  });

  it('pending RPCs are pushed when the RPC observation registers', async () => {
    tb.store.createDevice('rpc-3', { token: 'RPC_3' });
    const call = http(tb, 'POST', '/api/devices/rpc-3/rpc', { method: 'late', timeoutMs: 3000 });
    await sleep(100);
    const o = await c.observe('/api/v1/RPC_3/rpc');
    try {
      assert.equal((await o.next()).code, '2.03');
      const n = (await o.next()).json as { id: number; method: string };
      assert.equal(n.method, 'late');
      await c.request({ method: 'POST', pathname: `/api/v1/RPC_3/rpc/${n.id}`, payload: '{"done":1}' });
      assert.deepEqual((await call).json.response, { done: 1 });
    } finally {
      o.close();
    }
  });

  it('NON registration gets NON notifications, CON registration CON ones', async () => {
    tb.store.createDevice('type-1', { token: 'TYPE_1' });
    const types: { obs: string; type: string }[] = [];
    const on = (e: { method: string; type: string; path: string; observe?: number }): void => {
      if (e.path.includes('<type-1>/attributes')) types.push({ obs: String(e.observe), type: e.type });
    };
    tb.events.on('request', on);
    const non = await c.observe('/api/v1/TYPE_1/attributes', { confirmable: false });
    await non.next();
    await http(tb, 'POST', '/api/devices/type-1/attributes/shared', { k: 1 });
    assert.deepEqual((await non.next()).json, { k: 1 });
    non.close();
    const con = await c.observe('/api/v1/TYPE_1/attributes', { confirmable: true });
    await con.next();
    await http(tb, 'POST', '/api/devices/type-1/attributes/shared', { k: 2 });
    assert.deepEqual((await con.next()).json, { k: 2 });
    con.close();
    tb.events.off('request', on);
    const notifies = types.filter((t) => t.obs !== '0');
    assert.deepEqual(notifies.map((t) => t.type), ['NON', 'CON']);
  });

  describe('PSM', () => {
    it('queues and merges shared-attribute updates while asleep and sends them on the next uplink', async () => {
      tb.store.createDevice('psm-1', { token: 'PSM_1' });
      const p = await http(tb, 'PUT', '/api/devices/psm-1/power', { powerMode: 'PSM', psmActivityTimer: 300 });
      assert.equal(p.status, 200);
      assert.equal(p.json.power.psmActivityTimer, 300);
      const o = await c.observe('/api/v1/PSM_1/attributes');
      try {
        assert.deepEqual((await o.next()).json, {});
        // still inside the activity timer: delivered at once
        await http(tb, 'POST', '/api/devices/psm-1/attributes/shared', { early: 1 });
        assert.deepEqual((await o.next()).json, { early: 1 });
        // let the device fall asleep
        await waitFor(() => tb.service.isAsleep(tb.store.findDevice('psm-1')!), 1500, 'device asleep');
        await http(tb, 'POST', '/api/devices/psm-1/attributes/shared', { a: 1, b: 1 });
        await http(tb, 'POST', '/api/devices/psm-1/attributes/shared', { a: 2 });
        await http(tb, 'DELETE', '/api/devices/psm-1/attributes/shared?keys=early');
        await o.none(400);
        // uplink wakes the device: one merged notification
        assert.equal((await c.request({ method: 'POST', pathname: '/api/v1/PSM_1/telemetry', payload: '{"t":1}' })).code, '2.01');
        const merged = await o.next();
        assert.deepEqual(merged.json, { a: 2, b: 1, deleted: ['early'] });
        await o.none(150);
      } finally {
        o.close();
      }
    });

    it('RPCs to a sleeping device stay pending and are pushed on wake-up', async () => {
      tb.store.createDevice('psm-2', { token: 'PSM_2' });
      await http(tb, 'PUT', '/api/devices/psm-2/power', { powerMode: 'PSM', psmActivityTimer: 250 });
      const o = await c.observe('/api/v1/PSM_2/rpc');
      try {
        assert.equal((await o.next()).code, '2.03');
        await waitFor(() => tb.service.isAsleep(tb.store.findDevice('psm-2')!), 1500, 'device asleep');
        const call = http(tb, 'POST', '/api/devices/psm-2/rpc', { method: 'wake', timeoutMs: 4000, persistent: true });
        await o.none(400);
        await c.request({ method: 'POST', pathname: '/api/v1/PSM_2/attributes', payload: '{"up":1}' });
        const n = (await o.next()).json as { id: number; method: string };
        assert.equal(n.method, 'wake');
        await c.request({ method: 'POST', pathname: `/api/v1/PSM_2/rpc/${n.id}`, payload: '{"woke":true}' });
        assert.deepEqual((await call).json.response, { woke: true });
      } finally {
        o.close();
      }
    });

    it('an RPC observe registration that wakes the device delivers a pending RPC exactly once', async () => {
      tb.store.createDevice('psm-3', { token: 'PSM_3' });
      await http(tb, 'PUT', '/api/devices/psm-3/power', { powerMode: 'PSM', psmActivityTimer: 200 });
      await c.request({ method: 'POST', pathname: '/api/v1/PSM_3/telemetry', payload: '{"a":1}' });
      await waitFor(() => tb.service.isAsleep(tb.store.findDevice('psm-3')!), 1500, 'device asleep');
      const call = http(tb, 'POST', '/api/devices/psm-3/rpc', { method: 'once', timeoutMs: 3000 });
      await sleep(100);
      const o = await c.observe('/api/v1/PSM_3/rpc');
      try {
        assert.equal((await o.next()).code, '2.03');
        const n = (await o.next()).json as { id: number; method: string };
        assert.equal(n.method, 'once');
        await o.none(150);
        await c.request({ method: 'POST', pathname: `/api/v1/PSM_3/rpc/${n.id}`, payload: '{}' });
        assert.equal((await call).status, 200);
      } finally {
        o.close();
      }
    });

    it('DRX devices always receive downlink', async () => {
      tb.store.createDevice('drx-1', { token: 'DRX_1' });
      await http(tb, 'PUT', '/api/devices/drx-1/power', { powerMode: 'DRX' });
      const o = await c.observe('/api/v1/DRX_1/attributes');
      try {
        await o.next();
        await sleep(50);
        await http(tb, 'POST', '/api/devices/drx-1/attributes/shared', { d: 1 });
        assert.deepEqual((await o.next()).json, { d: 1 });
      } finally {
        o.close();
      }
    });

    it('E_DRX allows one downlink per uplink outside the paging window', async () => {
      tb.store.createDevice('edrx-1', { token: 'EDRX_1' });
      await http(tb, 'PUT', '/api/devices/edrx-1/power', { powerMode: 'E_DRX', pagingTransmissionWindow: 200 });
      const o = await c.observe('/api/v1/EDRX_1/attributes');
      try {
        await o.next();
        await waitFor(() => tb.service.isAsleep(tb.store.findDevice('edrx-1')!), 1500, 'device outside paging window');
        await http(tb, 'POST', '/api/devices/edrx-1/attributes/shared', { first: 1 });
        assert.deepEqual((await o.next()).json, { first: 1 }, 'one buffered downlink is allowed');
        await http(tb, 'POST', '/api/devices/edrx-1/attributes/shared', { second: 2 });
        await o.none(300);
        await c.request({ method: 'POST', pathname: '/api/v1/EDRX_1/telemetry', payload: '{"x":1}' });
        assert.deepEqual((await o.next()).json, { second: 2 });
      } finally {
        o.close();
      }
    });
  });
});
