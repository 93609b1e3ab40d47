#!/usr/bin/env node
require('../dist/cli/lvs-realserver.js')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
