import { configDefaults, defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources through the "source" export
// condition, so tests never run against a stale dist/.
//
// Two projects: `unit` is every workspace's own tests that need neither RabbitMQ nor the real
// container clients (`npm run test:unit`); `system` is the rest: cross-service, end-to-end,
// real-client and broker tests. `npm test` runs both.
const NEEDS_THE_MACHINE = [
  '**/amqp.test.ts',
  '**/outbox-replicas.test.ts',
  '**/real-clients.test.ts',
];

export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...NEEDS_THE_MACHINE],
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: [
            'test/**/*.test.ts',
            ...NEEDS_THE_MACHINE.map((glob) =>
              glob.replace('**/', '{packages,services}/*/test/**/'),
            ),
          ],
        },
      },
    ],
  },
});
