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
import { Store } from './store';
import { TbCoapService, defaultClientRpc } from './handler';
import type { Auth, ClientRpcHandler, CoapReq, CoapRes } from './handler';
import { startAdminHttp } from './admin-http';

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
}

/** Socket-like transport a DTLS layer can feed (the subset of dgram.Socket node-coap uses). */
export interface CoapSocketLike extends EventEmitter {
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void;
}

export interface TbServer {
  coapPort: number;
  httpPort: number;
  store: Store;
  events: EventEmitter;
  service: TbCoapService;
  /** The transport-independent request handler. */
  handle(req: CoapReq, res: CoapRes, auth: Auth): void;
  /** Serve CoAP over another datagram transport (DTLS). Returns a detach function. */
  attachCoapSocket(socket: CoapSocketLike, authFor?: (rsinfo: { address: string; port: number }) => Auth): () => Promise<void>;
  close(): Promise<void>;
}

export async function startTbServer(options: TbServerOptions = {}): Promise<TbServer> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? (() => {});
  const piggybackTimeoutMs = options.piggybackTimeoutMs ?? 500;
  const store = new Store(path.resolve(options.dataDir ?? '.tb-server'));
  const service = new TbCoapService(store, {
    coapTimeoutMs: options.coapTimeoutMs ?? 10000,
    piggybackTimeoutMs,
    responseDelayMs: options.responseDelayMs ?? 0,
    conResponses: options.conResponses ?? 'thingsboard',
    clientRpc: options.clientRpc ?? defaultClientRpc,
    log,
  });
  const handle = (req: CoapReq, res: CoapRes, auth: Auth): void => service.handle(req, res, auth);

  const servers: coap.Server[] = [];
  const makeServer = (authFor: (rsinfo: { address: string; port: number }) => Auth): coap.Server => {
    const s = coap.createServer({ piggybackReplyMs: piggybackTimeoutMs, sendAcksForNonConfirmablePackets: true });
    s.on('request', (req: coap.IncomingMessage, res: coap.OutgoingMessage) => {
      handle(req as unknown as CoapReq, res as unknown as CoapRes, authFor(req.rsinfo));
    });
    s.on('error', (e: Error) => log(`coap error: ${e.message}`));
    servers.push(s);
    return s;
  };

  const udpSocket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    udpSocket.once('error', reject);
    udpSocket.bind(options.coapPort ?? 5683, host, () => { udpSocket.off('error', reject); resolve(); });
  });
  const coapPort = udpSocket.address().port;
  const udp = makeServer(() => ({ kind: 'token' }));
  udp.listen(new MessageLayer(udpSocket) as unknown as EventEmitter);

  const http = await startAdminHttp({ host, port: options.httpPort ?? 8080, store, service, log });

  log(`tb-server: CoAP on udp://${host}:${coapPort}, admin HTTP on http://${host}:${http.port}, data in ${store.dataDir}`);

  let closed = false;
  return {
    coapPort,
    httpPort: http.port,
    store,
    events: service.events,
    service,
    handle,
    attachCoapSocket(socket, authFor = () => ({ kind: 'token' })) {
      const s = makeServer(authFor);
      s.listen(new MessageLayer(socket) as unknown as EventEmitter);
      return async () => {
        await new Promise<void>((r) => s.close(() => r()));
        servers.splice(servers.indexOf(s), 1);
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      service.close();
      await http.close();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await new Promise<void>((r) => udpSocket.close(() => r()));
      store.close();
    },
  };
}
