/**
 * Registration benchmark for issue #16: `npm run bench:register [-- options]`.
 *
 * 1. Pairs (./pairs.ts): from the shared TotalSegmentator CT (122×101×30, 3 mm) and its labels, with a
 *    seed (default 16): a pure affine, a smooth deformable warp, both combined, and a modality change
 *    (the combined warp, moving intensities through a non-monotonic MR-like table). Each pair's true
 *    transform is known exactly; the bench checks every pair by sampling the moving image back
 *    through it before anything runs.
 * 2. elastix (./elastix.ts): found on PATH or installed from Debian (`apt-get install elastix`, as
 *    root), affine + B-spline with Mattes mutual information; labels and the deformation field come
 *    from transformix. Wall time and peak RSS of both processes.
 * 3. Ours (./registrar.ts, `METHODS`): every method in a child process of its own (wall time of the
 *    registrar call, peak RSS of the process): `mind` (the engine's MIND-SSC path, judged on the
 *    issue's goals), `curia` and `hybrid` (Curia token features computed in-process with the default
 *    demo bundle — random ViT weights — reported separately with their embedding time), and `identity`
 *    (u = 0, the unregistered overlap).
 * 4. Per pair, for the truth (the true field), elastix and ours: Dice per organ (spleen, kidneys per
 *    side and merged, liver, stomach; warped moving labels vs fixed labels, whole fixed grid), mean
 *    end-point error against the true field inside the organs (fixed organ voxels whose true position
 *    lies inside the moving grid), folding % and SDlogJ (interior voxels), wall time, peak RSS; then
 *    PASS/FAIL per goal of the issue for the judged (MIND) method, and a summary.
 *
 * Options: `--seed N`, `--pairs affine,deformable,combined,modality`, `--methods id,…`, `--no-elastix`,
 * `--keep DIR` (write pairs and outputs there and keep them; default: a temp dir, removed),
 * `--json FILE`. About 3 min on the 2-core dev VM (elastix ~35 s a pair).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuBudget, sharedDir } from '@curia/tensors';

import { voxelCount, type Grid, type GridField } from '../field.js';
import { describeElastixParameters, ensureElastix, elastixParameters, runElastix } from './elastix.js';
import { endPointError, jacobianStats, labelMask } from './metrics-field.js';
import { DICE_ROWS, organDice } from './metrics-labels.js';
import {
  BAND_LIMIT_SIGMA_MM,
  loadStudy,
  makePairs,
  ORGANS,
  PAIR_KINDS,
  PAIR_PARAMS,
  roundTrip,
  SPLINE_DEGREE,
  writePair,
  type Pair,
  type PairDraws,
  type PairFiles,
  type PairKind,
  type RoundTrip,
} from './pairs.js';
import { METHODS, runMeasured, vmHwmBytes, type Method, type RegistrarOptions } from './registrar.js';
import { warpLabelsNearest, worldToVoxel } from './sampling.js';

/** The issue's goals. */
const GOALS = {
  /** Mean Dice (4 organs) ≥ elastix − 0.01 on every pair, ≥ elastix on the deformable ones. */
  diceTolerance: 0.01,
  foldingFraction: 0.001,
  sdLogJ: 0.2,
  /** Wall time ≤ 0.5× elastix's (elastix + transformix), MIND path. */
  timeRatio: 0.5,
  peakRssBytes: 2 * 1024 ** 3,
  /** |mean Dice(modality) − mean Dice(combined)| ≤ 0.02. */
  modalityDelta: 0.02,
  /** Band-limited round trip of every pair (the pair generator's own check). */
  roundTripCorrelation: 0.99,
} as const;
const DEFORMABLE: readonly PairKind[] = ['deformable', 'combined', 'modality'];
const DEFAULT_SEED = 16;

const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const fmt = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
const sec = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '–');
const mib = (b: number): string => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(0)} MiB` : '–');
const pct = (f: number): string => (Number.isFinite(f) ? `${(100 * f).toFixed(3)}%` : '–');
/** PASS / FAIL, or n/a where the goal needs elastix and the baseline was skipped. */
const verdict = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? 'PASS' : 'FAIL');

/** Everything measured for one method on one pair. */
interface Scores {
  readonly dice: Record<string, number>;
  readonly epeMm: number;
  readonly epeMaxMm: number;
  readonly foldingFraction: number;
  readonly sdLogJ: number;
  readonly minDet: number;
  /** The registration's wall time (elastix: elastix + transformix; ours: the registrar call). */
  readonly wallMs: number;
  readonly peakRssBytes: number;
  /** Stage or process times as reported (ms). */
  readonly timings: Record<string, number>;
}

/** Fixed organ voxels whose true moving position lies inside the moving grid (where EPE is measured). */
function epeMask(pair: Pair): Uint8Array {
  const organs = labelMask(
    pair.fixedLabels.data,
    ORGANS.map((o) => o.value),
  );
  const g = pair.fixed.grid;
  const n = voxelCount(g);
  const w2v = worldToVoxel(pair.moving.grid);
  const [X, Y, Z] = pair.moving.grid.dims;
  const u = pair.trueDisplacement.data;
  const a = g.affine;
  for (let k = 0, p = 0; k < g.dims[2]; k++)
    for (let j = 0; j < g.dims[1]; j++)
      for (let i = 0; i < g.dims[0]; i++, p++) {
        if (!organs[p]) continue;
        const x = a[0]! * i + a[1]! * j + a[2]! * k + a[3]! + u[p]!;
        const y = a[4]! * i + a[5]! * j + a[6]! * k + a[7]! + u[n + p]!;
        const z = a[8]! * i + a[9]! * j + a[10]! * k + a[11]! + u[2 * n + p]!;
        const fi = w2v[0]! * x + w2v[1]! * y + w2v[2]! * z + w2v[3]!;
        const fj = w2v[4]! * x + w2v[5]! * y + w2v[6]! * z + w2v[7]!;
        const fk = w2v[8]! * x + w2v[9]! * y + w2v[10]! * z + w2v[11]!;
        if (fi < 0 || fi > X - 1 || fj < 0 || fj > Y - 1 || fk < 0 || fk > Z - 1) organs[p] = 0;
      }
  return organs;
}

function score(
  pair: Pair,
  mask: Uint8Array,
  displacement: GridField,
  warpedLabels: Uint8Array,
  run: { wallMs: number; peakRssBytes: number; timings: Record<string, number> },
): Scores {
  const epe = endPointError(displacement, pair.trueDisplacement, mask);
  const jac = jacobianStats(displacement);
  return {
    dice: organDice(warpedLabels, pair.fixedLabels.data),
    epeMm: epe.mean,
    epeMaxMm: epe.max,
    foldingFraction: jac.foldingFraction,
    sdLogJ: jac.sdLogJ,
    minDet: jac.minDet,
    ...run,
  };
}

function sameGrid(a: Grid, b: Grid): boolean {
  return (
    a.dims.every((d, i) => d === b.dims[i]) && a.affine.every((v, i) => Math.abs(v - b.affine[i]!) < 1e-3)
  );
}

// ---------------------------------------------------------------------------------------------------------
// Ours, in a child process

interface ChildRequest {
  readonly pair: PairFiles;
  readonly opts: RegistrarOptions;
}

interface ChildResult {
  readonly grid: Grid;
  readonly timings: Record<string, number>;
  readonly setupMs: number;
  readonly wallMs: number;
  readonly vmHwmBytes: number;
}

/** The child: `register-bench.js --child <method> <request.json> <outDir>`. */
async function childMain(args: readonly string[]): Promise<void> {
  const [id, requestFile, outDir] = args;
  const method = METHODS.find((m) => m.id === id);
  if (!method || !requestFile || !outDir) throw new Error(`child: bad arguments ${args.join(' ')}`);
  const req = JSON.parse(await readFile(requestFile, 'utf8')) as ChildRequest;
  const t0 = performance.now();
  const registrar = await method.create();
  const t1 = performance.now();
  const r = await registrar(req.pair, req.opts);
  const wallMs = performance.now() - t1;
  if (r.displacement.channels !== 3)
    throw new Error(`${id}: the displacement has ${r.displacement.channels} channels`);
  const d = r.displacement.data;
  await writeFile(join(outDir, 'displacement.f32'), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  await writeFile(join(outDir, 'labels.u8'), r.warpedLabels);
  const result: ChildResult = {
    grid: r.displacement.grid,
    timings: { ...r.timings },
    setupMs: t1 - t0,
    wallMs,
    vmHwmBytes: await vmHwmBytes('self'),
  };
  await writeFile(join(outDir, 'result.json'), JSON.stringify(result));
}

async function runOurs(
  method: Method,
  files: PairFiles,
  opts: RegistrarOptions,
  outDir: string,
): Promise<{
  displacement: GridField;
  warpedLabels: Uint8Array;
  run: Record<string, number>;
  wallMs: number;
  peakRssBytes: number;
}> {
  await mkdir(outDir, { recursive: true });
  const requestFile = join(outDir, 'request.json');
  await writeFile(requestFile, JSON.stringify({ pair: files, opts } satisfies ChildRequest));
  const script = fileURLToPath(import.meta.url);
  const proc = await runMeasured(process.execPath, [script, '--child', method.id, requestFile, outDir]);
  if (proc.code !== 0)
    throw new Error(
      `${method.id} on ${files.name} exited with ${proc.code ?? proc.signal}:\n${proc.stderr.trim().split('\n').slice(-15).join('\n')}`,
    );
  const res = JSON.parse(await readFile(join(outDir, 'result.json'), 'utf8')) as ChildResult;
  const raw = await readFile(join(outDir, 'displacement.f32'));
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const warpedLabels = new Uint8Array(await readFile(join(outDir, 'labels.u8')));
  return {
    displacement: { grid: res.grid, channels: 3, data },
    warpedLabels,
    run: { ...res.timings, setup: res.setupMs, process: proc.wallMs },
    wallMs: res.wallMs,
    peakRssBytes: Math.max(proc.peakRssBytes, Number.isFinite(res.vmHwmBytes) ? res.vmHwmBytes : 0),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Printing

function printDraws(d: PairDraws): void {
  const a = d.affine;
  const v = (x: readonly number[], digits: number): string =>
    `(${x.map((y) => y.toFixed(digits)).join(', ')})`;
  out(
    `pairs: seed ${d.seed}; one grid for fixed and moving (the CT's, canonical LPS); moving = image ∘ T⁻¹ (Newton inverse), quintic B-spline (degree ${SPLINE_DEGREE}), labels nearest`,
  );
  out(
    `  affine about the grid centre ${v(a.centre, 1)} mm: rotation (L, P, S) ${v(a.rotationDeg, 2)}°, scale ${v(a.scale, 3)}, ` +
      `shear (xy, xz, yz) ${v(a.shear, 3)}, translation ${v(a.translationMm, 1)} mm (|t| ${Math.hypot(...a.translationMm).toFixed(1)} mm)`,
  );
  out(
    `  smooth warp: ${d.bumps.length} Gaussian bumps, σ ${d.bumps.map((b) => b.sigma.toFixed(0)).join('/')} mm, centred on random organ voxels, ` +
      `scaled to mean |d| ${d.bumpOrganMeanMm.toFixed(1)} mm over the organs (target ${PAIR_PARAMS.organMeanMm}), max ${d.bumpMaxMm.toFixed(1)} mm (cap ${PAIR_PARAMS.maxDisplacementMm}), min det(I + ∇d) ${d.bumpMinJacobian.toFixed(3)}${d.bumpShrinks ? ` after ${d.bumpShrinks} shrinks` : ''}`,
  );
}

function printCheck(p: Pair, rt: RoundTrip, truth: Scores): boolean {
  const ok = rt.bandLimitedCorrelation > GOALS.roundTripCorrelation && truth.foldingFraction === 0;
  const minLabel = Math.min(...Object.values(rt.labelDice));
  out(
    `  ${p.name.padEnd(10)} ${verdict(ok)}: max |T⁻¹ residual| ${p.inverseResidualMm.toExponential(1)} mm; moving(T(x)) vs fixed over ${rt.voxels} body voxels: ` +
      `corr ${fmt(rt.correlation, 4)} (CT as is), ${fmt(rt.bandLimitedCorrelation, 4)} band-limited (goal > ${GOALS.roundTripCorrelation}); ` +
      `controls T⁻¹(x) ${fmt(rt.wrongDirectionCorrelation, 3)}, x ${fmt(rt.identityCorrelation, 3)}; labels back through T: Dice ≥ ${fmt(minLabel)}; ` +
      `true field: folding ${pct(truth.foldingFraction)}, min det ${fmt(truth.minDet)}, SDlogJ ${fmt(truth.sdLogJ)}`,
  );
  return ok;
}

interface Column {
  readonly name: string;
  readonly s: Scores;
}

function printPairTable(p: Pair, cols: readonly Column[]): void {
  out();
  out(`pair '${p.name}' — ${p.description}`);
  const w = Math.max(12, ...cols.map((c) => c.name.length + 2));
  const head = `  ${''.padEnd(24)}${cols.map((c) => c.name.padStart(w)).join('')}`;
  out(head);
  const row = (label: string, f: (s: Scores) => string): void =>
    out(`  ${label.padEnd(24)}${cols.map((c) => f(c.s).padStart(w)).join('')}`);
  for (const r of DICE_ROWS)
    row(`Dice ${r.name}${r.values.length > 1 ? ' (merged)' : ''}`, (s) => fmt(s.dice[r.name]!));
  row('Dice mean (4 organs)', (s) => fmt(s.dice.mean!));
  row('EPE in organs, mean (mm)', (s) => fmt(s.epeMm, 2));
  row('EPE in organs, max (mm)', (s) => fmt(s.epeMaxMm, 1));
  row('folding', (s) => pct(s.foldingFraction));
  row('SDlogJ', (s) => fmt(s.sdLogJ));
  row('min det J', (s) => fmt(s.minDet));
  row('wall time', (s) => sec(s.wallMs));
  row('peak RSS', (s) => mib(s.peakRssBytes));
}

/** Goal verdicts; null where the goal compares with elastix and the baseline did not run. */
interface Judged {
  readonly dice: boolean | null;
  readonly epe: boolean | null;
  readonly folding: boolean;
  readonly sdLogJ: boolean;
  readonly time: boolean | null;
  readonly rss: boolean;
}

function judge(pair: PairKind, ours: Scores, elastix: Scores | null): Judged {
  const tol = DEFORMABLE.includes(pair) ? 0 : GOALS.diceTolerance;
  const e = elastix;
  return {
    dice: e && ours.dice.mean! >= e.dice.mean! - tol,
    epe: e && ours.epeMm <= e.epeMm,
    folding: ours.foldingFraction <= GOALS.foldingFraction,
    sdLogJ: ours.sdLogJ <= GOALS.sdLogJ,
    time: e && ours.wallMs <= GOALS.timeRatio * e.wallMs,
    rss: ours.peakRssBytes <= GOALS.peakRssBytes,
  };
}

function printGoals(pair: PairKind, m: Method, ours: Scores, elastix: Scores | null): Judged {
  const j = judge(pair, ours, elastix);
  const e = elastix;
  const tol = DEFORMABLE.includes(pair) ? 0 : GOALS.diceTolerance;
  const lower = e
    ? DICE_ROWS.filter((r) => ours.dice[r.name]! < e.dice[r.name]! - tol).map((r) => r.name)
    : [];
  out(`  goals, ${m.id}${m.placeholder ? ' (PLACEHOLDER)' : ''} vs elastix:`);
  out(
    `    ${verdict(j.dice)} Dice mean ${fmt(ours.dice.mean!)} ≥ elastix ${e ? fmt(e.dice.mean!) : '–'}${tol ? ` − ${tol}` : ''}` +
      (lower.length ? `  (per organ below: ${lower.join(', ')})` : ''),
  );
  out(`    ${verdict(j.epe)} EPE ${fmt(ours.epeMm, 2)} mm ≤ elastix ${e ? fmt(e.epeMm, 2) : '–'} mm`);
  out(`    ${verdict(j.folding)} folding ${pct(ours.foldingFraction)} ≤ ${pct(GOALS.foldingFraction)}`);
  out(`    ${verdict(j.sdLogJ)} SDlogJ ${fmt(ours.sdLogJ)} ≤ ${GOALS.sdLogJ}`);
  out(
    `    ${verdict(j.time)} wall ${sec(ours.wallMs)} ≤ ${GOALS.timeRatio} × elastix ${e ? sec(e.wallMs) : '–'}` +
      (e ? ` (×${fmt(ours.wallMs / e.wallMs, 2)})` : ''),
  );
  out(`    ${verdict(j.rss)} peak RSS ${mib(ours.peakRssBytes)} ≤ ${mib(GOALS.peakRssBytes)}`);
  return j;
}

function stageText(t: Record<string, number>): string {
  const e = Object.entries(t);
  return e.length ? e.map(([k, v]) => `${k} ${sec(v)}`).join(', ') : 'none reported';
}

// ---------------------------------------------------------------------------------------------------------

interface Args {
  readonly seed: number;
  readonly pairs: readonly PairKind[];
  readonly methods: readonly Method[];
  readonly elastix: boolean;
  readonly keep: string | undefined;
  readonly json: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const list = (name: string): string[] | undefined => value(name)?.split(',').filter(Boolean);
  const pairs = (list('--pairs') ?? [...PAIR_KINDS]) as PairKind[];
  for (const p of pairs)
    if (!PAIR_KINDS.includes(p)) throw new Error(`unknown pair '${p}' (${PAIR_KINDS.join(', ')})`);
  const ids = list('--methods') ?? METHODS.map((m) => m.id);
  const methods = ids.map((id) => {
    const m = METHODS.find((x) => x.id === id);
    if (!m) throw new Error(`unknown method '${id}' (${METHODS.map((x) => x.id).join(', ')})`);
    return m;
  });
  const seed = Number(value('--seed') ?? DEFAULT_SEED);
  if (!Number.isInteger(seed)) throw new Error('--seed needs an integer');
  return {
    seed,
    pairs,
    methods,
    elastix: !argv.includes('--no-elastix'),
    keep: value('--keep'),
    json: value('--json'),
  };
}

async function main(args: Args): Promise<number> {
  const shared = sharedDir();
  if (!shared) {
    process.stderr.write('register-bench needs ../shared (TotalSegmentator example CT); it is not present\n');
    return 2;
  }
  const t0 = performance.now();
  const threads = cpuBudget();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  out(
    `register-bench: node ${process.version}, ${cpus().length} × ${cpu}, CPU budget ${threads} (threads for elastix and ours), load average ${loadavg()[0]!.toFixed(2)}`,
  );
  const study = await loadStudy(join(shared, 'data', 'totalsegmentator'));
  const g = study.fixed.grid;
  out(
    `study: example_ct_sm + example_seg, ${g.dims.join('×')} voxels of 3 mm; organs ${ORGANS.map((o) => `${o.name} (${o.value})`).join(', ')}`,
  );
  const { pairs, draws } = makePairs(study.fixed, study.labels, args.seed, args.pairs);
  printDraws(draws);

  // The truth column and the pair check.
  out(
    `pair check (sampling moving through T_true must give back fixed; band-limited = the same with the CT low-passed by σ ${BAND_LIMIT_SIGMA_MM} mm first, which removes the loss any double resampling of a 3 mm CT has):`,
  );
  const masks = new Map<PairKind, Uint8Array>();
  const truth = new Map<PairKind, Scores>();
  let pairsOk = true;
  for (const p of pairs) {
    masks.set(p.name, epeMask(p));
    const s = score(
      p,
      masks.get(p.name)!,
      p.trueDisplacement,
      warpLabelsNearest(p.movingLabels, p.trueDisplacement),
      {
        wallMs: NaN,
        peakRssBytes: NaN,
        timings: {},
      },
    );
    truth.set(p.name, s);
    pairsOk = printCheck(p, roundTrip(p), s) && pairsOk;
  }
  if (!pairsOk) {
    out('FAIL: a pair does not reproduce its fixed image through its true transform; nothing else runs');
    return 1;
  }
  const zero = (p: Pair): GridField => ({
    ...p.trueDisplacement,
    data: new Float32Array(p.trueDisplacement.data.length),
  });
  out(
    `EPE is measured over fixed organ voxels whose true position lies inside the moving grid (${pairs
      .map((p) => {
        const m = masks.get(p.name)!;
        const u = endPointError(p.trueDisplacement, zero(p), m);
        return `${p.name}: ${u.voxels} voxels, true |u| mean ${fmt(u.mean, 1)} max ${fmt(u.max, 1)} mm`;
      })
      .join(
        '; ',
      )}); Dice over the whole fixed grid (the 'truth' column is the ceiling: the labels warped by the true field, nearest)`,
  );

  const work = args.keep ?? (await mkdtemp(join(tmpdir(), 'curia-regbench-')));
  out(`files: ${work}${args.keep ? ' (kept)' : ' (temporary, removed at the end; --keep DIR keeps them)'}`);
  const files = new Map<PairKind, PairFiles>();
  for (const p of pairs) files.set(p.name, await writePair(p, work));

  const report: Record<string, unknown> = {};
  try {
    // elastix.
    const elastix = new Map<PairKind, Scores>();
    if (args.elastix) {
      const tools = ensureElastix(out);
      if ('reason' in tools) out(`elastix baseline SKIPPED: ${tools.reason}`);
      else {
        out(
          `elastix ${tools.version} (${tools.elastix}), -threads ${threads}: ${describeElastixParameters(args.seed)}`,
        );
        for (const p of pairs) {
          const f = files.get(p.name)!;
          const r = await runElastix(tools, f, join(f.dir, 'elastix'), { seed: args.seed, threads });
          // transformix's labels and ours through its field must agree: the field convention check.
          const mine = warpLabelsNearest(p.movingLabels, r.displacement);
          let agree = 0;
          for (let i = 0; i < mine.length; i++) if (mine[i] === r.warpedLabels[i]) agree++;
          if (!sameGrid(r.displacement.grid, g)) throw new Error('elastix returned a field on another grid');
          const s = score(p, masks.get(p.name)!, r.displacement, r.warpedLabels, {
            wallMs: r.timings.total,
            peakRssBytes: r.peakRssBytes,
            timings: { elastix: r.timings.elastix, transformix: r.timings.transformix },
          });
          elastix.set(p.name, s);
          out(
            `  ${p.name.padEnd(10)} elastix ${sec(r.timings.elastix)} + transformix ${sec(r.timings.transformix)}, peak RSS ${mib(r.peakRssBytes)}; ` +
              `mean Dice ${fmt(s.dice.mean!)}, EPE ${fmt(s.epeMm, 2)} mm (after its affine stage alone ${fmt(endPointError(r.affineDisplacement, p.trueDisplacement, masks.get(p.name)!).mean, 2)} mm); ` +
              `transformix labels = labels through its field at ${pct(agree / mine.length)} of voxels`,
          );
        }
      }
    }

    // Ours.
    const ours = new Map<string, Map<PairKind, Scores>>();
    for (const m of args.methods) {
      out(`ours: ${m.label}${m.goals ? '' : ' (reported separately, not judged)'}`);
      const per = new Map<PairKind, Scores>();
      for (const p of pairs) {
        const f = files.get(p.name)!;
        const opts: RegistrarOptions = { threads, fixedModality: 'CT', movingModality: p.movingModality };
        const r = await runOurs(m, f, opts, join(f.dir, `ours-${m.id}`));
        if (!sameGrid(r.displacement.grid, g))
          throw new Error(`${m.id} returned a field on another grid than the fixed image's`);
        const s = score(p, masks.get(p.name)!, r.displacement, r.warpedLabels, {
          wallMs: r.wallMs,
          peakRssBytes: r.peakRssBytes,
          timings: r.run,
        });
        per.set(p.name, s);
        out(
          `  ${p.name.padEnd(10)} registrar ${sec(r.wallMs)}, peak RSS ${mib(r.peakRssBytes)}; stages: ${stageText(r.run)}`,
        );
      }
      ours.set(m.id, per);
    }

    // Per pair tables and goals.
    const judged = new Map<string, Map<PairKind, Judged>>();
    for (const p of pairs) {
      const e = elastix.get(p.name) ?? null;
      const cols: Column[] = [{ name: 'truth', s: truth.get(p.name)! }];
      if (e) cols.push({ name: 'elastix', s: e });
      for (const m of args.methods)
        cols.push({ name: m.placeholder ? `${m.id}*` : m.id, s: ours.get(m.id)!.get(p.name)! });
      printPairTable(p, cols);
      for (const m of args.methods) {
        const s = ours.get(m.id)!.get(p.name)!;
        if (m.goals) {
          const j = printGoals(p.name, m, s, e);
          if (!judged.has(m.id)) judged.set(m.id, new Map());
          judged.get(m.id)!.set(p.name, j);
        } else {
          out(
            `  ${m.id}: not judged (reported separately); embedding ${sec(s.timings.embedding ?? NaN)} of ${sec(s.wallMs)}; stages: ${stageText(s.timings)}`,
          );
        }
      }
      if (args.methods.some((m) => m.placeholder))
        out('  * PLACEHOLDER (identity, u = 0): no registration; it shows the unregistered overlap');
    }

    // Summary.
    out();
    out('summary (goals of issue #16; Dice = mean of spleen, kidneys merged, liver, stomach):');
    if (elastix.size)
      out(
        `  elastix: ${pairs
          .map((p) => {
            const s = elastix.get(p.name)!;
            return `${p.name} Dice ${fmt(s.dice.mean!)} EPE ${fmt(s.epeMm, 2)} fold ${pct(s.foldingFraction)} SDlogJ ${fmt(s.sdLogJ)} ${sec(s.wallMs)} ${mib(s.peakRssBytes)}`;
          })
          .join('; ')}`,
      );
    const deltaOf = (per: Map<PairKind, Scores>): number | null => {
      const a = per.get('modality');
      const b = per.get('combined');
      return a && b ? Math.abs(a.dice.mean! - b.dice.mean!) : null;
    };
    if (elastix.size) {
      const d = deltaOf(elastix);
      if (d !== null) out(`  elastix modality change: |Dice(modality) − Dice(combined)| = ${fmt(d)}`);
    }
    for (const m of args.methods) {
      const per = ours.get(m.id)!;
      const j = judged.get(m.id);
      if (j) {
        const names: (keyof Judged)[] = ['dice', 'epe', 'folding', 'sdLogJ', 'time', 'rss'];
        out(`  ${m.id}${m.placeholder ? ' (PLACEHOLDER)' : ''}:`);
        for (const p of pairs) {
          const v = j.get(p.name)!;
          out(`    ${p.name.padEnd(10)} ${names.map((k) => `${k} ${verdict(v[k])}`).join('  ')}`);
        }
        const d = deltaOf(per);
        if (d !== null)
          out(
            `    ${verdict(d <= GOALS.modalityDelta)} modality change: |Dice(modality) − Dice(combined)| = ${fmt(d)} ≤ ${GOALS.modalityDelta}`,
          );
        const all =
          [...j.values()].every((v) => names.every((k) => v[k])) && (d === null || d <= GOALS.modalityDelta);
        out(
          `    ${all ? 'ALL GOALS MET' : 'goals not all met'}${m.placeholder ? ' — placeholder, expected' : ''}`,
        );
      } else {
        out(
          `  ${m.id} (not judged): ${pairs
            .map((p) => {
              const s = per.get(p.name)!;
              return `${p.name} Dice ${fmt(s.dice.mean!)} EPE ${fmt(s.epeMm, 2)} ${sec(s.wallMs)} (embedding ${sec(s.timings.embedding ?? NaN)})`;
            })
            .join('; ')}`,
        );
      }
    }
    report.truth = Object.fromEntries(truth);
    report.elastix = Object.fromEntries(elastix);
    report.ours = Object.fromEntries([...ours].map(([k, v]) => [k, Object.fromEntries(v)]));
  } finally {
    if (!args.keep) await rm(work, { recursive: true, force: true });
  }
  out(`\ntotal ${sec(performance.now() - t0)}; load average now ${loadavg()[0]!.toFixed(2)}`);
  if (args.json) {
    await writeFile(
      args.json,
      `${JSON.stringify({ bench: 'register', node: process.version, cpu, cpus: cpus().length, threads, seed: args.seed, draws, elastixParameters: elastixParameters(args.seed), ...report }, null, 2)}\n`,
    );
    out(`figures written to ${args.json}`);
  }
  return 0;
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await childMain(argv.slice(1));
else process.exitCode = await main(parseArgs(argv));
