/**
 * The README's install, verify, upgrade and uninstall commands, run as written
 * as far as no cluster is needed: the kustomizations it has you write are
 * rendered, `doctor` runs in the kubelet-like sandbox against the stand-in
 * API server, and the names the other commands give are checked against the
 * rendered objects.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { commandOutput } from "../testing/cluster.ts";
import {
  canSandbox,
  hasKubectl,
  KubeletPod,
  NO_KUBECTL,
  NO_SANDBOX,
  only,
  render,
  ROOT,
} from "../testing/kubelet.ts";

const README = await Deno.readTextFile(`${ROOT}README.md`);

/** The README's section `title` (a `##` heading), up to the next one. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README section ${title}`);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The code blocks of `text` in `language`, backslash-continued lines joined. */
function blocks(text: string, language: string): string[] {
  return [...text.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))]
    .map((match) => match[1].replaceAll("\\\n", " "));
}

/** The shell commands of a section, one per line, comments dropped. */
function commands(title: string): string[][] {
  return blocks(section(title), "sh").flatMap((block) => block.split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim()).filter((line) => line !== "")
    .map((line) => line.split(/\s+/));
}

Deno.test({
  name:
    `the README's install renders what examples/deployment renders: release, copied container.yaml, component${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const install = commands("Install");
    assert.deepEqual(install, [
      ["kubectl", "apply", "-n", "shop", "-k", "log-probe"],
      ["cp", "log-probe/components/log-probe/container.yaml", "my-worker/log-probe.yaml"],
      ["kubectl", "apply", "-n", "shop", "-k", "my-worker"],
    ]);
    const [kustomization] = blocks(section("Install"), "yaml");
    const dir = await Deno.makeTempDir({ prefix: "log-probe-readme-" });
    try {
      // `log-probe` is a checkout of this repository; `my-worker` holds the example worker.
      await commandOutput("ln", ["-s", ROOT, `${dir}/log-probe`]);
      await Deno.mkdir(`${dir}/my-worker`);
      await Deno.copyFile(
        `${ROOT}examples/deployment/worker.yaml`,
        `${dir}/my-worker/deployment.yaml`,
      );
      await Deno.copyFile(
        `${ROOT}components/log-probe/container.yaml`,
        `${dir}/my-worker/log-probe.yaml`,
      );
      await Deno.writeTextFile(`${dir}/my-worker/kustomization.yaml`, kustomization);
      const rendered = await commandOutput("kubectl", ["kustomize", `${dir}/my-worker`]);
      const manifests = rendered.split(/^---$/m).map((doc) => parseYaml(doc));
      assert.deepEqual(manifests, await render("examples/deployment"));
      const release = await commandOutput("kubectl", ["kustomize", `${dir}/log-probe`]);
      assert.deepEqual(
        release.split(/^---$/m).map((doc) => parseYaml(doc).metadata.name),
        ["log-probe", only(await render("."), "ConfigMap").metadata.name],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `the README's doctor command passes in the example's pod, every line a check mark${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    const [exec] = commands("Verify");
    assert.deepEqual(exec.slice(0, 8), [
      "kubectl",
      "exec",
      "-n",
      "shop",
      "deploy/worker",
      "-c",
      "worker",
      "--",
    ]);
    const argv = exec.slice(8);
    const pod = await KubeletPod.create("examples/deployment");
    try {
      // doctor is the probe with its own subcommand: the same Deno flags and probe flags.
      const probe = pod.probeCommand;
      const script = probe.indexOf("/opt/log-probe/release/probe.ts");
      assert.deepEqual(argv.slice(0, script + 1), probe.slice(0, script + 1));
      assert.deepEqual(argv.slice(script + 2), probe.slice(script + 1));
      assert.equal(argv[script + 1], "doctor");
      pod.log("processed job 1");
      const run = await pod.exec(argv, { virtualClock: true });
      assert.equal(run.stderr, "");
      const lines = run.stdout.trimEnd().split("\n");
      assert.ok(lines.length >= 5, run.stdout);
      assert.ok(lines.every((line) => line.startsWith("✓")), run.stdout);
      assert.equal(run.code, 0);
    } finally {
      await pod.close();
    }
  },
});

Deno.test({
  name: `the README's upgrade and uninstall commands name what the manifests create${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const upgrade = commands("Upgrade");
    const release = only(await render("."), "ConfigMap");
    const workload = await render("examples/deployment");
    // The listing's JSONPath, on a pod made from the example's template.
    assert.ok(upgrade.some((c) => c.slice(0, 6).join(" ") === "kubectl get pods -n shop -o"));
    const [, list] = /-o jsonpath='([^']*)'/.exec(section("Upgrade"))!;
    assert.ok(list.startsWith("{range .items[*]}") && list.endsWith("{end}"), list);
    const jsonpath = list.slice("{range .items[*]}".length, -"{end}".length);
    const dir = await Deno.makeTempDir({ prefix: "log-probe-readme-" });
    try {
      const template = only(workload, "Deployment").spec.template;
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "worker-1" }, ...template };
      pod.metadata = { name: "worker-1" };
      await Deno.writeTextFile(`${dir}/pod.json`, JSON.stringify(pod));
      const listed = await commandOutput("kubectl", [
        "patch",
        "--local",
        "-f",
        `${dir}/pod.json`,
        "--type",
        "merge",
        "-p",
        "{}",
        "-o",
        `jsonpath=${jsonpath}`,
      ]);
      assert.equal(listed, `worker-1\t${release.metadata.name}\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const uninstall = commands("Uninstall");
    // The workload's binding, by label from its own kustomization: whatever its name became.
    const selector = "app.kubernetes.io/name=log-probe";
    assert.deepEqual(uninstall[0], [
      "kubectl",
      "delete",
      "-n",
      "shop",
      "-k",
      "my-worker",
      "-l",
      selector,
    ]);
    const [key, wanted] = selector.split("=");
    assert.deepEqual(
      workload.filter((m) => m.metadata.labels?.[key] === wanted).map((m) => m.kind),
      ["RoleBinding"],
      "the label selects the binding and nothing else of the workload's",
    );
    const byLabel = uninstall.find((c) => c.includes("-l"))!;
    const [label, value] = byLabel[byLabel.indexOf("-l") + 1].split("=");
    assert.equal(release.metadata.labels[label], value, "old releases carry the label too");
    assert.ok(uninstall.some((c) => c.join(" ") === "kubectl delete -n shop -k log-probe"));
  },
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 -]/g, "").replaceAll(" ", "-");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(`${ROOT}${path}`).then(() => true, () => false);
}

Deno.test("every file, folder, anchor and deno task the README names exists in this checkout", async () => {
  const anchors = [...README.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]));
  const missing: string[] = [];
  for (const [, target] of README.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^https?:/.test(target)) continue;
    const [path, anchor] = target.split("#");
    if (path && !(await exists(path))) missing.push(target);
    if (!path && !anchors.includes(anchor)) missing.push(target);
  }
  // Paths in prose and commands, `log-probe/` being the reader's checkout of this repository.
  const paths = README.matchAll(
    /(?:^|[\s`(])(?:\.\/)?(?:log-probe\/)?((?:components|examples|manifests|helm|docs|bench|testing|tools)\/[\w./-]*\w)/gm,
  );
  let checked = 0;
  for (const [, path] of paths) {
    if (!(await exists(path))) missing.push(path);
    checked++;
  }
  assert.ok(checked > 20, `${checked} paths: the pattern still finds them`);
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks);
  for (const [, task] of README.matchAll(/deno task (\w+)/g)) {
    if (!tasks.includes(task)) missing.push(`deno task ${task}`);
  }
  assert.deepEqual(missing, []);
});

Deno.test("every git tag or commit the README pins exists in this clone", async () => {
  const git = async (...args: string[]) => {
    const output = await new Deno.Command("env", { args: ["git", "-C", ROOT, ...args] }).output();
    return { ok: output.success, text: new TextDecoder().decode(output.stdout).trim() };
  };
  const refs = [...README.matchAll(/\?ref=([^\s`)]+)/g)].map((m) => m[1]);
  assert.ok(refs.length > 0, "the README shows how to pin a remote component");
  // "the tag v1.2.3", "tag `v1.2.3`": this repository's tags, not other projects' versions.
  const tags = [...README.matchAll(/\btag `?(v\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  const pinned = [...refs.filter((ref) => !/^<.*>$/.test(ref)), ...tags];
  for (const ref of pinned) {
    assert.ok((await git("rev-parse", "--verify", "--quiet", `${ref}^{commit}`)).ok, ref);
  }
  // No tag marks a release yet: the README pins commits and names the release by VERSION.
  const version = (await Deno.readTextFile(`${ROOT}VERSION`)).trim();
  assert.ok(README.includes(`names the release, ${version}`), "the README names VERSION's release");
});

Deno.test({
  name:
    `the README's table of what log-probe adds names every volume, container, mount, variable and path it adds${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const table = section("Install").split("### What it adds to your pod")[1].split("\n### ")[0];
    const spec = only(await render("examples/deployment"), "Deployment").spec.template.spec;
    const worker = spec.containers[0];
    const names = [
      ...spec.volumes.map((v: { name: string }) => v.name),
      ...spec.initContainers.map((c: { name: string }) => c.name),
      ...worker.volumeMounts.map((m: { mountPath: string }) => m.mountPath),
      ...worker.env.map((e: { name: string }) => e.name),
      worker.terminationMessagePath,
      ...worker.livenessProbe.exec.command.filter((arg: string) => /^[A-Z_]+=/.test(arg)),
    ];
    for (const name of names) assert.ok(table.includes(`\`${name}`), name);
  },
});

Deno.test({
  name:
    `the release's ConfigMap carries the Argo CD and Flux annotations the README's GitOps section names${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const annotations = only(await render("."), "ConfigMap").metadata.annotations;
    const named = [
      ...section("GitOps (Argo CD and Flux)").matchAll(/`([\w.-]+\/[\w-]+): ([\w=-]+)`/g),
    ]
      .map(([, key, value]) => [key, value]);
    assert.deepEqual(
      named.map(([key]) => key).sort(),
      [
        "argocd.argoproj.io/compare-options",
        "argocd.argoproj.io/sync-options",
        "kustomize.toolkit.fluxcd.io/prune",
      ],
    );
    for (const [key, value] of named) assert.equal(annotations[key], value, key);
  },
});
