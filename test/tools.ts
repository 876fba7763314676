import { spawnSync } from 'node:child_process';

/** Whether a command is installed. */
export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Guards a test that needs an external tool: under CI=true a missing tool fails the test (CI installs every
 * tool); elsewhere the test is reported as skipped with the reason.
 */
export function requireTool(command: string, install: string): jest.It {
  if (hasCommand(command)) return test;
  if (process.env.CI === 'true') {
    const failing = (name: string): void =>
      test(name, () => {
        throw new Error(`${command} is not installed (CI=true requires it): ${install}`);
      });
    return failing as unknown as jest.It;
  }
  console.warn(`${command} is not installed; skipping its checks (install: ${install})`);
  return test.skip;
}

export function run(command: string, args: readonly string[], options: { cwd?: string; input?: string } = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', cwd: options.cwd, input: options.input });
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    output: `${result.stdout}${result.stderr}`,
  };
}
