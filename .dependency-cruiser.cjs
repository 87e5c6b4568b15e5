/**
 * The floors of the house, checked in `npm test` (dependency-cruiser). Dependencies point one way:
 * entry points and transports (http, management, interactions, console, oidc) → tokens, audit, keys →
 * domain → storage → drivers. Each rule says why it exists.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'A cycle makes two modules one: neither can be understood, tested or replaced alone.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'domain-knows-no-transport-or-engine',
      comment: 'Domain rules are decided without HTTP, Koa or the OpenID engine, so every path (fast or not) can call them.',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { path: ['^src/(http|management|interactions|oidc|tokens|audit|metrics|jobs|webhooks)/', '^src/app\\.ts$', 'node_modules/(koa|@koa|oidc-provider)/'] },
    },
    {
      name: 'storage-knows-rows',
      comment: 'Repositories read and write rows; they know domain types, never rules, transports or the engine.',
      severity: 'error',
      from: { path: '^src/storage/' },
      to: { path: ['^src/(http|management|interactions|oidc|tokens|audit|metrics|jobs|webhooks)/', '^src/domain/(?!types\\.ts$)', 'node_modules/(koa|@koa|oidc-provider)/'] },
    },
    {
      name: 'tokens-without-http',
      comment: 'The token lifecycle is reachable without HTTP: the Management API and the CLI both call it.',
      severity: 'error',
      from: { path: '^src/tokens/', pathNot: '^src/tokens/(introspection-fast-path|token-endpoints)\\.ts$' },
      to: { path: ['^src/management/', '^src/interactions/', 'node_modules/(koa|@koa)/'] },
    },
    {
      name: 'webhooks-without-http',
      comment: 'Webhooks are fed by the audit log and sent by a job: any layer may cause one, none is reached through a transport.',
      severity: 'error',
      from: { path: '^src/webhooks/' },
      to: { path: ['^src/(management|interactions|oidc|tokens)/', 'node_modules/(koa|@koa)/'] },
    },
    {
      name: 'drivers-only-in-storage',
      comment: 'SQL and Redis commands live in storage/; everyone else uses its contracts.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/storage/' },
      to: { path: 'node_modules/(pg|@electric-sql/pglite|ioredis)/' },
    },
    {
      name: 'engine-behind-oidc',
      comment: 'Only src/oidc/ (the engine, its configuration and events), src/interactions/ (the engine\'s sign-in pages) and the composition root know oidc-provider.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(oidc/|interactions/|app/|app\\.ts$)' },
      to: { path: 'node_modules/oidc-provider/' },
    },
    {
      name: 'console-through-the-api',
      comment: 'The web console is a client of the Management API: it reaches tokens, authority and data only through the API\'s HTTP interface (src/console/backend.ts), never the modules behind it, so it can hold no second copy of a rule. It seals its own sessions with the envelope (src/keys/envelope.ts) in the cache store.',
      severity: 'error',
      from: { path: '^src/console/' },
      to: { path: ['^src/(management|interactions|oidc|tokens|audit|jobs|metrics|outbound)/', '^src/keys/(?!envelope\\.ts$)', '^src/domain/(?!(console-client|types)\\.ts$)', '^src/storage/(?!(cache|database)\\.ts$)', '^src/app', 'node_modules/oidc-provider/'] },
    },
    {
      name: 'only-the-root-knows-the-console',
      comment: 'Nothing below the composition root depends on the console: it can be left out without touching the API.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(console/|app/|app\\.ts$)' },
      to: { path: '^src/console/' },
    },
    {
      name: 'no-tests-from-src',
      comment: 'Production code never reaches into the test tree.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    parser: 'tsc',
  },
};
