import { ConfigError } from './config';

/** Loads configuration or exits 1 with the message naming each bad variable (before any logger exists). */
export function loadConfigOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
