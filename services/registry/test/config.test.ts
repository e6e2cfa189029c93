import { describe, expect, it } from 'vitest';
import { loadRegistryConfig } from '../src/config.js';

describe('loadRegistryConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadRegistryConfig({});
    expect(config).toMatchObject({
      port: 5000,
      host: '127.0.0.1',
      dataDir: './var',
      storageDir: 'var/registry',
      deleteEnabled: true,
      uploadTtlMs: 24 * 3_600_000,
      minFreeBytes: 64 * 1024 * 1024,
      gcGraceMs: 2 * 3_600_000,
      anonymousPull: true,
    });
    expect(config.adminPassword).toBeUndefined();
  });

  it('reads every variable', () => {
    const config = loadRegistryConfig({
      FLOTILLA_REGISTRY_PORT: '5050',
      FLOTILLA_REGISTRY_HOST: '::1',
      FLOTILLA_DATA_DIR: '/srv/flotilla',
      FLOTILLA_REGISTRY_STORAGE_DIR: '/mnt/registry',
      FLOTILLA_REGISTRY_DELETE_ENABLED: 'false',
      FLOTILLA_REGISTRY_UPLOAD_TTL: '2h',
      FLOTILLA_REGISTRY_MIN_FREE_BYTES: '1GiB',
      FLOTILLA_REGISTRY_GC_GRACE: '30m',
      FLOTILLA_ADMIN_PASSWORD: 'pw',
      FLOTILLA_REGISTRY_HTPASSWD: '/etc/htpasswd',
      FLOTILLA_REGISTRY_ACCESS_FILE: '/etc/access.json',
      FLOTILLA_REGISTRY_ANONYMOUS_PULL: 'no',
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
    });
    expect(config).toMatchObject({
      port: 5050,
      host: '::1',
      storageDir: '/mnt/registry',
      deleteEnabled: false,
      uploadTtlMs: 7_200_000,
      minFreeBytes: 1024 ** 3,
      gcGraceMs: 1_800_000,
      adminPassword: 'pw',
      htpasswdFile: '/etc/htpasswd',
      accessFile: '/etc/access.json',
      anonymousPull: false,
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
    });
  });

  it('names the variable when a value is wrong', () => {
    expect(() => loadRegistryConfig({ FLOTILLA_REGISTRY_PORT: 'http' })).toThrow(
      /FLOTILLA_REGISTRY_PORT/,
    );
    expect(() => loadRegistryConfig({ FLOTILLA_REGISTRY_UPLOAD_TTL: 'forever' })).toThrow(
      /FLOTILLA_REGISTRY_UPLOAD_TTL/,
    );
    expect(() => loadRegistryConfig({ FLOTILLA_REGISTRY_ANONYMOUS_PULL: 'maybe' })).toThrow(
      /FLOTILLA_REGISTRY_ANONYMOUS_PULL/,
    );
    expect(() => loadRegistryConfig({ FLOTILLA_REGISTRY_MIN_FREE_BYTES: 'plenty' })).toThrow(
      /FLOTILLA_REGISTRY_MIN_FREE_BYTES/,
    );
    expect(() => loadRegistryConfig({ FLOTILLA_REGISTRY_GC_GRACE: 'a while' })).toThrow(
      /FLOTILLA_REGISTRY_GC_GRACE/,
    );
  });
});
