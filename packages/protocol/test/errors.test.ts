import { describe, expect, it } from 'vitest';
import {
  OCI_ERROR_CATALOG,
  OCI_ERROR_CODES,
  OciError,
  isOciError,
  isOciErrorCode,
  ociErrorBody,
} from '../src/index.js';

describe('OCI error catalog', () => {
  it('holds the 14 codes of the distribution spec with their statuses', () => {
    expect(
      Object.fromEntries(OCI_ERROR_CODES.map((c) => [c, OCI_ERROR_CATALOG[c].status])),
    ).toEqual({
      BLOB_UNKNOWN: 404,
      BLOB_UPLOAD_INVALID: 400,
      BLOB_UPLOAD_UNKNOWN: 404,
      DIGEST_INVALID: 400,
      MANIFEST_BLOB_UNKNOWN: 400,
      MANIFEST_INVALID: 400,
      MANIFEST_UNKNOWN: 404,
      NAME_INVALID: 400,
      NAME_UNKNOWN: 404,
      SIZE_INVALID: 400,
      UNAUTHORIZED: 401,
      DENIED: 403,
      UNSUPPORTED: 405,
      TOOMANYREQUESTS: 429,
    });
    expect(Object.keys(OCI_ERROR_CATALOG)).toHaveLength(14);
    for (const code of OCI_ERROR_CODES)
      expect(OCI_ERROR_CATALOG[code].message.length).toBeGreaterThan(0);
    expect(OCI_ERROR_CATALOG.BLOB_UNKNOWN.message).toBe('blob unknown to registry');
  });

  it('recognises codes', () => {
    expect(isOciErrorCode('NAME_UNKNOWN')).toBe(true);
    expect(isOciErrorCode('TAG_INVALID')).toBe(false);
    expect(isOciErrorCode('toString')).toBe(false);
    expect(isOciErrorCode(3)).toBe(false);
  });
});

describe('OciError', () => {
  it('defaults message and status from the catalog', () => {
    const err = new OciError('MANIFEST_UNKNOWN');
    expect(err).toBeInstanceOf(Error);
    expect(isOciError(err)).toBe(true);
    expect(err.code).toBe('MANIFEST_UNKNOWN');
    expect(err.status).toBe(404);
    expect(err.message).toBe('manifest unknown to registry');
    expect(err.detail).toBeUndefined();
    expect(err.headers).toBeUndefined();
    expect(err.name).toBe('OciError');
  });

  it('takes a message, detail, status and headers per instance', () => {
    const err = new OciError('UNAUTHORIZED', 'log in first', {
      detail: { scope: 'repository:a:push' },
      status: 401,
      headers: { 'WWW-Authenticate': 'Basic realm="flotilla"' },
    });
    expect(err.message).toBe('log in first');
    expect(err.detail).toEqual({ scope: 'repository:a:push' });
    expect(err.headers).toEqual({ 'WWW-Authenticate': 'Basic realm="flotilla"' });
    expect(new OciError('UNSUPPORTED', undefined, { status: 415 }).status).toBe(415);
  });

  it('serialises one or several errors as the OCI error body', () => {
    expect(ociErrorBody(new OciError('BLOB_UNKNOWN'))).toEqual({
      errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }],
    });
    const body = ociErrorBody([
      new OciError('NAME_INVALID', 'bad', { detail: { name: 'A' } }),
      new OciError('DENIED'),
    ]);
    expect(body.errors).toEqual([
      { code: 'NAME_INVALID', message: 'bad', detail: { name: 'A' } },
      { code: 'DENIED', message: 'requested access to the resource is denied' },
    ]);
    expect(JSON.parse(JSON.stringify(body))).toEqual(body);
    expect('detail' in body.errors[1]!).toBe(false);
  });
});
