import { readFileSync } from 'node:fs';

import { FIT_DEFAULTS, fitHead, type FitLabels, type FitOptions, type Head } from '@curia/heads';
import { common, heads } from '@curia/proto';
import { describe, expect, it } from 'vitest';

import { validateStart } from './fit-request.js';

const PROTO = new URL('../../../proto/curia/heads/v1/heads.proto', import.meta.url);

/** The comment lines above each field or value of `message|enum <name> { ... }`, by field name. */
function protoComments(text: string, block: string): Map<string, string> {
  const body = new RegExp(`^(?:message|enum) ${block} \\{\\n([\\s\\S]*?)^\\}`, 'm').exec(text)?.[1];
  if (!body) throw new Error(`${block} not found in heads.proto`);
  const out = new Map<string, string>();
  let comment: string[] = [];
  for (const line of body.split('\n').map((l) => l.trim())) {
    if (line.startsWith('//')) comment.push(line.slice(2).trim());
    else {
      const field = /^(?:optional |repeated )?(?:\S+ )?(\w+) = \d+;/.exec(line)?.[1];
      if (field) out.set(field, comment.join(' '));
      comment = [];
    }
  }
  return out;
}

function numberIn(text: string | undefined, re: RegExp): number {
  const m = re.exec(text ?? '');
  if (!m) throw new Error(`${String(re)} does not match '${text}'`);
  return Number(m[1]);
}

describe('FitOptions defaults: one set for the contract, the service and the engine', () => {
  it('heads.proto documents the numbers FIT_DEFAULTS holds', () => {
    const text = readFileSync(PROTO, 'utf8');
    const doc = protoComments(text, 'FitOptions');
    // "Default 1.0 (ridge, logistic, Cox), 1e-4 (MLP weight decay)": each value with the methods it is for.
    const l2 = doc.get('l2')!.split('Default')[1] ?? '';
    const l2By: Record<string, number> = {};
    for (const [, value, methods] of l2.matchAll(/([\d.e-]+) \(([^)]*)\)/g)) {
      for (const kind of Object.keys(FIT_DEFAULTS.l2)) {
        if (new RegExp(`\\b${kind}\\b`, 'i').test(methods!)) l2By[kind] = Number(value);
      }
    }
    expect(l2By).toEqual(FIT_DEFAULTS.l2);
    expect(numberIn(doc.get('folds'), /Default (\d+)\./)).toBe(FIT_DEFAULTS.folds);
    expect(numberIn(doc.get('seed'), /default (\d+)\./)).toBe(FIT_DEFAULTS.seed);
    const hidden = /Default \[([\d, ]+)\]/.exec(doc.get('hidden_layer_sizes') ?? '')?.[1];
    expect(hidden?.split(',').map(Number)).toEqual(FIT_DEFAULTS.hidden);
    const iters = doc.get('max_iterations');
    expect(numberIn(iters, /Default (\d+):/)).toBe(FIT_DEFAULTS.maxIterations);
    expect(numberIn(iters, /stops after (\d+) epochs without improvement/)).toBe(FIT_DEFAULTS.mlp.patience);
    expect(numberIn(iters, /on its (\d+)% validation split/) / 100).toBe(FIT_DEFAULTS.mlp.validationFraction);
    expect(numberIn(iters, /at most (\d+) Newton steps/)).toBe(FIT_DEFAULTS.coxMaxIterations);
    expect(protoComments(text, 'ClassWeight').get('CLASS_WEIGHT_UNSPECIFIED')).toBe(
      `Server default (${FIT_DEFAULTS.classWeight.toUpperCase()}).`,
    );
    expect(protoComments(text, 'TiesMethod').get('TIES_METHOD_UNSPECIFIED')).toBe(
      `Server default (${FIT_DEFAULTS.ties.toUpperCase()}).`,
    );
  });

  it('a Fit with unset options trains the same head as fitHead with no options', async () => {
    const rows = 40;
    const d = 4;
    let s = 7;
    const rnd = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const data = Float32Array.from({ length: rows * d }, rnd);
    const x = { data, rows, cols: d };
    const at = (r: number, c: number): number => data[r * d + c]!;
    const classes = Int32Array.from({ length: rows }, (_, r) => (r % 2 === 0 ? 0 : 1));
    const values = Float64Array.from({ length: rows }, (_, r) => at(r, 0) * 2 + at(r, 1));
    const survival = {
      time: Float64Array.from({ length: rows }, (_, r) => Math.exp(at(r, 0)) + r / rows),
      event: Uint8Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? 0 : 1)),
    };
    const multilabel = {
      indicators: Uint8Array.from(
        { length: rows * 2 },
        (_, i) => (i % 4 < 2 ? 1 : 0) ^ (i % 3 === 0 ? 1 : 0),
      ),
      numLabels: 2,
    };
    const K = common.HeadKind;
    const T = common.HeadTask;
    // The engine's only non-default option here names the task, which the service takes from start.kind.
    const cases: [common.HeadKind, common.HeadTask, FitLabels, FitOptions?][] = [
      [K.LOGISTIC, T.CLASSIFICATION, classes],
      [K.LOGISTIC, T.MULTILABEL, multilabel],
      [K.RIDGE, T.REGRESSION, values],
      [K.COX, T.SURVIVAL, survival],
      [K.MLP_CLASSIFIER, T.CLASSIFICATION, classes],
      [K.MLP_REGRESSOR, T.REGRESSION, values, { task: 'regression' }],
    ];
    const weightsOf = (h: Head): Record<string, number[]> =>
      Object.fromEntries([...h.weights].map(([n, w]) => [n, [...w.data]]));
    for (const [kind, task, labels, engineOptions] of cases) {
      const plan = validateStart(
        heads.FitStart.fromPartial({
          head: 'defaults',
          kind,
          task,
          feature: { kind: { $case: 'cls', value: { prenorm: false } } },
          labelNames: task === T.MULTILABEL ? ['a', 'b'] : [],
        }),
      );
      const viaService = await fitHead(plan.kind, x, labels, plan.options);
      const engineDefaults = await fitHead(plan.kind, x, labels, engineOptions);
      const what = `${common.headKindToJSON(kind)}/${common.headTaskToJSON(task)}`;
      expect(weightsOf(viaService), what).toEqual(weightsOf(engineDefaults));
      expect(viaService.meta.training!.cv, what).toEqual(engineDefaults.meta.training!.cv);
      expect(plan.resolved.folds, what).toBe(FIT_DEFAULTS.folds);
      expect(plan.resolved.maxIterations, what).toBe(FIT_DEFAULTS.maxIterations);
      expect(plan.resolved.l2, what).toBe(FIT_DEFAULTS.l2[plan.kind]);
    }
  });
});
