export {
  createContentService,
  TASKS_QUEUE,
  REGISTRY_EVENTS_QUEUE,
  type ContentService,
  type ContentServiceDeps,
} from './service.js';
export { loadContentConfig, contentConfigSchema, type ContentConfig } from './config.js';
export { main } from './main.js';
export { createApp, type ContentAppDeps } from './app.js';
export {
  ContentClient,
  ContentApiError,
  type RepositorySummary,
  type RepositoryDetail,
  type PromoteInput,
  type ChangeOutcome,
  type TaskView,
} from './client.js';
export { signBody } from './hooks/bodhi.js';
export { buildOpenApi } from './routes/openapi.js';
