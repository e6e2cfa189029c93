import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  bool,
  ConfigError,
  csv,
  durationMs,
  exitOnConfigError,
  host,
  int,
  loadConfig,
  logLevel,
  parseDurationMs,
  port,
  url,
} from '../src/index.js';

const schema = z.object({
  FLOTILLA_REGISTRY_PORT: port().default(5000),
  FLOTILLA_REGISTRY_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_REGISTRY_URL: url().default('http://127.0.0.1:5000'),
  FLOTILLA_POLL_INTERVAL: durationMs().default(30_000),
  FLOTILLA_TRUSTED_PROXIES: csv().default([]),
  FLOTILLA_DEBUG: bool().default(false),
  FLOTILLA_WORKERS: int({ min: 1, max: 64 }).default(4),
  LOG_LEVEL: logLevel().optional(),
  MONGODB_URL: url({ protocols: ['mongodb:', 'mongodb+srv:'] }).optional(),
  FLOTILLA_API_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
});

describe('loadConfig', () => {
  it('applies defaults when variables are unset or blank', () => {
    const config = loadConfig(schema, { FLOTILLA_DATA_DIR: '', FLOTILLA_REGISTRY_PORT: '  ' });
    expect(config).toEqual({
      FLOTILLA_REGISTRY_PORT: 5000,
      FLOTILLA_REGISTRY_HOST: '127.0.0.1',
      FLOTILLA_DATA_DIR: './var',
      FLOTILLA_REGISTRY_URL: 'http://127.0.0.1:5000',
      FLOTILLA_POLL_INTERVAL: 30_000,
      FLOTILLA_TRUSTED_PROXIES: [],
      FLOTILLA_DEBUG: false,
      FLOTILLA_WORKERS: 4,
    });
  });

  it('parses typed values', () => {
    const config = loadConfig(schema, {
      FLOTILLA_REGISTRY_PORT: '0',
      FLOTILLA_REGISTRY_HOST: '[::1]',
      FLOTILLA_REGISTRY_URL: 'https://registry.example.org/',
      FLOTILLA_POLL_INTERVAL: '1.5m',
      FLOTILLA_TRUSTED_PROXIES: ' 10.0.0.0/8, ,192.168.0.0/16 ',
      FLOTILLA_DEBUG: 'YES',
      FLOTILLA_WORKERS: '8',
      LOG_LEVEL: 'Debug',
      MONGODB_URL: 'mongodb://db:27017',
      UNRELATED: 'ignored',
    });
    expect(config.FLOTILLA_REGISTRY_PORT).toBe(0);
    expect(config.FLOTILLA_REGISTRY_HOST).toBe('::1');
    expect(config.FLOTILLA_REGISTRY_URL).toBe('https://registry.example.org');
    expect(config.FLOTILLA_POLL_INTERVAL).toBe(90_000);
    expect(config.FLOTILLA_TRUSTED_PROXIES).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(config.FLOTILLA_DEBUG).toBe(true);
    expect(config.FLOTILLA_WORKERS).toBe(8);
    expect(config.LOG_LEVEL).toBe('debug');
    expect(config.MONGODB_URL).toBe('mongodb://db:27017');
    expect(config).not.toHaveProperty('UNRELATED');
  });

  it('names the variable and the expected form in one line', () => {
    const attempt = () => loadConfig(schema, { FLOTILLA_REGISTRY_PORT: 'abc' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      'invalid configuration: FLOTILLA_REGISTRY_PORT must be an integer between 0 and 65535 (got "abc")',
    );
    try {
      attempt();
    } catch (err) {
      expect((err as ConfigError).variables).toEqual(['FLOTILLA_REGISTRY_PORT']);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it.each([
    ['FLOTILLA_REGISTRY_PORT', '65536', 'must be an integer between 0 and 65535'],
    ['FLOTILLA_REGISTRY_HOST', 'not a host', 'must be a host name or an IP address'],
    ['FLOTILLA_REGISTRY_URL', 'ftp://x', 'must be an absolute http or https URL'],
    ['FLOTILLA_POLL_INTERVAL', 'soon', 'must be a duration such as 500ms, 30s, 5m or 1h'],
    ['FLOTILLA_DEBUG', 'maybe', 'must be a boolean'],
    ['FLOTILLA_WORKERS', '0', 'must be an integer between 1 and 64'],
    ['LOG_LEVEL', 'loud', 'must be one of fatal, error, warn, info, debug, trace, silent'],
  ])('rejects %s=%s', (name, value, expected) => {
    expect(() => loadConfig(schema, { [name]: value })).toThrow(
      `invalid configuration: ${name} ${expected}`,
    );
  });

  it('reports every failing variable, once each', () => {
    try {
      loadConfig(schema, { FLOTILLA_REGISTRY_PORT: 'x', FLOTILLA_WORKERS: 'y' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variables).toEqual([
        'FLOTILLA_REGISTRY_PORT',
        'FLOTILLA_WORKERS',
      ]);
      expect((err as Error).message).toMatch(/FLOTILLA_REGISTRY_PORT .*; FLOTILLA_WORKERS /);
    }
  });

  it('says a required variable is required', () => {
    const required = z.object({ FLOTILLA_PUBLISH_DIR: z.string() });
    expect(() => loadConfig(required, {})).toThrow(
      'invalid configuration: FLOTILLA_PUBLISH_DIR is required',
    );
  });

  it('never echoes secrets or URL passwords', () => {
    expect(() => loadConfig(schema, { FLOTILLA_API_TOKEN: 'short-secret' })).toThrow(
      'invalid configuration: FLOTILLA_API_TOKEN must be at least 16 characters (got a hidden value)',
    );
    try {
      loadConfig(schema, { MONGODB_URL: 'http://user:hunter2@db/' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain(
        'MONGODB_URL must be an absolute mongodb or mongodb+srv URL',
      );
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('names the bad item of a list', () => {
    const lists = z.object({ FLOTILLA_HOSTS: csv(host()) });
    expect(loadConfig(lists, { FLOTILLA_HOSTS: 'a.example, ::1' }).FLOTILLA_HOSTS).toEqual([
      'a.example',
      '::1',
    ]);
    expect(() => loadConfig(lists, { FLOTILLA_HOSTS: 'a.example,b c' })).toThrow(
      'FLOTILLA_HOSTS must be a comma-separated list; item 2 ("b c") must be a host name or an IP address',
    );
  });

  it('parses durations', () => {
    expect(parseDurationMs('250')).toBe(250);
    expect(parseDurationMs('2s')).toBe(2000);
    expect(parseDurationMs('1h')).toBe(3_600_000);
    expect(parseDurationMs('1d')).toBe(86_400_000);
    expect(parseDurationMs('-1s')).toBeUndefined();
    expect(parseDurationMs('1 week')).toBeUndefined();
    expect(parseDurationMs('30', 's')).toBe(30_000);
    expect(parseDurationMs('30ms', 's')).toBe(30);
  });
});

describe('exitOnConfigError', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('prints the line to stderr and exits 78', () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => {
      throw new Error('exited');
    }) as never);
    expect(() =>
      exitOnConfigError(new ConfigError('invalid configuration: X is required', ['X'])),
    ).toThrow('exited');
    expect(written).toEqual(['invalid configuration: X is required\n']);
    expect(exit).toHaveBeenCalledWith(78);
  });

  it('rethrows anything that is not a configuration error', () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const boom = new Error('boom');
    expect(() => exitOnConfigError(boom)).toThrow(boom);
    expect(exit).not.toHaveBeenCalled();
  });
});
