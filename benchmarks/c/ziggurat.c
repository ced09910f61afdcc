/* Scalar reference for collapse_sim's normal sampler: xoshiro256++ with the 256-layer
 * ziggurat of Marsaglia & Tsang (2000) in the 52-bit form collapse_sim/_kernels/rng.py
 * uses (same tables, same bit use, same tail and wedge tests), state in local variables.
 *
 * usage: ziggurat N ROUNDS [S0 S1 S2 S3]  ->  prints "best_seconds checksum" for N draws,
 * best of ROUNDS, from the given state (default: a fixed one), then the first 4 draws
 * of the first round (to check they equal collapse_sim's from the same state).
 * Built by benchmarks/bench_normals.py with: cc -O3 -march=native -o ziggurat ziggurat.c -lm
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t ki[256];
static double wi[256], fi[256];
static const double R = 3.6541528853610088;

static void tables(void) {
    const double v = 0.00492867323399, m1 = 4503599627370496.0; /* 2^52 */
    double dn = R, tn = R, q = v / exp(-0.5 * dn * dn);
    ki[0] = (uint64_t)((dn / q) * m1);
    ki[1] = 0;
    wi[0] = q / m1;
    wi[255] = dn / m1;
    fi[0] = 1.0;
    fi[255] = exp(-0.5 * dn * dn);
    for (int i = 254; i >= 1; i--) {
        dn = sqrt(-2.0 * log(v / dn + exp(-0.5 * dn * dn)));
        ki[i + 1] = (uint64_t)((dn / tn) * m1);
        tn = dn;
        fi[i] = exp(-0.5 * dn * dn);
        wi[i] = dn / m1;
    }
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

#define NEXT(r)                                  \
    do {                                         \
        r = rotl(s0 + s3, 23) + s0;              \
        uint64_t t_ = s1 << 17;                  \
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3;  \
        s2 ^= t_; s3 = rotl(s3, 45);             \
    } while (0)
#define UNIFORM(u)                                               \
    do {                                                         \
        uint64_t r_; NEXT(r_);                                   \
        u = (double)(r_ >> 11) * (1.0 / 9007199254740992.0);     \
    } while (0)

static void fill(double *out, long n, uint64_t st[4]) {
    uint64_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];
    const uint64_t mask52 = 0x000FFFFFFFFFFFFFULL;
    for (long i = 0; i < n; i++) {
        double x;
        for (;;) {
            uint64_t r; NEXT(r);
            int idx = (int)(r & 0xFF);
            r >>= 8;
            int sign = (int)(r & 1);
            uint64_t rabs = (r >> 1) & mask52;
            x = (double)(int64_t)rabs * wi[idx]; /* rabs < 2^52: a signed conversion */
            /* the sign without a branch (a 50% unpredictable branch halves the speed) */
            {
                union { double d; uint64_t u; } c_ = {x};
                c_.u ^= (uint64_t)sign << 63;
                x = c_.d;
            }
            if (rabs < ki[idx]) break;
            if (idx == 0) {
                for (;;) {
                    double u, v; UNIFORM(u); UNIFORM(v);
                    double xx = -(1.0 / R) * log1p(-u), yy = -log1p(-v);
                    if (yy + yy > xx * xx) { x = ((rabs >> 8) & 1) ? -(R + xx) : R + xx; break; }
                }
                break;
            } else {
                double u; UNIFORM(u);
                if ((fi[idx - 1] - fi[idx]) * u + fi[idx] < exp(-0.5 * x * x)) break;
            }
        }
        out[i] = x;
    }
    st[0] = s0; st[1] = s1; st[2] = s2; st[3] = s3;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000L;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    double *out = malloc(sizeof(double) * (size_t)n);
    if (!out) return 1;
    tables();
    uint64_t st[4] = {0x9E3779B97F4A7C15ULL, 0xBF58476D1CE4E5B9ULL, 0x94D049BB133111EBULL, 1ULL};
    if (argc > 6)
        for (int j = 0; j < 4; j++) st[j] = strtoull(argv[3 + j], NULL, 10);
    double best = 1e300, check = 0.0, first[4] = {0, 0, 0, 0};
    for (int k = 0; k < rounds; k++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        fill(out, n, st);
        clock_gettime(CLOCK_MONOTONIC, &b);
        for (long i = 0; i < n; i++) check += out[i]; /* untimed: keeps the fill observable */
        double t = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        if (t < best) best = t;
        if (k == 0)
            for (int j = 0; j < 4 && j < n; j++) first[j] = out[j];
    }
    printf("%.6f %.6f %.17g %.17g %.17g %.17g\n", best, check, first[0], first[1], first[2],
           first[3]);
    free(out);
    return 0;
}
