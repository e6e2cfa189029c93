#!/usr/bin/env node
// First, before anything can tick: see packages/kit/src/tick-shape.ts.
import '@flotilla/kit/tick-shape';
import { buildProgram } from './program.js';
import { fail } from './output.js';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(err));
