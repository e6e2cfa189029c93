export { buildProgram } from './program.js';
export { startAllInOne, TESTING_CRANE_PORT } from './commands/start.js';
export { renderProgress } from './progress.js';
export { resolveEndpoint } from './endpoints.js';
export { CLI_ENVIRONMENT } from './endpoints.js';
