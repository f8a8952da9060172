// Helpers for the MQTT tests against the local endpoint: a temp server with the MQTT listener on
// port 0, real peers from apt (mosquitto_pub/sub, python3 paho), and a raw mqtt-packet client.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as mqttPacket from 'mqtt-packet';
import { startTbServer } from '../../tools/tb-server/server';
import type { TbServer, TbServerOptions } from '../../tools/tb-server/server';
import type { MqttListenerOptions } from '../../tools/tb-server/mqtt-server';
import { waitFor } from '../helpers/wait';

export async function startMqttTb(mqtt: MqttListenerOptions = {}, opts: TbServerOptions = {}): Promise<TbServer & { lines: string[]; port: number }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-mqtt-test-'));
  const lines: string[] = [];
  const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir, log: (l) => lines.push(l), mqtt: { port: 0, ...mqtt }, ...opts });
  return Object.assign(tb, { lines, port: tb.mqtt!.port! });
}

export interface RunResult { code: number | null; stdout: string; stderr: string }

/** Runs a command to completion (async: the endpoint lives in this process), bounded by timeoutMs. */
export function run(cmd: string, args: string[], timeoutMs = 15000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (e, stdout, stderr) => {
      const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? ((e as { code: number }).code) : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** A long-running peer (mosquitto_sub, python) whose output is collected. */
export function startPeer(cmd: string, args: string[]): { proc: ChildProcess; out: () => string; done: Promise<number | null> } {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  return { proc, out: () => out, done };
}

/** A raw MQTT peer on mqtt-packet, to see exactly what the endpoint answers. */
export class RawClient {
  readonly socket: net.Socket;
  readonly packets: mqttPacket.Packet[] = [];
  closed = false;
  #parser = mqttPacket.parser({ protocolVersion: 4 });
  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.#parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    this.socket.on('data', (d) => this.#parser.parse(d));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => (this.closed = true));
  }
  send(p: mqttPacket.Packet): void {
    this.socket.write(mqttPacket.generate(p));
  }
  raw(b: Buffer): void {
    this.socket.write(b);
  }
  async connect(username?: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 60, ...(username !== undefined ? { username } : {}), ...extra });
    return this.next('connack');
  }
  async next<T extends mqttPacket.Packet['cmd']>(cmd: T, n = 1): Promise<Extract<mqttPacket.Packet, { cmd: T }>> {
    const p = await waitFor(`${cmd} #${n}`, () => this.packets.filter((x) => x.cmd === cmd)[n - 1]);
    return p as Extract<mqttPacket.Packet, { cmd: T }>;
  }
  of<T extends mqttPacket.Packet['cmd']>(cmd: T): Extract<mqttPacket.Packet, { cmd: T }>[] {
    return this.packets.filter((x) => x.cmd === cmd) as Extract<mqttPacket.Packet, { cmd: T }>[];
  }
  async waitClosed(): Promise<void> {
    await waitFor('connection closed by the server', () => this.closed);
  }
  end(): void {
    this.socket.destroy();
  }
}
