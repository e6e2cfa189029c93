/**
 * Where crane reads the published tree from: a directory (`FLOTILLA_PUBLISH_DIR`) or an HTTP
 * base URL (the master copy, `FLOTILLA_CRANE_SOURCE_URL`). Paths are the tree-relative ones
 * `PublishedPaths` builds.
 */
export interface TreeSource {
  /** For logs: the directory or URL. */
  readonly location: string;
  /** The file's text, or null when it does not exist. Throws on any other failure. */
  readText(relativePath: string): Promise<string | null>;
  /**
   * Every repository name with a metadata file in `repositoriesDir` (a view's folder, e.g.
   * `channels/stable/repositories`), when the source can list them (a directory); null when it
   * cannot (HTTP), and the loader then learns names from the publication records.
   */
  listRepositories(repositoriesDir: string): Promise<string[] | null>;
}
