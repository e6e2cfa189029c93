import { describe, expect, it } from 'vitest';
import { loadContentConfig } from '../src/config.js';

describe('content settings (kit helpers)', () => {
  it('applies the documented defaults', () => {
    expect(loadContentConfig({})).toMatchObject({
      port: 5003,
      host: '127.0.0.1',
      readTokens: [],
      channels: ['candidate', 'testing', 'stable'],
      retainPublications: 5,
      blobGraceSeconds: 3600,
      syncConcurrency: 16,
      workers: 2,
      taskLeaseSeconds: 30,
      webhookMaxSkewSeconds: 300,
    });
  });

  it('takes durations for the …_SECONDS settings, and bare numbers still as whole seconds', () => {
    const config = loadContentConfig({
      FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: '24h',
      FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '3',
      FLOTILLA_WEBHOOK_MAX_SKEW_SECONDS: '2m',
    });
    expect(config.blobGraceSeconds).toBe(86_400);
    expect(config.taskLeaseSeconds).toBe(3);
    expect(config.webhookMaxSkewSeconds).toBe(120);
  });

  it('reads lists with kit csv', () => {
    const config = loadContentConfig({
      FLOTILLA_CONTENT_READ_TOKENS: ' a, b ,,',
      FLOTILLA_CONTENT_CHANNELS: 'edge, testing ,stable',
    });
    expect(config.readTokens).toEqual(['a', 'b']);
    expect(config.channels).toEqual(['edge', 'testing', 'stable']);
  });

  it.each([
    ['FLOTILLA_CONTENT_TASK_LEASE_SECONDS', '1'],
    ['FLOTILLA_CONTENT_TASK_LEASE_SECONDS', '2 hours'],
    ['FLOTILLA_WEBHOOK_MAX_SKEW_SECONDS', '2h'],
    ['FLOTILLA_CONTENT_CHANNELS', 'Candidate'],
    ['FLOTILLA_CONTENT_CHANNELS', ','],
    ['FLOTILLA_CONTENT_PORT', '70000'],
    ['FLOTILLA_CONTENT_WORKERS', '2.5'],
  ])('refuses %s=%s naming the variable', (name, value) => {
    expect(() => loadContentConfig({ [name]: value })).toThrow(new RegExp(name));
  });
});
