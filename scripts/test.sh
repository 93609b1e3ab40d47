#!/usr/bin/env bash
# Run every check: build, type check, lint, then all tests (unit and netns) with vitest.
# Ends with one line "N passed, N failed, N skipped" computed from vitest's JSON report.
# netns tests need root; elsewhere they are skipped with the reason printed.
set -uo pipefail
cd "$(dirname "$0")/.."

npm run --silent build || exit 1
npm run --silent typecheck || exit 1
npm run --silent lint || exit 1

mkdir -p results
rm -f results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=results/vitest.json "$@"
status=$?

if [ -f results/vitest.json ]; then
  node -e '
    const r = require("./results/vitest.json");
    const skipped = (r.numPendingTests || 0) + (r.numTodoTests || 0);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  '
else
  echo "0 passed, 1 failed, 0 skipped"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
