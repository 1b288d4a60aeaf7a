// The Transformer of model.py, forward and backward through the loss in one call, for training small models on
// CPU: torch.ops.transformer_cpu.loss_and_grads, built on first use by torch.utils.cpp_extension.load (model.py).
//
// Why: at widths 16-32 a step of torch ops spends most of its time outside the matmuls, each op one pass over
// memory (results/bench/free_parts_*.txt: with attention, rotary, norms and gate free, width 16 still reaches
// only 26% of the matmul rate). Here one dialog at a time goes forward and straight back while its activations
// sit in L1/L2, every product runs through one register-blocked kernel (gemm), and nothing is allocated per op.
//
// The model (per dialog of T tokens, width d, h heads of e = d / h, SwiGLU hidden H, vocabulary V):
//   x = embed[idx]
//   per layer: a = rms(x) g1;  q, k, v = a Wqkv^T (q, k rotated);  y = causal softmax(q k^T / sqrt(e)) v;
//              x = x + y Wo^T;  b = rms(x) g2;  x = x + (silu(b W1^T) * b W3^T) W2^T
//   loss = sum over positions with weight w > 0 of w * cross_entropy(rms(x) gf Head^T, target) * scale
// Rows are one dialog each, padded at the end (model.py's one_per_row training): causal attention never sees
// the padding, so only the first `length` tokens of a row are computed.
//
// Threads: the rows are cut into a fixed number of contiguous chunks (by the batch size alone); each chunk sums
// its gradients into its own buffer, in row order, and the buffers are added in chunk order to the caller's
// gradient tensors (.grad, as loss.backward() adds to it): the same floats for any number of threads.
// Vectors: GCC vector extensions of 8 floats (one AVX2 register; other targets split them), and of 16 for the
// products where the CPU has AVX-512; loads through memcpy, from buffers kept on 64-byte boundaries.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace {

typedef float v8 __attribute__((vector_size(32)));
inline v8 splat(float x) { return x - v8{}; }   // x - 0 is x for every x (not x + 0: -0 + 0 = +0): it folds
inline v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
typedef int32_t vi8 __attribute__((vector_size(32)));
inline int round8(int n) { return (n + 7) & ~7; }
inline float hsum(v8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }  // a tree: 3 adds deep, not 7
inline float hmax(v8 v) { float m = v[0]; for (int i = 1; i < 8; ++i) m = std::max(m, v[i]); return m; }
const vi8 iota{0, 1, 2, 3, 4, 5, 6, 7};

// e^x for 8 floats, branch-free so that it vectorizes: 2^y = 2^n 2^f with n = round(y), |f| <= 1/2, 2^f by its
// Taylor series to degree 6 (relative error < 2e-7); y is clamped to [-127, 127], where 2^-127 comes out as 0
// (so -inf -> 0, as the masked scores need).
inline v8 vexp(v8 x) {
  v8 y = x * 1.44269504f;
  y = y < -127.f ? splat(-127.f) : y;
  y = y > 127.f ? splat(127.f) : y;
  const v8 n = (y + 12582912.f) - 12582912.f;   // round to nearest: 1.5 * 2^23 pushes the fraction out
  const v8 f = y - n;
  v8 p = splat(1.540353e-4f);
  p = p * f + 1.333356e-3f, p = p * f + 9.618129e-3f, p = p * f + 5.550411e-2f;
  p = p * f + 0.2402265f, p = p * f + 0.6931472f, p = p * f + 1.f;
  const vi8 bits = (__builtin_convertvector(n, vi8) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline float sexp(float x) { return vexp(splat(x))[0]; }

// ---------------------------------------------------------------------------------------------------- products
// C[M x N] (=, or += with acc) A[M x K] B[K x N], row-major with leading dims. Blocks of R rows x NV vectors
// are summed in registers over k (R * NV accumulators; per k, NV loads of B and R broadcasts of A): strips of
// 2 and 1 wide vectors (16 floats with AVX-512, else 8), then of 8 floats, then a scalar tail.
// Causal limits, so that the attention products skip what the mask zeroes (all entries they skip are 0):
//   LIMIT_N: a block of rows [m0, m0 + R) needs columns below round8(m0 + R) only (scores q k^T, dP; the
//            columns past that within the block's last 8 are left unwritten: their readers never read them);
//   LIMIT_K: ... needs k < m0 + R only (P v, dS k);
//   FROM_M:  ... needs k >= m0 only (dS^T q, P^T dy: the keys' and values' gradients).
// gemm_at takes A transposed, stored (K x M) with leading dim lda: C = A^T B without a transpose (x^T dy for the
// weights' gradients); the broadcasts read A one float at a time, so its layout costs nothing.
enum Limit { NONE, LIMIT_N, LIMIT_K, FROM_M };

#if defined(__AVX512F__)
typedef float vw __attribute__((vector_size(64)));
#else
typedef v8 vw;
#endif

template <class V>
inline V bcast(float x) { return x - V{}; }   // x - 0 is x for every x (x + 0 is not: -0 + 0 = +0), so it folds
template <class V>
inline V loadv(const float* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <class V>
inline void storev(float* p, V v) { std::memcpy(p, &v, sizeof v); }

template <class V, int R, int NV, bool AT>
inline void block(int k0, int k1, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc) {
  constexpr int L = sizeof(V) / 4;
  V c[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) c[r][j] = acc ? loadv<V>(C + r * ldc + L * j) : V{};
  for (int k = k0; k < k1; ++k) {
    V b[NV];
    for (int j = 0; j < NV; ++j) b[j] = loadv<V>(B + k * ldb + L * j);
    for (int r = 0; r < R; ++r) {
      const V a = bcast<V>(AT ? A[k * lda + r] : A[r * lda + k]);
      for (int j = 0; j < NV; ++j) c[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) storev(C + r * ldc + L * j, c[r][j]);
}

template <class V, int NV, int R, bool AT>
inline void rows(int n, int k0, int k1, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc) {
  if (n == R) return block<V, R, NV, AT>(k0, k1, A, lda, B, ldb, C, ldc, acc);
  if constexpr (R > 1) rows<V, NV, R - 1, AT>(n, k0, k1, A, lda, B, ldb, C, ldc, acc);
}

// one strip of columns [n0, n0 + NV lanes) over all rows, RM rows at a time
template <class V, int NV, int RM, bool AT>
void strip(int M, int n0, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc,
           Limit limit) {
  constexpr int L = sizeof(V) / 4;
  for (int m0 = 0; m0 < M; m0 += RM) {
    const int R = std::min(RM, M - m0);
    const int k0 = limit == FROM_M ? std::min(m0, K) : 0, k1 = limit == LIMIT_K ? std::min(m0 + R, K) : K;
    const float* Am = AT ? A + m0 : A + m0 * lda;
    if (limit == LIMIT_N && n0 + NV * L > round8(m0 + R)) {   // the diagonal in this strip: 8 columns at a time
      for (int n = n0; n < round8(m0 + R); n += 8)            // up to it (the rest is never read)
        rows<v8, 1, RM, AT>(R, k0, k1, Am, lda, B + n, ldb, C + m0 * ldc + n, ldc, acc);
      continue;
    }
    rows<V, NV, RM, AT>(R, k0, k1, Am, lda, B + n0, ldb, C + m0 * ldc + n0, ldc, acc);
  }
}

template <bool AT>
void product(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc,
             Limit limit) {
  constexpr int L = sizeof(vw) / 4;
  int n0 = 0;
  for (; n0 + 2 * L <= N; n0 += 2 * L) strip<vw, 2, 4, AT>(M, n0, K, A, lda, B, ldb, C, ldc, acc, limit);
  for (; n0 + L <= N; n0 += L) strip<vw, 1, 8, AT>(M, n0, K, A, lda, B, ldb, C, ldc, acc, limit);
  for (; n0 + 8 <= N; n0 += 8) strip<v8, 1, 8, AT>(M, n0, K, A, lda, B, ldb, C, ldc, acc, limit);
  for (; n0 < N; ++n0)   // the last columns, one at a time
    for (int m = 0; m < M; ++m) {
      if (limit == LIMIT_N && n0 >= round8(m + 1)) continue;
      const int k0 = limit == FROM_M ? std::min(m, K) : 0, k1 = limit == LIMIT_K ? std::min(m + 1, K) : K;
      float s = acc ? C[m * ldc + n0] : 0.f;
      for (int k = k0; k < k1; ++k) s += (AT ? A[k * lda + m] : A[m * lda + k]) * B[k * ldb + n0];
      C[m * ldc + n0] = s;
    }
}

void gemm(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc,
          Limit limit = NONE) {
  product<false>(M, N, K, A, lda, B, ldb, C, ldc, acc, limit);
}

void gemm_at(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc,
             Limit limit = NONE) {
  product<true>(M, N, K, A, lda, B, ldb, C, ldc, acc, limit);
}

// dst[c x r] = src[r x c]^T (leading dims given), in tiles of 16 x 16 (whole cache lines read and written)
void transpose(int r, int c, const float* src, int lds, float* dst, int ldd) {
  for (int i0 = 0; i0 < r; i0 += 16)
    for (int j0 = 0; j0 < c; j0 += 16)
      for (int i = i0; i < std::min(i0 + 16, r); ++i)
        for (int j = j0; j < std::min(j0 + 16, c); ++j) dst[j * ldd + i] = src[i * lds + j];
}

// ---------------------------------------------------------------------------------------------------- pieces
// the sum of squares / products of rows of d floats, 8 lanes at a time (a float loop would not vectorize)
inline float dot(const float* a, const float* b, int d) {
  v8 acc{};
  int i = 0;
  for (; i + 8 <= d; i += 8) acc += load8(a + i) * load8(b + i);
  float s = hsum(acc);
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

void rms_fwd(int T, int d, const float* x, const float* g, float eps, float* inv, float* y) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + t * d;
    inv[t] = 1.f / std::sqrt(dot(xr, xr, d) / d + eps);
    for (int i = 0; i < d; ++i) y[t * d + i] = xr[i] * inv[t] * g[i];
  }
}

// y = x r g with r = (mean(x^2) + eps)^(-1/2): dx += r (g dy - x r^2 mean(g dy x)), dg += dy x r
void rms_bwd(int T, int d, const float* x, const float* inv, const float* g, const float* dy, float* dx, float* dg) {
  for (int t = 0; t < T; ++t) {
    const float *xr = x + t * d, *dyr = dy + t * d, r = inv[t];
    v8 acc{};
    int i = 0;
    for (; i + 8 <= d; i += 8) acc += load8(g + i) * load8(dyr + i) * load8(xr + i);
    float c = hsum(acc);
    for (; i < d; ++i) c += g[i] * dyr[i] * xr[i];
    c *= r * r / d;
    for (i = 0; i < d; ++i) {
      dg[i] += dyr[i] * xr[i] * r;
      dx[t * d + i] += r * (g[i] * dyr[i] - xr[i] * c);
    }
  }
}

// the heads of width e in the first w columns of rows of ld floats (q and k: w = 2d), turned by position: pairs
// (i, i + e/2) -> (x1 cos - x2 sin, x2 cos + x1 sin), i.e. x C + swap(x) S with model.rope()'s tables written out
// per row, C = (cos, cos) and S = (-sin, sin) per head, (T, w) each; sign -1 turns back (the backward: the
// transpose of a rotation). 8 floats at a time where swap(x) is a load (e/2 a multiple of 8) or a shuffle of one
// (e divides 8); else float by float.
void rope(int T, int w, int e, float* x, int ld, const float* C, const float* S, float sign) {
  const int half = e / 2;
  const vi8 swap = (iota / e) * e + (iota % e + half) % e;   // lanes of a vector of heads of e <= 8, pairs swapped
  for (int t = 0; t < T; ++t) {
    float* p = x + t * ld;
    const float *c = C + t * w, *sn = S + t * w;
    if (half % 8 == 0) {
      for (int hd = 0; hd < w; hd += e)
        for (int i = hd; i < hd + half; i += 8) {
          const v8 x1 = load8(p + i), x2 = load8(p + i + half);
          store8(p + i, x1 * load8(c + i) + sign * x2 * load8(sn + i));
          store8(p + i + half, x2 * load8(c + i + half) + sign * x1 * load8(sn + i + half));
        }
    } else if (8 % e == 0 && w % 8 == 0) {
      for (int j = 0; j < w; j += 8) {
        const v8 v = load8(p + j);
        store8(p + j, v * load8(c + j) + sign * __builtin_shuffle(v, swap) * load8(sn + j));
      }
    } else {
      for (int hd = 0; hd < w; hd += e)
        for (int i = hd; i < hd + half; ++i) {
          const float x1 = p[i], x2 = p[i + half];
          p[i] = x1 * c[i] + sign * x2 * sn[i];
          p[i + half] = x2 * c[i + half] + sign * x1 * sn[i + half];
        }
    }
  }
}

// row p of causal scores, unnormalized: p[c] = exp((p[c] - max) * scale) over c <= i, 0 for c in (i, ld);
// -> 1 / sum(p), by which the caller scales the row's output (one pass fewer than normalizing p here)
float softmax_causal(float* p, int i, int ld, float scale) {
  const int n = round8(i + 1);
  v8 mx = splat(-INFINITY), sum{};
  for (int c = 0; c < n; c += 8) {
    const v8 v = iota + c <= i ? load8(p + c) : splat(-INFINITY);
    mx = mx > v ? mx : v;
  }
  const float m = hmax(mx);
  for (int c = 0; c < n; c += 8) {
    v8 v = vexp((load8(p + c) - m) * scale);
    v = iota + c <= i ? v : v8{};
    store8(p + c, v);
    sum += v;
  }
  std::fill(p + n, p + ld, 0.f);
  return 1.f / hsum(sum);
}

// m = silu(u1) * u3 for rows of u = (u1, u3), H each, keeping sg = sigmoid(u1); and the backward: du1, du3 from dm
void gate_fwd(int T, int H, const float* u, float* m, float* sg) {
  for (int t = 0; t < T; ++t) {
    const float *u1 = u + (size_t)t * 2 * H, *u3 = u1 + H;
    float *mr = m + (size_t)t * H, *sr = sg + (size_t)t * H;
    int i = 0;
    for (; i + 8 <= H; i += 8) {
      const v8 z = load8(u1 + i), g = 1.f / (1.f + vexp(-z));
      store8(sr + i, g), store8(mr + i, z * g * load8(u3 + i));
    }
    for (; i < H; ++i) sr[i] = 1.f / (1.f + sexp(-u1[i])), mr[i] = u1[i] * sr[i] * u3[i];
  }
}

void gate_bwd(int T, int H, const float* u, const float* sg, const float* dm, float* du) {
  for (int t = 0; t < T; ++t) {
    const float *u1 = u + (size_t)t * 2 * H, *u3 = u1 + H, *sr = sg + (size_t)t * H, *dmr = dm + (size_t)t * H;
    float *du1 = du + (size_t)t * 2 * H, *du3 = du1 + H;
    int i = 0;
    for (; i + 8 <= H; i += 8) {   // silu'(z) = sg (1 + z (1 - sg))
      const v8 z = load8(u1 + i), g = load8(sr + i), d = load8(dmr + i);
      store8(du1 + i, d * load8(u3 + i) * g * (1.f + z * (1.f - g)));
      store8(du3 + i, d * z * g);
    }
    for (; i < H; ++i) {
      const float z = u1[i], g = sr[i];
      du1[i] = dmr[i] * u3[i] * g * (1.f + z * (1.f - g));
      du3[i] = dmr[i] * z * g;
    }
  }
}

// cross-entropy of logits p (V) against target, weighted by w: returns w * loss; p becomes its gradient,
// w (softmax - onehot)
double cross_entropy(float* p, int V, int64_t target, float w) {
  v8 vm = splat(-INFINITY);
  int c = 0;
  for (; c + 8 <= V; c += 8) vm = vm > load8(p + c) ? vm : load8(p + c);
  float mx = hmax(vm);
  for (; c < V; ++c) mx = std::max(mx, p[c]);
  const float logit = p[target];
  v8 vs{};
  c = 0;
  for (; c + 8 <= V; c += 8) {
    const v8 v = vexp(load8(p + c) - mx);
    store8(p + c, v);
    vs += v;
  }
  float sum = hsum(vs);
  for (; c < V; ++c) sum += (p[c] = sexp(p[c] - mx));
  const float q = w / sum;
  for (c = 0; c < V; ++c) p[c] *= q;
  p[target] -= w;
  return (double)w * (std::log(sum) + mx - logit);
}

// ---------------------------------------------------------------------------------------------------- one model
// float buffers on 64-byte boundaries: a 16-float load from an address that is not one spans two cache lines
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
typedef std::vector<float, Aligned64<float>> Floats;

struct Shape {
  int L, d, h, e, H, V;
  float eps;
};

struct Weights {               // read-only; the transposes are made once per call
  const float* embed;          // (V, d)
  std::vector<const float*> g1, wqkv, wqkvT, wo, woT, g2, w1, w3, w13T, w2, w2T;  // per layer
  const float *gf, *head, *headT;
};

struct GradPtrs {               // into one chunk's buffer, where the parameters' gradients go
  float* embed;                 // wqkv, w13 and head summed transposed, (in, out): gW^T += x^T dy transposes
  std::vector<float*> g1, wqkvT, wo, g2, w13T, w2;   // only the thin x, not the wide dy (w13: W1 then W3)
  float *gf, *headT;
};

struct Work {                  // a thread's activations and scratch, sized for the longest row of its chunk
  int T = 0, ldS = 0;
  Floats X, inv1, A, QKV, P, Rs, Y, X2, inv2, Bn, U, M, SG;   // per layer (X: L + 1 of them)
  Floats dX, dA, dQKV, dY, dU, dM, dS, kvT, dYr, logits, rows_x, rows_n, rows_inv;
  std::vector<int> loss_pos;   // the positions with a weight (capacity kept between rows: no allocation)
  void size(const Shape& s, int T_) {
    T = T_, ldS = round8(T_);
    const int L = s.L, d = s.d, H = s.H;
    X.resize((size_t)(L + 1) * T * d), inv1.resize(L * T), A.resize(L * T * d), QKV.resize(L * T * 3 * d);
    P.resize((size_t)L * s.h * T * ldS), Rs.resize(L * s.h * T), Y.resize(L * T * d), X2.resize(L * T * d), inv2.resize(L * T);
    Bn.resize(L * T * d), U.resize((size_t)L * T * 2 * H), M.resize((size_t)L * T * H), SG.resize((size_t)L * T * H);
    dX.resize(T * d), dA.resize(T * d), dQKV.resize(T * 3 * d), dY.resize(T * d), dU.resize(T * 2 * H);
    dM.resize(T * H), dS.resize(T * ldS);
    kvT.resize((size_t)std::max(s.e, 8) * ldS), dYr.resize(T * s.e);
    logits.resize((size_t)T * s.V), rows_x.resize(T * d), rows_n.resize(T * d), rows_inv.resize(T);
  }
};

// The loss of one row of T tokens, and its gradients added to g. Returns sum of w * cross-entropy * scale.
double row(const Shape& s, const Weights& W, const GradPtrs& g, Work& k, const int64_t* idx, const int64_t* tgt,
           const float* wt, int T, float scale, const float* cs, const float* sn) {
  const int d = s.d, h = s.h, e = s.e, H = s.H, V = s.V, ldS = k.ldS, d3 = 3 * d;
  const float att_scale = 1.f / std::sqrt((float)e);
  auto X = [&](int l) { return k.X.data() + (size_t)l * k.T * d; };
  auto at = [&](Floats& v, int l, int per_t) { return v.data() + (size_t)l * k.T * per_t; };

  for (int t = 0; t < T; ++t) std::memcpy(X(0) + t * d, W.embed + idx[t] * d, d * sizeof(float));
  for (int l = 0; l < s.L; ++l) {
    float *x = X(l), *a = at(k.A, l, d), *qkv = at(k.QKV, l, d3), *y = at(k.Y, l, d), *x2 = at(k.X2, l, d);
    float *bn = at(k.Bn, l, d), *u = at(k.U, l, 2 * H), *m = at(k.M, l, H), *P = at(k.P, l, h * ldS);
    rms_fwd(T, d, x, W.g1[l], s.eps, at(k.inv1, l, 1), a);
    gemm(T, d3, d, a, d, W.wqkvT[l], d3, qkv, d3, false);
    rope(T, 2 * d, e, qkv, d3, cs, sn, 1.f);
    for (int j = 0; j < h; ++j) {
      float* Ph = P + (size_t)j * T * ldS;           // (T, ldS) the softmax, zero above the diagonal
      float* kT = k.kvT.data();                      // (e, ldS) this head's keys, transposed
      std::fill(kT, kT + e * ldS, 0.f);
      transpose(T, e, qkv + d + j * e, d3, kT, ldS);
      gemm(T, ldS, e, qkv + j * e, d3, kT, ldS, Ph, ldS, false, LIMIT_N);
      float* r = at(k.Rs, l, h) + j * T;            // (T,) 1 / each row's softmax sum
      for (int i = 0; i < T; ++i) r[i] = softmax_causal(Ph + (size_t)i * ldS, i, ldS, att_scale);
      gemm(T, e, T, Ph, ldS, qkv + 2 * d + j * e, d3, y + j * e, d, false, LIMIT_K);
      for (int i = 0; i < T; ++i)
        for (int c = 0; c < e; ++c) y[i * d + j * e + c] *= r[i];
    }
    std::memcpy(x2, x, sizeof(float) * T * d);
    gemm(T, d, d, y, d, W.woT[l], d, x2, d, true);
    rms_fwd(T, d, x2, W.g2[l], s.eps, at(k.inv2, l, 1), bn);
    gemm(T, 2 * H, d, bn, d, W.w13T[l], 2 * H, u, 2 * H, false);
    gate_fwd(T, H, u, m, at(k.SG, l, H));
    float* xn = X(l + 1);
    std::memcpy(xn, x2, sizeof(float) * T * d);
    gemm(T, d, H, m, H, W.w2T[l], d, xn, d, true);
  }

  // the head and the loss, at the positions with a weight
  const float* xf = X(s.L);
  std::vector<int>& pos = k.loss_pos;
  pos.clear();
  for (int t = 0; t < T; ++t)
    if (wt[t] > 0) pos.push_back(t);
  const int n = (int)pos.size();
  double loss = 0.0;
  std::fill(k.dX.begin(), k.dX.begin() + T * d, 0.f);
  if (n > 0) {
    float* xs = k.rows_x.data();   // the final states of those rows, gathered
    for (int r = 0; r < n; ++r) std::memcpy(xs + r * d, xf + pos[r] * d, d * sizeof(float));
    rms_fwd(n, d, xs, W.gf, s.eps, k.rows_inv.data(), k.rows_n.data());
    float* lg = k.logits.data();
    gemm(n, V, d, k.rows_n.data(), d, W.headT, V, lg, V, false);
    for (int r = 0; r < n; ++r)   // the logits' gradient, in place
      loss += cross_entropy(lg + (size_t)r * V, V, tgt[pos[r]], wt[pos[r]] * scale);
    gemm_at(d, V, n, k.rows_n.data(), d, lg, V, g.headT, V, true);
    float* dxs = k.dA.data();
    gemm(n, d, V, lg, V, W.head, d, dxs, d, false);
    float* dxr = k.dY.data();
    std::fill(dxr, dxr + n * d, 0.f);
    rms_bwd(n, d, xs, k.rows_inv.data(), W.gf, dxs, dxr, g.gf);
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < d; ++i) k.dX[pos[r] * d + i] += dxr[r * d + i];
  }

  float* dX = k.dX.data();
  for (int l = s.L - 1; l >= 0; --l) {
    const float *x = X(l), *a = at(k.A, l, d), *y = at(k.Y, l, d), *x2 = at(k.X2, l, d), *bn = at(k.Bn, l, d);
    const float *u = at(k.U, l, 2 * H), *m = at(k.M, l, H), *P = at(k.P, l, h * ldS);
    float* qkv = at(k.QKV, l, d3);
    // x_out = x2 + m W2^T
    float *dM = k.dM.data(), *dU = k.dU.data();
    gemm(T, H, d, dX, d, W.w2[l], H, dM, H, false);
    gemm_at(d, H, T, dX, d, m, H, g.w2[l], H, true);
    gate_bwd(T, H, u, at(k.SG, l, H), dM, dU);
    gemm_at(d, 2 * H, T, bn, d, dU, 2 * H, g.w13T[l], 2 * H, true);
    float* dB = k.dA.data();
    gemm(T, d, H, dU, 2 * H, W.w1[l], d, dB, d, false);
    gemm(T, d, H, dU + H, 2 * H, W.w3[l], d, dB, d, true);
    rms_bwd(T, d, x2, at(k.inv2, l, 1), W.g2[l], dB, dX, g.g2[l]);
    // x2 = x + y Wo^T
    float *dY = k.dY.data(), *dQKV = k.dQKV.data();
    gemm(T, d, d, dX, d, W.wo[l], d, dY, d, false);
    gemm_at(d, d, T, dX, d, y, d, g.wo[l], d, true);
    for (int j = 0; j < h; ++j) {
      const float* Ph = P + (size_t)j * T * ldS;
      float *dS = k.dS.data(), *vT = k.kvT.data();
      std::fill(vT, vT + e * ldS, 0.f);
      transpose(T, e, qkv + 2 * d + j * e, d3, vT, ldS);
      gemm(T, ldS, e, dY + j * e, d, vT, ldS, dS, ldS, false, LIMIT_N);   // dP
      const float* r = at(k.Rs, l, h) + j * T;
      for (int i = 0; i < T; ++i) {   // dS = P (dP - sum(P dP)) / sqrt(e) with P = r Ph; Ph is 0 beyond i
        const float* p = Ph + (size_t)i * ldS;
        float* ds = dS + (size_t)i * ldS;
        const int n = round8(i + 1);
        v8 dot{};
        for (int c = 0; c < n; c += 8) dot += load8(p + c) * load8(ds + c);
        const float dt = r[i] * hsum(dot), f = r[i] * att_scale;
        for (int c = 0; c < n; c += 8) store8(ds + c, load8(p + c) * (load8(ds + c) - dt) * f);
        std::fill(ds + n, ds + ldS, 0.f);
      }
      float* dyr = k.dYr.data();   // (T, e) this head's dy, rows scaled by r: P^T dy = Ph^T (r dy)
      for (int i = 0; i < T; ++i)
        for (int c = 0; c < e; ++c) dyr[i * e + c] = dY[i * d + j * e + c] * r[i];
      gemm(T, e, T, dS, ldS, qkv + d + j * e, d3, dQKV + j * e, d3, false, LIMIT_K);   // dq = dS k
      gemm_at(T, e, T, dS, ldS, qkv + j * e, d3, dQKV + d + j * e, d3, false, FROM_M);       // dk = dS^T q
      gemm_at(T, e, T, Ph, ldS, dyr, e, dQKV + 2 * d + j * e, d3, false, FROM_M);             // dv = P^T dy
    }
    rope(T, 2 * d, e, dQKV, d3, cs, sn, -1.f);
    gemm_at(d, d3, T, a, d, dQKV, d3, g.wqkvT[l], d3, true);
    float* dA = k.dA.data();
    gemm(T, d, d3, dQKV, d3, W.wqkv[l], d, dA, d, false);
    rms_bwd(T, d, x, at(k.inv1, l, 1), W.g1[l], dA, dX, g.g1[l]);
  }
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < d; ++i) g.embed[idx[t] * d + i] += dX[t * d + i];
  return loss;
}

// a weight (rows x cols) written transposed into dst (cols x rows) at column offset col, leading dim ld
void transpose_into(const at::Tensor& w, float* dst, int ld, int col) {
  const int r = (int)w.size(0), c = (int)w.size(1);
  transpose(r, c, w.data_ptr<float>(), c, dst + col, ld);
}

// a parameter's role, from its place in model.py's order (embed, 7 per layer, final norm, head)
enum Role { EMBED, NORM, WQKV, WO, W1, W3, W2, HEAD };
Role role(int64_t i, int64_t np) {
  static const Role in_layer[7] = {NORM, WQKV, WO, NORM, W1, W3, W2};
  return i == 0 ? EMBED : i == np - 1 ? HEAD : i == np - 2 ? NORM : in_layer[(i - 1) % 7];
}

// params: embed, then per layer g1, wqkv, wo, g2, w1, w3, w2, then gf, head (model.py's order, fp32, contiguous);
// grads: a tensor like each, to which its gradient is added (as loss.backward() adds to .grad) -> the loss (fp64)
at::Tensor loss_and_grads(const at::Tensor& idx, const at::Tensor& lengths, const at::Tensor& tgt,
                          const at::Tensor& weight, double scale, const std::vector<at::Tensor>& params,
                          const std::vector<at::Tensor>& grads, const at::Tensor& cos, const at::Tensor& sin,
                          int64_t n_head, double eps, int64_t chunks) {
  const int64_t np = (int64_t)params.size();
  TORCH_CHECK(np >= 4 && (np - 3) % 7 == 0, "expected embed, 7 tensors per layer, norm, head");
  TORCH_CHECK((int64_t)grads.size() == np, "one gradient per parameter");
  for (int64_t i = 0; i < np; ++i) {
    const at::Tensor &p = params[i], &gr = grads[i];
    TORCH_CHECK(p.scalar_type() == at::kFloat && p.is_contiguous() && p.device().is_cpu(), "fp32 contiguous CPU params");
    TORCH_CHECK(gr.scalar_type() == at::kFloat && gr.is_contiguous() && gr.sizes() == p.sizes() && gr.device().is_cpu(),
                "grads: fp32 contiguous CPU tensors shaped like the params");
  }
  TORCH_CHECK(idx.dim() == 2 && idx.scalar_type() == at::kLong && idx.is_contiguous(), "idx: (b, t) int64");
  TORCH_CHECK(tgt.sizes() == idx.sizes() && tgt.scalar_type() == at::kLong && tgt.is_contiguous(), "tgt like idx");
  TORCH_CHECK(weight.sizes() == idx.sizes() && weight.scalar_type() == at::kFloat && weight.is_contiguous(), "weight");
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == idx.size(0) && lengths.scalar_type() == at::kLong &&
              lengths.is_contiguous(), "lengths: (b,) int64");
  Shape s;
  s.L = (int)((np - 3) / 7), s.V = (int)params[0].size(0), s.d = (int)params[0].size(1), s.h = (int)n_head;
  s.e = s.d / s.h, s.H = (int)params[5].size(0), s.eps = (float)eps;
  TORCH_CHECK(s.e * s.h == s.d && s.e % 2 == 0, "width / heads must be even");
  const int B = (int)idx.size(0), Tmax = (int)idx.size(1), H = s.H;
  TORCH_CHECK(cos.dim() == 2 && cos.size(0) >= Tmax && cos.size(1) == 2 * s.d && cos.sizes() == sin.sizes() &&
              cos.is_contiguous() && sin.is_contiguous(), "rope tables: (t, 2 * width) each");
  const int64_t *ip = idx.data_ptr<int64_t>(), *tp = tgt.data_ptr<int64_t>(), *lp = lengths.data_ptr<int64_t>();
  const float* wp = weight.data_ptr<float>();
  for (int r = 0; r < B; ++r) {   // every index the rows will read, checked before any work
    TORCH_CHECK(lp[r] >= 0 && lp[r] <= Tmax, "length out of range: ", lp[r], " for rows of ", Tmax);
    for (int64_t t = 0; t < lp[r]; ++t) {
      const int64_t i = r * Tmax + t;
      TORCH_CHECK(ip[i] >= 0 && ip[i] < s.V, "token out of range: ", ip[i], " for a vocabulary of ", s.V);
      TORCH_CHECK(wp[i] <= 0 || (tp[i] >= 0 && tp[i] < s.V), "target out of range: ", tp[i]);
    }
  }

  // Buffers kept by the calling thread between calls (no allocation, nor its page faults, per step): the
  // transposed weights (in, out), and each chunk's gradient buffer, laid out as the params, with wqkv, w1 | w3
  // (side by side: the slot of w1 holds both) and head transposed (GradPtrs); every slot on 64 bytes.
  std::vector<int64_t> offset(np + 1, 0);
  for (int64_t i = 0; i < np; ++i) {
    const Role r = role(i, np);
    const int64_t size = r == W1 ? 2 * params[i].numel() : r == W3 ? 0 : params[i].numel();
    offset[i + 1] = (offset[i] + size + 15) / 16 * 16;
  }
  const int64_t n = offset[np];
  const int nchunk = (int)std::max<int64_t>(1, std::min<int64_t>(chunks, B));
  static thread_local Floats wT_, gbuf_;
  wT_.resize(n), gbuf_.resize(nchunk * n);
  float *wT = wT_.data(), *gbuf = gbuf_.data();   // (the worker threads below have thread_locals of their own)
  Weights W;
  auto P = [&](int64_t i) { return params[i].data_ptr<float>(); };
  W.embed = P(0), W.gf = P(np - 2), W.head = P(np - 1), W.headT = wT + offset[np - 1];
  for (int l = 0; l < s.L; ++l) {
    const int64_t b = 1 + 7 * l;
    W.g1.push_back(P(b)), W.wqkv.push_back(P(b + 1)), W.wqkvT.push_back(wT + offset[b + 1]);
    W.wo.push_back(P(b + 2)), W.woT.push_back(wT + offset[b + 2]), W.g2.push_back(P(b + 3));
    W.w1.push_back(P(b + 4)), W.w3.push_back(P(b + 5)), W.w13T.push_back(wT + offset[b + 4]);
    W.w2.push_back(P(b + 6)), W.w2T.push_back(wT + offset[b + 6]);
  }
  at::parallel_for(0, np, 1, [&](int64_t i0, int64_t i1) {   // the transposes, a weight each
    for (int64_t i = i0; i < i1; ++i) {
      const Role r = role(i, np);
      if (r == W1 || r == W3) transpose_into(params[i], wT + offset[r == W1 ? i : i - 1], 2 * H, r == W1 ? 0 : H);
      else if (r != EMBED && r != NORM) transpose_into(params[i], wT + offset[i], (int)params[i].size(0), 0);
    }
  });

  std::vector<double> losses(nchunk, 0.0);
  at::parallel_for(0, nchunk, 1, [&](int64_t c0, int64_t c1) {   // torch's OpenMP threads (-fopenmp)
    for (int64_t c = c0; c < c1; ++c) {
      float* gb = gbuf + c * n;
      std::fill(gb, gb + n, 0.f);
      GradPtrs g;
      g.embed = gb, g.gf = gb + offset[np - 2], g.headT = gb + offset[np - 1];
      for (int l = 0; l < s.L; ++l) {
        const int64_t b = 1 + 7 * l;
        g.g1.push_back(gb + offset[b]), g.wqkvT.push_back(gb + offset[b + 1]), g.wo.push_back(gb + offset[b + 2]);
        g.g2.push_back(gb + offset[b + 3]), g.w13T.push_back(gb + offset[b + 4]), g.w2.push_back(gb + offset[b + 6]);
      }   // w1 and w3 lie next to each other in the buffer, as the rows of w13
      const int r0 = (int)((int64_t)B * c / nchunk), r1 = (int)((int64_t)B * (c + 1) / nchunk);
      int Tc = 1;
      for (int r = r0; r < r1; ++r) Tc = std::max<int>(Tc, (int)lp[r]);
      static thread_local Work k;   // kept between calls, as the buffers above;
      k.size(s, Tc);                // everything in it is written before it is read
      for (int r = r0; r < r1; ++r) {
        const int T = (int)lp[r];
        if (T > 0)
          losses[c] += row(s, W, g, k, ip + (int64_t)r * Tmax, tp + (int64_t)r * Tmax, wp + (int64_t)r * Tmax, T,
                           (float)scale, cos.data_ptr<float>(), sin.data_ptr<float>());
      }
    }
  });

  // each gradient += the chunks' buffers summed in chunk order (the same floats on any number of threads), read
  // transposed back where they were summed transposed: grad[o][j] += sum_c buf_c[src + j * ld + o]; in tiles of
  // 16 x 16, so that the buffers are read and the gradient written a cache line at a time
  at::parallel_for(0, np, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* out = grads[i].data_ptr<float>();
      const Role r = role(i, np);
      int64_t src = offset[i], rows = 1, cols = params[i].numel(), ld = 1, step = 1;   // plain: grad[0][j]
      if (r == HEAD || r == WQKV || r == W1 || r == W3) {   // summed transposed
        rows = params[i].size(0), cols = params[i].size(1), ld = rows, step = 16;
        if (r == W1 || r == W3) src = r == W1 ? offset[i] : offset[i - 1] + H, ld = 2 * H;
      }
      float sum[16][16];
      for (int64_t j0 = 0; j0 < cols; j0 += 16)
        for (int64_t o0 = 0; o0 < rows; o0 += step) {
          const int jn = (int)std::min<int64_t>(16, cols - j0), on = (int)std::min<int64_t>(step, rows - o0);
          for (int c = 0; c < nchunk; ++c)
            for (int j = 0; j < jn; ++j)
              for (int o = 0; o < on; ++o) {
                const float b = gbuf[c * n + src + (j0 + j) * ld + o0 + o];
                sum[j][o] = c == 0 ? b : sum[j][o] + b;
              }
          for (int o = 0; o < on; ++o)
            for (int j = 0; j < jn; ++j) out[(o0 + o) * cols + j0 + j] += sum[j][o];
        }
    }
  });
  double loss = 0.0;
  for (int c = 0; c < nchunk; ++c) loss += losses[c];
  return at::scalar_tensor(loss, at::kDouble);
}

}  // namespace

TORCH_LIBRARY(transformer_cpu, m) {
  m.def("loss_and_grads(Tensor idx, Tensor lengths, Tensor tgt, Tensor weight, float scale, Tensor[] params, "
        "Tensor(a!)[] grads, Tensor cos, Tensor sin, int n_head, float eps, int chunks) -> Tensor");
  m.impl("loss_and_grads", c10::DispatchKey::CPU, TORCH_FN(loss_and_grads));
}
