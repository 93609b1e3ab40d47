#!/usr/bin/env bash
# Run every check: build, type check, lint, then all tests (unit and netns) with vitest.
# Ends with one line "N passed, N failed, N skipped" computed from vitest's JSON report; the
# tests of a file that failed without a failed test (its beforeAll threw, its lab could not be
# built) count as failed, not skipped.
# netns tests need root; elsewhere they are skipped with the reason printed. Run as root, they
# never skip: a netns suite that cannot build its lab fails (LVS_REQUIRE_NETNS=1, unless set).
set -uo pipefail
cd "$(dirname "$0")/.."

npm run --silent build || exit 1
npm run --silent typecheck || exit 1
npm run --silent lint || exit 1

if [ "$(id -u)" -eq 0 ]; then export LVS_REQUIRE_NETNS=${LVS_REQUIRE_NETNS:-1}; fi

mkdir -p results
rm -f results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=results/vitest.json "$@"
status=$?

if [ -f results/vitest.json ]; then
  node -e '
    const r = require("./results/vitest.json");
    let failed = r.numFailedTests;
    let skipped = (r.numPendingTests || 0) + (r.numTodoTests || 0);
    for (const f of r.testResults) {
      if (f.status !== "failed") continue;
      const notRun = f.assertionResults.filter((a) => a.status !== "passed" && a.status !== "failed").length;
      failed += f.assertionResults.some((a) => a.status === "failed") ? notRun : Math.max(notRun, 1);
      skipped -= notRun;
      console.log(`failed: ${f.name}${f.message ? `: ${f.message.split("\n")[0]}` : ""}`);
    }
    console.log(`${r.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
  '
else
  echo "0 passed, 1 failed, 0 skipped"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
