/**
 * What forked members report over IPC, and waiting on it: `add` a report as it comes (from a
 * child's "message" event), `waitFor(check)` resolves with the first value `check` returns that is
 * not undefined, checked at once and after every report.
 */
export function reportLog<R>(): {
  reports: R[];
  add(report: R): void;
  waitFor<T>(check: () => T | undefined, what: string, ms?: number): Promise<T>;
} {
  const reports: R[] = [];
  const wakeups = new Set<() => void>();
  return {
    reports,
    add(report) {
      reports.push(report);
      for (const w of [...wakeups]) w();
    },
    waitFor: (check, what, ms = 30000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          wakeups.delete(tick);
          reject(new Error(`timed out waiting for ${what}; last reports ${JSON.stringify(reports.slice(-8))}`));
        }, ms);
        const tick = (): void => {
          const v = check();
          if (v === undefined) return;
          clearTimeout(timer);
          wakeups.delete(tick);
          resolve(v);
        };
        wakeups.add(tick);
        tick();
      }),
  };
}
