/**
 * The default of every fit option: what `fitHead` uses for an option left unset, and what the
 * Heads service resolves unset `FitOptions` fields to. The `FitOptions` comments in
 * `proto/curia/heads/v1/heads.proto` state the same numbers (services/heads/src/fit-request.test.ts
 * checks that they do).
 */
export const FIT_DEFAULTS = {
  /** Cross-validation folds. */
  folds: 5,
  /** Seed of fold shuffling and MLP initialisation/batching. */
  seed: 0,
  /** L2 penalty on the standardised coefficients (MLP: weight decay), by fitting method. */
  l2: { logistic: 1, ridge: 1, cox: 1, mlp: 1e-4 },
  classWeight: 'none',
  ties: 'efron',
  /** Iteration cap: L-BFGS iterations (logistic), epochs (MLP). Ridge is closed-form. */
  maxIterations: 1000,
  /** Cox Newton steps at most, whatever the iteration cap (Newton converges in a few dozen). */
  coxMaxIterations: 100,
  /** MLP hidden layer widths. */
  hidden: [256],
  /** MLP optimiser and early stopping (patience: epochs without validation improvement). */
  mlp: { learningRate: 1e-3, batchSize: 32, patience: 15, validationFraction: 0.15 },
} as const;
