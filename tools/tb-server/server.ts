// Local ThingsBoard-compatible CoAP endpoint (node-coap) with an admin HTTP API.
//
//   const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir });
//   tb.coapPort, tb.httpPort, tb.store, tb.events ('telemetry' | 'attributes' | 'rpc-reply' | 'request')
//   await tb.close();
//
// A second transport (e.g. DTLS) attaches with `tb.attachCoapSocket(socketLike, authFor)`: socketLike
// is an EventEmitter that emits 'message' (buf, {address, port}) for each decrypted datagram and has
// `send(buf, offset, length, port, address, cb?)`; authFor(rsinfo) tells which client certificate (if
// any) that peer presented. Requests then go through the same `handle(req, res, auth)` as plain UDP.

import * as coap from 'coap';
import type { EventEmitter } from 'node:events';
import * as path from 'node:path';
import * as dgram from 'node:dgram';
import { MessageLayer } from './message-layer';
import type { MessageLayerLimits, MessageLayerState, Rinfo } from './message-layer';
import type { ParsedPacket } from 'coap-packet';
import { Store } from './store';
import { TbCoapService, defaultClientRpc } from './handler';
import type { Auth, ClientRpcHandler, CoapReq, CoapRes, PowerClock } from './handler';
import { startAdminHttp } from './admin-http';
import { adminTokenPath, ensureAdminToken } from './admin-auth';
import { certSha3FromPem } from './store';
import { DtlsServer } from '../../hardware/dtls/index';
import { startMqttListener } from './mqtt-server';
import type { MqttListener, MqttListenerOptions } from './mqtt-server';

export interface TbServerOptions {
  host?: string;
  coapPort?: number;
  httpPort?: number;
  dataDir?: string;
  coapTimeoutMs?: number;
  piggybackTimeoutMs?: number;
  /** Delay for attribute requests and client-side RPC answers (exercise separate responses). */
  responseDelayMs?: number;
  conResponses?: 'thingsboard' | 'piggyback';
  clientRpc?: ClientRpcHandler;
  log?: (line: string) => void;
  /**
   * CoAPs (DTLS 1.2 over the mbedTLS addon), as ThingsBoard serves it on 5684: server certificate
   * and key; client certificates are WANTED (optional), never required. With `ca`, a client
   * certificate is requested and its leaf mapped to an X.509 device (SHA3-256 of its base64 DER);
   * like ThingsBoard, an unregistered certificate still completes the handshake and then gets 4.01.
   */
  dtls?: { port?: number; cert: string | Uint8Array; key: string | Uint8Array; ca?: string | Uint8Array };
  /** Bounds on per-peer and total message-layer state (dedup, Block1, retransmission); see message-layer.ts. */
  limits?: Partial<MessageLayerLimits>;
  /** MQTT (1883) and, with `tls`, MQTTS (8883) sharing this store and service (mqtt-server.ts). */
  mqtt?: MqttListenerOptions;
  /** Clock of the PSM / eDRX state and RPC expiry (handler.ts PowerClock); default wall time. */
  clock?: PowerClock;
  /**
   * Bearer token of the admin HTTP API. Default: the one in `<dataDir>/admin-token` (mode 0600),
   * created when missing; the CLI's admin commands read it from there.
   */
  adminToken?: string;
}

/** Socket-like transport a DTLS layer can feed (the subset of dgram.Socket node-coap uses). */
export interface CoapSocketLike extends EventEmitter {
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void;
}

export interface TbServer {
  coapPort: number;
  /** DTLS port when `dtls` was given. */
  coapsPort?: number;
  dtlsServer?: DtlsServer;
  /** The MQTT/MQTTS listener when `mqtt` was given (its port, tlsPort). */
  mqtt?: MqttListener;
  httpPort: number;
  /** Bearer token of the admin HTTP API (`Authorization: Bearer ...`). */
  adminToken: string;
  store: Store;
  events: EventEmitter;
  service: TbCoapService;
  /** The transport-independent request handler. */
  handle(req: CoapReq, res: CoapRes, auth: Auth): void;
  /** Serve CoAP over another datagram transport (DTLS). Returns a detach function. */
  attachCoapSocket(socket: CoapSocketLike, authFor?: (rsinfo: { address: string; port: number }) => Auth): () => Promise<void>;
  /** State counts, for tests and the fuzzer: the message layers' and the handler's. */
  state(): { layers: MessageLayerState[]; service: ReturnType<TbCoapService['stateCounts']> };
  close(): Promise<void>;
}

/** Bodies node-coap keeps for Block2 follow-ups (one per token and peer, 247 s each). */
const BLOCK2_CACHE_LIMIT = 1024;

/**
 * node-coap caches the whole body of every block-wise response per (token, peer) for 247 s, with no
 * bound on their number: a client using a new token per GET would grow it without limit. Keep the
 * newest BLOCK2_CACHE_LIMIT (node-coap internals: `_block2Cache._cache` is a Map, `remove` clears
 * the entry's timer).
 */
function boundBlock2Cache(s: coap.Server): void {
  const cache = (s as unknown as { _block2Cache?: { _cache?: Map<string, unknown>; add(k: string, v: unknown): void; remove(k: string): boolean } })._block2Cache;
  if (!cache?._cache || typeof cache.add !== 'function') return;
  const add = cache.add.bind(cache);
  cache.add = (k: string, v: unknown): void => {
    add(k, v);
    while (cache._cache!.size > BLOCK2_CACHE_LIMIT) cache.remove(cache._cache!.keys().next().value as string);
  };
}

/** Entries in the (peer address -> client certificate) map of X.509 DTLS sessions. */
const X509_SESSION_LIMIT = 10000;

export async function startTbServer(options: TbServerOptions = {}): Promise<TbServer> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? (() => {});
  const piggybackTimeoutMs = options.piggybackTimeoutMs ?? 500;
  const store = new Store(path.resolve(options.dataDir ?? '.tb-server'), { log });
  const service = new TbCoapService(store, {
    coapTimeoutMs: options.coapTimeoutMs ?? 10000,
    piggybackTimeoutMs,
    responseDelayMs: options.responseDelayMs ?? 0,
    conResponses: options.conResponses ?? 'thingsboard',
    clientRpc: options.clientRpc ?? defaultClientRpc,
    log,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const handle = (req: CoapReq, res: CoapRes, auth: Auth): void => service.handle(req, res, auth);

  const servers: coap.Server[] = [];
  const layers = new Map<coap.Server, MessageLayer>();
  // Responses not ended yet: at close() their piggyback timers (node-coap sends an empty ACK when a
  // response takes longer) and late end() calls must not reach the closed socket, where node-coap
  // throws from a timer ("Cannot read properties of null (reading 'send')").
  const unfinished = new Set<coap.OutgoingMessage>();
  const makeServer = (authFor: (rsinfo: { address: string; port: number }) => Auth): coap.Server => {
    const s = coap.createServer({ piggybackReplyMs: piggybackTimeoutMs, sendAcksForNonConfirmablePackets: true });
    s.on('request', (req: coap.IncomingMessage, res: coap.OutgoingMessage) => {
      // node-coap emits 'error' on the response when a CON response is never acknowledged
      // (EXCHANGE_LIFETIME after it was sent) or cannot be encoded; without a listener that
      // 'error' is thrown from a timer and ends the process.
      res.on('error', (e: Error) => log(`coap: response to ${req.rsinfo.address}:${req.rsinfo.port}: ${e.message}`));
      unfinished.add(res);
      res.once('finish', () => unfinished.delete(res));
      handle(req as unknown as CoapReq, res as unknown as CoapRes, authFor(req.rsinfo));
    });
    s.on('error', (e: Error) => log(`coap error: ${e.message}`));
    boundBlock2Cache(s);
    servers.push(s);
    return s;
  };
  /** A message layer over `socket` for server `s`: authenticates Block1 transfers before storing them. */
  const layerFor = (s: coap.Server, socket: CoapSocketLike, authFor: (rsinfo: { address: string; port: number }) => Auth): MessageLayer => {
    const ml = new MessageLayer(socket, {
      ...options.limits,
      authorize: (p: ParsedPacket, rinfo: Rinfo) => service.preauthorize(
        p.code, p.options.filter((o) => o.name === 'Uri-Path').map((o) => o.value.toString('utf8')), authFor(rinfo)),
    });
    ml.attachServer(s);
    layers.set(s, ml);
    return ml;
  };

  const udpSocket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    udpSocket.once('error', reject);
    udpSocket.bind(options.coapPort ?? 5683, host, () => { udpSocket.off('error', reject); resolve(); });
  });
  const coapPort = udpSocket.address().port;
  const udp = makeServer(() => ({ kind: 'token' }));
  udp.listen(layerFor(udp, udpSocket as unknown as CoapSocketLike, () => ({ kind: 'token' })) as unknown as EventEmitter);

  let dtlsServer: DtlsServer | undefined;
  let coapsPort: number | undefined;
  if (options.dtls) {
    const d = options.dtls;
    dtlsServer = new DtlsServer({ cert: d.cert, key: d.key, ...(d.ca ? { ca: d.ca, authMode: 'optional' as const } : {}) });
    const addr = await dtlsServer.listen(d.port ?? 5684, host);
    coapsPort = addr.port;
    const server = dtlsServer;
    server.on('handshakeError', (err: Error & { code?: string }, rinfo: { address: string; port: number }) =>
      log(`dtls: handshake with ${rinfo.address}:${rinfo.port} failed: ${err.code ?? ''} ${err.message}`));
    // ThingsBoard's TbCoapDtlsCertificateVerifier records (peer address, leaf certificate) -> device
    // when it verifies a certificate, i.e. on FULL handshakes only, and requests look that map up by
    // their current address (reference §3.5). So a resumed session (no certificate exchanged) from a
    // new address finds nothing and gets 4.01. Reproduce that, bounded like TB's cache.
    const x509ByPeer = new Map<string, string>();
    server.on('session', (info: { address: string; port: number; resumed: boolean; peerCertificate: Buffer | null }) => {
      const key = `${info.address}:${info.port}`;
      if (info.resumed) return;
      if (!info.peerCertificate) {
        x509ByPeer.delete(key);
        return;
      }
      x509ByPeer.delete(key);
      // Only a certificate registered NOW is mapped (TB stores the entry on a match only): one
      // registered later (provisioning inside this session) maps at the next full handshake.
      const sha3 = certSha3FromPem(Buffer.from(info.peerCertificate).toString('base64'));
      x509ByPeer.set(key, store.byCertSha3(sha3) ? sha3 : '');
      if (x509ByPeer.size > X509_SESSION_LIMIT) x509ByPeer.delete(x509ByPeer.keys().next().value!);
    });
    const dtlsAuth = (rinfo: { address: string; port: number }): Auth => {
      const certSha3 = x509ByPeer.get(`${rinfo.address}:${rinfo.port}`);
      if (certSha3 === '') return { kind: 'x509' }; // a certificate no device had at the handshake: token-less requests get 4.01
      return certSha3 ? { kind: 'x509', certSha3 } : { kind: 'token' };
    };
    const dtls = makeServer(dtlsAuth);
    dtls.listen(layerFor(dtls, server as unknown as CoapSocketLike, dtlsAuth) as unknown as EventEmitter);
  }

  const adminToken = options.adminToken ?? ensureAdminToken(store.dataDir);
  const http = await startAdminHttp({ host, port: options.httpPort ?? 8080, store, service, log, adminToken });
  const mqtt = options.mqtt ? await startMqttListener({ host, ...options.mqtt, store, service, log }) : undefined;

  log(`tb-server: CoAP on udp://${host}:${coapPort}${coapsPort ? `, CoAPs on udp://${host}:${coapsPort}` : ''}, admin HTTP on http://${host}:${http.port} (bearer token in ${options.adminToken ? 'the adminToken option' : adminTokenPath(store.dataDir)}), data in ${store.dataDir}`);

  let closed = false;
  return {
    coapPort,
    ...(coapsPort ? { coapsPort, dtlsServer } : {}),
    ...(mqtt ? { mqtt } : {}),
    httpPort: http.port,
    adminToken,
    store,
    events: service.events,
    service,
    handle,
    attachCoapSocket(socket, authFor = () => ({ kind: 'token' })) {
      const s = makeServer(authFor);
      s.listen(layerFor(s, socket, authFor) as unknown as EventEmitter);
      return async () => {
        await new Promise<void>((r) => s.close(() => r()));
        servers.splice(servers.indexOf(s), 1);
        layers.get(s)?.close();
        layers.delete(s);
      };
    },
    state() {
      return { layers: [...layers.values()].map((l) => l.state()), service: service.stateCounts() };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const res of unfinished) {
        const r = res as unknown as { _ackTimer?: NodeJS.Timeout | null; end: () => unknown; write: () => boolean };
        if (r._ackTimer) clearTimeout(r._ackTimer);
        r._ackTimer = null;
        r.end = () => res; // a handler finishing after close() answers nobody
        r.write = () => false;
      }
      unfinished.clear();
      service.close();
      await mqtt?.close();
      await http.close();
      for (const l of layers.values()) l.close(); // no datagram reaches a closing server
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await new Promise<void>((r) => udpSocket.close(() => r()));
      if (dtlsServer) await new Promise<void>((r) => dtlsServer!.close(() => r()));
      store.close();
    },
  };
}
