/*
 * nRF9160 / nRF91x1 running Nordic's Serial LTE Modem application (nRF Connect SDK
 * applications/serial_lte_modem, doc/SOCKET_AT_commands.rst), over its UART:
 *
 *   AT#XSOCKET=1,2,0                      -> #XSOCKET: <handle>,2,17     UDP client socket
 *   AT#XAPOLL=1,1                         -> async poll, POLLIN: URC #XAPOLL: <handle>,1 when data waits
 *   AT#XSENDTO="<ip>",<port>,0,"<hex>"    -> #XSENDTO: <size>            datatype 0 = hex string (binary-safe
 *                                                                           on a line channel)
 *   AT#XRECVFROM=0,64                     -> #XRECVFROM: <size>,"<ip>",<port> CRLF <size raw bytes>
 *                                            (64 = MSG_DONTWAIT; a read re-arms the POLLIN URC)
 *   AT#XSOCKET=0                          -> close
 *   AT#XSOCKETOPT=1,61,<n>                -> SO_RAI (nrf_socket.h NRF_SO_RAI): 1 NO_DATA, 2 LAST,
 *                                            3 ONE_RESP, 4 ONGOING, 5 WAIT_MORE
 *   AT%XPTW=<AcT>,"<ptw>"                 -> paging time window (nRF91 AT Commands, %XPTW)
 *   AT%RAI=1                              -> enable release assistance (nRF91x1 modem firmware 2.x)
 *
 * The application prints "Ready" when it starts: that is how a restart is seen.
 * Device code: no Node APIs.
 */
import type { AtChannel } from './at';
import { atParams, toHex } from './at';
import type { AtModemOptions, EdrxRequest } from './modem';
import { AtModem, ModemDatagram } from './modem';
import { encodeEdrx, encodePtw } from './timers';

/** Lines the SLM prints when it (re)starts. */
export const SLM_BOOT_LINES: readonly string[] = Object.freeze(['Ready']);

/** nrf_socket.h NRF_SO_RAI and its values. */
export const SO_RAI = 61;
export const RAI = Object.freeze({ noData: 1, last: 2, oneResponse: 3, ongoing: 4, waitMore: 5 });

/** Largest datagram: SLM's hex AT#XSENDTO carries up to 1024 bytes of text, 512 as hex. */
export const SLM_MTU = 512;

export interface Nrf91SlmOptions extends AtModemOptions {
  /** Enable release assistance (AT%RAI=1, SO_RAI on the socket); default true. */
  rai?: boolean;
}

export class Nrf91Slm extends AtModem {
  readonly model = 'nRF91 Serial LTE Modem';
  #rai: boolean;
  /** handle -> datagram. */
  #sockets = new Map<number, ModemDatagram>();
  #reading = new Set<number>();
  #again = new Set<number>();

  constructor(options: Nrf91SlmOptions) {
    super(options);
    this.#rai = options.rai ?? true;
    this.at.onUrc('#XAPOLL:', (line) => {
      const [h, revents] = atParams(line).map(Number);
      if (h !== undefined && revents !== undefined && revents & 1) this.#read(h);
    });
  }

  protected setupCommands(): readonly string[] {
    return this.#rai ? ['AT+CMEE=1', 'AT%RAI=1'] : ['AT+CMEE=1'];
  }

  protected async applyEdrx(request: EdrxRequest | null): Promise<void> {
    if (!request) {
      await this.at.command('AT+CEDRXS=0');
      return;
    }
    const act = request.act === 'nb-iot' ? 5 : 4;
    await this.at.command(`AT+CEDRXS=2,${act},"${encodeEdrx(request.cycleS, request.act)}"`);
    if (request.ptwS !== undefined) await this.at.command(`AT%XPTW=${act},"${encodePtw(request.ptwS, request.act)}"`);
  }

  openDatagram(host: string, port: number): ModemDatagram {
    const at: AtChannel = this.at;
    const d: ModemDatagram = new ModemDatagram(
      {
        open: async () => {
          await this.linkUp();
          const r = await at.command('AT#XSOCKET=1,2,0', { prefix: '#XSOCKET:' });
          const handle = Number(atParams(r.lines[0] ?? '')[0]);
          if (!(handle >= 0)) throw new Error(`AT#XSOCKET: no socket (${r.lines[0] ?? 'no answer'})`);
          this.#sockets.set(handle, d);
          await at.command('AT#XAPOLL=1,1');
          return handle;
        },
        send: async (_h, ip, p, data) => {
          await this.linkUp();
          await at.command(`AT#XSENDTO="${ip}",${p},0,"${toHex(data)}"`, { prefix: '#XSENDTO:', timeoutMs: 30000 });
        },
        close: async (h) => {
          this.#sockets.delete(h);
          await at.command('AT#XSOCKET=0');
        },
      },
      host,
      port,
      SLM_MTU,
    );
    this.datagrams.push(d);
    return d;
  }

  override async releaseAssistance(): Promise<boolean> {
    if (!this.#rai || this.#sockets.size === 0) return false;
    await this.at.command(`AT#XSOCKETOPT=1,${SO_RAI},${RAI.noData}`);
    return true;
  }

  /**
   * One datagram per POLLIN URC (the read re-arms it when more is waiting). A URC that arrives
   * while a read is on the line is remembered and read after it: the SLM does not repeat it.
   */
  #read(handle: number): void {
    const d = this.#sockets.get(handle);
    if (!d) return;
    if (this.#reading.has(handle)) {
      this.#again.add(handle);
      return;
    }
    this.#reading.add(handle);
    const done = () => {
      this.#reading.delete(handle);
      if (this.#again.delete(handle)) this.#read(handle);
    };
    this.at
      .command('AT#XRECVFROM=0,64', { prefix: '#XRECVFROM:', binaryLength: (line) => Number(atParams(line)[0]) || 0 })
      .then((r) => {
        if (r.data) d.deliver(r.data);
        done();
      })
      .catch((e: Error) => {
        this.log.debug(`AT#XRECVFROM: ${e.message}`);
        done();
      });
  }
}
