/* Every command's --help names each of its options (and a default and an example); nothing starts. */
import { strict as assert } from 'node:assert';
import { TOOLS, limited, runTool } from './helpers';
import { SIM_SPEC } from '../../tools/sim/cli';
import { START_SPEC } from '../../tools/sim/start';
import { COMMANDS } from '../../tools/tb-server/cli';
import { PROVISION_SPEC } from '../../tools/provision/provision';
import { CERTS_SPEC } from '../../tools/provision/certs';
import type { CommandSpec } from '../../tools/cli/options';

function assertHelp(text: string, spec: CommandSpec, what: string): void {
  for (const o of spec.options) assert.ok(text.includes(`--${o.name}`), `${what}: --help does not name --${o.name}\n${text}`);
  assert.match(text, /\(default: /, `${what}: no default shown`);
  assert.match(text, /examples:\n  \S/, `${what}: no example`);
  assert.match(text, /exit codes: 0 /, `${what}: exit codes not documented`);
}

describe('cli: --help', function () {
  this.timeout(120000);

  it('npm start, npm run sim, certs and provision print help naming every option, exit 0, start nothing', async () => {
    const cases: [string, string[], CommandSpec][] = [
      ['start', [TOOLS.start, '--help'], START_SPEC],
      ['sim', [TOOLS.sim, '--help'], SIM_SPEC],
      ['certs', [TOOLS.certs, '--help'], CERTS_SPEC],
      ['provision', [TOOLS.provision, '--help'], PROVISION_SPEC],
    ];
    const runs = await limited(2, cases.map(([, [script, ...args]]) => () => runTool(script!, args, { timeoutMs: 30000 })));
    runs.forEach((r, i) => {
      const [name, , spec] = cases[i]!;
      assert.equal(r.code, 0, `${name} --help exit code\n${r.stderr}`);
      assertHelp(r.stdout, spec, name);
      assert.doesNotMatch(r.stdout, /local ThingsBoard endpoint:|^summary \(/m, `${name} --help started something`);
    });
  });

  it('tb-server: --help lists the commands; each command\'s --help names its options', async () => {
    const overview = await runTool(TOOLS.tbServer, ['--help'], { timeoutMs: 30000 });
    assert.equal(overview.code, 0, overview.stderr);
    for (const name of Object.keys(COMMANDS)) assert.match(overview.stdout, new RegExp(`^  ${name}\\b`, 'm'), `overview lacks ${name}`);
    const names = ['serve', 'devices'];
    const runs = await limited(2, names.map((n) => () => runTool(TOOLS.tbServer, [n, '--help'], { timeoutMs: 30000 })));
    runs.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assertHelp(r.stdout, COMMANDS[names[i]!]!.spec, `tb-server ${names[i]}`);
    });
  });
});
