import path from 'node:path';
import { parseDigest } from '@flotilla/protocol';

/**
 * The content store's layout: the only place that builds its paths.
 *
 * ```
 * <contentDir>/
 *   blobs/<algorithm>/<first 2 hex>/<hex>   every layer, config and manifest synced, exact bytes,
 *                                            shared by all repositories (deduplicated)
 *   tmp/<uuid>                               downloads in flight; renamed into blobs/ once verified
 * ```
 */
export class ContentPaths {
  constructor(readonly root: string) {}

  blob(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return path.join(this.root, 'blobs', algorithm, hex.slice(0, 2), hex);
  }

  /** `blobs/`, `blobs/<algorithm>/`, `blobs/<algorithm>/<2 hex>/`: for walking the store (gc). */
  blobsDir(algorithm?: string, prefix?: string): string {
    return path.join(
      this.root,
      'blobs',
      ...(algorithm ? [algorithm] : []),
      ...(algorithm && prefix ? [prefix] : []),
    );
  }

  get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }

  tmp(name: string): string {
    return path.join(this.root, 'tmp', name);
  }
}
