// Renders the latency-by-path chart (SVG, log scale) from the bench results: a bar to the median, a
// whisker to p95. No chart library: plain SVG text.
type Stat = { p50: number; p95: number };

const ROWS: Array<[string, string, string]> = [
  ["raw_kernel_jupyterlab_services", "raw kernel, @jupyterlab/services", "#8c8c8c"],
  ["raw_kernel_gateway_session", "raw kernel, codeinterp gateway session", "#8c8c8c"],
  ["e2e_warm_longpoll", "codeinterp warm path (long-poll)", "#2f6fdf"],
  ["e2e_warm_sse", "codeinterp warm path (SSE)", "#2f6fdf"],
  ["first_execution_new_message", "codeinterp first exec of a message (pool)", "#5b9bd5"],
  ["fresh_kernel_per_execution", "fresh kernel per exec (Open WebUI way)", "#d9534f"],
];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function renderChart(results: Record<string, unknown>): string {
  const lat = (results.latency ?? {}) as Record<string, Stat>;
  const rows = ROWS.filter(([k]) => lat[k]);
  const machine = (results.machine ?? {}) as { cpu?: string; nproc?: number; node?: string };
  const left = 300;
  const width = 860;
  const plotW = width - left - 40;
  const rowH = 34;
  const top = 56;
  const height = top + rows.length * rowH + 56;
  const minMs = 1;
  const maxMs = 10_000;
  const x = (ms: number) =>
    left + ((Math.log10(Math.max(ms, minMs)) - Math.log10(minMs)) / (Math.log10(maxMs) - Math.log10(minMs))) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(
    `<text x="16" y="22" font-size="15" font-weight="bold">Latency of print(1) by path — median (bar) and p95 (whisker), log scale</text>`,
  );
  out.push(
    `<text x="16" y="40" fill="#555">${esc(`${String(results.mode)} run · ${machine.nproc ?? "?"} × ${machine.cpu ?? "?"} · node ${machine.node ?? "?"}`)}</text>`,
  );
  for (const t of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
    const tx = x(t);
    const major = [1, 10, 100, 1000, 10000].includes(t);
    out.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${top + rows.length * rowH}" stroke="${major ? "#bbb" : "#e6e6e6"}"/>`,
    );
    if (major || [5, 50, 500].includes(t))
      out.push(
        `<text x="${tx.toFixed(1)}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#444">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`,
      );
  }
  rows.forEach(([k, label, color], i) => {
    const s = lat[k]!;
    const y = top + i * rowH;
    out.push(`<text x="${left - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
    out.push(
      `<rect x="${left}" y="${y + 7}" width="${(x(s.p50) - left).toFixed(1)}" height="${rowH - 14}" fill="${color}"/>`,
    );
    out.push(
      `<line x1="${x(s.p50).toFixed(1)}" y1="${y + rowH / 2}" x2="${x(s.p95).toFixed(1)}" y2="${y + rowH / 2}" stroke="#222"/>`,
    );
    out.push(
      `<line x1="${x(s.p95).toFixed(1)}" y1="${y + 10}" x2="${x(s.p95).toFixed(1)}" y2="${y + rowH - 10}" stroke="#222"/>`,
    );
    out.push(
      `<text x="${(x(s.p95) + 6).toFixed(1)}" y="${y + rowH / 2 + 4}" fill="#222">${s.p50.toFixed(1)} ms (p95 ${s.p95.toFixed(1)})</text>`,
    );
  });
  out.push(
    `<text x="16" y="${height - 12}" fill="#555">Targets: warm e2e p50 ≤ raw p50 + 10 ms; ≥ 25× faster than a fresh kernel per execution.</text>`,
  );
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
