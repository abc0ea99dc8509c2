-- 006_layer_theory.sql — what the depth profiles and the theory overlay need per layer row.
--
-- layer_stats.mean_abs: mean of |x| over the finite values (a depth-profile statistic).
-- layer_stats.theory_var: what the paper's variance propagation predicts for the row at
--   initialization (train/theory.h): the variance of an activation, the second moment of a
--   kernel gradient, the initializer's variance for weights. Recorded at epoch 0 only;
--   NULL elsewhere and for rows recorded before this migration.
-- layer_stats.fan_sum: weight rows at epoch 0: the inputs each output of the layer actually
--   sums over (kh·kw·C for a convolution, kh·kw for a depthwise one, D for a dense layer,
--   averaged over the output positions); NULL otherwise.
-- layer_stats.units: activation rows of the ReLU family: the channels looked at for dead
--   units (dead_units / units is the dead fraction the health flag is judged on); NULL else.
-- layer_stats.init_iters: weight rows at epoch 0 of an LSUV job: the rescalings LSUV made
--   for this kernel; NULL otherwise.
ALTER TABLE layer_stats ADD COLUMN mean_abs REAL;
ALTER TABLE layer_stats ADD COLUMN theory_var REAL;
ALTER TABLE layer_stats ADD COLUMN fan_sum REAL;
ALTER TABLE layer_stats ADD COLUMN init_iters INTEGER;
ALTER TABLE layer_stats ADD COLUMN units INTEGER;
