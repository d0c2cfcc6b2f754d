/**
 * How late blind checks make a hung container's restart, on the pure decision (testing/lives.ts:
 * the check's own `recall`, `decide` and `nextCounter`, the kubelet around them), against
 * `plan`'s latest time: the figures docs/internals.md quotes. Deterministic (seeded, fixed clock
 * phases); about 20 s on one core.
 *
 *   deno run --allow-read bench/rhythms.ts
 *
 * @module
 */
import { type PlanOptions, restartAfter } from "../probe.ts";
import { type CheckKind, live, random } from "../testing/lives.ts";

const LINES = { match: [], ignore: [], tail: 300, limitBytes: 1_048_576, timeout: 5 };
const DEFAULTS: PlanOptions = {
  window: 60,
  growth: "triangular",
  period: 60,
  failureThreshold: 15,
};
/** A clock second far from 0, so that the coin meets real seconds. */
const CLOCK = 1_796_248_000;

interface Tally {
  lives: number;
  /** Restarted later than twice plan's latest time. */
  late: number;
  /** Not restarted within the horizon. */
  stuck: number;
  /** The slowest restart, in plan's latest times. */
  slowest: number;
}

/** A hung worker (its last line at `last`) whose checks meet `check`; the tally of its restart. */
function hung(
  tally: Tally,
  settings: PlanOptions,
  last: number,
  firstCheck: number,
  check: (k: number) => CheckKind,
): void {
  const { latest } = restartAfter(settings);
  const horizon = last + 30 * (settings.failureThreshold + 1) * settings.period + latest;
  const lived = live({ outputs: [last], firstCheck, horizon, check }, { ...settings, ...LINES });
  tally.lives++;
  if (lived.restartAt === undefined) return void tally.stuck++;
  const ratio = (lived.restartAt - last) / latest;
  if (ratio > 2) tally.late++;
  tally.slowest = Math.max(tally.slowest, Math.round(ratio * 100) / 100);
}

const tally = (): Tally => ({ lives: 0, late: 0, stuck: 0, slowest: 0 });

// The defaults, a 401 on every second to fifth check (one API server replica of several with
// stale keys), at 3,000 clock phases each.
const defaults: Record<string, Tally> = {};
for (const every of [2, 3, 4, 5]) {
  const t = defaults[`401 every ${every}`] = tally();
  for (let i = 0; i < 3000; i++) {
    const base = CLOCK + i * 37;
    hung(t, DEFAULTS, base, base + 30, (k) => (k + i) % every === 0 ? "error" : "answer");
  }
}

// Short settings (--window 10s --period 10s), thresholds 3 to 15, blind on one to three beats
// of rhythms of 2 to 7 checks, at every phase of the rhythm and 40 clock phases.
const rhythms: Record<string, Tally> = {};
const beats: Array<[number, number[]]> = [
  [2, [0]],
  [3, [0]],
  [4, [0]],
  [5, [0]],
  [6, [0]],
  [5, [0, 1]],
  [5, [0, 2]],
  [7, [0, 3]],
  [7, [0, 1, 3]],
];
for (const failureThreshold of [3, 4, 5, 6, 15]) {
  const settings: PlanOptions = { window: 10, growth: "triangular", period: 10, failureThreshold };
  for (const [every, blind] of beats) {
    const t = rhythms[`F${failureThreshold}, blind ${blind.join("+")} of ${every}`] = tally();
    for (let phase = 0; phase < every; phase++) {
      for (let clock = 0; clock < 40; clock++) {
        const base = CLOCK + clock * 7919;
        hung(
          t,
          settings,
          base + 5,
          base + 10,
          (k) => blind.includes((k + phase) % every) ? "lost" : "answer",
        );
      }
    }
  }
}

// The defaults, a share of the answers lost at random, 100,000 lives each.
const shares: Record<string, Tally> = {};
for (const [share, seed] of [[1 / 2, 7], [1 / 3, 8]]) {
  const rand = random(seed);
  const t = shares[`${Math.round(share * 100)} % lost`] = tally();
  for (let i = 0; i < 100_000; i++) {
    const last = Math.floor(rand() * 600);
    const lost: boolean[] = [];
    hung(t, DEFAULTS, last, 120 + Math.floor(rand() * 60), (k) => {
      while (lost.length <= k) lost.push(rand() < share);
      return lost[k] ? "lost" : "answer";
    });
  }
}

const sum = (tallies: Record<string, Tally>) =>
  Object.values(tallies).reduce((a, b) => ({
    lives: a.lives + b.lives,
    late: a.late + b.late,
    stuck: a.stuck + b.stuck,
    slowest: Math.max(a.slowest, b.slowest),
  }), tally());
const lateOnes = Object.entries(rhythms).filter(([, t]) => t.late || t.stuck);
console.log(JSON.stringify(
  {
    defaults,
    rhythms: { all: sum(rhythms), late: Object.fromEntries(lateOnes) },
    shares,
  },
  null,
  2,
));
