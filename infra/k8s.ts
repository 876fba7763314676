#!/usr/bin/env node
/**
 * The cdk8s app named in `cdk8s.yaml`. `npx cdk8s synth --no-check-upgrade` (from the repository root) compiles the
 * project (`npm run build`) and runs this file, which synthesizes the Kubernetes target of every environment from
 * `infra/app.ts` — each a cdk8s App + Chart — and writes `<env>/kubernetes.k8s.yaml` into the CLI's output directory
 * (`$CDK8S_OUTDIR`, `build/cdk8s.out` per `cdk8s.yaml`). The files are byte-for-byte those `npm run synth` writes
 * under `dist/`: one renderer, one serializer, one file writer.
 *
 * Compiled JavaScript rather than a TypeScript loader: the build already exists for `npm run synth`, and no extra
 * package (ts-node, tsx) is needed.
 */
import { join, resolve as resolvePath } from 'node:path';
import { synthesize } from '../constructs';
import { kubernetesTarget } from '../constructs/k8s';
import { writeFiles } from '../constructs/output/files';
import { defineSystem, ENVIRONMENTS } from './app';

async function main(): Promise<void> {
  // build/infra/k8s.js → the repository root, whatever the working directory.
  // Run from the repository root (cdk8s.yaml's app command does), wherever the compiled file lives.
  const repoRoot = process.cwd();
  const outDir = resolvePath(process.env.CDK8S_OUTDIR ?? join(repoRoot, 'build', 'cdk8s.out'));
  const result = await synthesize({
    systems: ENVIRONMENTS.map((e) => defineSystem(e)),
    targets: [kubernetesTarget],
    resolveOptions: { repoRoot },
  });
  if (result.errors.length > 0) {
    process.stderr.write(
      `k8s: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; nothing was written\n`,
    );
    for (const e of result.errors) process.stderr.write(`  ${e}\n`);
    process.exit(1);
  }
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  // The CLI empties its output directory before running the app, so nothing here is owned beyond what we write.
  writeFiles(outDir, result.files, () => false);
}

main().catch((error: unknown) => {
  process.stderr.write(`k8s: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
