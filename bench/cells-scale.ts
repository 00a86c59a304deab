// `npm run bench:cells [-- --cells 1,2,3] [-- --seconds 40]`: throughput as cells are added, each cell a
// machine of its own (a network namespace with its Jupyter server, worker and DATA_DIR; test/cells/harness.ts),
// sharing one private Postgres, Redis and S3 server. Needs root. Per cell count it reports executions/s,
// first-analysis latency, and the CPU each execution costs a cell (every process in the cell's namespace: the
// worker, the Jupyter server, the kernels), from which a bigger machine's figure follows: on this 2-core box
// the cells compete for the same cores, so throughput flattens while the per-execution cost stays.
import { readFileSync } from "node:fs";
import { client, startCellsStack } from "../test/cells/harness";
import type { CellMachine } from "../test/cells/harness";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const cellCounts = arg("cells", "1,2,3").split(",").map(Number);
const seconds = Number(arg("seconds", "40"));
/** Clients per cell, each running messages one after another (a closed loop). */
const CLIENTS_PER_CELL = 3;
const CLK_TCK = 100;

const csv = `a,b,c\n${Array.from({ length: 20_000 }, (_, i) => `${i},${(i * 7) % 13},x${i % 5}`).join("\n")}\n`;
const FIRST = "import pandas as pd\ndf = pd.read_csv('/mnt/data/data.csv')\nprint(df.describe().shape)";
const FOLLOW = "print(len(df), df['b'].sum())";

/** CPU seconds used so far by every process on the machine (alive now). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command.
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // exited
    }
  }
  return ticks / CLK_TCK;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

async function measure(n: number) {
  const stack = await startCellsStack();
  try {
    const api = await stack.startApi("api1");
    const cells: CellMachine[] = [];
    for (let i = 0; i < n; i++)
      cells.push(await stack.startCell(`cell-${i + 1}`, { KERNEL_POOL_SIZE: "2", KERNEL_POOL_MAX_SIZE: "4" }));
    const user = await stack.newUser("bench");
    const c = client(api.url, user.key);
    const up = await c.upload("data.csv", Buffer.from(csv));
    if (up.status !== 201) throw new Error(`upload: ${up.status}`);
    const fileId = up.body.id as string;
    // Warm-up: one message per cell, untimed.
    await Promise.all(
      cells.map((_, i) => c.run({ chatId: "warm", messageId: `warm-${i}`, code: FIRST, fileIds: [fileId] })),
    );

    const cpuBefore = new Map(cells.map((cell) => [cell.name, cpuSeconds(cell.node.pids())]));
    const apiCpuBefore = cpuSeconds(api.node.pids());
    const start = Date.now();
    const until = start + seconds * 1000;
    const firstLatencies: number[] = [];
    let done = 0;
    let failed = 0;
    let seq = 0;
    await Promise.all(
      Array.from({ length: n * CLIENTS_PER_CELL }, async () => {
        while (Date.now() < until) {
          const messageId = `m-${seq++}`;
          const t0 = Date.now();
          const first = await c.run({ chatId: "scale", messageId, code: FIRST, fileIds: [fileId] }, 120_000);
          firstLatencies.push(Date.now() - t0);
          const follow = await c.run({ chatId: "scale", messageId, code: FOLLOW }, 120_000);
          for (const e of [first, follow]) {
            if (e.status === "completed") done++;
            else failed++;
          }
        }
      }),
    );
    const elapsed = (Date.now() - start) / 1000;
    const perCell = await stack.sql<{ worker_id: string; n: string }>(
      `SELECT worker_id, count(*) AS n FROM executions WHERE chat_id = 'scale' AND status = 'completed' GROUP BY 1`,
    );
    const cellRows = cells.map((cell) => {
      const execs = Number(perCell.find((r) => r.worker_id === cell.workerId)?.n ?? 0);
      const cpu = cpuSeconds(cell.node.pids()) - cpuBefore.get(cell.name)!;
      return {
        cell: cell.name,
        executions: execs,
        cpuS: +cpu.toFixed(1),
        cpuMsPerExecution: execs ? Math.round((cpu * 1000) / execs) : null,
      };
    });
    return {
      cells: n,
      clients: n * CLIENTS_PER_CELL,
      seconds: +elapsed.toFixed(1),
      executions: done,
      failed,
      executionsPerS: +(done / elapsed).toFixed(2),
      firstAnalysisMs: { p50: pct(firstLatencies, 50), p90: pct(firstLatencies, 90) },
      apiCpuMsPerExecution: done ? Math.round(((cpuSeconds(api.node.pids()) - apiCpuBefore) * 1000) / done) : null,
      perCell: cellRows,
    };
  } finally {
    await stack.close();
  }
}

const results = [];
for (const n of cellCounts) {
  const r = await measure(n);
  console.log(JSON.stringify(r));
  results.push(r);
}
console.log(
  "\n| cells | clients | executions/s | first analysis p50 / p90 (ms) | CPU per execution, each cell (ms) | API CPU per execution (ms) |",
);
console.log("|---|---|---|---|---|---|");
for (const r of results)
  console.log(
    `| ${r.cells} | ${r.clients} | ${r.executionsPerS} | ${r.firstAnalysisMs.p50} / ${r.firstAnalysisMs.p90} | ${r.perCell.map((c) => `${c.cell}: ${c.cpuMsPerExecution} (${c.executions} runs)`).join(", ")} | ${r.apiCpuMsPerExecution} |`,
  );
process.exit(0);
