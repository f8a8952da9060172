/*
 * The ThingsBoard device API the firmware uses, whatever carries it: ThingsBoardClient (CoAP,
 * client.ts) and MqttThingsBoardClient (MQTT, mqtt-client.ts) both implement it, and
 * connect.ts builds the right one from the server URL. Nothing above this layer (src/device,
 * src/ota, src/power) knows which transport it talks through.
 */
import type { ThingsBoardClient } from './client';

/** One firmware chunk (CoAP: GET /fw/$TOKEN?version=&size=&chunk=; MQTT: v2/fw/request/{id}/chunk/{n}). */
export interface FirmwareChunkRequest {
  title: string;
  version: string;
  /** Chunk index, 0-based; the agent never asks past ceil(fw_size / size) - 1. */
  chunk: number;
  /** Bytes per chunk. */
  size: number;
  /** Give up on this request after this long, ms (the agent asks again). */
  timeoutMs: number;
  /** CoAP only: request as CON (default NON: one datagram each way). */
  confirmable?: boolean;
  /** CoAP only: put title= in the query too. */
  queryTitle?: boolean;
}

/** What the device app uses of a ThingsBoard client; both transports implement it. */
export type ThingsBoardDeviceApi = Pick<
  ThingsBoardClient,
  | 'codec'
  | 'stopped'
  | 'retryAfter'
  | 'halt'
  | 'resume'
  | 'sendTelemetry'
  | 'sendAttributes'
  | 'requestAttributes'
  | 'subscribeAttributes'
  | 'subscribeRpc'
  | 'replyRpc'
  | 'callRpc'
  | 'claim'
  | 'provision'
> & {
  /**
   * Why this device cannot download firmware over this transport, or undefined when it can
   * (CoAP with an X.509 certificate and no token: ThingsBoard's /fw takes only the token path,
   * issue #13097; MQTT serves any authenticated session).
   */
  readonly firmwareUnavailable: string | undefined;
  /** Largest firmware chunk this transport carries in one message, bytes. */
  readonly maxFirmwareChunk: number;
  /**
   * One chunk: its bytes (empty past the end of the package), or undefined when no answer came
   * within `timeoutMs` (the caller asks again). Throws TbError when the server refuses (4.xx /
   * v2/fw/error: NOT_FOUND, FAILURE, ...).
   */
  requestFirmwareChunk(req: FirmwareChunkRequest): Promise<Uint8Array | undefined>;
};
