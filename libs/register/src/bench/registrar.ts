/**
 * "Our method" in the registration bench: the {@link Registrar} interface, the methods the bench runs
 * ({@link METHODS}: the ONE place to plug the engine in), and running a registrar in a child process
 * so its wall time and peak RSS are measured like elastix's.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

import { EmbedEngine, ensureDefaultBundle } from '@curia/model';
import { openVolume, type Volume } from '@curia/volume';

import { selectRegistrationBackends } from '../backends.js';
import { embedTokenFields, TOKEN_EMBED_BATCH } from '../curia-tokens.js';
import { voxelCount, type GridField } from '../field.js';
import { CURIA_FEATURE_CHANNELS, registerVolumes, type FeatureKind } from '../register-volumes.js';
import { resampleLabels, volumeField } from '../resample.js';
import { displacementOnGrid } from '../warp.js';
import { readGridField, type PairFiles } from './pairs.js';
import { warpLabelsNearest } from './sampling.js';

/** What a registrar is told besides the files. */
export interface RegistrarOptions {
  /** Threads it may use (the bench's CPU budget; elastix gets the same). */
  readonly threads: number;
  readonly fixedModality: 'CT';
  /** 'MR-like' for the modality-change pair (moving intensities through a non-monotonic table). */
  readonly movingModality: 'CT' | 'MR-like';
}

/** What a registrar returns. */
export interface RegistrarResult {
  /**
   * The displacement on the FIXED grid as stored in `pair.fixed` (dims and affine of that file read in
   * stored order, which the bench writes canonically), 3 channels, LPS mm, pull-back:
   * x_moving = x_fixed + u(x_fixed).
   */
  readonly displacement: GridField;
  /** `pair.movingLabels` warped onto the fixed grid with nearest-neighbour interpolation (NIfTI order). */
  readonly warpedLabels: Uint8Array;
  /**
   * Stage times in ms as the method reports them (printed as given). The Curia-feature path reports its
   * feature extraction as `embedding`, which the bench prints separately.
   */
  readonly timings: Readonly<Record<string, number>>;
}

/** One registration method: files in, field and warped labels out. */
export type Registrar = (pair: PairFiles, opts: RegistrarOptions) => Promise<RegistrarResult>;

/** A method the bench runs as "ours". */
export interface Method {
  /** Short id (command line `--methods`, child-process argument). */
  readonly id: string;
  readonly label: string;
  /** True for the path the goals are judged on (MIND); others are reported separately. */
  readonly goals: boolean;
  /** True while the engine is not plugged in: its figures describe no registration. */
  readonly placeholder: boolean;
  readonly create: () => Promise<Registrar>;
}

/** u = 0: the harness's placeholder until the engine lands (its Dice is the unregistered overlap). */
export const identityRegistrar: Registrar = async (pair) => {
  const fixed = await readGridField(pair.fixed, [0], true);
  const moving = await readGridField(pair.movingLabels, [0], true);
  const displacement: GridField = {
    grid: fixed.grid,
    channels: 3,
    data: new Float32Array(3 * voxelCount(fixed.grid)),
  };
  const labels = { grid: moving.grid, data: Uint8Array.from(moving.data) };
  return { displacement, warpedLabels: warpLabelsNearest(labels, displacement), timings: {} };
};

/** Both images' Curia token fields for a registrar, with the stage times it reports. */
type TokenSource = (
  fixed: Volume,
  moving: Volume,
  opts: RegistrarOptions,
) => Promise<{ fixed: GridField; moving: GridField; timings: Record<string, number> }>;

/**
 * The engine (`registerVolumes`, deformable, defaults) with `features` as a {@link Registrar};
 * `tokens` gives the Curia token fields the `curia` and `hybrid` features need.
 */
function engineRegistrar(features: FeatureKind, tokens?: TokenSource): Registrar {
  return async (pair, opts) => {
    const t0 = performance.now();
    const fixedVolume = await openVolume({ kind: 'path', path: pair.fixed });
    const movingVolume = await openVolume({ kind: 'path', path: pair.moving });
    const fixed = await volumeField(fixedVolume);
    const moving = await volumeField(movingVolume);
    const timings: Record<string, number> = { read: performance.now() - t0 };
    const t = tokens ? await tokens(fixedVolume, movingVolume, opts) : undefined;
    Object.assign(timings, t?.timings);
    // The compute the service picks at warm-up on this machine (ORT sessions are created on first use,
    // inside the timed call: a cold process, like elastix's).
    const backends = await selectRegistrationBackends('auto', {
      executionProviders: ['cpu'],
      threads: opts.threads,
    });
    const reg = await registerVolumes(
      { image: fixed, modality: 'ct', tokens: t?.fixed },
      { image: moving, modality: opts.movingModality === 'CT' ? 'ct' : 'mr', tokens: t?.moving },
      { transform: 'deformable', features, backends },
    );
    await backends.close();
    const t1 = performance.now();
    // The bench's fixed grid (stored order, which it writes canonically) is the engine's input grid.
    const fixedGrid = (await readGridField(pair.fixed, [0], true)).grid;
    const displacement = displacementOnGrid(fixedGrid, reg.affine, reg.displacement);
    const ml = await readGridField(pair.movingLabels, [0], true);
    const warpedLabels = resampleLabels(
      { grid: ml.grid, data: Uint8Array.from(ml.data) },
      fixedGrid,
      reg.affine,
      reg.displacement,
      0,
    ).data as Uint8Array;
    for (const s of reg.timings) timings[s.stage] = s.ms;
    timings.outputs = performance.now() - t1;
    return { displacement, warpedLabels, timings };
  };
}

/** The engine's MIND-SSC path as a {@link Registrar}. */
export const mindRegistrar: Registrar = engineRegistrar('mind');

/**
 * Curia token fields computed in-process ({@link embedTokenFields}) with the bundle in `bundleDir`, on
 * an engine opened per call with the bench's threads as ORT intra-op threads. Reports `engine` (session
 * load, a serving process pays it once) and `embedding` (preprocessing + ViT + PCA and projection:
 * what producing the tokens costs), with embedding's parts.
 */
function curiaTokens(bundleDir: string): TokenSource {
  return async (fixed, moving, opts) => {
    const t0 = performance.now();
    const engine = await EmbedEngine.open(bundleDir, {
      intraOpThreads: opts.threads,
      maxBatch: TOKEN_EMBED_BATCH,
    });
    try {
      const t1 = performance.now();
      const r = await embedTokenFields(engine, [fixed, moving]);
      const embedding = performance.now() - t1;
      return {
        fixed: r.fields[0]!,
        moving: r.fields[1]!,
        timings: {
          engine: t1 - t0,
          embedding,
          'embedding: preprocess': r.timings.preprocess,
          'embedding: ViT': r.timings.vit,
          'embedding: PCA + projection': r.timings.projection,
        },
      };
    } finally {
      await engine.close();
    }
  };
}

/** The default (demo) bundle, built into the cache on first use (the registrar's setup, not its wall time). */
const curiaRegistrar = async (features: 'curia' | 'hybrid'): Promise<Registrar> =>
  engineRegistrar(features, curiaTokens(await ensureDefaultBundle()));

const DEMO_WEIGHTS = 'demo weights: random ViT, features not pretrained';

/**
 * The methods `npm run bench:register` runs as "ours", each in its own child process. The identity
 * placeholder stays available (`--methods identity`) as the unregistered reference.
 */
export const METHODS: readonly Method[] = [
  {
    id: 'mind',
    label: 'Curia engine, MIND-SSC (affine search + ConvexAdam, 3 mm working grid)',
    goals: true,
    placeholder: false,
    create: () => Promise.resolve(mindRegistrar),
  },
  {
    id: 'curia',
    label: `Curia engine, Curia tokens (${DEMO_WEIGHTS}; in-process preprocess + ViT of every axial slice, joint PCA to ${CURIA_FEATURE_CHANNELS} channels)`,
    goals: false,
    placeholder: false,
    create: () => curiaRegistrar('curia'),
  },
  {
    id: 'hybrid',
    label: `Curia engine, hybrid MIND-SSC + Curia tokens (${DEMO_WEIGHTS})`,
    goals: false,
    placeholder: false,
    create: () => curiaRegistrar('hybrid'),
  },
  {
    id: 'identity',
    label: 'identity (u = 0: the unregistered overlap)',
    goals: false,
    placeholder: true,
    create: () => Promise.resolve(identityRegistrar),
  },
];

/** A process run with its wall time and peak resident set size. */
export interface MeasuredRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly wallMs: number;
  /** Largest VmHWM seen while polling /proc/<pid>/status (NaN where /proc is absent). */
  readonly peakRssBytes: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Polling interval of VmHWM (the kernel's high-water mark only rises, so a late poll loses only the last interval). */
const RSS_POLL_MS = 20;
const KEEP_OUTPUT = 64 * 1024;

/** VmHWM of a live process in bytes, or NaN. */
export async function vmHwmBytes(pid: number | 'self'): Promise<number> {
  try {
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(s);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Runs `command` to completion, measuring wall time and peak RSS; keeps the last 64 KiB of its output. */
export function runMeasured(
  command: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<MeasuredRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const keep = (s: string): string => (s.length > KEEP_OUTPUT ? s.slice(-KEEP_OUTPUT) : s);
    child.stdout.on('data', (b: Buffer) => (stdout = keep(stdout + b.toString())));
    child.stderr.on('data', (b: Buffer) => (stderr = keep(stderr + b.toString())));
    let peak = NaN;
    let polling = false;
    const poll = (): void => {
      if (polling || child.pid === undefined) return;
      polling = true;
      void vmHwmBytes(child.pid).then((v) => {
        polling = false;
        if (Number.isFinite(v)) peak = Number.isFinite(peak) ? Math.max(peak, v) : v;
      });
    };
    const timer = setInterval(poll, RSS_POLL_MS);
    poll();
    child.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, wallMs: performance.now() - t0, peakRssBytes: peak, stdout, stderr });
    });
  });
}
