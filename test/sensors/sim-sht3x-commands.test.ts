// The simulated SHT3x keeps a command log for tests; a long simulation must not grow it forever.
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { Environment, SimSht3x } from '../../tools/sim/i2c';
import { COMMAND_LOG_LIMIT } from '../../tools/sim/i2c/sht3x';

describe('simulated SHT3x command log', () => {
  it('keeps only the last COMMAND_LOG_LIMIT commands, in order', () => {
    const part = new SimSht3x(new Environment(new ManualClock()));
    const cmds = [0x2400, 0x240b, 0x2416, 0xf32d];
    const n = COMMAND_LOG_LIMIT * 100;
    for (let i = 0; i < n; i++) {
      const c = cmds[i % cmds.length];
      part.write(Uint8Array.of(c >> 8, c & 0xff));
    }
    assert.equal(part.commands.length, COMMAND_LOG_LIMIT);
    assert.equal(part.commands.at(-1), cmds[(n - 1) % cmds.length]);
    assert.equal(part.commands[0], cmds[(n - COMMAND_LOG_LIMIT) % cmds.length]);
  });
});
