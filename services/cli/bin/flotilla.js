#!/usr/bin/env node
// The installed `flotilla` command. A committed shim, so that `npm ci` links it on a fresh
// clone before the TypeScript is built; it runs the built CLI.
import '../dist/main.js';
