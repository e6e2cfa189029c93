import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RedirectStatistics } from '../src/statistics.js';

describe('RedirectStatistics hand-over (the redirect thread → the service)', () => {
  it('takeDelta hands over everything counted since the last call, and add merges it', async () => {
    const thread = new RedirectStatistics();
    thread.record('m1', 'DE', 'country');
    thread.record('m1', 'DE', 'country');
    thread.record('m2', null, 'global');
    thread.recordNotFound();

    const registry = new Registry();
    const service = new RedirectStatistics(registry);
    service.record('m1', 'DE', 'netblock');
    service.add(thread.takeDelta());

    const summary = service.summary();
    expect(summary).toMatchObject({
      redirects: 4,
      notFound: 1,
      byMirror: { m1: 3, m2: 1 },
      byCountry: { DE: 3, '--': 1 },
      byTier: { netblock: 1, country: 2, global: 1 },
    });
    const metrics = await registry.getSingleMetricAsString('flotilla_mirrors_redirects_total');
    expect(metrics).toContain('flotilla_mirrors_redirects_total{mirror="m1",country="DE"} 3');
    expect(metrics).toContain('flotilla_mirrors_redirects_total{mirror="m2",country="--"} 1');

    // nothing new: an empty delta; new counts: only those
    expect(thread.takeDelta()).toEqual({ redirects: [], tiers: [], notFound: 0 });
    thread.record('m2', 'FR', 'continent');
    expect(thread.takeDelta()).toEqual({ redirects: [['m2', 'FR', 1]], tiers: [['continent', 1]], notFound: 0 });
  });

  it('refuses to hand over counts that Prometheus already reads', () => {
    const exported = new RedirectStatistics(new Registry());
    expect(() => exported.takeDelta()).toThrow(/Prometheus/);
  });
});
