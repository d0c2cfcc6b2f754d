/**
 * The Helm post-renderer (`helm/log-probe/post-render.sh`, a Helm 4 plugin by
 * `helm/log-probe/plugin.yaml`) on two charts of `manifests/testdata/helm/`: one
 * worker Deployment with an httpGet liveness probe, and several workloads (a
 * Deployment with a sidecar listed first, a StatefulSet, a DaemonSet, a CronJob)
 * with probes of their own. The script runs on the charts' `helm template`
 * output kept beside them (`*.rendered.yaml`), so these tests need no Helm;
 * with `helm` installed, the kept output is checked against Helm's and the
 * plugin runs through `helm template --post-renderer`.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { hasKubectl, type Manifest, NO_KUBECTL, only, ROOT } from "../testing/kubelet.ts";

const SCRIPT = `${ROOT}helm/log-probe/post-render.sh`;
const CHARTS = `${ROOT}manifests/testdata/helm`;

/** `helm` on the PATH, else where `go install` puts it; "" when neither runs. */
async function findHelm(): Promise<string> {
  for (const helm of ["helm", `${Deno.env.get("HOME")}/go/bin/helm`]) {
    const run = await new Deno.Command("env", {
      args: [helm, "version", "--short"],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => ({ success: false }));
    if (run.success) return helm;
  }
  return "";
}

const HELM = await findHelm();
const NO_HELM = HELM
  ? NO_KUBECTL
  : " (skipped: helm is not installed: no helm on the PATH or in ~/go/bin)";

/** Runs `command` through env(1) with `stdin`; its exit code and output. */
async function run(
  command: string[],
  stdin = "",
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("env", {
    args: [...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...command],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

function parse(text: string): Manifest[] {
  return parseAllDocuments(text).map((doc) => doc.toJS()).filter((m) => m);
}

function find(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && m.metadata.name === name);
  assert.equal(found.length, 1, `${kind}/${name}`);
  return found[0];
}

/** The post-renderer on a chart's kept `helm template` output. */
async function postRender(chart: string, ...args: string[]) {
  const rendered = await Deno.readTextFile(`${CHARTS}/${chart}.rendered.yaml`);
  return { input: parse(rendered), ...await run(["sh", SCRIPT, ...args], rendered) };
}

/**
 * What the kustomize component of `dir` (e.g. `components/log-probe`) makes of
 * `workload`, with a copy of its container.yaml naming `container`, the
 * containers in `before` listed first, as the README has you write it.
 */
async function viaComponent(
  dir: string,
  workload: Manifest,
  container: string,
  before: string[] = [],
): Promise<Manifest[]> {
  const tmp = await Deno.makeTempDir({ prefix: "log-probe-helm-" });
  try {
    const copy = (await Deno.readTextFile(`${ROOT}${dir}/container.yaml`))
      .replace("name: worker # ① your workload", `name: ${workload.metadata.name}`)
      .replace(
        /^( *)- name: worker # ② your container$/m,
        (_, indent) => [...before, container].map((name) => `${indent}- name: ${name}`).join("\n"),
      )
      .replace("--container=worker", `--container=${container}`);
    await Deno.writeTextFile(`${tmp}/log-probe.yaml`, copy);
    await Deno.writeTextFile(`${tmp}/workload.yaml`, JSON.stringify(workload));
    const root = "../".repeat(tmp.split("/").length - 1) + ROOT.slice(1);
    await Deno.writeTextFile(
      `${tmp}/kustomization.yaml`,
      `resources: [workload.yaml]\ncomponents: [${root}${dir}]\npatches: [{ path: log-probe.yaml }]\n`,
    );
    const output = await run(["kubectl", "kustomize", tmp]);
    assert.equal(output.code, 0, output.stderr);
    return parse(output.stdout);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test({
  name:
    `the post-renderer on a chart of one worker: the component's result, the chart's httpGet liveness probe replaced, its readinessProbe kept${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const { input, code, stdout, stderr } = await postRender(
      "one-worker",
      "Deployment/shop-worker=worker",
    );
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    const output = parse(stdout);
    const before = find(input, "Deployment", "shop-worker");
    const after = find(output, "Deployment", "shop-worker");
    const [worker] = after.spec.template.spec.containers;
    assert.equal(worker.livenessProbe.httpGet, undefined, "the chart's handler is gone");
    assert.ok(worker.livenessProbe.exec.command.includes("--container=worker"));
    assert.equal(worker.livenessProbe.periodSeconds, 60, "the chart's timings are gone too");
    assert.deepEqual(worker.readinessProbe, before.spec.template.spec.containers[0].readinessProbe);
    // The same as the Deployment component with a copy of container.yaml.
    const component = await viaComponent("components/log-probe", before, "worker");
    assert.deepEqual(after, only(component, "Deployment"));
    assert.deepEqual(find(output, "RoleBinding", "log-probe-shop-worker"), {
      ...only(component, "RoleBinding"),
      metadata: { ...only(component, "RoleBinding").metadata, name: "log-probe-shop-worker" },
    });
    assert.deepEqual(find(output, "ServiceAccount", "shop-worker"), input[0]);
    assert.equal(output.length, input.length + 1, "one RoleBinding more, nothing else");
  },
});

Deno.test({
  name:
    `the post-renderer on a chart of several workloads: each named one as its kind's component makes it, in place, one RoleBinding each${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const named: Array<[string, string, string, string[], string]> = [
      ["Deployment", "shop-dispatcher", "dispatcher", ["proxy"], "components/log-probe"],
      ["StatefulSet", "shop-consumer", "consumer", [], "components/log-probe-statefulset"],
      ["DaemonSet", "shop-shipper", "shipper", [], "components/log-probe-daemonset"],
      ["CronJob", "shop-nightly", "report", [], "components/log-probe-cronjob"],
    ];
    const args = named.map(([kind, name, container, before]) =>
      `${kind}/${name}=${[...before, container].join(",")}`
    );
    const { input, code, stdout, stderr } = await postRender("workers", ...args);
    assert.equal(code, 0, stderr);
    const output = parse(stdout);
    for (const [kind, name, container, before, dir] of named) {
      const component = await viaComponent(dir, find(input, kind, name), container, before);
      assert.deepEqual(find(output, kind, name), only(component, kind), `${kind}/${name}`);
      const binding = find(output, "RoleBinding", `log-probe-${name}`);
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "shop-workers" }]);
      const spec = kind === "CronJob"
        ? find(output, kind, name).spec.jobTemplate.spec.template.spec
        : find(output, kind, name).spec.template.spec;
      const probes = spec.containers.filter((c: Manifest) => c.livenessProbe);
      assert.deepEqual(probes.map((c: Manifest) => c.name), [container], `${kind}/${name}`);
      assert.deepEqual(spec.containers.map((c: Manifest) => c.name), [...before, container]);
    }
    for (const unnamed of ["ServiceAccount", "ConfigMap"]) {
      const [was] = input.filter((m) => m.kind === unnamed);
      assert.deepEqual(find(output, unnamed, was.metadata.name), was, unnamed);
    }
    assert.equal(output.length, input.length + named.length);
  },
});

Deno.test({
  name:
    `the post-renderer stops with a line that names the fix: no such workload, the default account, a bad argument${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const cases: Array<[string, string[], RegExp]> = [
      ["no arguments", [], /name a workload: KIND\/NAME=CONTAINER/],
      ["a kind it does not know", ["ReplicaSet/shop-worker=worker"], /KIND must be Deployment/],
      ["no container", ["Deployment/shop-worker"], /write KIND\/NAME=CONTAINER/],
      ["an invalid name", ["Deployment/Shop=worker"], /invalid name Shop/],
      ["a workload not in the chart", ["Deployment/shop-wrker=worker"], /nothing selected/],
    ];
    for (const [what, args, message] of cases) {
      const result = await postRender("one-worker", ...args);
      assert.equal(result.code, 1, what);
      assert.equal(result.stdout, "", what);
      assert.match(result.stderr, /^log-probe post-renderer: /, what);
      assert.match(result.stderr, message, what);
    }
    // A chart whose workload runs as the namespace's default account, named or not.
    const chart = await Deno.readTextFile(`${CHARTS}/one-worker.rendered.yaml`);
    for (
      const [what, text] of [
        ["no serviceAccountName", chart.replace("      serviceAccountName: shop-worker\n", "")],
        ["serviceAccountName: default", chart.replace("Name: shop-worker\n", "Name: default\n")],
      ]
    ) {
      assert.notEqual(text, chart, what);
      const result = await run(["sh", SCRIPT, "Deployment/shop-worker=worker"], text);
      assert.equal(result.code, 1, what);
      assert.match(result.stderr, /serviceAccountName/, what);
    }
  },
});

Deno.test({
  name:
    `helm template of each test chart is its kept rendering, and Helm 4 runs the post-renderer as the plugin log-probe${NO_HELM}`,
  ignore: !HELM || !hasKubectl,
  async fn() {
    const home = await Deno.makeTempDir({ prefix: "log-probe-helm-home-" });
    // Helm's own folders, so the user's plugins and caches stay untouched.
    const env = {
      HELM_DATA_HOME: `${home}/data`,
      HELM_CONFIG_HOME: `${home}/config`,
      HELM_CACHE_HOME: `${home}/cache`,
    };
    try {
      for (const chart of ["one-worker", "workers"]) {
        const helm = await run([HELM, "template", "shop", `${CHARTS}/${chart}`], "", env);
        assert.equal(helm.code, 0, helm.stderr);
        assert.equal(helm.stdout, await Deno.readTextFile(`${CHARTS}/${chart}.rendered.yaml`));
      }
      const install = await run([HELM, "plugin", "install", `${ROOT}helm/log-probe`], "", env);
      assert.equal(install.code, 0, install.stderr);
      const args = ["Deployment/shop-worker=worker"];
      const viaHelm = await run(
        [
          HELM,
          "template",
          "shop",
          `${CHARTS}/one-worker`,
          "--post-renderer",
          "log-probe",
          ...args.flatMap((arg) => ["--post-renderer-args", arg]),
        ],
        "",
        env,
      );
      assert.equal(viaHelm.code, 0, viaHelm.stderr);
      const direct = await postRender("one-worker", ...args);
      assert.deepEqual(parse(viaHelm.stdout), parse(direct.stdout));
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test("the Helm plugin is named log-probe, runs post-render.sh, and carries the release's version", async () => {
  const plugin = parse(await Deno.readTextFile(`${ROOT}helm/log-probe/plugin.yaml`))[0];
  assert.equal(plugin.type, "postrenderer/v1");
  assert.equal(plugin.name, "log-probe");
  assert.equal(plugin.version, (await Deno.readTextFile(`${ROOT}VERSION`)).trim());
  assert.deepEqual(plugin.runtimeConfig.platformCommand, [
    { command: "${HELM_PLUGIN_DIR}/post-render.sh" },
  ]);
  assert.ok((await Deno.stat(SCRIPT)).mode! & 0o111, "post-render.sh is executable");
});
