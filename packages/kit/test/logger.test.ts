import { describe, expect, it } from 'vitest';
import { ConfigError, createLogger, Readiness } from '../src/index.js';
import { capturingLogger } from './loopback.js';

describe('createLogger', () => {
  it('is silent under tests unless LOG_LEVEL says otherwise', () => {
    expect(createLogger({ env: { VITEST: 'true' } }).level).toBe('silent');
    expect(createLogger({ env: { NODE_ENV: 'test' } }).level).toBe('silent');
    expect(createLogger({ env: { VITEST: 'true', LOG_LEVEL: 'debug' } }).level).toBe('debug');
    expect(createLogger({ env: {} }).level).toBe('info');
    expect(createLogger({ env: { LOG_LEVEL: 'WARN' } }).level).toBe('warn');
    expect(createLogger({ env: { LOG_LEVEL: 'debug' }, level: 'error' }).level).toBe('error');
  });

  it('refuses an unknown level naming LOG_LEVEL', () => {
    expect(() => createLogger({ env: { LOG_LEVEL: 'chatty' } })).toThrow(ConfigError);
    expect(() => createLogger({ env: { LOG_LEVEL: 'chatty' } })).toThrow(
      /LOG_LEVEL must be one of/,
    );
  });

  it('writes JSON lines with the name and child bindings', () => {
    const { logger, lines } = capturingLogger('info');
    logger.child({ component: 'sync' }).info({ repository: 'fedora/httpd' }, 'sync started');
    logger.debug('hidden');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      component: 'sync',
      repository: 'fedora/httpd',
      msg: 'sync started',
    });
  });
});

describe('redaction', () => {
  it('hides secrets at the top level and one object down', () => {
    const { logger, lines } = capturingLogger('info');
    logger.info(
      {
        password: 'p1',
        config: { FLOTILLA_API_TOKEN: 't1', port: 5000 },
        headers: { authorization: 'Basic x' },
      },
      'started',
    );
    const text = JSON.stringify(lines[0]);
    expect(text).not.toMatch(/p1|t1|Basic x/);
    expect(lines[0]).toMatchObject({ password: '[redacted]', config: { port: 5000 } });
  });
});

describe('Readiness', () => {
  it('fails a check that throws, returns false or outlives its timeout', async () => {
    const readiness = new Readiness(
      [
        { name: 'ok', check: async () => 'fine' },
        { name: 'throws', check: () => Promise.reject(new Error('connection refused')) },
        { name: 'false', check: () => false },
        { name: 'hangs', check: () => new Promise(() => undefined), timeoutMs: 30 },
      ],
      { timeoutMs: 5000 },
    );
    const report = await readiness.run();
    expect(report.status).toBe('fail');
    expect(report.checks.ok?.status).toBe('ok');
    expect(report.checks.throws).toMatchObject({ status: 'fail', error: 'connection refused' });
    expect(report.checks.false).toMatchObject({
      status: 'fail',
      error: 'check reported not ready',
    });
    expect(report.checks.hangs).toMatchObject({ status: 'fail', error: 'timed out after 30 ms' });
  });

  it('reports ok with no checks, and draining once told', async () => {
    const readiness = new Readiness({});
    expect(await readiness.run()).toEqual({ status: 'ok', checks: {} });
    readiness.setDraining();
    expect((await readiness.run()).status).toBe('draining');
  });
});
