// The selective scan on CPU, forward and backward: the 'cpp' backend of ssm_triton.py, built on first use by
// torch.utils.cpp_extension.load and called as torch.ops.ssm_scan_cpu.fwd / .bwd.
//
// For every batch b and channel d (h: (n,), h_{-1} = 0):
//   dt_t = softplus(delta_t + delta_bias)               (each part optional)
//   h_t  = exp(dt_t A) * h_{t-1} + dt_t u_t B_t
//   y_t  = (C_t . h_t + D u_t) * silu(z_t)                (D, z optional)
// Unlike the torch and triton backends, the elementwise parts around the scan are fused in here too: as
// torch ops they took longer than the scan itself on this CPU (each one a pass over memory).
//
// Forward: one pass over time per (b, d) with the state in vector registers, threads over b x d (tasks
// handed out dynamically, see run_tasks). Only the states at chunk boundaries are written
// (states[:, :, c] = the state before chunk c, the last one the final state), plus the output before the
// gate when z is given (ypre, for dz).
// Backward: per (b, d), chunks in reverse: recompute the chunk's states and decays from its saved start
// state into small buffers (3 x chunk x n floats, in L1), then run the adjoint recurrence backwards through
// them. The B/C gradients are summed over a group's channels race-free, see bwd_impl.
//
// Vectorized over n with GCC vector extensions of W floats (16 = one AVX-512 register where -march=native
// has it, else 8 = one AVX2 register; other targets split them): the state is padded to a multiple of W
// with zeros (A = B = C = 0 there, so the padding stays 0), the number of vectors NV a template parameter
// (NV <= 4, and 8), or a run-time one otherwise. exp is our own branch-free exp2 (rel. error ~2e-7),
// inlined so that it vectorizes and overlaps with the recurrence: exp(dt A) is most of the arithmetic.
// The per-step dot products (C . h and the two of the backward) are reduced 8 time steps at a time (sum8);
// the elementwise parts run W time steps per vector.
//
// Only the headers needed: ATen/ATen.h would add ~5 s of compile time, torch/extension.h ~45 s.
#include <ATen/Parallel.h>  // at::get_num_threads
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <unistd.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

// GCC would otherwise outline a step called from 9 places, with its state vectors in memory
#define INLINE __attribute__((always_inline))

namespace {

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
// The state vectors: W floats, 16 (one AVX-512 register) where the compiler targets AVX-512 (-march=native on
// such a CPU), else 8 (AVX2; other targets split them). The sums over 8 time steps (sum8) use v8.
#if defined(__AVX512F__)
constexpr int W = 16;
#else
constexpr int W = 8;
#endif
typedef float vf __attribute__((vector_size(4 * W)));

constexpr float kLog2e = 1.44269504088896341f, kLn2 = 0.693147180559945309f;

inline v8 splat(float x) { return v8{} + x; }
inline v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
inline vf splatf(float x) { return vf{} + x; }
inline vf loadf(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void storef(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// m <= W elements (the tail of a row), zero-filled
inline vf loadm(const float* p, int m) {
  if (m == W) return loadf(p);
  float tmp[W] = {};
  std::memcpy(tmp, p, m * sizeof(float));
  return loadf(tmp);
}
inline void storem(float* p, vf v, int m) {
  if (m == W) return storef(p, v);
  float tmp[W];
  storef(tmp, v);
  std::memcpy(p, tmp, m * sizeof(float));
}
inline float lanesum(const vf& v) {
  float s = 0;
  for (int i = 0; i < W; ++i) s += v[i];
  return s;
}

// Vector ops as the one instruction they are where the vector is one AVX-512 / AVX register: GCC does not
// always make one of the plain expression (a > b ? a : b), and for a * b + c it fuses whichever product it
// likes, where on the recurrences' critical paths (h = a h + du B, gh = an gh + g C) it must fuse a * b, or
// the chain holds a multiply and an FMA. The macros drop the intrinsic where the target lacks it.
#if defined(__AVX512F__)
#define ON_AVX512(V, e) if constexpr (sizeof(V) == 64) return e;
#else
#define ON_AVX512(V, e)
#endif
#if defined(__AVX__)
#define ON_AVX(V, e) if constexpr (sizeof(V) == 32) return e;
#else
#define ON_AVX(V, e)
#endif
#if defined(__FMA__)
#define ON_FMA(V, e) if constexpr (sizeof(V) == 32) return e;
#else
#define ON_FMA(V, e)
#endif
template <class V>
inline V vmax(V a, V b) { ON_AVX512(V, _mm512_max_ps(a, b)) ON_AVX(V, _mm256_max_ps(a, b)) return a > b ? a : b; }
template <class V>
inline V vmin(V a, V b) { ON_AVX512(V, _mm512_min_ps(a, b)) ON_AVX(V, _mm256_min_ps(a, b)) return a < b ? a : b; }
template <class V>  // a * b + c with one rounding
inline V vfma(V a, V b, V c) {
  ON_AVX512(V, _mm512_fmadd_ps(a, b, c)) ON_FMA(V, _mm256_fmadd_ps(a, b, c)) return a * b + c;
}

// the sum of each vector's 8 lanes
inline float hsum(v8 v) {
  v4 s = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
  s = s + __builtin_shufflevector(s, s, 2, 3, 0, 1);
  s = s + __builtin_shufflevector(s, s, 1, 0, 3, 2);
  return s[0];
}
// pairwise sums within 128-bit halves: [a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7] (vhaddps)
inline v8 hadd(v8 a, v8 b) {
  return __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14) +
         __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15);
}
// a state vector's lanes summed down to 8
inline v8 fold(vf x) {
#if defined(__AVX512F__)
  return __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
         __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
#else
  return x;
#endif
}
// lane i of the result = the sum of the lanes of x_i: 8 reductions in 9 shuffles/adds instead of 8 x 6
inline v8 sum8(v8 x0, v8 x1, v8 x2, v8 x3, v8 x4, v8 x5, v8 x6, v8 x7) {
  const v8 q0 = hadd(hadd(x0, x1), hadd(x2, x3));  // [s0 s1 s2 s3 | s0' s1' s2' s3'] low / high halves
  const v8 q1 = hadd(hadd(x4, x5), hadd(x6, x7));
  return __builtin_shufflevector(q0, q1, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(q0, q1, 4, 5, 6, 7, 12, 13, 14, 15);
}

// 2^x, for the decays exp(dt A) = 2^(dt A log2(e)) (A is scaled by log2(e) once per channel).
// 2^x = 2^g 2^f with g = round(x), f = x - g in [-1/2, 1/2], 2^f = 1 + f q(f) with q of degree 4 fitted for
// the least maximal relative error (9e-8; 1.9e-7 evaluated in fp32; exactly 1 at f = 0, so that slow decays
// get no bias that would compound over many steps). x is clamped to [-125, 127] so that 2^x stays a normal
// float (2^-125 ~ 2.4e-38 stands in for anything smaller; 2^g is applied by an integer add to the exponent
// bits, which must not underflow). Compiled without -ffast-math: the rounding trick
// (x + 1.5 * 2^23) - 1.5 * 2^23 must not be simplified away.
template <class V>
inline V vexp2(V x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {  // AVX-512: vrndscaleps rounds, vscalefps applies 2^g, under- and
    const V g = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // overflow
    const V f = x - g;                                    // included: 8 instructions instead of 14
    V p = V{} + 1.326472721371031e-3f;
    p = p * f + 9.671512812493562e-3f;
    p = p * f + 5.550733744824621e-2f;
    p = p * f + 2.402224208267749e-1f;
    p = p * f + 6.931469775973301e-1f;
    p = p * f + 1.0f;
    return _mm512_scalef_ps(p, g);
  }
#endif
  using I = decltype(x < x);  // the int32 vector of V's width
  x = vmin(vmax(x, V{} - 125.0f), V{} + 127.0f);
  const V magic = V{} + 12582912.0f;  // 1.5 * 2^23: x + magic holds round(x) in its low mantissa bits
  const V xm = x + magic;
  const V f = x - (xm - magic);
  V p = V{} + 1.326472721371031e-3f;
  p = p * f + 9.671512812493562e-3f;
  p = p * f + 5.550733744824621e-2f;
  p = p * f + 2.402224208267749e-1f;
  p = p * f + 6.931469775973301e-1f;
  p = p * f + 1.0f;
  return (V)((I)p + (((I)xm - (I)magic) << 23));  // p 2^round(x): round(x) added to p's exponent
}
template <class V>
inline V vexp(V x) { return vexp2(x * kLog2e); }

// log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], by its series to s^13
// (truncation < 4e-8 relative; no cancellation for small e)
template <class V>
inline V vlog1p01(V e) {
  const V s = e / (e + 2.0f), s2 = s * s;
  V p = V{} + 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  p = p * s2 + 1.0f;
  return 2.0f * s * p;
}

// softplus as torch computes it (beta 1, threshold 20): x for x > 20, else log(1 + e^x), here as
// max(x, 0) + log1p(e^-|x|)
template <class V>
inline V vsoftplus(V x) {
  const V sp = vmax(x, V{}) + vlog1p01(vexp(-vmax(x, -x)));
  return x > 20.0f ? x : sp;
}
// sigmoid(x) = 1 / (1 + e^-x), as (x >= 0 ? 1 : e) / (1 + e) with e = e^-|x| (no overflow)
template <class V>
inline V vsigmoid(V x) {
  const V e = vexp(-vmax(x, -x));
  return (x >= 0.0f ? V{} + 1.0f : e) / (e + 1.0f);
}

// Local arrays of NV vectors: on the stack (registers after unrolling) when NV is a template constant,
// on the heap for the run-time case (NVT = 0).
template <int NVT>
struct Vecs {
  vf a[NVT];
  explicit Vecs(int) {}
  vf& operator[](int i) { return a[i]; }
};
template <>
struct Vecs<0> {
  std::vector<vf> a;
  explicit Vecs(int nv) : a(nv) {}
  vf& operator[](int i) { return a[i]; }
};

struct Dims {
  int64_t b, d, l, n, g, np, nchunks, chunk;  // np: n padded to a multiple of W
};

// The optional parts, null when absent
struct Extras {
  const float* D;     // (d,)
  const float* z;     // (b, d, l)
  const float* bias;  // (d,)
  bool softplus;
};

// dt for one row: softplus(delta + bias) (each part if asked), W steps per vector
void dt_row(const Dims& s, const Extras& x, int64_t ch, const float* delta, float* dt) {
  const vf bias = splatf(x.bias ? x.bias[ch] : 0.0f);
  for (int64_t t = 0; t < s.l; t += W) {
    const int m = (int)std::min<int64_t>(W, s.l - t);
    const vf v = loadm(delta + t, m) + bias;
    storem(dt + t, x.softplus ? vsoftplus(v) : v, m);
  }
}

// The state of chunk c's start (n floats) into NV zero-padded vectors
template <class V>
void load_state(const Dims& s, const float* st, V& h, int NV) {
  for (int v = 0; v < NV; ++v) {
    float tmp[W] = {};
    for (int j = 0; j < W && W * v + j < s.n; ++j) tmp[j] = st[W * v + j];
    h[v] = loadf(tmp);
  }
}

// One (batch, channel) of the forward. Bt, Ct: (l, np) of the channel's group; st: (nchunks + 1, n);
// ypre: y before the gate (only if z and the backward needs it); dt: a scratch row of l floats.
template <int NVT>
void fwd_row(const Dims& s, const Extras& x, int64_t ch, const float* u, const float* delta, const float* z,
             const float* A2row, const float* Bt, const float* Ct, float* out, float* ypre, float* st,
             float* dt) {
  const int NV = NVT ? NVT : s.np / W;
  const int64_t np = s.np;  // a local: GCC would reload it from s at every step
  dt_row(s, x, ch, delta, dt);
  Vecs<NVT> A2(NV), h(NV);
  for (int v = 0; v < NV; ++v) {
    h[v] = splatf(0.0f);
    A2[v] = loadf(A2row + W * v);
  }
  std::memset(st, 0, s.n * sizeof(float));
  // one step: the state update, returns the vector whose lane sum is C_t . h_t
  auto step = [&](int64_t t) INLINE {
    const float d = dt[t], du = d * u[t];
    const float* Bp = Bt + t * np;
    const float* Cp = Ct + t * np;
    vf acc = splatf(0.0f);
    for (int v = 0; v < NV; ++v) {
      h[v] = vfma(vexp2(d * A2[v]), h[v], du * loadf(Bp + W * v));
      acc += h[v] * loadf(Cp + W * v);
    }
    return fold(acc);
  };
  for (int64_t c = 0; c < s.nchunks; ++c) {
    const int64_t t1 = std::min(s.l, (c + 1) * s.chunk);
    int64_t t = c * s.chunk;
    for (; t + 8 <= t1; t += 8) {  // y of 8 steps at once
      const v8 a0 = step(t), a1 = step(t + 1), a2 = step(t + 2), a3 = step(t + 3);
      const v8 a4 = step(t + 4), a5 = step(t + 5), a6 = step(t + 6), a7 = step(t + 7);
      store8(out + t, sum8(a0, a1, a2, a3, a4, a5, a6, a7));
    }
    for (; t < t1; ++t) out[t] = hsum(step(t));
    float* sc = st + (c + 1) * s.n;
    for (int64_t i = 0; i < s.n; ++i) sc[i] = h[i / W][i % W];
  }
  // out = (y + D u) * silu(z)
  if (!x.D && !x.z) return;
  const vf D = splatf(x.D ? x.D[ch] : 0.0f);
  for (int64_t t = 0; t < s.l; t += W) {
    const int m = (int)std::min<int64_t>(W, s.l - t);
    vf y = loadm(out + t, m) + D * loadm(u + t, m);
    if (x.z) {
      if (ypre) storem(ypre + t, y, m);
      const vf zz = loadm(z + t, m);
      y = y * zz * vsigmoid(zz);
    }
    storem(out + t, y, m);
  }
}

// One (batch, channel) of the backward: du, ddelta, dz rows written; dB/dC (l, np) partial sums of the
// channel's block accumulated (+=); dA (n), dD and ddelta_bias (this row's shares) written.
// gout: the row of the output's gradient, with stride gstride (0 for the expanded ones of y.sum()'s
// backward); dt, gy: scratch rows of l floats; rec: scratch of chunk x 3 NV vectors (the recomputed chunk:
// per step h_t, a_t h_{t-1} and a_t, side by side so that one pointer reaches all three).
template <int NVT>
void bwd_row(const Dims& s, const Extras& x, int64_t ch, const float* gout, int64_t gstride, const float* u,
             const float* delta, const float* z, const float* ypre, const float* A2row, const float* Bt,
             const float* Ct, const float* st, float* gu, float* gdelta, float* gz, float* gBp, float* gCp,
             float* gArow, float* gD, float* gbias, float* dt, float* gy, vf* rec) {
  const int NV = NVT ? NVT : s.np / W;
  const int64_t np = s.np;  // a local: GCC would reload it from s at every step
  dt_row(s, x, ch, delta, dt);
  if (gstride != 1) {  // gather the row (in place below)
    for (int64_t t = 0; t < s.l; ++t) gy[t] = gout[t * gstride];
    gout = gy;
  }
  // the gate and the skip: gy = the gradient of y = C . h; dD and dz
  const float Dc = x.D ? x.D[ch] : 0.0f;
  if (x.z || x.D) {
    vf gDv = splatf(0.0f);
    for (int64_t t = 0; t < s.l; t += W) {
      const int m = (int)std::min<int64_t>(W, s.l - t);
      vf g = loadm(gout + t, m);
      if (x.z) {
        const vf zz = loadm(z + t, m), sg = vsigmoid(zz);
        storem(gz + t, g * loadm(ypre + t, m) * sg * (1.0f + zz * (1.0f - sg)), m);  // silu' = sg (1 + z (1 - sg))
        g = g * zz * sg;
      }
      gDv += g * loadm(u + t, m);  // the padding lanes are 0
      storem(gy + t, g, m);
    }
    *gD = lanesum(gDv);
  } else {
    gy = const_cast<float*>(gout);  // only read below
  }
  // gh: the adjoint of h_t from the later steps, carried as that of h_{t+1} with an = a_{t+1}, so that each
  // step's recurrence is the single FMA gh = an gh + g C_t (a multiply then an add would double its latency)
  Vecs<NVT> A2(NV), h(NV), gh(NV), gA(NV), an(NV);
  for (int v = 0; v < NV; ++v) {
    A2[v] = loadf(A2row + W * v);
    gh[v] = gA[v] = an[v] = splatf(0.0f);
  }
  // one step of the adjoint at time t, chunk start t0, from the recomputed h_t, a_t h_{t-1} and
  // a_t = exp(dt_t A) in rec; gh, an as above. Returns the vectors whose lane
  // sums are gh . B_t and (grad of the exponent dt A log2(e)) . A log2(e)
  auto step = [&](int64_t t, int64_t t0, v8& sB8, v8& sA8) INLINE {
    const float d = dt[t], du = d * u[t], g = gy[t];
    const float* Bp = Bt + t * np;
    const float* Cp = Ct + t * np;
    float* gBt = gBp + t * np;
    float* gCt = gCp + t * np;
    const vf* hp = rec + (t - t0) * 3 * NV;
    const vf* ahp = hp + NV;
    const vf* ap = hp + 2 * NV;
    vf sB = splatf(0.0f), sA = splatf(0.0f);
    for (int v = 0; v < NV; ++v) {
      storef(gCt + W * v, loadf(gCt + W * v) + g * hp[v]);  // y_t = C_t . h_t
      gh[v] = vfma(an[v], gh[v], g * loadf(Cp + W * v));    // the full adjoint of h_t: one FMA on the chain
      an[v] = ap[v];
      storef(gBt + W * v, loadf(gBt + W * v) + du * gh[v]);  // h_t = a_t h_{t-1} + dt u B_t
      sB += gh[v] * loadf(Bp + W * v);                       // -> grad of dt u
      const vf gah = gh[v] * ahp[v];                         // grad of the decay's exponent dt A
      sA += gah * A2[v];
      gA[v] += gah * d;
    }
    sB8 = fold(sB), sA8 = fold(sA);
  };
  for (int64_t c = s.nchunks - 1; c >= 0; --c) {
    const int64_t t0 = c * s.chunk, t1 = std::min(s.l, t0 + s.chunk);
    // recompute the chunk from its start state
    load_state(s, st + c * s.n, h, NV);
    for (int64_t t = t0; t < t1; ++t) {
      const float d = dt[t], du = d * u[t];
      const float* Bp = Bt + t * np;
      vf* hp = rec + (t - t0) * 3 * NV;
      vf* ahp = hp + NV;
      vf* ap = hp + 2 * NV;
      for (int v = 0; v < NV; ++v) {  // h_t = a h_{t-1} + du B_t as one FMA, as the forward computes it
        const vf a = vexp2(d * A2[v]), ah = a * h[v];  // (ah off the recurrence's critical path)
        h[v] = vfma(a, h[v], du * loadf(Bp + W * v));
        ap[v] = a, ahp[v] = ah, hp[v] = h[v];
      }
    }
    // backwards through it, 8 steps at a time where possible: du_t = gx_t dt_t, ddt_t = gx_t u_t + sA_t ln 2
    int64_t t = t1;
    for (; t - 8 >= t0; t -= 8) {
      v8 b0, b1, b2, b3, b4, b5, b6, b7, a0, a1, a2, a3, a4, a5, a6, a7;
      step(t - 1, t0, b7, a7), step(t - 2, t0, b6, a6), step(t - 3, t0, b5, a5), step(t - 4, t0, b4, a4);
      step(t - 5, t0, b3, a3), step(t - 6, t0, b2, a2), step(t - 7, t0, b1, a1), step(t - 8, t0, b0, a0);
      const v8 gx = sum8(b0, b1, b2, b3, b4, b5, b6, b7), sA = sum8(a0, a1, a2, a3, a4, a5, a6, a7);
      store8(gu + t - 8, gx * load8(dt + t - 8));
      store8(gdelta + t - 8, gx * load8(u + t - 8) + sA * kLn2);
    }
    for (; t > t0; --t) {
      v8 sB, sA;
      step(t - 1, t0, sB, sA);
      const float gx = hsum(sB);
      gu[t - 1] = gx * dt[t - 1];
      gdelta[t - 1] = gx * u[t - 1] + hsum(sA) * kLn2;
    }
  }
  for (int64_t i = 0; i < s.n; ++i) gArow[i] = gA[i / W][i % W];
  // through softplus and the skip: ddelta = ddt sigmoid(delta + bias) (1 above torch's threshold 20),
  // du += D gy, ddelta_bias = sum ddelta
  if (!x.softplus && !x.D && !x.bias) return;
  const vf bias = splatf(x.bias ? x.bias[ch] : 0.0f);
  vf gb = splatf(0.0f);
  for (int64_t t = 0; t < s.l; t += W) {
    const int m = (int)std::min<int64_t>(W, s.l - t);
    vf g = loadm(gdelta + t, m);
    if (x.softplus) {
      const vf v = loadm(delta + t, m) + bias;
      g = v > 20.0f ? g : g * vsigmoid(v);
      storem(gdelta + t, g, m);
    }
    gb += g;  // the padding lanes are 0
    if (x.D) storem(gu + t, loadm(gu + t, m) + Dc * loadm(gy + t, m), m);
  }
  *gbias = lanesum(gb);
}

// (b, g, n, l), any strides -> (b, g, l, np), zero-padded. Small: plain loops here and below rather than
// torch ops, each of which would start the thread pool again (costly on a machine busy with other jobs).
at::Tensor time_major(const at::Tensor& X, int64_t np) {
  const int64_t b = X.size(0), g = X.size(1), n = X.size(2), l = X.size(3);
  auto out = at::empty({b, g, l, np}, X.options());
  const float* src = X.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const auto st = X.strides();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < g; ++j) {
      const float* x = src + i * st[0] + j * st[1];
      float* o = dst + (i * g + j) * l * np;
      for (int64_t t = 0; t < l; ++t) {
        for (int64_t k = 0; k < n; ++k) o[t * np + k] = x[k * st[2] + t * st[3]];
        for (int64_t k = n; k < np; ++k) o[t * np + k] = 0.0f;
      }
    }
  return out;
}

// (b, ...) -> (...): the sum over the batch of per-row shares
at::Tensor batch_sum(const at::Tensor& x) {
  auto out = at::zeros(x.sizes().slice(1), x.options());
  const int64_t m = out.numel();
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t i = 0; i < x.size(0); ++i)
    for (int64_t j = 0; j < m; ++j) dst[j] += src[i * m + j];
  return out;
}

Dims dims_of(const at::Tensor& u, const at::Tensor& A, const at::Tensor& B, int64_t chunk) {
  Dims s;
  s.b = u.size(0), s.d = u.size(1), s.l = u.size(2), s.n = A.size(1), s.g = B.size(1);
  s.np = (s.n + W - 1) / W * W;
  s.chunk = chunk;
  s.nchunks = (s.l + chunk - 1) / chunk;
  return s;
}

// (d, n) -> (d, np): A log2(e), zero-padded (the kernels compute the decays as powers of 2)
at::Tensor padded_A2(const at::Tensor& A_, const Dims& s) {
  auto Ac = A_.contiguous();
  auto A = at::zeros({s.d, s.np}, A_.options());
  const float* src = Ac.data_ptr<float>();
  float* dst = A.data_ptr<float>();
  for (int64_t i = 0; i < s.d; ++i)
    for (int64_t j = 0; j < s.n; ++j) dst[i * s.np + j] = src[i * s.n + j] * kLog2e;
  return A;
}

using OptT = std::optional<at::Tensor>;

void check_f32(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat, "scan_cpu: ", what,
              " must be a float32 CPU tensor");
}

// checks dtypes and shapes, returns the dimensions
Dims check(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
           const at::Tensor& C, const OptT& D, const OptT& z, const OptT& bias, int64_t chunk) {
  check_f32(u, "u"), check_f32(delta, "delta"), check_f32(A, "A"), check_f32(B, "B"), check_f32(C, "C");
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes() && A.dim() == 2 && A.size(0) == u.size(1) &&
                  B.dim() == 4 && C.sizes() == B.sizes() && B.size(0) == u.size(0) && B.size(1) >= 1 &&
                  B.size(2) == A.size(1) && B.size(3) == u.size(2) && u.size(1) % B.size(1) == 0,
              "scan_cpu: expected u, delta (b, d, l), A (d, n), B, C (b, g, n, l) with g dividing d");
  TORCH_CHECK(chunk >= 1 && u.size(2) >= 1 && A.size(1) >= 1, "scan_cpu: chunk, l and n must be >= 1");
  if (D) {
    check_f32(*D, "D");
    TORCH_CHECK(D->numel() == u.size(1), "scan_cpu: D must be (d,)");
  }
  if (bias) {
    check_f32(*bias, "delta_bias");
    TORCH_CHECK(bias->numel() == u.size(1), "scan_cpu: delta_bias must be (d,)");
  }
  if (z) {
    check_f32(*z, "z");
    TORCH_CHECK(z->sizes() == u.sizes(), "scan_cpu: z must be (b, d, l)");
  }
  return dims_of(u, A, B, chunk);
}

struct Inputs {  // contiguous copies (no-ops for contiguous inputs) that own the data the pointers point to
  at::Tensor u, delta, z, D, bias, A2, Bt, Ct;
  Extras x;
  Inputs(const Dims& s, const at::Tensor& u_, const at::Tensor& delta_, const at::Tensor& A_,
         const at::Tensor& B_, const at::Tensor& C_, const OptT& D_, const OptT& z_, const OptT& bias_,
         bool softplus)
      : u(u_.contiguous()), delta(delta_.contiguous()), A2(padded_A2(A_, s)), Bt(time_major(B_, s.np)),
        Ct(time_major(C_, s.np)) {
    if (z_) z = z_->contiguous();
    if (D_) D = D_->contiguous();
    if (bias_) bias = bias_->contiguous();
    x.D = D_ ? D.data_ptr<float>() : nullptr;
    x.z = z_ ? z.data_ptr<float>() : nullptr;
    x.bias = bias_ ? bias.data_ptr<float>() : nullptr;
    x.softplus = softplus;
  }
};

// Runs body(next) on the calling thread and on up to torch.get_num_threads() - 1 helper threads; body takes
// task numbers from next() until it returns -1, and run_tasks returns when every task is done.
// Not at::parallel_for: on a machine shared with other jobs (2 cores here, often a load of 3-5), its OpenMP
// team made every call wait for the most descheduled thread twice, to start its share and at the closing
// barrier: measured 2-3x slower with 2 threads than with 1. Here tasks are handed out one at a time (an
// atomic counter), the caller works too, and it never waits for a helper that has not started: a late
// helper finds no task left and goes back to sleep. The helpers are our own threads, sleeping on a
// condition variable between calls (no spinning).
class Next;
struct Job {
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<int> active{0};  // helpers inside body: the caller waits for them, its stack is body's
  int64_t ntasks = 0;
  std::function<void(Next&)> body;
};
class Next {
 public:
  explicit Next(Job& job) : job_(job) {}
  int64_t operator()() {  // marks the previous task done, hands out the next one
    if (cur_ >= 0) job_.done.fetch_add(1);
    const int64_t t = job_.next.fetch_add(1);
    return cur_ = t < job_.ntasks ? t : -1;
  }

 private:
  Job& job_;
  int64_t cur_ = -1;
};

class Pool {
 public:
  static Pool& get() {  // one per process; a forked child (which has no helpers) starts a new one
    static Pool* pool = new Pool;  // never destroyed: its detached threads may still wait on it at exit
    if (pool->pid_ != getpid()) pool = new Pool;
    return *pool;
  }
  void run(int64_t ntasks, int helpers, std::function<void(Next&)> body) {
    auto job = std::make_shared<Job>();
    job->ntasks = ntasks;
    job->body = std::move(body);
    if (helpers > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (; threads_ < helpers; ++threads_) std::thread(&Pool::helper, this, generation_).detach();
      job_ = job, wanted_ = helpers, ++generation_;
      wake_.notify_all();
    }
    Next next(*job);
    job->body(next);
    while (job->done.load() < ntasks || job->active.load() > 0) std::this_thread::yield();
  }

 private:
  Pool() : pid_(getpid()) {}
  void helper(uint64_t seen) {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen && wanted_ > 0; });
        seen = generation_, --wanted_, job = job_;
      }
      job->active.fetch_add(1);
      if (job->next.load() < job->ntasks) {  // else the caller may have returned: do not touch body
        Next next(*job);
        job->body(next);
      }
      job->active.fetch_sub(1);
    }
  }
  const pid_t pid_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  int threads_ = 0, wanted_ = 0;
};

template <class Body>
void run_tasks(int64_t ntasks, const Body& body) {
  const int helpers = (int)std::min<int64_t>(at::get_num_threads(), ntasks) - 1;
  Pool::get().run(ntasks, helpers, [&](Next& next) { body(next); });
}

template <int NVT>
void fwd_impl(const Dims& s, const Inputs& in, float* out, float* ypre, float* st) {
  const int64_t k = s.d / s.g;
  const float *u = in.u.data_ptr<float>(), *delta = in.delta.data_ptr<float>(), *A2 = in.A2.data_ptr<float>();
  const float *Bt = in.Bt.data_ptr<float>(), *Ct = in.Ct.data_ptr<float>();
  const int64_t rows = s.b * s.d, per_task = 4;  // tasks of 4 rows (b, d)
  run_tasks((rows + per_task - 1) / per_task, [&](auto& next) {
    std::vector<float> dt(s.l);
    for (int64_t task; (task = next()) >= 0;) {
      for (int64_t i = task * per_task; i < std::min(rows, (task + 1) * per_task); ++i) {
        const int64_t bi = i / s.d, ch = i % s.d, grp = bi * s.g + ch / k;
        fwd_row<NVT>(s, in.x, ch, u + i * s.l, delta + i * s.l, in.x.z ? in.x.z + i * s.l : nullptr,
                     A2 + ch * s.np, Bt + grp * s.l * s.np, Ct + grp * s.l * s.np, out + i * s.l,
                     ypre ? ypre + i * s.l : nullptr, st + i * (s.nchunks + 1) * s.n, dt.data());
      }
    }
  });
}

// -> out (b, d, l), states (b, d, nchunks + 1, n), ypre (b, d, l) if z is given and save_ypre, else empty
std::tuple<at::Tensor, at::Tensor, at::Tensor> scan_fwd(const at::Tensor& u_, const at::Tensor& delta_,
                                                        const at::Tensor& A_, const at::Tensor& B_,
                                                        const at::Tensor& C_, const OptT& D_, const OptT& z_,
                                                        const OptT& bias_, bool softplus, int64_t chunk,
                                                        bool save_ypre) {
  const Dims s = check(u_, delta_, A_, B_, C_, D_, z_, bias_, chunk);
  const Inputs in(s, u_, delta_, A_, B_, C_, D_, z_, bias_, softplus);
  auto out = at::empty({s.b, s.d, s.l}, in.u.options());
  auto st = at::empty({s.b, s.d, s.nchunks + 1, s.n}, in.u.options());
  auto ypre = at::empty({(z_ && save_ypre) ? s.b : 0, s.d, s.l}, in.u.options());
  float *po = out.data_ptr<float>(), *pst = st.data_ptr<float>();
  float* py = ypre.numel() ? ypre.data_ptr<float>() : nullptr;
  switch (s.np / W) {
    case 1: fwd_impl<1>(s, in, po, py, pst); break;
    case 2: fwd_impl<2>(s, in, po, py, pst); break;
    case 3: fwd_impl<3>(s, in, po, py, pst); break;
    case 4: fwd_impl<4>(s, in, po, py, pst); break;
    case 8: fwd_impl<8>(s, in, po, py, pst); break;
    default: fwd_impl<0>(s, in, po, py, pst);
  }
  return {out, st, ypre};
}

struct Grads {
  float *gu, *gdelta, *gz, *gBp, *gCp, *gB, *gC, *gA, *gD, *gbias;  // gA: (b, d, n), gD, gbias: (b, d) per row
};

// Race-free B/C gradients: channel i of group g_i adds to dB[b, g_i], dC[b, g_i]. Tasks are (batch, group,
// block of channels); a task walks its channels one after the other and sums their dB, dC into its own
// (l, np) slice of a partial-sum buffer (b, g, #blocks, l, np), which stays in L2. The blocks' slices are
// summed afterwards (one small reduction, deterministic: no atomics). #blocks is chosen so that there are
// ~8 tasks per thread (load balance, see run_tasks) while the partial buffer stays small. dA, dD,
// ddelta_bias: each task writes its rows' (b, d, .) shares, summed over b afterwards.
template <int NVT>
void bwd_impl(const Dims& s, int64_t nblk, int64_t cb, const float* gout, at::IntArrayRef gst, const Inputs& in,
              const float* ypre,
              const float* st, const Grads& G) {
  const int64_t k = s.d / s.g;
  const int NV = NVT ? NVT : s.np / W;
  const float *u = in.u.data_ptr<float>(), *delta = in.delta.data_ptr<float>(), *A2 = in.A2.data_ptr<float>();
  const float *Bt = in.Bt.data_ptr<float>(), *Ct = in.Ct.data_ptr<float>();
  run_tasks(s.b * s.g * nblk, [&](auto& next) {
    std::vector<vf> rec(3 * s.chunk * NV);
    std::vector<float> dt(s.l), gy(s.l);
    for (int64_t task; (task = next()) >= 0;) {
      const int64_t grp = task / nblk, blk = task % nblk, bi = grp / s.g;  // grp: b * g + group
      const int64_t c0 = (grp % s.g) * k + blk * cb, c1 = std::min((grp % s.g) * k + k, c0 + cb);
      std::memset(G.gBp + task * s.l * s.np, 0, s.l * s.np * sizeof(float));
      std::memset(G.gCp + task * s.l * s.np, 0, s.l * s.np * sizeof(float));
      for (int64_t ch = c0; ch < c1; ++ch) {
        const int64_t i = bi * s.d + ch, r = i * s.l;
        bwd_row<NVT>(s, in.x, ch, gout + bi * gst[0] + ch * gst[1], gst[2], u + r, delta + r,
                     in.x.z ? in.x.z + r : nullptr, ypre ? ypre + r : nullptr, A2 + ch * s.np,
                     Bt + grp * s.l * s.np, Ct + grp * s.l * s.np,
                     st + i * (s.nchunks + 1) * s.n, G.gu + r, G.gdelta + r, G.gz ? G.gz + r : nullptr,
                     G.gBp + task * s.l * s.np, G.gCp + task * s.l * s.np, G.gA + i * s.n, G.gD + i,
                     G.gbias + i, dt.data(), gy.data(), rec.data());
      }
    }
  });
  // the blocks' partial sums, (b, g, #blocks, l, np) -> (b, g, n, l)
  run_tasks(s.b * s.g, [&](auto& next) {
    std::vector<float> acc(s.np);
    for (int64_t grp; (grp = next()) >= 0;) {
      for (const auto& [P, out] : {std::pair{G.gBp, G.gB}, std::pair{G.gCp, G.gC}}) {
        const float* p = P + grp * nblk * s.l * s.np;
        float* o = out + grp * s.n * s.l;
        for (int64_t t = 0; t < s.l; ++t) {
          std::memcpy(acc.data(), p + t * s.np, s.np * sizeof(float));
          for (int64_t j = 1; j < nblk; ++j)
            for (int64_t i = 0; i < s.np; ++i) acc[i] += p[(j * s.l + t) * s.np + i];
          for (int64_t i = 0; i < s.n; ++i) o[i * s.l + t] = acc[i];
        }
      }
    }
  });
}

// -> du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (the last three empty where the input is absent)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
scan_bwd(const at::Tensor& gout_, const at::Tensor& u_, const at::Tensor& delta_, const at::Tensor& A_,
         const at::Tensor& B_, const at::Tensor& C_, const OptT& D_, const OptT& z_, const OptT& bias_,
         bool softplus, const at::Tensor& st_, const at::Tensor& ypre_, int64_t chunk) {
  const Dims s = check(u_, delta_, A_, B_, C_, D_, z_, bias_, chunk);
  check_f32(gout_, "the gradient");
  TORCH_CHECK(gout_.sizes() == u_.sizes(), "scan_cpu: the gradient must be (b, d, l)");
  TORCH_CHECK(st_.dim() == 4 && st_.size(0) == s.b && st_.size(1) == s.d && st_.size(2) == s.nchunks + 1 &&
                  st_.size(3) == s.n,
              "scan_cpu: the states do not match the chunking");
  TORCH_CHECK(!z_ || ypre_.sizes() == u_.sizes(), "scan_cpu: with z, the forward's ypre is needed");
  const Inputs in(s, u_, delta_, A_, B_, C_, D_, z_, bias_, softplus);
  auto st = st_.contiguous(), ypre = ypre_.contiguous();  // gout is read with its strides
  const int64_t k = s.d / s.g;
  const int64_t want = std::max<int64_t>(1, (8 * at::get_num_threads() + s.b * s.g - 1) / (s.b * s.g));
  const int64_t cb = (k + std::min(want, k) - 1) / std::min(want, k), nblk = (k + cb - 1) / cb;
  const auto f32 = in.u.options();
  auto gu = at::empty({s.b, s.d, s.l}, f32), gdelta = at::empty({s.b, s.d, s.l}, f32);
  auto gz = at::empty({z_ ? s.b : 0, s.d, s.l}, f32);
  auto gBp = at::empty({s.b, s.g, nblk, s.l, s.np}, f32), gCp = at::empty({s.b, s.g, nblk, s.l, s.np}, f32);
  auto gB = at::empty({s.b, s.g, s.n, s.l}, f32), gC = at::empty({s.b, s.g, s.n, s.l}, f32);
  auto gA = at::empty({s.b, s.d, s.n}, f32), gD = at::zeros({s.b, s.d}, f32), gbias = at::zeros({s.b, s.d}, f32);
  const Grads G{gu.data_ptr<float>(), gdelta.data_ptr<float>(), z_ ? gz.data_ptr<float>() : nullptr,
                gBp.data_ptr<float>(), gCp.data_ptr<float>(), gB.data_ptr<float>(), gC.data_ptr<float>(),
                gA.data_ptr<float>(), gD.data_ptr<float>(), gbias.data_ptr<float>()};
  const float *pg = gout_.data_ptr<float>(), *pst = st.data_ptr<float>();
  const auto gst = gout_.strides();
  const float* py = z_ ? ypre.data_ptr<float>() : nullptr;
  switch (s.np / W) {
    case 1: bwd_impl<1>(s, nblk, cb, pg, gst, in, py, pst, G); break;
    case 2: bwd_impl<2>(s, nblk, cb, pg, gst, in, py, pst, G); break;
    case 3: bwd_impl<3>(s, nblk, cb, pg, gst, in, py, pst, G); break;
    case 4: bwd_impl<4>(s, nblk, cb, pg, gst, in, py, pst, G); break;
    case 8: bwd_impl<8>(s, nblk, cb, pg, gst, in, py, pst, G); break;
    default: bwd_impl<0>(s, nblk, cb, pg, gst, in, py, pst, G);
  }
  auto none = at::empty({0}, f32);
  return {gu, gdelta, batch_sum(gA), gB, gC, D_ ? batch_sum(gD) : none, gz, bias_ ? batch_sum(gbias) : none};
}

}  // namespace

TORCH_LIBRARY(ssm_scan_cpu, m) {
  m.def("fwd(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, Tensor? delta_bias, "
        "bool softplus, int chunk, bool save_ypre) -> (Tensor, Tensor, Tensor)",
        &scan_fwd);
  m.def("bwd(Tensor gout, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, bool softplus, Tensor states, Tensor ypre, int chunk) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
        &scan_bwd);
}
