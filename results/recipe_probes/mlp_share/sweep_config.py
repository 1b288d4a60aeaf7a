# Does a larger MLP share hold more facts per parameter? A narrow model spends much of its budget on the byte
# embedding and head (264 x width x 2: 34% of width 32's 49,824, 51% of width 16's 16,720). ../grid_450's recipe
# (450 exposures per fact, stop at 95% of the trained facts), seed 0. First at 1,000 facts, where width 28 (40,012)
# holds 96.9% and width 24 (31,224) 37.5%: width 24 with a SwiGLU of hidden 128 instead of 96 (35,832) and width 16
# with hidden 256 instead of 64 (35,152); then at 2,000 facts, where width 40 (72,520) holds 96.3% and width 32
# (49,824) 83.1%: width 32 with hidden 192 (62,112). Then hidden 6 x width at the other counts: width 20 (28,260)
# at 500, 24 (38,136) at 1,000, 40 (91,720) at 4,000, and width 28 (49,420) at 2,000;
# then one 6x size smaller at 500-2,000 facts; on 2026-12-07 afternoon (with the C++ step, train.py's cpu_kernel) the
# 6x model one size smaller at 4,000 facts (width 36, hidden 216) and hidden 8 x width at 1,000 facts (width 20,
# hidden 160, between 6x widths 20 and 24). From the repository root:
#   python sweep.py results/recipe_probes/mlp_share/sweep_config.py
exec(open('results/recipe_probes/grid_450/sweep_config.py').read())   # in_weights (450 exposures), base, options
out_root = 'results/recipe_probes/mlp_share'
grid = [in_weights(1000, [40]) | dict(mlp_hidden=[240]), in_weights(500, [32]) | dict(mlp_hidden=[192]),
        in_weights(500, [28]) | dict(mlp_hidden=[168]),
        in_weights(250, [24]) | dict(mlp_hidden=[128, 144]), in_weights(250, [16]) | dict(mlp_hidden=[256]),
        in_weights(125, [20]) | dict(mlp_hidden=[120]),
        # the 6x models one size smaller (brackets from below)
        in_weights(500, [24]) | dict(mlp_hidden=[144]), in_weights(250, [20]) | dict(mlp_hidden=[120, 160]),
        in_weights(125, [16]) | dict(mlp_hidden=[96]),
        in_weights(1000, [36]) | dict(mlp_hidden=[216])]   # (width 20 at 1,000 facts: hidden 120 and 160 above)
