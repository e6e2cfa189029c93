import path from 'node:path';
import { PublishedPaths } from '@flotilla/protocol';

/**
 * Absolute paths in the published tree (layout owned by protocol's PublishedPaths), plus the
 * staging directory where files are written before they are renamed into place:
 *
 * ```
 * <publish root>/
 *   blobs/sha256/<2 hex>/<64 hex>
 *   repositories/<name>.json
 *   publications/<n>.json
 *   PUBLICATION
 *   keys/index.json, keys/<id>.pub
 *   .staging/<uuid>            same filesystem as the tree, so rename is atomic; mirrors exclude it
 * ```
 */
export class PublishPaths {
  constructor(readonly root: string) {}

  /** Any tree-relative path `PublishedPaths` builds, made absolute. */
  abs(relative: string): string {
    return path.join(this.root, ...relative.split('/'));
  }

  blob(digest: string): string {
    return this.abs(PublishedPaths.blob(digest));
  }

  repository(name: string): string {
    return this.abs(PublishedPaths.repository(name));
  }

  publication(n: number): string {
    return this.abs(PublishedPaths.publication(n));
  }

  get marker(): string {
    return this.abs(PublishedPaths.marker);
  }

  get stagingDir(): string {
    return path.join(this.root, '.staging');
  }

  staging(name: string): string {
    return path.join(this.root, '.staging', name);
  }
}
