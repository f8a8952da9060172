/* Board wiring data and the Moddable sub-manifest: well-formed and consistent with the drivers. */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const read = (path: string) => JSON.parse(readFileSync(join(root, path), 'utf8'));

describe('hardware/boards', () => {
  it('esp32-devkitc: I2C SDA 21 / SCL 22 at 100 kHz, SHT3x 0x44, BME280 0x76, battery on GPIO35 / 2.0', () => {
    const board = read('hardware/boards/esp32-devkitc.json');
    const i2c = board.i2c[0];
    assert.equal(i2c.data, 21);
    assert.equal(i2c.clock, 22);
    assert.equal(i2c.hz, 100000);
    assert.deepEqual(i2c.devices.map((d: { driver: string; address: number }) => [d.driver, d.address]), [['sensors/sht3x', 0x44], ['sensors/bme280', 0x76]]);
    assert.equal(board.analog[0].pin, 35);
    assert.equal(board.analog[0].divider, 2.0);
  });

  it('nrf52840-dk-sim7080g: modem UART at 115200 baud with distinct pins', () => {
    const board = read('hardware/boards/nrf52840-dk-sim7080g.json');
    const uart = board.modem.uart;
    assert.equal(uart.baud, 115200);
    assert.notEqual(uart.transmit, uart.receive);
    const used = [board.i2c[0].data, board.i2c[0].clock, uart.transmit, uart.receive, board.modem.powerKey.pin];
    assert.equal(new Set(used).size, used.length, 'no pin used twice');
  });

  it('every board device address matches its hex spelling', () => {
    for (const file of ['esp32-devkitc.json', 'nrf52840-dk-sim7080g.json']) {
      for (const d of read(`hardware/boards/${file}`).i2c[0].devices) assert.equal(d.address, parseInt(d.addressHex, 16));
    }
  });
});

describe('src/sensors/manifest.json', () => {
  it('lists every sensor module, preloads them, and includes embedded:io', () => {
    const manifest = read('src/sensors/manifest.json');
    assert.ok(manifest.include.includes('$(MODDABLE)/modules/io/manifest.json'));
    for (const [specifier, path] of Object.entries<string>(manifest.modules)) {
      assert.ok(existsSync(join(root, 'src/sensors', `${path}.ts`)), `${specifier} -> ${path}.ts`);
      assert.ok(manifest.preload.includes(specifier));
    }
    assert.deepEqual(Object.keys(manifest.modules).sort(), ['sensors/battery', 'sensors/bme280', 'sensors/sht3x']);
  });
});
