# configs/sweep_cpu.py as it is, run again after the C++ step's second round of work (2026-12-07 evening: softmax
# left unnormalized, rotary vectorized, causal products stopped at the diagonal, gradients written to .grad without
# autograd, buffers on 64-byte boundaries): does the grid still learn the same, and how long does it take now?
# From the repository root:   python sweep.py results/sweep_cpu_kernel_v2/sweep_config.py
exec(open('configs/sweep_cpu.py').read())
out_root = 'results/sweep_cpu_kernel_v2'
