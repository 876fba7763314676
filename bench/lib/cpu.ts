/**
 * CPU time of process trees, from /proc (utime + stime of a process and every descendant alive at the time):
 * where a job's time goes when the figure is bound by CPU, as on the 2-core test machines. Processes that exited
 * in between are not counted (the servers keep theirs: PostgreSQL's backends live as long as FerretDB's pool).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Kernel clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on every Linux the bench runs on). */
const TICKS_PER_SECOND = 100;

interface Stat {
  readonly ppid: number;
  readonly ticks: number;
}

function readStats(): Map<number, Stat> {
  const stats = new Map<number, Stat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces; the fields after it are space-separated.
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
      stats.set(Number(entry), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // exited while listing
    }
  }
  return stats;
}

/** CPU seconds used so far by each named group of process trees (the roots and all their descendants). */
export function cpuSeconds(groups: Readonly<Record<string, readonly number[]>>): Record<string, number> {
  const stats = readStats();
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  const tree = (root: number): number => {
    let ticks = 0;
    const stack = [root];
    const seen = new Set<number>();
    while (stack.length > 0) {
      const pid = stack.pop() ?? 0;
      if (seen.has(pid)) continue;
      seen.add(pid);
      ticks += stats.get(pid)?.ticks ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    return ticks;
  };
  return Object.fromEntries(
    Object.entries(groups).map(([name, roots]) => [
      name,
      roots.reduce((sum, pid) => sum + tree(pid), 0) / TICKS_PER_SECOND,
    ]),
  );
}

/** CPU milliseconds per unit of work (job or request) of each group between two {@link cpuSeconds} readings. */
export function cpuMsPer(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
  units: number,
): Record<string, number> {
  return Object.fromEntries(
    Object.keys(after).map((k) => [k, (((after[k] ?? 0) - (before[k] ?? 0)) * 1000) / Math.max(1, units)]),
  );
}
