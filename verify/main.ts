#!/usr/bin/env node
/**
 * `npm run verify`: runs every independent validator on the synthesized files and prints, per validator, its name,
 * version, the files it checked and its findings. Exits 1 on any finding not excepted in verify/exceptions.yaml,
 * and, under CI=true, on a validator that is not installed (elsewhere that validator is reported as skipped).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { featureTable, parityReport, replaceFeatureTable } from '../constructs/parity';
import { TARGETS } from '../constructs/targets';
import { parseArgs } from 'node:util';
import { excepts, loadExceptions, REPO_ROOT, runValidator, VALIDATORS, type ValidatorResult } from './validators';

const HELP = `Usage: npm run verify -- [options]

Runs the independent validators on dist/ (install them with: bash scripts/install-validators.sh).

Options:
  --dist <dir>         Directory to check (default: dist)
  --only <validator>   Only this validator (repeatable): ${VALIDATORS.map((v) => v.name).join(', ')}
  --show-excepted      Also list the excepted findings with their reasons
  --write-readme-table Only rewrite README.md's feature table (between the feature-table markers) from
                       constructs/parity, then exit
  -h, --help           Show this help

Exit codes: 0 every validator passed, 1 a finding not excepted (or, with CI=true, a validator missing), 2 bad options.`;

function main(): number {
  let values;
  try {
    values = parseArgs({
      options: {
        dist: { type: 'string', default: 'dist' },
        only: { type: 'string', multiple: true },
        'show-excepted': { type: 'boolean', default: false },
        'write-readme-table': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    process.stderr.write(`verify: ${(error as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values['write-readme-table']) {
    const readme = join(REPO_ROOT, 'README.md');
    writeFileSync(readme, replaceFeatureTable(readFileSync(readme, 'utf8'), featureTable(parityReport(TARGETS, []))));
    process.stdout.write('README.md: feature table rewritten from constructs/parity\n');
    return 0;
  }
  const dist = resolvePath(REPO_ROOT, values.dist);
  if (!existsSync(dist)) {
    process.stderr.write(`verify: --dist: ${dist} does not exist; run \`npm run synth\` first\n`);
    return 2;
  }
  const selected = values.only ?? VALIDATORS.map((v) => v.name);
  for (const name of selected) {
    if (!VALIDATORS.some((v) => v.name === name)) {
      process.stderr.write(
        `verify: --only: got ${JSON.stringify(name)}, expected one of ${VALIDATORS.map((v) => v.name).join(', ')}\n`,
      );
      return 2;
    }
  }
  const ci = process.env.CI === 'true';
  const exceptions = loadExceptions();
  let passed = 0;
  let failed = 0;
  const results: ValidatorResult[] = [];
  for (const v of VALIDATORS.filter((x) => selected.includes(x.name))) {
    const r = runValidator(v, dist, exceptions);
    results.push(r);
    if (r.missing !== null) {
      if (ci) failed++;
      process.stdout.write(
        `${ci ? 'FAIL' : 'SKIP'} ${r.name}: ${r.missing}${ci ? ' (CI=true requires every validator)' : ''}\n`,
      );
      continue;
    }
    const ok = r.findings.length === 0;
    if (ok) passed++;
    else failed++;
    process.stdout.write(
      `${ok ? 'PASS' : 'FAIL'} ${r.name} ${r.version}: ${r.files.length} file${r.files.length === 1 ? '' : 's'} checked, ` +
        `${r.findings.length} finding${r.findings.length === 1 ? '' : 's'}` +
        `${r.excepted.length > 0 ? ` (+${r.excepted.length} excepted in verify/exceptions.yaml)` : ''}\n`,
    );
    for (const f of r.findings) {
      process.stdout.write(`    ${f.file}${f.object ? ` ${f.object}` : ''} [${f.rule}] ${f.message}\n`);
    }
    if (values['show-excepted']) {
      for (const { finding: f, reason } of r.excepted) {
        process.stdout.write(`    excepted: ${f.file}${f.object ? ` ${f.object}` : ''} [${f.rule}]: ${reason}\n`);
      }
    }
  }
  // An exception nothing matches any more is stale: say so, so the file only lists what is still needed.
  for (const e of exceptions) {
    const r = results.find((x) => x.name === e.validator);
    if (r === undefined || r.missing !== null) continue;
    if (!r.excepted.some(({ finding }) => excepts(e, r.name, finding))) {
      process.stdout.write(
        `note: unused exception in verify/exceptions.yaml: ${e.validator} [${e.rule}]${e.files ? ` ${e.files}` : ''}\n`,
      );
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = main();
