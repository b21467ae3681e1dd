/* Fused mix kernel for one pool of the batched mixer (loaded with ctypes; no Python API).
 *
 * For each active call row c and listener l of a pool of width w:
 *   out[c,l,:] = clamp(rint(limit(sum_s gains[c,l,s] * frame(c,s))))
 * where frame(c,s) is row src[c*w+s] of the ring (the pool's zero row when the frame is missing).
 * One pass: each input frame is read from L1 for each listener that hears it, each output written
 * once. Accumulation is float32 (exact for unit gains: |sum| < 2^24), clamped once at the end.
 * Semantics match the numpy path in engine.py; tests check both agree.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define KNEE 26000.0f
#define HEADROOM (32767.0f - KNEE)
#define MAX_SAMPLES 4096

/* Round half to even like numpy.rint (valid for |y| < 2^22; y is already clamped to int16 range). */
#define ROUND_MAGIC 12582912.0f

static inline void scale(float *restrict acc, const int16_t *restrict x, float g, int64_t ns) {
    for (int64_t i = 0; i < ns; i++) acc[i] = g * (float)x[i];
}

static inline void accumulate(float *restrict acc, const int16_t *restrict x, float g, int64_t ns) {
    for (int64_t i = 0; i < ns; i++) acc[i] += g * (float)x[i];
}

/* Clamp, round and store; returns whether any sample passed the soft-clip knee. */
static inline int narrow(const float *restrict acc, int16_t *restrict out, int64_t ns) {
    int over = 0;
    for (int64_t i = 0; i < ns; i++) {
        float y = acc[i];
        over |= fabsf(y) > KNEE;
        y = y < -32768.0f ? -32768.0f : y;
        y = y > 32767.0f ? 32767.0f : y;
        y = (y + ROUND_MAGIC) - ROUND_MAGIC;
        out[i] = (int16_t)(int32_t)y;
    }
    return over;
}

static void soft_clip(float *acc, int64_t ns) {
    for (int64_t i = 0; i < ns; i++) {
        float a = fabsf(acc[i]);
        if (a > KNEE) acc[i] = copysignf(KNEE + HEADROOM * tanhf((a - KNEE) / HEADROOM), acc[i]);
    }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
int bargein_mix_pool(const int16_t *ring, const int64_t *src, const float *gains, int16_t *out,
                     int64_t n, int64_t w, int64_t ns, int64_t zero_row, int soft) {
    float acc[MAX_SAMPLES];
    if (ns > MAX_SAMPLES) return -1;
    for (int64_t c = 0; c < n; c++) {
        const int64_t *rows = src + c * w;
        const float *g = gains + c * w * w;
        for (int64_t l = 0; l < w; l++) {
            int heard = 0;
            for (int64_t s = 0; s < w; s++) {
                float gs = g[l * w + s];
                if (gs == 0.0f || rows[s] == zero_row) continue;
                if (heard++) accumulate(acc, ring + rows[s] * ns, gs, ns);
                else scale(acc, ring + rows[s] * ns, gs, ns);
            }
            int16_t *dst = out + (c * w + l) * ns;
            if (!heard) {
                memset(dst, 0, (size_t)ns * sizeof(int16_t));
                continue;
            }
            if (narrow(acc, dst, ns) && soft) {
                soft_clip(acc, ns);
                narrow(acc, dst, ns);
            }
        }
    }
    return 0;
}
