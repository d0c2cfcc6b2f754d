/**
 * CPU limits for the benchmark: a parent cgroup with one child per quota, the
 * way the kubelet turns `limits.cpu` into a CFS quota (period 100 ms; 100m →
 * 10 ms per period). cgroup v2 (`cpu.max`) where the cpu controller is on the
 * unified hierarchy, else cgroup v1 (`cpu.cfs_quota_us` in the cpu hierarchy).
 * Files under /sys are written by `sh`: Deno grants /sys only to `--allow-all`.
 *
 * @module
 */

const V2 = "/sys/fs/cgroup";
const V1 = "/sys/fs/cgroup/cpu";
const PERIOD_US = 100_000;

async function sh(script: string): Promise<string> {
  const output = await new Deno.Command("sh", { args: ["-c", script], stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`${script}: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** A parent cgroup for the benchmark's quota children. */
export class CpuCgroups {
  readonly #dirs: string[] = [];

  private constructor(readonly version: "v1" | "v2", readonly root: string) {}

  /** Creates `name` at the root of the cpu hierarchy (needs root). */
  static async create(name: string): Promise<CpuCgroups> {
    const controllers = await sh(`cat ${V2}/cgroup.controllers 2>/dev/null || true`);
    const version = controllers.split(/\s+/).includes("cpu") ? "v2" : "v1";
    const root = version === "v2" ? `${V2}/${name}` : `${V1}/${name}`;
    const cgroups = new CpuCgroups(version, root);
    await sh(`mkdir ${root}`);
    cgroups.#dirs.push(root);
    if (version === "v2") await sh(`echo +cpu > ${root}/cgroup.subtree_control`);
    return cgroups;
  }

  /**
   * A child limited to `millicores` (0: no limit). Returns the `cgroup.procs`
   * file to write a process id to.
   */
  async child(name: string, millicores: number): Promise<string> {
    const dir = `${this.root}/${name}`;
    await sh(`mkdir ${dir}`);
    this.#dirs.unshift(dir);
    const quota = millicores ? Math.round(PERIOD_US * millicores / 1000) : 0;
    await sh(
      this.version === "v2"
        ? `echo '${quota || "max"} ${PERIOD_US}' > ${dir}/cpu.max`
        : `echo ${PERIOD_US} > ${dir}/cpu.cfs_period_us && echo ${
          quota || -1
        } > ${dir}/cpu.cfs_quota_us`,
    );
    return `${dir}/cgroup.procs`;
  }

  /** Throttling so far in the child `name`: periods, throttled periods, throttled ms. */
  async throttled(name: string): Promise<{ periods: number; throttled: number; ms: number }> {
    const stat = await sh(`cat ${this.root}/${name}/cpu.stat`);
    const field = (key: string) => Number(stat.match(new RegExp(`^${key} (\\d+)`, "m"))?.[1] ?? 0);
    return {
      periods: field("nr_periods"),
      throttled: field("nr_throttled"),
      ms: this.version === "v2" ? field("throttled_usec") / 1e3 : field("throttled_time") / 1e6,
    };
  }

  /** Removes every cgroup made here (they are empty once their runs ended). */
  async remove(): Promise<void> {
    for (const dir of this.#dirs.splice(0)) await sh(`rmdir ${dir}`).catch(() => {});
  }
}
