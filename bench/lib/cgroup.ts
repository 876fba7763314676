import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Memory cgroups for the services the benchmarks start, so each runs with the memory limit its container gets in
 * the model's prod environment. Node sizes its heap from that limit (`process.constrainedMemory()`): on a host with
 * 24 GiB and no limit, Node 24 lets a consumer's young generation grow past 150 MiB although a tenth of that is
 * live, which says nothing about the container it will run in.
 *
 * A child of this process's own memory cgroup is made per service (cgroup v1, or v2 where the memory controller is
 * delegated to it); the service is started as `sh -c 'echo $$ > <dir>/cgroup.procs; exec node …'`, so it is in the
 * cgroup before Node reads the limit. Without a writable memory cgroup the services run unlimited, and the report
 * says so.
 */

interface Hierarchy {
  readonly version: 1 | 2;
  /** This process's memory cgroup directory. */
  readonly dir: string;
  readonly limitFile: string;
}

let found: Hierarchy | { readonly why: string } | undefined;

/** This process's memory cgroup, read once (it does not move during a run). */
function hierarchy(): Hierarchy | { readonly why: string } {
  found ??= findHierarchy();
  return found;
}

function findHierarchy(): Hierarchy | { readonly why: string } {
  let self: string;
  try {
    self = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return { why: 'no /proc/self/cgroup' };
  }
  const v1 = /^\d+:(?:[^:\n]*,)?memory(?:,[^:\n]*)?:(.*)$/m.exec(self)?.[1];
  if (v1 !== undefined) {
    const dir = join('/sys/fs/cgroup/memory', v1);
    return existsSync(join(dir, 'memory.limit_in_bytes'))
      ? { version: 1, dir, limitFile: 'memory.limit_in_bytes' }
      : { why: `cgroup v1 memory directory ${dir} not found` };
  }
  const v2 = /^0::(.*)$/m.exec(self)?.[1];
  if (v2 !== undefined && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const dir = join('/sys/fs/cgroup', v2);
    let delegated = '';
    try {
      delegated = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8');
    } catch {
      // unreadable: treated as not delegated
    }
    return /\bmemory\b/.test(delegated)
      ? { version: 2, dir, limitFile: 'memory.max' }
      : { why: `cgroup v2: the memory controller is not delegated to ${dir}` };
  }
  return { why: 'no memory cgroup hierarchy' };
}

const made = new Set<string>();
let counter = 0;

/** Removes a cgroup directory once its processes are gone (rmdir fails while one is still exiting). */
function removeCgroup(dir: string): void {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      made.delete(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        made.delete(dir);
        return;
      }
      if (code !== 'EBUSY') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** Removes every cgroup this process made (on exit, after its processes were killed). */
export function removeAllCgroups(): void {
  for (const dir of [...made]) removeCgroup(dir);
}

export interface MemoryCgroup {
  readonly dir: string;
  readonly limitMiB: number;
  /** `command args` run inside the cgroup: `sh -c 'echo $$ > …/cgroup.procs && exec "$@"' …`. */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] };
  remove(): void;
}

/** Whether services can be given a memory limit here, and if not, why. */
export function memoryCgroupsAvailable(): { readonly ok: true } | { readonly ok: false; readonly why: string } {
  try {
    const probe = createMemoryCgroup(64);
    probe.remove();
    return { ok: true };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/** A new child cgroup of this process's memory cgroup, limited to `limitMiB`. Throws when that is not possible. */
export function createMemoryCgroup(limitMiB: number): MemoryCgroup {
  const h = hierarchy();
  if ('why' in h) throw new Error(h.why);
  const dir = join(h.dir, `aj-bench-${process.pid}-${++counter}`);
  try {
    mkdirSync(dir);
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  made.add(dir);
  try {
    writeFileSync(join(dir, h.limitFile), String(limitMiB * 2 ** 20));
  } catch (err) {
    removeCgroup(dir);
    throw new Error(`cannot write ${join(dir, h.limitFile)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      cause: err,
    });
  }
  return {
    dir,
    limitMiB,
    wrap: (command, args) => ({
      command: '/bin/sh',
      args: ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, command, ...args],
    }),
    remove: () => removeCgroup(dir),
  };
}
