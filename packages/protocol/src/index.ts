export * from './errors.js';
export * from './digest.js';
export * from './reference.js';
export * from './media-types.js';
export * from './manifest.js';
export * from './events.js';
export * from './published-tree.js';
export * from './cosign.js';
