import type { FileDifference } from './files';

/** A minimal line diff (longest common subsequence), enough for review output of generated files. */
export function lineDiff(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(`- ${a[i]}`);
      i++;
    } else {
      out.push(`+ ${b[j]}`);
      j++;
    }
  }
  return out;
}

/** Markdown for a pull request: one section per changed file. */
export function renderDiff(differences: readonly FileDifference[]): string {
  const parts: string[] = [];
  for (const d of differences) {
    const verb = d.state === 'missing' ? 'added' : d.state === 'extra' ? 'removed' : 'changed';
    parts.push(
      `### ${d.path} (${verb})\n\n\`\`\`diff\n${lineDiff(d.actual ?? '', d.expected ?? '').join('\n')}\n\`\`\`\n`,
    );
  }
  return parts.join('\n');
}
