#!/usr/bin/env node
// Build the N-API addon in native/ with node-gyp against the headers of the Node.js that runs
// this script (<prefix>/include/node), never downloading any. Fails clearly when they are missing.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const prefix = path.dirname(path.dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || prefix;
if (!existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(
    `build-native: no Node.js headers under ${nodedir}/include/node; install them (Debian: libnode-dev / nodejs headers)`,
  );
  process.exit(1);
}
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const r = spawnSync(
  process.execPath,
  [gyp, 'rebuild', '--directory', path.join(root, 'native'), `--nodedir=${nodedir}`, '--loglevel=warn'],
  {
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
