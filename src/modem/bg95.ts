/*
 * Quectel BG95 (LTE-M / NB-IoT) over its UART, TCP/IP commands of the "BG95&BG77&BG600L Series
 * TCP/IP Application Note" in buffer access mode:
 *
 *   AT+QIACT=1                                      activate PDP context 1
 *   AT+QIOPEN=1,<id>,"UDP SERVICE","127.0.0.1",0,0,1 -> OK, then URC +QIOPEN: <id>,<err> (0 = opened)
 *   AT+QISEND=<id>,<len>,"<ip>",<port>              -> '>' prompt, <len> raw bytes, SEND OK / SEND FAIL
 *   URC +QIURC: "recv",<id>                          data waits in the module's buffer
 *   AT+QIRD=<id>,1500                               -> +QIRD: <len>,"<ip>",<port> CRLF <len raw bytes>, OK
 *                                                      (+QIRD: 0 when the buffer is empty)
 *   AT+QICLOSE=<id>
 *   AT+QPTWEDRXS=2,<AcT>,"<ptw>","<edrx>"           eDRX with paging time window
 *
 * PSM (AT+CPSMS) and registration (+CEREG=4, timers without the cause fields) come from AtModem.
 * The module prints "RDY" when it starts. Release assistance is not driven here (not verified
 * for BG95's firmware): releaseAssistance() returns false.
 * Device code: no Node APIs.
 */
import { atParams } from './at';
import type { AtModemOptions, EdrxRequest } from './modem';
import { AtModem, ModemDatagram } from './modem';
import { encodeEdrx, encodePtw } from './timers';

export const BG95_BOOT_LINES: readonly string[] = Object.freeze(['RDY']);
export const BG95_MTU = 1024;

export class Bg95 extends AtModem {
  readonly model = 'Quectel BG95';
  #sockets = new Map<number, ModemDatagram>();
  #opened = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #reading = new Set<number>();
  #nextId = 0;

  constructor(options: AtModemOptions) {
    super(options);
    this.at.onUrc('+QIURC:', (line) => {
      const p = atParams(line);
      if (p[0] === 'recv') this.#read(Number(p[1]));
      else if (p[0] === 'closed') this.#sockets.get(Number(p[1]))?.socketLost();
    });
    this.at.onUrc('+QIOPEN:', (line) => {
      const [id, err] = atParams(line).map(Number);
      const w = this.#opened.get(id!);
      if (!w) return;
      this.#opened.delete(id!);
      if (err === 0) w.resolve();
      else w.reject(new Error(`+QIOPEN: socket ${id} failed (${err})`));
    });
  }

  protected setupCommands(): readonly string[] {
    return ['ATE0', 'AT+CMEE=1'];
  }

  protected override get ceregMode(): number {
    return 4;
  }

  protected async applyEdrx(request: EdrxRequest | null): Promise<void> {
    if (!request) {
      await this.at.command('AT+CEDRXS=0');
      return;
    }
    const act = request.act === 'nb-iot' ? 5 : 4;
    const ptw = encodePtw(request.ptwS ?? (request.act === 'nb-iot' ? 2.56 : 1.28), request.act);
    await this.at.command(`AT+QPTWEDRXS=2,${act},"${ptw}","${encodeEdrx(request.cycleS, request.act)}"`);
  }

  openDatagram(host: string, port: number): ModemDatagram {
    const at = this.at;
    const d: ModemDatagram = new ModemDatagram(
      {
        open: async () => {
          await this.linkUp();
          const id = this.#nextId;
          this.#nextId = (this.#nextId + 1) % 12;
          await at.command('AT+QIACT=1', { timeoutMs: 150000 }).catch(() => undefined); // ERROR when already active
          const opened = new Promise<void>((resolve, reject) => {
            const timer = this.clock.setTimer(() => {
              this.#opened.delete(id);
              reject(new Error(`+QIOPEN: no answer for socket ${id}`));
            }, 150000);
            this.#opened.set(id, {
              resolve: () => (this.clock.clearTimer(timer), resolve()),
              reject: (e) => (this.clock.clearTimer(timer), reject(e)),
            });
          });
          await at.command(`AT+QIOPEN=1,${id},"UDP SERVICE","127.0.0.1",0,0,1`, { timeoutMs: 150000 });
          await opened;
          this.#sockets.set(id, d);
          return id;
        },
        send: async (id, ip, p, data) => {
          await this.linkUp();
          await at.command(`AT+QISEND=${id},${data.length},"${ip}",${p}`, { payload: data, finalOk: ['SEND OK'], finalError: ['SEND FAIL'], timeoutMs: 30000 });
        },
        close: async (id) => {
          this.#sockets.delete(id);
          await at.command(`AT+QICLOSE=${id}`, { timeoutMs: 10000 });
        },
      },
      host,
      port,
      BG95_MTU,
    );
    this.datagrams.push(d);
    return d;
  }

  /** Reads every datagram waiting on socket `id` (one AT+QIRD each, bounded). */
  #read(id: number): void {
    const d = this.#sockets.get(id);
    if (!d || this.#reading.has(id)) return;
    this.#reading.add(id);
    const once = (left: number): void => {
      this.at
        .command(`AT+QIRD=${id},1500`, { prefix: '+QIRD:', binaryLength: (line) => Number(atParams(line)[0]) || 0 })
        .then((r) => {
          if (r.data && r.data.length) {
            d.deliver(r.data);
            if (left > 0) return once(left - 1);
          }
          this.#reading.delete(id);
        })
        .catch((e: Error) => {
          this.#reading.delete(id);
          this.log.debug(`AT+QIRD: ${e.message}`);
        });
    };
    once(16);
  }
}
