/**
 * Whole container lives on the pure decision, with the kubelet around it: a check every
 * period, failures in a row counted (killed checks included), a restart at failureThreshold.
 * The same functions the live check uses (`recall`, `decide`, `nextCounter`); used by
 * testing/rule_test.ts.
 *
 * @module
 */
import {
  decide,
  type DecisionOptions,
  type Evidence,
  freshCounter,
  limitOf,
  nextCounter,
  readFrom,
  recall,
} from "../probe.ts";

/** A small seeded generator (mulberry32): the same seed, the same lives. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What happens at one of the kubelet's checks. */
export type CheckKind = "answer" | "lost" | "error" | "killed";

/** One container life: its output (seconds after its start), and what each check meets. */
export interface Life {
  outputs: number[];
  /** Seconds after the start of the kubelet's first check (initialDelaySeconds and its offset). */
  firstCheck: number;
  /** The kubelet's checks until this time (seconds). */
  horizon: number;
  /** What check k meets. */
  check: (k: number) => CheckKind;
  /** The runtime rotates the log after check k (only after one that answered). */
  rotateAfter?: (k: number) => boolean;
}

/** What the kubelet did over a life. */
export interface Lived {
  /** When the kubelet restarted the container (seconds), if it did. */
  restartAt?: number;
  /** The newest output before the restart (or before the horizon), or 0 for the start. */
  lastOutput: number;
  /** The kubelet's longest run of failures (killed checks included). */
  longestRun: number;
  /** The probe's longest run of its own non-zero exits. */
  ownRun: number;
  /** Blind checks that passed where they would have made the kubelet's last failure. */
  passes: number;
  checks: number;
}

/** Lives `life` with `options` (periodSeconds = options.period, --period given). */
export function live(life: Life, options: DecisionOptions): Lived {
  const period = options.period;
  let counter = freshCounter("life", 0);
  let visibleFrom = -Infinity;
  let failures = 0;
  let own = 0;
  let longestRun = 0;
  let ownRun = 0;
  let passes = 0;
  let k = 0;
  let t = life.firstCheck;
  for (; t <= life.horizon; t += period, k++) {
    const kind = life.check(k);
    if (kind === "killed") {
      failures++;
      own = 0;
    } else {
      const memory = recall(counter, t * 1000, { ...options, periodGiven: true });
      const from = readFrom(memory, limitOf(options), false) / 1000;
      const evidence = evidenceAt(life, kind, t, Math.max(visibleFrom, from));
      const outcome = decide(evidence, memory, options);
      counter = nextCounter(
        counter,
        outcome,
        memory,
        evidence.kind === "seen" ? t * 1000 : undefined,
      );
      failures = outcome.code ? failures + 1 : 0;
      if (/ never makes failure \d+ in a row/.test(outcome.message)) passes++;
      own = outcome.code ? own + 1 : 0;
      if (kind === "answer" && life.rotateAfter?.(k)) visibleFrom = t;
    }
    longestRun = Math.max(longestRun, failures);
    ownRun = Math.max(ownRun, own);
    if (failures >= options.failureThreshold) break;
  }
  const restartAt = failures >= options.failureThreshold ? t : undefined;
  const end = restartAt ?? life.horizon;
  const lastOutput = life.outputs.filter((o) => o <= end).at(-1) ?? 0;
  return { restartAt, lastOutput, longestRun, ownRun, passes, checks: k + 1 };
}

/** What a check at `t` sees: the newest line after `from` (rotation, the kubelet's since). */
function evidenceAt(life: Life, kind: CheckKind, t: number, from: number): Evidence {
  if (kind === "lost") return { kind: "blind", why: "API server answered 503" };
  if (kind === "error") return { kind: "blind", why: "unauthorized", error: true };
  const newest = life.outputs.filter((o) => o <= t && o > from).at(-1);
  return newest === undefined ? { kind: "seen" } : { kind: "seen", at: newest * 1000 };
}
