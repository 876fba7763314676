#!/usr/bin/env bash
# Every test: the build, the root suites (model, targets, CLI, policy) and the services' suites (unit,
# integration against real RabbitMQ and FerretDB, browser). Prints a closing `N passed, N failed` line.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0

npm run --silent build || { echo "build failed" >&2; exit 1; }
npx jest --json --outputFile="$results/root.json" "$@" || status=1
if [ $# -eq 0 ]; then
  (cd services && npm run --silent test -- --json --outputFile="$results/services.json") || status=1
fi

# shellcheck disable=SC2016 # the JavaScript's template literals are not shell expansions
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, suitesFailed = 0;
  for (const f of fs.readdirSync(process.argv[1])) {
    const r = JSON.parse(fs.readFileSync(process.argv[1] + "/" + f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; suitesFailed += r.numRuntimeErrorTestSuites;
    console.log(`${f.replace(".json", "")}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped in ${r.numTotalTestSuites} suites`);
  }
  if (suitesFailed > 0) console.log(`${suitesFailed} suites failed to run`);
  console.log(`${passed} passed, ${failed + suitesFailed} failed`);
' "$results"
exit $status
