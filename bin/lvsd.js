#!/usr/bin/env -S node --no-memory-reducer
// --no-memory-reducer: lvsd's heap is small and steady; V8's memory reducer would still run
// full collections (5-10 ms pauses) when traffic is light.
require('../dist/cli/lvsd.js')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
