/**
 * One command run the way the kubelet runs an exec probe
 * ({@linkcode KubeletPod.exec} from `testing/kubelet.ts`), measured
 * from inside the sandbox by `rusage.c` (wait4(2), built static so it runs in
 * an image that holds nothing), so the sandbox's own setup is never counted; optionally inside a cgroup with a CPU quota, which
 * the sandbox joins before it starts, as an exec probe runs in the
 * container's cgroup.
 *
 * @module
 */
import type { KubeletPod } from "../testing/kubelet.ts";

/** Where `bench/` is mounted inside the sandbox, for the floors. */
export const BENCH_DIR = "/opt/log-probe-bench";
const METER = "/opt/log-probe-meter/rusage";
const HERE = new URL(".", import.meta.url).pathname;

/**
 * Builds the meter (`cc -static bench/rusage.c`) into `dir`; call once before
 * {@linkcode measure}.
 */
export async function buildMeter(dir: string): Promise<void> {
  const output = await new Deno.Command("cc", {
    args: ["-O2", "-static", "-o", `${dir}/rusage`, `${HERE}rusage.c`],
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`cc -static bench/rusage.c failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  meterBinary = `${dir}/rusage`;
}
let meterBinary = "";

/** What one run cost, measured inside the sandbox. */
export interface Cost {
  wallMs: number;
  /** User + system CPU time of the command and every process it waited for. */
  cpuMs: number;
  userMs: number;
  sysMs: number;
  /** The largest resident set of any one of those processes. */
  peakRssMiB: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode measure}. */
export interface MeasureOptions {
  /** Extra "SOURCE TARGET ro|rw" mounts. */
  mounts?: string[];
  /** Environment variables added to the container's. */
  env?: Record<string, string>;
  /** What the container's image holds (see `testing/kubelet.ts`): `empty` by default. */
  image?: "empty" | "host";
  /** A `cgroup.procs` file the sandbox joins before it starts. */
  cgroup?: string;
  /** Seconds to sleep inside the sandbox before the clock starts (lets a CFS quota refill). */
  settle?: number;
}

/**
 * Runs `argv` in `pod`'s sandbox and measures it.
 *
 * @example
 * ```ts ignore
 * const cost = await measure(pod, pod.probeCommand);
 * console.log(cost.wallMs, cost.cpuMs, cost.peakRssMiB);
 * ```
 */
export async function measure(
  pod: KubeletPod,
  argv: string[],
  options: MeasureOptions = {},
): Promise<Cost> {
  if (!meterBinary) throw new Error("Call buildMeter first");
  const meter = [METER, String(options.settle ?? 0)];
  const output = await pod.exec([...meter, ...argv], {
    mounts: [`${HERE} ${BENCH_DIR} ro`, `${meterBinary} ${METER} ro`, ...options.mounts ?? []],
    env: options.env,
    image: options.image,
    wrapper: options.cgroup ? ["sh", "-c", `echo $$ > ${options.cgroup} && exec "$@"`, "sh"] : [],
  });
  const stderr = output.stderr.trimEnd();
  const last = stderr.lastIndexOf("\n");
  let cost;
  try {
    cost = JSON.parse(stderr.slice(last + 1));
  } catch {
    throw new Error(`The sandbox failed with exit code ${output.code}: ${stderr}`);
  }
  return {
    wallMs: cost.wallMs,
    userMs: cost.userMs,
    sysMs: cost.sysMs,
    cpuMs: cost.userMs + cost.sysMs,
    peakRssMiB: cost.maxRssKiB / 1024,
    code: cost.code,
    stdout: output.stdout,
    stderr: stderr.slice(0, Math.max(0, last)),
  };
}
