/**
 * The run's report: every check passes or fails with a reason, every phase has a wall time, and the last line is
 * exactly `N passed, N failed` (what .ci/run and the lead's tooling read).
 */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export class Report {
  readonly checks: CheckResult[] = [];
  readonly phases: { name: string; seconds: number; ok: boolean }[] = [];
  readonly notes: string[] = [];
  private readonly started = Date.now();

  log(line: string): void {
    process.stdout.write(`  ${line}\n`);
  }

  check(name: string, ok: boolean, detail = ''): boolean {
    this.checks.push({ name, ok, detail });
    process.stdout.write(`  ${ok ? 'PASS' : 'FAIL'} ${name}${detail === '' ? '' : ` — ${detail}`}\n`);
    return ok;
  }

  note(line: string): void {
    this.notes.push(line);
    this.log(line);
  }

  /** Runs one phase; an exception fails the phase as a check and is not rethrown unless `fatal`. */
  async phase<T>(name: string, fn: () => Promise<T>, fatal = false): Promise<T | undefined> {
    process.stdout.write(`\n== ${name}\n`);
    const t0 = Date.now();
    try {
      const value = await fn();
      this.phases.push({ name, seconds: (Date.now() - t0) / 1000, ok: true });
      process.stdout.write(`   (${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      return value;
    } catch (e) {
      const seconds = (Date.now() - t0) / 1000;
      this.phases.push({ name, seconds, ok: false });
      this.check(`${name} completes`, false, e instanceof Error ? e.message : String(e));
      process.stdout.write(`   (${name}: ${seconds.toFixed(1)} s, failed)\n`);
      if (fatal) throw new PhaseFailed(name);
      return undefined;
    }
  }

  get failed(): number {
    return this.checks.filter((c) => !c.ok).length;
  }

  summary(): string {
    const lines = ['', '== summary', 'phase wall times:'];
    for (const p of this.phases)
      lines.push(`  ${p.name.padEnd(34)} ${p.seconds.toFixed(1).padStart(7)} s${p.ok ? '' : '  (failed)'}`);
    lines.push(`  ${'total'.padEnd(34)} ${((Date.now() - this.started) / 1000).toFixed(1).padStart(7)} s`);
    if (this.notes.length > 0) lines.push('notes:', ...this.notes.map((n) => `  ${n}`));
    const failed = this.checks.filter((c) => !c.ok);
    if (failed.length > 0)
      lines.push('failed checks:', ...failed.map((c) => `  ${c.name}${c.detail === '' ? '' : ` — ${c.detail}`}`));
    lines.push(`${this.checks.length - failed.length} passed, ${failed.length} failed`);
    return lines.join('\n');
  }
}

export class PhaseFailed extends Error {
  override name = 'PhaseFailed';
  constructor(phase: string) {
    super(`phase "${phase}" failed; later phases depend on it`);
  }
}
