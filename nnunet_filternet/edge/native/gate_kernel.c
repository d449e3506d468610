/* The edge loss of nnunet_filternet.edge (EdgeLoss with an EdgeGate on two in-plane axes), fused, on the CPU.
 *
 * Le = sum_c w_c mean |G(sigma) * (rho(L * P_c) - E_c)| over slices of Y x X voxels, where P_c are the used
 * classes' probabilities, E_c the labels' edge maps (1 where a voxel of class c has a face neighbour of another
 * class in the plane), L the 5-point Neumann Laplacian, rho the clamp to [0, 1] and G the separable 5-tap Gaussian
 * with replicate borders (edge/filter.py, edge/gate.py, edge/loss.py define the same operator in PyTorch; the tests
 * compare the two). One slice at a time, in buffers that stay in the cache: forward the per-class sums of |D|
 * (keeping what the backward needs), backward the gradient of the probabilities and sigma's.
 *
 * Plain C99, no PyTorch headers: compiled at first use by edge/native and called through ctypes. The buffers a
 * function reads and writes never overlap (restrict: without it the compiler cannot vectorise the passes).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define R 2 /* the Gaussian's radius: 5 taps */

static inline int clampi(int i, int n) { return i < 0 ? 0 : (i > n - 1 ? n - 1 : i); }

/* One voxel of edges(): rho(L * p), the label edge, their difference and the clamp mask (any position). */
static inline void edge_at(const float *restrict p, const float *restrict lab, float cls, int Y, int X, int y, int x,
                           float *restrict pred, float *restrict e, float *restrict a, float *restrict mask) {
    const int ym = clampi(y - 1, Y), yp = clampi(y + 1, Y), xm = clampi(x - 1, X), xp = clampi(x + 1, X);
    const int i = y * X + x;
    const float l = 4.0f * p[i] - p[ym * X + x] - p[yp * X + x] - p[y * X + xm] - p[y * X + xp];
    const float lv = lab[i];
    const int differs = (lab[ym * X + x] != lv) | (lab[yp * X + x] != lv) | (lab[y * X + xm] != lv) |
                        (lab[y * X + xp] != lv);
    const float v = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l); /* NaN stays NaN, as torch.clamp */
    const float ev = (float)((lv == cls) & differs);
    mask[i] = (float)((l >= 0.0f) & (l <= 1.0f));
    pred[i] = v;
    e[i] = ev;
    a[i] = v - ev;
}

/* a = rho(L * p) - e (pred = rho(L * p), e = the label edge map of cls), mask = 1 where L * p lay in [0, 1].
 * The interior without index clamping (vectorised by the compiler), the border rows and columns voxel by voxel. */
static void edges(const float *restrict p, const float *restrict lab, float cls, int Y, int X, float *restrict pred,
                  float *restrict e, float *restrict a, float *restrict mask) {
    for (int y = 0; y < Y; y++) {
        if (y == 0 || y == Y - 1 || X < 3) {
            for (int x = 0; x < X; x++) edge_at(p, lab, cls, Y, X, y, x, pred, e, a, mask);
            continue;
        }
        const float *pm = p + (size_t)(y - 1) * X, *p0 = p + (size_t)y * X, *pp = p + (size_t)(y + 1) * X;
        const float *lm = lab + (size_t)(y - 1) * X, *l0 = lab + (size_t)y * X, *lp = lab + (size_t)(y + 1) * X;
        float *pr = pred + (size_t)y * X, *er = e + (size_t)y * X, *ar = a + (size_t)y * X, *mr = mask + (size_t)y * X;
        edge_at(p, lab, cls, Y, X, y, 0, pred, e, a, mask);
        for (int x = 1; x < X - 1; x++) {
            const float l = 4.0f * p0[x] - pm[x] - pp[x] - p0[x - 1] - p0[x + 1];
            const float lv = l0[x];
            const int differs = (lm[x] != lv) | (lp[x] != lv) | (l0[x - 1] != lv) | (l0[x + 1] != lv);
            const float v = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
            const float ev = (float)((lv == cls) & differs);
            mr[x] = (float)((l >= 0.0f) & (l <= 1.0f));
            pr[x] = v;
            er[x] = ev;
            ar[x] = v - ev;
        }
        edge_at(p, lab, cls, Y, X, y, X - 1, pred, e, a, mask);
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

/* [lo, hi): the positions of an axis of n voxels whose 2R + 1 reads all stay inside it. */
static void interior(int n, int *lo, int *hi) {
    *lo = n < R ? n : R;
    *hi = n - R > *lo ? n - R : *lo;
}

/* One output of pass_x at any x, reading with clamped indices. */
static inline float pass_x_at(const float *restrict r, const float *restrict w, int x, int X) {
    float s = 0.0f;
    for (int k = 0; k <= 2 * R; k++) s += w[k] * r[clampi(x + k - R, X)];
    return s;
}

/* out[x] = sum_k w[k] in[clamp(x + k - R)] along each row (the x pass): interior without clamping. */
static void pass_x(const float *restrict in, float *restrict out, const float *restrict w, int Y, int X) {
    int lo, hi;
    interior(X, &lo, &hi);
    for (int y = 0; y < Y; y++) {
        const float *r = in + (size_t)y * X;
        float *o = out + (size_t)y * X;
        for (int x = lo; x < hi; x++)
            o[x] = w[0] * r[x - 2] + w[1] * r[x - 1] + w[2] * r[x] + w[3] * r[x + 1] + w[4] * r[x + 2];
        for (int x = 0; x < lo; x++) o[x] = pass_x_at(r, w, x, X);
        for (int x = hi; x < X; x++) o[x] = pass_x_at(r, w, x, X);
    }
}

/* The adjoint of pass_x: out[clamp(x + k - R)] += w[k] g[x]; interior outputs gathered without clamping. */
static void adjoint_x(const float *restrict g, float *restrict out, const float *restrict w, int Y, int X) {
    int lo, hi;
    interior(X, &lo, &hi);
    for (int y = 0; y < Y; y++) {
        const float *r = g + (size_t)y * X;
        float *o = out + (size_t)y * X;
        for (int j = lo; j < hi; j++)
            o[j] = w[0] * r[j + 2] + w[1] * r[j + 1] + w[2] * r[j] + w[3] * r[j - 1] + w[4] * r[j - 2];
        for (int j = 0; j < lo; j++) o[j] = 0.0f;
        for (int j = hi; j < X; j++) o[j] = 0.0f;
        for (int x = 0; x < X; x++) {
            if (x >= 2 * R && x < X - 2 * R) continue; /* reads only interior outputs */
            for (int k = 0; k <= 2 * R; k++) {
                const int j = clampi(x + k - R, X);
                if (j < lo || j >= hi) o[j] += w[k] * r[x];
            }
        }
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

/* out = L * m (the symmetric 5-point Neumann Laplacian): interior rows without clamping, borders by clamping. */
static void laplacian(const float *restrict m, float *restrict out, int Y, int X) {
    for (int y = 0; y < Y; y++) {
        const int ym = clampi(y - 1, Y), yp = clampi(y + 1, Y);
        const float *r0 = m + (size_t)y * X, *rm = m + (size_t)ym * X, *rp = m + (size_t)yp * X;
        float *o = out + (size_t)y * X;
        for (int x = 1; x < X - 1; x++) o[x] = 4.0f * r0[x] - rm[x] - rp[x] - r0[x - 1] - r0[x + 1];
        for (int x = 0; x < X; x += (X > 1 ? X - 1 : 1)) {
            const int xm = clampi(x - 1, X), xp = clampi(x + 1, X);
            o[x] = 4.0f * r0[x] - rm[x] - rp[x] - r0[xm] - r0[xp];
        }
    }
}

#define LANES 8 /* partial sums, so that the compiler may vectorise a reduction without reordering it */

static double dot(const float *restrict a, const float *restrict b, size_t n) {
    float part[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += a[i + k] * b[i + k];
    double s = 0.0;
    for (int k = 0; k < LANES; k++) s += part[k];
    for (; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

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

/* Forward. prob: B x C blocks of Z x Y x X floats at prob + b * sb + c * sc (the used classes' probabilities);
 * labels: B x Z x Y x X floats; classes: the C class values. abs_sums[c] += sum |D_c|, D = G * (rho(L * P) - E).
 * With save (arrays of B x C x Z x Y x X floats, contiguous) the backward's inputs: the clamp mask, sign(D), and the
 * inputs of the two Gaussian passes for sigma's gradient: rho(L * P) - E and its y pass, or with constant_target
 * rho(L * P) and its y pass (the prediction's side alone). Returns 0, or -1 when out of memory. */
int filternet_edge_forward(const float *prob, long long sb, long long sc, const float *labels, int B, int C, int Z,
                           int Y, int X, const float *classes, const float *taps, int constant_target, int save,
                           float *mask, float *a_out, float *t_out, float *sign, double *abs_sums) {
    const size_t n = (size_t)Y * X;
    float *buf = malloc(sizeof(float) * n * 6);
    if (!buf) return -1;
    float *pred = buf, *e = buf + n, *a = buf + 2 * n, *m = buf + 3 * n, *t = buf + 4 * n, *d = buf + 5 * n;
    for (int bi = 0; bi < B; bi++)
        for (int c = 0; c < C; c++)
            for (int z = 0; z < Z; z++) {
                const size_t at = (((size_t)bi * C + c) * Z + z) * n;
                const float *p = prob + bi * sb + c * sc + (size_t)z * n;
                const float *lab = labels + ((size_t)bi * Z + z) * n;
                /* the kept arrays are written in place: rho(L * P) - E and its y pass, or rho(L * P) and its own */
                float *pr = save && constant_target ? a_out + at : pred;
                float *ad = save && !constant_target ? a_out + at : a, *td = save && !constant_target ? t_out + at : t;
                edges(p, lab, classes[c], Y, X, pr, e, ad, save ? mask + at : m);
                pass_y(ad, td, taps, Y, X);
                pass_x(td, d, taps, Y, X);
                abs_sums[c] += abs_sum(d, n);
                if (!save) continue;
                float *s = sign + at;
                for (size_t i = 0; i < n; i++) s[i] = d[i] > 0.0f ? 1.0f : (d[i] < 0.0f ? -1.0f : 0.0f);
                if (constant_target) pass_y(pr, t_out + at, taps, Y, X);
            }
    free(buf);
    return 0;
}

/* Backward, from the forward's saved arrays: grad_prob (B x C x Z x Y x X, contiguous) = d loss / d P for
 * scale[c] = d loss / d sum|D_c|, and with dtaps != NULL *dsigma = the sum over slices of sigma's share, the
 * directional derivative of the two Gaussian passes along d taps / d sigma. Returns 0, or -1 when out of memory. */
int filternet_edge_backward(int B, int C, int Z, int Y, int X, const float *taps, const float *dtaps,
                            const double *scale, const float *mask, const float *a_in, const float *t_in,
                            const float *sign, float *grad_prob, double *dsigma) {
    const size_t n = (size_t)Y * X;
    float *buf = malloc(sizeof(float) * n * 4);
    if (!buf) return -1;
    float *s = buf, *u = buf + n, *v = buf + 2 * n, *tmp = buf + 3 * n;
    double ds = 0.0;
    for (int bi = 0; bi < B; bi++)
        for (int c = 0; c < C; c++)
            for (int z = 0; z < Z; z++) {
                const size_t at = (((size_t)bi * C + c) * Z + z) * n;
                const float g = (float)scale[c];
                for (size_t i = 0; i < n; i++) s[i] = sign[at + i] * g;
                if (dtaps) {
                    pass_x(t_in + at, tmp, dtaps, Y, X);
                    ds += dot(s, tmp, n);
                }
                adjoint_x(s, u, taps, Y, X);
                if (dtaps) {
                    pass_y(a_in + at, tmp, dtaps, Y, X);
                    ds += dot(u, tmp, n);
                }
                adjoint_y(u, v, taps, Y, X);
                for (size_t i = 0; i < n; i++) v[i] *= mask[at + i];
                laplacian(v, grad_prob + at, Y, X);
            }
    if (dsigma) *dsigma = ds;
    free(buf);
    return 0;
}
