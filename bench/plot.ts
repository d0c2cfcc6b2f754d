/**
 * Draws bench/results.svg from the benchmark's results: wall time, CPU time
 * and bytes from the API server against the log volume in the window, log
 * scales, one line per tool. Plain SVG, no packages.
 *
 * @module
 */

/** Median, extremes and quartiles of a set of runs. */
export interface Stats {
  median: number;
  min: number;
  max: number;
  p25: number;
  p75: number;
}

/** One tool's runs at one setting. */
export interface Summary {
  tool: string;
  wallMs: Stats;
  /** User + system CPU time of the command and the processes it waited for. */
  cpuMs: Stats;
  userMs: number;
  sysMs: number;
  peakRssMiB: Stats;
  serverBytes: number;
  exitCodes: number[];
}

/** What bench/results.json holds. */
export interface Results {
  date: string;
  machine: { cpus: number; model: string; memoryGiB: number; os: string; cgroup: string };
  deno: string;
  rounds: number;
  quotaRounds: number;
  /** /proc/loadavg before the run and after each part. */
  loadavg: string[];
  probeCommand: string[];
  probeEnv: Record<string, string>;
  tools: Record<string, string>;
  skipped: Record<string, string>;
  results: Array<Summary & { logBytes: number }>;
  /** Per-round ratios of the shipped probe to the bare-fetch floor and the seed script. */
  targets: Array<{
    logBytes: number;
    wallRatio: Stats;
    cpuRatio: Stats;
    rssDeltaMiB: Stats;
    cpuVsSeed?: Stats;
  }>;
  experiments: Array<Summary & { label: string }>;
  quotas: Array<
    Summary & {
      millicores: number;
      check: "alive" | "silent";
      /** The cgroup's cpu.stat over this setting's runs (every tool, warm-up included). */
      throttling: { periods: number; throttled: number; ms: number };
    }
  >;
}

const COLORS: Record<string, string> = {
  seed: "#d62728",
  probe: "#1f77b4",
  hello: "#7f7f7f",
  fetch: "#2ca02c",
  compiled: "#9467bd",
};
const DASHED = new Set(["hello", "fetch"]);
const PANEL = { width: 400, height: 260, left: 70, top: 60 };

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function bytesLabel(bytes: number): string {
  return bytes >= 1e6 ? `${bytes / 1e6} MB` : bytes >= 1e3 ? `${bytes / 1e3} KB` : `${bytes} B`;
}

/** Log-scale axis from `low` to `high` (both > 0), onto [from, to] pixels. */
function scale(low: number, high: number, from: number, to: number) {
  const [a, b] = [Math.log10(low), Math.log10(high)];
  return (value: number) => from + (Math.log10(value) - a) / (b - a) * (to - from);
}

/** Ticks at 1, 2, 5 × 10ⁿ between low and high; only 10ⁿ over a wide range. */
function ticks(low: number, high: number): number[] {
  const out: number[] = [];
  const steps = Math.log10(high / low) > 4 ? [1] : [1, 2, 5];
  for (let e = Math.floor(Math.log10(low)); e <= Math.ceil(Math.log10(high)); e++) {
    for (const m of steps) {
      const v = m * 10 ** e;
      if (v >= low && v <= high) out.push(v);
    }
  }
  return out;
}

function panel(
  results: Results,
  x0: number,
  title: string,
  value: (r: Results["results"][number]) => number,
  spread: ((r: Results["results"][number]) => [number, number]) | undefined,
  format: (v: number) => string,
): string {
  const sizes = [...new Set(results.results.map((r) => r.logBytes))].sort((a, b) => a - b);
  // 0 bytes sits one decade left of the smallest size, labelled "0".
  const xOf = (bytes: number) => bytes || 100;
  const x = scale(100, Math.max(...sizes.map(xOf)), x0 + PANEL.left, x0 + PANEL.left + PANEL.width);
  const values = results.results.flatMap((r) => spread ? [...spread(r), value(r)] : [value(r)])
    .map((v) => Math.max(v, 1));
  const [low, high] = [Math.max(Math.min(...values) / 1.5, 1), Math.max(...values) * 1.5];
  const y = scale(low, high, PANEL.top + PANEL.height, PANEL.top);
  const parts = [
    `<text x="${x0 + PANEL.left + PANEL.width / 2}" y="${
      PANEL.top - 14
    }" text-anchor="middle" font-weight="bold">${escape(title)}</text>`,
    `<rect x="${
      x0 + PANEL.left
    }" y="${PANEL.top}" width="${PANEL.width}" height="${PANEL.height}" fill="none" stroke="#999"/>`,
  ];
  for (const t of ticks(low, high)) {
    parts.push(
      `<line x1="${x0 + PANEL.left}" x2="${x0 + PANEL.left + PANEL.width}" y1="${y(t)}" y2="${
        y(t)
      }" stroke="#eee"/>`,
      `<text x="${x0 + PANEL.left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11">${
        format(t)
      }</text>`,
    );
  }
  for (const size of sizes) {
    parts.push(
      `<text x="${x(xOf(size))}" y="${
        PANEL.top + PANEL.height + 16
      }" text-anchor="middle" font-size="11">${size ? bytesLabel(size) : "0"}</text>`,
    );
  }
  parts.push(
    `<text x="${x0 + PANEL.left + PANEL.width / 2}" y="${
      PANEL.top + PANEL.height + 34
    }" text-anchor="middle" font-size="12">output in the window (log scale)</text>`,
  );
  for (const tool of Object.keys(results.tools)) {
    const rows = results.results.filter((r) => r.tool === tool).sort((a, b) =>
      a.logBytes - b.logBytes
    );
    const color = COLORS[tool] ?? "#000";
    const points = rows.map((r) => `${x(xOf(r.logBytes))},${y(Math.max(value(r), 1))}`);
    parts.push(
      `<polyline points="${points.join(" ")}" fill="none" stroke="${color}" stroke-width="2"${
        DASHED.has(tool) ? ' stroke-dasharray="6 4"' : ""
      }/>`,
    );
    for (const r of rows) {
      const cx = x(xOf(r.logBytes));
      if (spread) {
        const [a, b] = spread(r);
        parts.push(
          `<line x1="${cx}" x2="${cx}" y1="${y(Math.max(a, 1))}" y2="${
            y(Math.max(b, 1))
          }" stroke="${color}"/>`,
        );
      }
      parts.push(`<circle cx="${cx}" cy="${y(Math.max(value(r), 1))}" r="3" fill="${color}"/>`);
    }
  }
  return parts.join("\n");
}

/** The whole figure as an SVG document. */
export function plot(results: Results): string {
  const width = 3 * (PANEL.left + PANEL.width) + 120;
  const height = PANEL.top + PANEL.height + 110;
  const legend = Object.entries(results.tools).map(([tool, label], i) => {
    const lx = PANEL.left + (i % 3) * 300;
    const ly = PANEL.top + PANEL.height + 58 + Math.floor(i / 3) * 18;
    return `<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${
      COLORS[tool] ?? "#000"
    }" stroke-width="2"${DASHED.has(tool) ? ' stroke-dasharray="6 4"' : ""}/>` +
      `<text x="${lx + 30}" y="${ly}" font-size="12">${escape(label)}</text>`;
  });
  const m = results.machine;
  const footer =
    `${m.cpus} cores (${m.model}), ${m.memoryGiB} GiB, ${m.os}; Deno ${results.deno}; ` +
    `median of ${results.rounds} interleaved runs after a warm-up, each in a kubelet-like sandbox; ` +
    results.date.slice(0, 10);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${
      width / 2
    }" y="22" text-anchor="middle" font-size="16" font-weight="bold">One liveness check: log-probe against the seed script, as the container's log grows</text>`,
    panel(
      results,
      0,
      "Wall time per check, ms (dot: median; bar: min–max)",
      (r) => r.wallMs.median,
      (r) => [r.wallMs.min, r.wallMs.max],
      (v) => String(v),
    ),
    panel(
      results,
      PANEL.left + PANEL.width + 40,
      "CPU time per check (user+sys), ms",
      (r) => r.cpuMs.median,
      (r) => [r.cpuMs.min, r.cpuMs.max],
      (v) => String(v),
    ),
    panel(
      results,
      2 * (PANEL.left + PANEL.width + 40),
      "Bytes the API server sends per check",
      (r) => r.serverBytes,
      undefined,
      // 0 bytes is drawn at 1 on the log scale
      (v) => v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}K` : v === 1 ? "0" : String(v),
    ),
    ...legend,
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#555">${
      escape(footer)
    }</text>`,
    `</svg>`,
    "",
  ].join("\n");
}
