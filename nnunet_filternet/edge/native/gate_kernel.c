/* The edge loss of nnunet_filternet.edge (EdgeLoss with an EdgeGate on two in-plane axes), fused, on the CPU.
 *
 * Le = sum_c w_c mean |G(sigma) * (rho(L * P_c) - E_c)| over slices of Y x X voxels, where P = softmax(logits) over
 * the K channels, P_c the used classes' probabilities, E_c the labels' edge maps (1 where a voxel of class c has a
 * face neighbour of another class in the plane), L the 5-point Neumann Laplacian, rho the clamp to [0, 1] and G the
 * separable 5-tap Gaussian with replicate borders (edge/filter.py, edge/gate.py, edge/loss.py define the same
 * operator in PyTorch; the tests compare the two). One slice at a time, in buffers that stay in the cache: forward
 * the softmax and the per-class sums of |D| (keeping what the backward needs), backward the gradient of the logits
 * (through the softmax) and sigma's.
 *
 * Plain C99, no PyTorch headers: compiled at first use by edge/native and called through ctypes. The buffers a
 * function reads and writes never overlap (restrict: without it the compiler cannot vectorise the passes). Rows are
 * copied into short padded row buffers, so that every inner loop runs over all X voxels without index clamping.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define R 2   /* the Gaussian's radius: 5 taps */
#define ROW 8 /* extra floats of a padded row buffer: 2R on each side */

/* What the backward needs of one voxel of one class, in one byte: the clamp mask and the sign of D. */
#define IN_CLAMP 1 /* L * P lay in [0, 1] */
#define POSITIVE 2 /* D > 0 */
#define NEGATIVE 4 /* D < 0 */

static inline int clampi(int i, int n) { return i < 0 ? 0 : (i > n - 1 ? n - 1 : i); }

/* row[0 .. pad) = r[0], row[pad .. pad + X) = r, row[pad + X .. pad + X + pad) = r[X - 1]: replicate padding. */
static void pad_replicate(const float *restrict r, float *restrict row, int X, int pad) {
    for (int i = 0; i < pad; i++) row[i] = r[0], row[pad + X + i] = r[X - 1];
    memcpy(row + pad, r, sizeof(float) * X);
}

/* e^x for x <= 0 (a logit minus the voxel's largest), vectorisable: Cephes' expf (x = n ln2 + r, |r| <= ln2 / 2, a
 * degree-5 polynomial in r, 2^n from the exponent bits), within 2 ulp of expf; 0 below -87 (where expf is below
 * FLT_MIN), NaN for NaN. */
static inline float exp_nonpositive(float x) {
    const float xc = x < -87.0f ? -87.0f : x;
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float y = x < -87.0f ? 0.0f : p * scale;
    return x != x ? x : y;
}

/* P[k * ps + i] = softmax over the K channels lg[k * sc + i] of each voxel i < n (NaN everywhere a logit is NaN). */
static void softmax(const float *restrict lg, long long sc, int K, size_t n, float *restrict P, long long ps,
                    float *restrict mx, float *restrict inv) {
    memcpy(mx, lg, sizeof(float) * n);
    for (int k = 1; k < K; k++) {
        const float *l = lg + k * sc;
        for (size_t i = 0; i < n; i++) mx[i] = l[i] > mx[i] ? l[i] : mx[i];
    }
    memset(inv, 0, sizeof(float) * n);
    for (int k = 0; k < K; k++) {
        const float *l = lg + k * sc;
        float *p = P + k * ps;
        for (size_t i = 0; i < n; i++) {
            const float e = exp_nonpositive(l[i] - mx[i]);
            p[i] = e;
            inv[i] += e;
        }
    }
    for (size_t i = 0; i < n; i++) inv[i] = 1.0f / inv[i];
    for (int k = 0; k < K; k++) {
        float *p = P + k * ps;
        for (size_t i = 0; i < n; i++) p[i] *= inv[i];
    }
}

/* The labels of one slice as floats, as PyTorch's .long() reads them (floats truncated toward zero): src holds
 * values of the given type (0 float32, 1 float64, 2 int16, 3 int32, 4 int64, 5 uint8, 6 int8). */
#define CONVERT(T) /* integer labels: converted as they are */                                                 \
    {                                                                                                                  \
        const T *restrict v = (const T *)src + at;                                                                     \
        for (size_t i = 0; i < n; i++) out[i] = (float)v[i];                                                           \
        break;                                                                                                         \
    }

static void load_labels(const void *src, int type, size_t at, size_t n, float *restrict out) {
    switch (type) {
    case 0: {
        const float *restrict v = (const float *)src + at;
        for (size_t i = 0; i < n; i++) out[i] = fabsf(v[i]) < 8388608.0f ? (float)(int32_t)v[i] : v[i];
        break;
    }
    case 1: {
        const double *restrict v = (const double *)src + at;
        for (size_t i = 0; i < n; i++) out[i] = (float)(fabs(v[i]) < 4503599627370496.0 ? (double)(int64_t)v[i] : v[i]);
        break;
    }
    case 2: CONVERT(int16_t)
    case 3: CONVERT(int32_t)
    case 4: CONVERT(int64_t)
    case 5: CONVERT(uint8_t)
    default: CONVERT(int8_t)
    }
}
#undef CONVERT

/* df = 1 where the label has an in-plane face neighbour (clamped at the border) with another label, else 0. */
static void label_borders(const float *restrict lab, int Y, int X, float *restrict df, float *restrict row) {
    for (int y = 0; y < Y; y++) {
        const float *lm = lab + (size_t)clampi(y - 1, Y) * X, *lp = lab + (size_t)clampi(y + 1, Y) * X;
        float *o = df + (size_t)y * X;
        pad_replicate(lab + (size_t)y * X, row, X, 1);
        for (int x = 0; x < X; x++) {
            const float v = row[x + 1];
            o[x] = (float)((lm[x] != v) | (lp[x] != v) | (row[x] != v) | (row[x + 2] != v));
        }
    }
}

/* a = rho(L * p) - E (E = (lab == cls) df, the label edge map of cls), pred = rho(L * p) unless pred is NULL, and the
 * state bytes st = IN_CLAMP where L * p lay in [0, 1], else 0. */
static void edges(const float *restrict p, const float *restrict lab, const float *restrict df, float cls, int Y,
                  int X, float *restrict pred, float *restrict a, unsigned char *restrict st, float *restrict row) {
    for (int y = 0; y < Y; y++) {
        const float *pm = p + (size_t)clampi(y - 1, Y) * X, *pp = p + (size_t)clampi(y + 1, Y) * X;
        const size_t at = (size_t)y * X;
        pad_replicate(p + at, row, X, 1);
        for (int x = 0; x < X; x++) {
            const float l = 4.0f * row[x + 1] - pm[x] - pp[x] - row[x] - row[x + 2];
            const float v = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l); /* NaN stays NaN, as torch.clamp */
            st[at + x] = (unsigned char)((l >= 0.0f) & (l <= 1.0f));
            a[at + x] = v - (float)(lab[at + x] == cls) * df[at + x];
        }
        if (pred)
            for (int x = 0; x < X; x++) {
                const float l = 4.0f * row[x + 1] - pm[x] - pp[x] - row[x] - row[x + 2];
                pred[at + x] = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
            }
    }
}

/* out[y] = sum_k w[k] in[clamp(y + k - R)], rows of X voxels (the y pass). */
static void pass_y(const float *restrict in, float *restrict out, const float *restrict w, int Y, int X) {
    for (int y = 0; y < Y; y++) {
        float *o = out + (size_t)y * X;
        const float *r0 = in + (size_t)clampi(y - 2, Y) * X, *r1 = in + (size_t)clampi(y - 1, Y) * X;
        const float *r2 = in + (size_t)y * X, *r3 = in + (size_t)clampi(y + 1, Y) * X;
        const float *r4 = in + (size_t)clampi(y + 2, Y) * X;
        for (int x = 0; x < X; x++) o[x] = w[0] * r0[x] + w[1] * r1[x] + w[2] * r2[x] + w[3] * r3[x] + w[4] * r4[x];
    }
}

/* out[x] = sum_k w[k] in[clamp(x + k - R)] along each row (the x pass). */
static void pass_x(const float *restrict in, float *restrict out, const float *restrict w, int Y, int X,
                   float *restrict row) {
    for (int y = 0; y < Y; y++) {
        float *o = out + (size_t)y * X;
        pad_replicate(in + (size_t)y * X, row, X, R);
        for (int x = 0; x < X; x++)
            o[x] = w[0] * row[x] + w[1] * row[x + 1] + w[2] * row[x + 2] + w[3] * row[x + 3] + w[4] * row[x + 4];
    }
}

/* pass_y with the taps w and with dw at once: out = G_y in, dout = G'_y in (one read of the input). */
static void pass_y2(const float *restrict in, float *restrict out, float *restrict dout, const float *restrict w,
                    const float *restrict dw, int Y, int X) {
    for (int y = 0; y < Y; y++) {
        float *o = out + (size_t)y * X, *p = dout + (size_t)y * X;
        const float *r0 = in + (size_t)clampi(y - 2, Y) * X, *r1 = in + (size_t)clampi(y - 1, Y) * X;
        const float *r2 = in + (size_t)y * X, *r3 = in + (size_t)clampi(y + 1, Y) * X;
        const float *r4 = in + (size_t)clampi(y + 2, Y) * X;
        for (int x = 0; x < X; x++) {
            o[x] = w[0] * r0[x] + w[1] * r1[x] + w[2] * r2[x] + w[3] * r3[x] + w[4] * r4[x];
            p[x] = dw[0] * r0[x] + dw[1] * r1[x] + dw[2] * r2[x] + dw[3] * r3[x] + dw[4] * r4[x];
        }
    }
}

/* The x pass of t = G_y in and t2 = G'_y in: out = G_x t, dout = G'_x t + G_x t2 (so dout = d(G_x G_y) / dsigma in
 * along dw = d taps / d sigma). */
static void pass_x2(const float *restrict t, const float *restrict t2, float *restrict out, float *restrict dout,
                    const float *restrict w, const float *restrict dw, int Y, int X, float *restrict row,
                    float *restrict row2) {
    for (int y = 0; y < Y; y++) {
        float *o = out + (size_t)y * X, *p = dout + (size_t)y * X;
        pad_replicate(t + (size_t)y * X, row, X, R);
        pad_replicate(t2 + (size_t)y * X, row2, X, R);
        for (int x = 0; x < X; x++) {
            o[x] = w[0] * row[x] + w[1] * row[x + 1] + w[2] * row[x + 2] + w[3] * row[x + 3] + w[4] * row[x + 4];
            p[x] = dw[0] * row[x] + dw[1] * row[x + 1] + dw[2] * row[x + 2] + dw[3] * row[x + 3] +
                   dw[4] * row[x + 4] +
                   (w[0] * row2[x] + w[1] * row2[x + 1] + w[2] * row2[x + 2] + w[3] * row2[x + 3] + w[4] * row2[x + 4]);
        }
    }
}

/* The adjoint of pass_x (out[clamp(x + k - R)] += w[k] s[x]) of s = g sign(D), read off the state bytes st (POSITIVE,
 * NEGATIVE). Each row as the correlation of the zero-padded row with the flipped taps over x + k - R in [-R, X + R),
 * the R outputs beyond each end folded onto the end voxel. */
static void adjoint_x_signs(const unsigned char *restrict st, float g, float *restrict out, const float *restrict w,
                            int Y, int X, float *restrict row) {
    memset(row, 0, sizeof(float) * (X + 4 * R));
    for (int y = 0; y < Y; y++) {
        float *o = out + (size_t)y * X;
        const unsigned char *sr = st + (size_t)y * X;
        for (int x = 0; x < X; x++) /* row[i] = g sign(D)[i - 2R], 0 outside */
            row[x + 2 * R] = g * (float)(((sr[x] & POSITIVE) != 0) - ((sr[x] & NEGATIVE) != 0));
        for (int x = 0; x < X; x++) /* sum_k w[k] g[x - k + R] */
            o[x] = w[4] * row[x + 2] + w[3] * row[x + 3] + w[2] * row[x + 4] + w[1] * row[x + 5] + w[0] * row[x + 6];
        for (int j = -R; j < 0; j++)
            for (int k = 0; k <= 2 * R; k++) o[0] += w[k] * row[j + 3 * R - k];
        for (int j = X; j < X + R; j++)
            for (int k = 0; k <= 2 * R; k++) o[X - 1] += w[k] * row[j + 3 * R - k];
    }
}

/* The adjoint of pass_y: out[clamp(y + k - R)] += w[k] g[y], rows of X voxels. */
static void adjoint_y(const float *restrict g, float *restrict out, const float *restrict w, int Y, int X) {
    for (int j = 0; j < Y; j++) {
        float *o = out + (size_t)j * X;
        if (j >= R && j < Y - R) {
            const float *r0 = g + (size_t)(j + 2) * X, *r1 = g + (size_t)(j + 1) * X, *r2 = g + (size_t)j * X;
            const float *r3 = g + (size_t)(j - 1) * X, *r4 = g + (size_t)(j - 2) * X;
            for (int x = 0; x < X; x++)
                o[x] = w[0] * r0[x] + w[1] * r1[x] + w[2] * r2[x] + w[3] * r3[x] + w[4] * r4[x];
        } else {
            memset(o, 0, sizeof(float) * X);
        }
    }
    for (int y = 0; y < Y; y++) {
        if (y >= 2 * R && y < Y - 2 * R) continue;
        const float *r = g + (size_t)y * X;
        for (int k = 0; k <= 2 * R; k++) {
            const int j = clampi(y + k - R, Y);
            if (j < R || j >= Y - R) {
                float *o = out + (size_t)j * X;
                for (int x = 0; x < X; x++) o[x] += w[k] * r[x];
            }
        }
    }
}

/* out = L * (m mask) (the 5-point Neumann Laplacian, symmetric, so also its own adjoint; mask = the IN_CLAMP bits
 * of st) and acc += p out. */
static void masked_laplacian(float *restrict m, const unsigned char *restrict st, const float *restrict p,
                             float *restrict out, float *restrict acc, int Y, int X, float *restrict row) {
    const size_t n = (size_t)Y * X;
    for (size_t i = 0; i < n; i++) m[i] *= (float)(st[i] & IN_CLAMP);
    for (int y = 0; y < Y; y++) {
        const float *rm = m + (size_t)clampi(y - 1, Y) * X, *rp = m + (size_t)clampi(y + 1, Y) * X;
        const size_t at = (size_t)y * X;
        pad_replicate(m + at, row, X, 1);
        for (int x = 0; x < X; x++) {
            const float v = 4.0f * row[x + 1] - rm[x] - rp[x] - row[x] - row[x + 2];
            out[at + x] = v;
            acc[at + x] += p[at + x] * v;
        }
    }
}

#define LANES 8 /* partial sums, so that the compiler may vectorise a reduction without reordering it */

static double abs_sum(const float *a, size_t n) {
    float part[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += fabsf(a[i + k]);
    double s = 0.0;
    for (int k = 0; k < LANES; k++) s += part[k];
    for (; i < n; i++) s += fabsf(a[i]);
    return s;
}

/* The sign bits of D (d) added to the state bytes. */
static void keep_signs(const float *restrict d, size_t n, unsigned char *restrict st) {
    for (size_t i = 0; i < n; i++) st[i] |= (unsigned char)((d[i] > 0.0f) * POSITIVE + (d[i] < 0.0f) * NEGATIVE);
}

/* sum sign(d) q. */
static double signed_sum(const float *restrict d, const float *restrict q, size_t n) {
    float part[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += ((float)(d[i + k] > 0.0f) - (float)(d[i + k] < 0.0f)) * q[i + k];
    double s = 0.0;
    for (int k = 0; k < LANES; k++) s += part[k];
    for (; i < n; i++) s += ((float)(d[i] > 0.0f) - (float)(d[i] < 0.0f)) * q[i];
    return s;
}

/* Forward. logits: B x K blocks of Z x Y x X floats at logits + b * sb + k * sk; labels: B x Z x Y x X values of
 * label_type (load_labels); channels: the C used channels (class c's label value is its channel). abs_sums[c] +=
 * sum |D_c|, D = G * (rho(L * P_c) - E_c). With save the backward's inputs: probs (B x K x Z x Y x X floats, the
 * softmax) and state (B x C x Z x Y x X bytes: IN_CLAMP, POSITIVE, NEGATIVE); with dtaps (d taps / d sigma) also
 * sigma_sums[c] += sum sign(D_c) dD_c / dsigma, the directional derivative of the two Gaussian passes along dtaps
 * (with constant_target, of the prediction's side G * rho(L * P_c) alone), so that the backward needs no more.
 * Returns 0, or -1 when out of memory. */
int filternet_edge_forward(const float *logits, long long sb, long long sk, const void *labels, int label_type, int B,
                           int K, int C, int Z, int Y, int X, const int *channels, const float *taps,
                           const float *dtaps, int constant_target, int save, float *probs, unsigned char *state,
                           double *abs_sums, double *sigma_sums) {
    const size_t n = (size_t)Y * X;
    float *buf = malloc(sizeof(float) * (n * (12 + (size_t)K) + 2 * (X + ROW)));
    if (!buf) return -1;
    float *pred = buf, *a = buf + n, *t = buf + 3 * n, *d = buf + 4 * n, *df = buf + 5 * n;
    float *mx = buf + 6 * n, *inv = buf + 7 * n, *lab = buf + 8 * n, *t2 = buf + 9 * n, *q = buf + 10 * n;
    float *r = buf + 11 * n, *pk = buf + 12 * n, *row = pk + (size_t)K * n, *row2 = row + X + ROW;
    unsigned char *scratch = (unsigned char *)(buf + 2 * n); /* the state bytes when nothing is kept */
    for (int bi = 0; bi < B; bi++)
        for (int z = 0; z < Z; z++) {
            float *P = save ? probs + (size_t)bi * K * Z * n + (size_t)z * n : pk;
            const long long ps = (long long)(save ? Z * n : n);
            softmax(logits + bi * sb + (long long)z * n, sk, K, n, P, ps, mx, inv);
            load_labels(labels, label_type, ((size_t)bi * Z + z) * n, n, lab);
            label_borders(lab, Y, X, df, row);
            for (int c = 0; c < C; c++) {
                unsigned char *st = save ? state + (((size_t)bi * C + c) * Z + z) * n : scratch;
                edges(P + channels[c] * ps, lab, df, (float)channels[c], Y, X, constant_target && dtaps ? pred : NULL,
                      a, st, row);
                if (!save) {
                    pass_y(a, t, taps, Y, X);
                    pass_x(t, d, taps, Y, X, row);
                    abs_sums[c] += abs_sum(d, n);
                    continue;
                }
                if (!dtaps) {
                    pass_y(a, t, taps, Y, X);
                    pass_x(t, d, taps, Y, X, row);
                } else if (!constant_target) { /* D and dD / dsigma in two passes */
                    pass_y2(a, t, t2, taps, dtaps, Y, X);
                    pass_x2(t, t2, d, q, taps, dtaps, Y, X, row, row2);
                } else { /* D, and d/dsigma of the prediction's side alone */
                    pass_y(a, t, taps, Y, X);
                    pass_x(t, d, taps, Y, X, row);
                    pass_y2(pred, t, t2, taps, dtaps, Y, X);
                    pass_x2(t, t2, r, q, taps, dtaps, Y, X, row, row2);
                }
                abs_sums[c] += abs_sum(d, n);
                keep_signs(d, n, st);
                if (dtaps) sigma_sums[c] += signed_sum(d, q, n);
            }
        }
    free(buf);
    return 0;
}

/* Backward, from the forward's probs and state: grad_logits (B x K x Z x Y x X, contiguous) = d loss / d logits for
 * the loss sum_c weights[c] sum|D_c| / voxels and the upstream gradient *grad, so with scale[c] = weights[c] *grad /
 * voxels = d loss / d sum|D_c|: g_c = L (mask (G^T (scale[c] sign(D_c)))) for the used classes, 0 for the others,
 * through the softmax: P_k (g_k - sum_j P_j g_j). Returns 0, or -1 when out of memory. */
int filternet_edge_backward(int B, int K, int C, int Z, int Y, int X, const int *channels, const float *taps,
                            const double *weights, long long voxels, const float *grad, const float *probs,
                            const unsigned char *state, float *grad_logits) {
    const size_t n = (size_t)Y * X;
    float *buf = malloc(sizeof(float) * (n * (3 + (size_t)C) + X + ROW));
    int *used = malloc(sizeof(int) * (K > 0 ? K : 1));
    if (!buf || !used) {
        free(buf);
        free(used);
        return -1;
    }
    float *u = buf, *v = buf + n, *pg = buf + 2 * n, *gp = buf + 3 * n, *row = buf + (3 + (size_t)C) * n;
    for (int k = 0; k < K; k++) used[k] = -1;
    for (int c = 0; c < C; c++) used[channels[c]] = c;
    for (int bi = 0; bi < B; bi++)
        for (int z = 0; z < Z; z++) {
            const float *P = probs + (size_t)bi * K * Z * n + (size_t)z * n; /* channel k at P + k * Z * n */
            memset(pg, 0, sizeof(float) * n);
            for (int c = 0; c < C; c++) {
                const unsigned char *st = state + (((size_t)bi * C + c) * Z + z) * n;
                const float g = (float)(weights[c] * (double)*grad / (double)voxels);
                float *gc = gp + (size_t)c * n;
                adjoint_x_signs(st, g, u, taps, Y, X, row);
                adjoint_y(u, v, taps, Y, X);
                masked_laplacian(v, st, P + (size_t)channels[c] * Z * n, gc, pg, Y, X, row);
            }
            for (int k = 0; k < K; k++) {
                const float *pk = P + (size_t)k * Z * n;
                float *o = grad_logits + ((size_t)bi * K + k) * Z * n + (size_t)z * n;
                if (used[k] < 0) {
                    for (size_t i = 0; i < n; i++) o[i] = -pk[i] * pg[i];
                } else {
                    const float *gc = gp + (size_t)used[k] * n;
                    for (size_t i = 0; i < n; i++) o[i] = pk[i] * (gc[i] - pg[i]);
                }
            }
        }
    free(buf);
    free(used);
    return 0;
}
