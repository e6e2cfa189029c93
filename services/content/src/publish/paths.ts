import path from 'node:path';
import { PublishedPaths, publishedView } from '@flotilla/protocol';

/**
 * Absolute paths in the published tree (layout owned by protocol's PublishedPaths), plus the
 * staging directory where files are written before they are renamed into place:
 *
 * ```
 * <publish root>/
 *   blobs/sha256/<2 hex>/<64 hex>                  shared by every channel
 *   publications/<n>.json                          one sequence across channels
 *   PUBLICATION                                    newest publication of any channel
 *   channels/<channel>/repositories/<name>.json    that channel's view
 *   channels/<channel>/PUBLICATION                 newest publication of that channel
 *   keys/index.json, keys/<id>.pub                 public keys, one set for every channel
 *   .staging/<uuid>            same filesystem as the tree, so rename is atomic; mirrors exclude it
 * ```
 */
export class PublishPaths {
  constructor(readonly root: string) {}

  private abs(relative: string): string {
    return path.join(this.root, ...relative.split('/'));
  }

  blob(digest: string): string {
    return this.abs(PublishedPaths.blob(digest));
  }

  channelRepository(channel: string, name: string): string {
    return this.abs(publishedView(channel).repository(name));
  }

  channelMarker(channel: string): string {
    return this.abs(publishedView(channel).marker);
  }

  publication(n: number): string {
    return this.abs(PublishedPaths.publication(n));
  }

  get marker(): string {
    return this.abs(PublishedPaths.marker);
  }

  get keysIndex(): string {
    return this.abs(PublishedPaths.keys);
  }

  key(id: string): string {
    return this.abs(PublishedPaths.key(id));
  }

  get stagingDir(): string {
    return path.join(this.root, '.staging');
  }

  staging(name: string): string {
    return path.join(this.root, '.staging', name);
  }
}
