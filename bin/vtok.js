#!/usr/bin/env node
'use strict';
// The installed CLI runs the compiled JavaScript (npm's `prepare` builds it).
require('../dist/src/cli/main.js').main(process.argv.slice(2));
