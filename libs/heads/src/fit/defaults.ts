/** Default of every fit option `fitHead` leaves unset. */
export const FIT_DEFAULTS = {
  /** Cross-validation folds. */
  folds: 5,
  /** Seed of fold shuffling and MLP initialisation/batching. */
  seed: 0,
  /** L2 penalty on the standardised coefficients (MLP: weight decay), by fitting method. */
  l2: { logistic: 1e-2, ridge: 1, cox: 1e-4, mlp: 1e-4 },
  classWeight: 'none',
  ties: 'efron',
  /** Iteration cap of the optimiser, by fitting method (ridge is closed-form). */
  maxIter: { logistic: 500, cox: 50 },
  /** MLP hidden layer widths. */
  hidden: [64],
  /** MLP training: epochs cap, early stopping and optimiser settings. */
  mlp: { maxEpochs: 200, learningRate: 1e-3, batchSize: 32, patience: 15, validationFraction: 0.15 },
} as const;
