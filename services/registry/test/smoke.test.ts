import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuth, sha256, startTestRegistry, type TestRegistry } from './harness.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

describe('smoke', () => {
  it('pushes and pulls', async () => {
    const blob = Buffer.from('hello world');
    const d = sha256(blob);
    let res = await fetch(`${reg.url}/v2/a/b/blobs/uploads/?digest=${d}`, { method: 'POST', body: blob, headers: { authorization: adminAuth } });
    expect(res.status).toBe(201);
    const config = Buffer.from('{}');
    const cd = sha256(config);
    res = await fetch(`${reg.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: { authorization: adminAuth } });
    expect(res.status).toBe(202);
    const loc = res.headers.get('location');
    res = await fetch(`${reg.url}${loc}`, { method: 'PATCH', body: config, headers: { authorization: adminAuth, 'content-range': `0-${config.length - 1}` } });
    expect(res.status).toBe(202);
    res = await fetch(`${reg.url}${loc}?digest=${cd}`, { method: 'PUT', headers: { authorization: adminAuth } });
    expect(res.status).toBe(201);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d, size: blob.length }] });
    res = await fetch(`${reg.url}/v2/a/b/manifests/latest`, { method: 'PUT', body: manifest, headers: { authorization: adminAuth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.status).toBe(201);
    res = await fetch(`${reg.url}/v2/a/b/manifests/latest`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(manifest);
    res = await fetch(`${reg.url}/v2/a/b/blobs/${d}`);
    expect(await res.text()).toBe('hello world');
    await reg.service.flushEvents();
    expect(reg.events.map((e) => e.type)).toContain('registry.manifest.pushed');
  });
});
