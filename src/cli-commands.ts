import { parseArgs } from 'node:util';

import { openFoundation, openMigrated } from './app/foundation.js';
import type { Foundation } from './app/foundation.js';
import { systemClock } from './clock.js';
import { loadConfig } from './config/config.js';
import { createLogger } from './http/logger.js';
import { inventoryTable } from './audit/token-inventory.js';
import { verifyChain } from './audit/verify-chain.js';
import { accessTokenCommand, LOGIN_USAGE, loginCommand } from './cli-login.js';
import type { LoginIo } from './cli-login.js';
import { serve } from './main.js';
import { OPERATOR_USAGE, organizationsCommand, usersCommand } from './operator-commands.js';
import type { OperatorIo } from './operator-commands.js';

/**
 * `tessera` — the operator's command line. Commands that touch storage open it exactly as the
 * server does (same config, same migrations), so they work against PGlite and PostgreSQL alike.
 */
const USAGE = `usage: tessera <command>

  serve [--workers N|auto]   start the provider (default); N processes share the port
                             (auto: one per core with PostgreSQL and Redis, else 1)
  migrate                    apply database migrations and exit
  bootstrap [--json]         create the default organization, admin and management token
                             on an empty database and print them (once)
  keys rotate [--force]      stage a new signing key, or promote the staged one
  audit verify [--organization ID]
                             check the audit hash chain; names the first broken row
  tokens audit [--organization ID] [--min-score N] [--json]
                             the token inventory with risk scores, riskiest first
${OPERATOR_USAGE}${LOGIN_USAGE}`;

export type CliCommand = (args: string[]) => Promise<number>;

/** Extra commands contributed by capabilities (organizations, users, tokens, audit). */
export const commands = new Map<string, CliCommand>();

const operatorLogger = () => createLogger({ level: process.env.LOG_LEVEL ?? 'warn', destination: process.stderr as never });

/**
 * Opens what an operator's command needs, and no more: storage, keys, the token issuer and the
 * audit trail (src/app/foundation.ts), never the engine, pub/sub subscriptions or timers.
 */
async function withTessera<T>(fn: (tessera: Foundation) => Promise<T>, options: { bootstrap?: boolean } = {}): Promise<T> {
  const config = loadConfig(process.env);
  // Only `bootstrap` creates the first organization, and it prints the credentials itself.
  const tessera = await openFoundation({ config: { ...config, seed: null }, logger: operatorLogger(), clock: systemClock, bootstrap: options.bootstrap ? 'return' : 'skip' });
  try {
    return await fn(tessera);
  } finally {
    await tessera.close();
  }
}

const io: OperatorIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};
commands.set('organizations', (args) => withTessera((tessera) => organizationsCommand(tessera, args, io)));
commands.set('users', (args) => withTessera((tessera) => usersCommand(tessera, args, io)));

// A user's own commands: HTTP to the issuer only, no database, no server configuration.
const loginIo: LoginIo = { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) };
commands.set('login', (args) => loginCommand(args, process.env, loginIo));
commands.set('access-token', (args) => accessTokenCommand(args, process.env, loginIo));

commands.set('migrate', async () => {
  // The database and its migrations, nothing else.
  const { db } = await openMigrated({ config: loadConfig(process.env), logger: operatorLogger() });
  await db.close();
  process.stdout.write('migrations applied\n');
  return 0;
});

commands.set('bootstrap', async (args) => {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const result = await withTessera(async (tessera) => tessera.bootstrapped, { bootstrap: true });
  if (!result) {
    process.stderr.write('tessera: the database already has organizations; bootstrap runs only on an empty database\n');
    return 1;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`organization ${result.organization_id}\nadmin user: ${result.admin.username}\nadmin password: ${result.admin.password}\nmanagement token: ${result.management_token}\n`);
  return 0;
});

commands.set('keys', async (args) => {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { force: { type: 'boolean', default: false } } });
  if (positionals[0] !== 'rotate') {
    process.stderr.write(USAGE);
    return 2;
  }
  const steps = await withTessera(async (tessera) => {
    const result = await tessera.keyService.rotate({ force: values.force });
    await tessera.announceKeyChange();
    return result;
  });
  for (const step of steps) {
    const when = step.notBefore ? ` (may be promoted after ${step.notBefore}; run again then)` : '';
    process.stdout.write(`${step.alg}: ${step.action} ${step.kid}${when}\n`);
  }
  return 0;
});

commands.set('audit', async (args) => {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { organization: { type: 'string' } } });
  if (positionals[0] !== 'verify') {
    process.stderr.write(USAGE);
    return 2;
  }
  const reports = await withTessera(async (tessera) => {
    const organizations = values.organization !== undefined ? [values.organization] : await tessera.auditRepository.organizationsWithEvents();
    return Promise.all(organizations.map((id) => verifyChain(tessera.auditRepository, id)));
  });
  let broken = 0;
  for (const report of reports) {
    const name = report.organizationId || '(no organization)';
    if (report.broken) {
      broken += 1;
      process.stdout.write(`${name}: BROKEN at seq ${report.broken.seq}: ${report.broken.reason}\n`);
    } else {
      process.stdout.write(`${name}: ok, ${report.rows} events${report.firstSeq ? ` (seq ${report.firstSeq}-${report.lastSeq})` : ''}\n`);
    }
  }
  return broken > 0 ? 3 : 0;
});

commands.set('tokens', async (args) => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { organization: { type: 'string' }, 'min-score': { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals[0] !== 'audit') {
    process.stderr.write(USAGE);
    return 2;
  }
  const minScore = values['min-score'] === undefined ? undefined : Number(values['min-score']);
  if (minScore !== undefined && !(Number.isInteger(minScore) && minScore >= 0 && minScore <= 100)) {
    process.stderr.write('tessera: --min-score must be an integer from 0 to 100\n');
    return 2;
  }
  const items = await withTessera(async (tessera) => {
    const org = values.organization !== undefined ? await tessera.repos.organizations.findById(values.organization) : await tessera.repos.organizations.findByName('default');
    if (!org) throw new Error(values.organization !== undefined ? `no organization ${values.organization}` : 'no default organization; pass --organization ID');
    const policy = { ...tessera.config.policyDefaults, ...org.policy };
    return tessera.tokenInventory.list(org.id, policy, { minScore });
  });
  process.stdout.write(values.json ? `${JSON.stringify(items, null, 2)}\n` : inventoryTable(items));
  return 0;
});

export async function runCli(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === 'serve') {
    const { values } = parseArgs({ args: rest, options: { workers: { type: 'string' } } });
    // The flag is the environment variable's shorthand; the config validates either the same way.
    if (values.workers !== undefined) process.env.TESSERA_WORKERS = values.workers;
    await serve();
    return -1;
  }
  if (command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const run = commands.get(command);
  if (!run) {
    process.stderr.write(`tessera: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    process.stderr.write(`tessera: ${(error as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}

const code = await runCli(process.argv.slice(2));
if (code >= 0) process.exit(code);
