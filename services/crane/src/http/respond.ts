import type { ServerResponse } from 'node:http';
import { ociErrorBody, type OciError } from '@flotilla/protocol';

export const API_VERSION_HEADER = 'Docker-Distribution-Api-Version';
export const API_VERSION = 'registry/2.0';

/** Writes an OCI error (`{"errors":[…]}`); a HEAD answer carries the status and headers only. */
export function sendOciError(
  res: ServerResponse,
  head: boolean,
  err: OciError,
  headers?: Record<string, string>,
): void {
  const body = Buffer.from(JSON.stringify(ociErrorBody(err)));
  res.writeHead(err.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(body.length),
    [API_VERSION_HEADER]: API_VERSION,
    'Cache-Control': 'no-store',
    ...err.headers,
    ...headers,
  });
  res.end(head ? undefined : body);
}

/** A 500 that says nothing about the cause (logged by the caller). */
export function sendInternalError(res: ServerResponse, head: boolean): void {
  const body = Buffer.from('{"errors":[{"code":"UNKNOWN","message":"internal error"}]}');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(500, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(body.length),
    [API_VERSION_HEADER]: API_VERSION,
  });
  res.end(head ? undefined : body);
}

export function sendJson(
  res: ServerResponse,
  head: boolean,
  value: unknown,
  headers: Record<string, string> = {},
  contentType = 'application/json; charset=utf-8',
): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(200, {
    'Content-Type': contentType,
    'Content-Length': String(body.length),
    [API_VERSION_HEADER]: API_VERSION,
    ...headers,
  });
  res.end(head ? undefined : body);
}

export function sendRedirect(
  res: ServerResponse,
  status: 302 | 307,
  location: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    Location: location,
    'Content-Length': '0',
    [API_VERSION_HEADER]: API_VERSION,
    ...headers,
  });
  res.end();
}
