import type { IncomingMessage, ServerResponse } from 'node:http';

/** What a resource handler gets: the request, whether it is a HEAD, and the raw query. */
export interface V2Context {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly head: boolean;
  /** The query string without `?` ('' when none). */
  readonly query: string;
}
