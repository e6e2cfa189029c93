// The client address after trusted proxies is shared with the registry's access log: the kit owns it.
export { createClientIpResolver, rateLimitKey, type ClientIpResolver } from '@flotilla/kit';
