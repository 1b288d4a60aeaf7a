# configs/sweep_cpu.py as it is, run again with the C++ training step (transformer_cpu.cpp, train.py's cpu_kernel,
# on by default since 2026-12-07): does the grid learn the same per exposure, and how long does it take now?
# From the repository root:   python sweep.py results/sweep_cpu_kernel/sweep_config.py
exec(open('configs/sweep_cpu.py').read())
out_root = 'results/sweep_cpu_kernel'
