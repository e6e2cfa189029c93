#!/usr/bin/env node
// First, before anything can tick: see packages/kit/src/tick-shape.ts.
import '@flotilla/kit/tick-shape';
// Second: see packages/kit/src/heap-growth.ts.
import '@flotilla/kit/heap-growth';
import { buildProgram } from './program.js';
import { fail } from './output.js';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(err));
