/* Fused C kernels of the batched mixer (loaded with ctypes; no Python API, so calls run without the GIL).
 *
 * bargein_tick_rows: for call rows [row0, row1) of one pool of width w, take each leg's next frame from its
 * ring (counting a missing frame when there is none) and write every listener's mix-minus:
 *   out[c,l,:] = clamp(rint(limit(sum_s gains[c,l,s] * frame(c,s))))
 * Semantics match the numpy path in engine.py; tests check both agree.
 *
 * Where a listener's gains are all 0 or 1 (the routing table without per-leg gains) the sum is done in
 * integers: exact, no float round trip. The soft clipper only changes samples past the knee, so the integer
 * path tracks the block's min and max and hands the block to the float path only when one passes the knee:
 * ordinary speech never pays for the clip. A listener hearing one speaker is a copy.
 *
 * bargein_tick_chunks: the same for a list of row ranges of any pools, shared by the mix threads (each takes the
 * next range until none is left).
 *
 * bargein_push: queue one frame per leg (a sequence of legs in any pools): each frame is one contiguous
 * copy into the ring slot the tick will read.
 *
 * A leg's ring positions go back to 0 whenever its buffer is empty, so in the steady state (one frame in,
 * one frame out per tick) every frame passes through plane 0: the tick reads the lines push just wrote,
 * and the pool's working set is one plane, not `depth` of them.
 *
 * Large pools do not fit in the cache: their outputs and queued frames are written with non-temporal
 * stores, so the writes cost no read-for-ownership of lines that will be evicted before anyone reads them.
 */
#include <emmintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define KNEE 26000.0f
#define KNEE_I 26000
#define HEADROOM (32767.0f - KNEE)
#define MAX_SAMPLES 4096
#define MAX_LEGS 64
#define PREFETCH_CALLS 2

/* Round half to even like numpy.rint (valid for |y| < 2^22; y is already clamped to int16 range). */
#define ROUND_MAGIC 12582912.0f

/* ------------------------------------------------------------------ stores */

/* Copy one frame; non-temporal when asked and the row is 16-byte aligned. */
static inline void store_frame(int16_t *restrict dst, const int16_t *restrict src, int64_t ns, int nt) {
    if (nt && ((uintptr_t)dst & 15) == 0 && (ns & 7) == 0) {
        for (int64_t i = 0; i < ns; i += 8)
            _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
    } else {
        memcpy(dst, src, (size_t)ns * sizeof(int16_t));
    }
}

static inline void zero_frame(int16_t *restrict dst, int64_t ns, int nt) {
    if (nt && ((uintptr_t)dst & 15) == 0 && (ns & 7) == 0) {
        const __m128i z = _mm_setzero_si128();
        for (int64_t i = 0; i < ns; i += 8) _mm_stream_si128((__m128i *)(dst + i), z);
    } else {
        memset(dst, 0, (size_t)ns * sizeof(int16_t));
    }
}

/* ------------------------------------------------------------------ integer path (gains 0/1) */

static inline int knee_passed(int32_t lo, int32_t hi) { return hi > KNEE_I || lo < -KNEE_I; }

/* Whether any sample of x passes the knee. */
static inline int past_knee(const int16_t *restrict x, int64_t ns) {
    int16_t lo = 0, hi = 0;
    for (int64_t i = 0; i < ns; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    return knee_passed(lo, hi);
}

/* y = x; returns whether any sample passes the knee. */
static inline int copy_knee(int16_t *restrict y, const int16_t *restrict x, int64_t ns) {
    int16_t lo = 0, hi = 0;
    for (int64_t i = 0; i < ns; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        y[i] = x[i];
    }
    return knee_passed(lo, hi);
}

/* y = clamp(s) to int16, tracking the clamped range (the one clamp of the integer path, inlined in its loops). */
static inline int16_t clamp_track(int32_t s, int32_t *lo, int32_t *hi) {
    s = s < -32768 ? -32768 : s;
    s = s > 32767 ? 32767 : s;
    *lo = s < *lo ? s : *lo;
    *hi = s > *hi ? s : *hi;
    return (int16_t)s;
}

/* y = clamp(a + b); returns whether the sum passes the knee (clamped and exact sums agree on that). */
static inline int add2(int16_t *restrict y, const int16_t *restrict a, const int16_t *restrict b, int64_t ns) {
    int32_t lo = 0, hi = 0;
    for (int64_t i = 0; i < ns; i++) y[i] = clamp_track((int32_t)a[i] + (int32_t)b[i], &lo, &hi);
    return knee_passed(lo, hi);
}

static inline void widen_add(int32_t *restrict acc, const int16_t *restrict x, int64_t ns) {
    for (int64_t i = 0; i < ns; i++) acc[i] += (int32_t)x[i];
}

static inline void widen_add2(int32_t *restrict acc, const int16_t *restrict a, const int16_t *restrict b,
                              int64_t ns) {
    for (int64_t i = 0; i < ns; i++) acc[i] = (int32_t)a[i] + (int32_t)b[i];
}

static inline int narrow_i32(int16_t *restrict y, const int32_t *restrict acc, int64_t ns) {
    int32_t lo = 0, hi = 0;
    for (int64_t i = 0; i < ns; i++) y[i] = clamp_track(acc[i], &lo, &hi);
    return knee_passed(lo, hi);
}

/* ------------------------------------------------------------------ float path (other gains, or past the knee) */

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

static void mix_float(int16_t *restrict y, float *restrict acc, const int16_t *const *x, const float *gk, int k,
                      int64_t ns, int soft) {
    scale(acc, x[0], gk[0], ns);
    for (int j = 1; j < k; j++) accumulate(acc, x[j], gk[j], ns);
    if (narrow(acc, y, ns) && soft) {
        soft_clip(acc, ns);
        narrow(acc, y, ns);
    }
}

/* ------------------------------------------------------------------ one listener */

/* Mix k > 0 speakers x (gains gk) into dst. Streamed rows are formed in tmp (L1) and then streamed out;
 * other rows are formed in place. */
static inline void mix_listener(int16_t *restrict dst, const int16_t *const *x, const float *gk, int k, int unit,
                                int64_t ns, int soft, int nt, int16_t *restrict tmp, int32_t *restrict iacc,
                                float *restrict facc) {
    int16_t *y = nt ? tmp : dst;
    if (unit) {
        int over;
        if (k == 1) {  /* a copy, unless the one speaker is past the knee */
            if (!soft) {
                store_frame(dst, x[0], ns, nt);
                return;
            }
            if (nt) {
                if (!past_knee(x[0], ns)) {
                    store_frame(dst, x[0], ns, nt);
                    return;
                }
                over = 1;
            } else {
                over = copy_knee(y, x[0], ns);
            }
        } else if (k == 2) {
            over = add2(y, x[0], x[1], ns);
        } else {
            widen_add2(iacc, x[0], x[1], ns);
            for (int j = 2; j < k; j++) widen_add(iacc, x[j], ns);
            over = narrow_i32(y, iacc, ns);
        }
        if (!(soft && over)) {
            if (nt) store_frame(dst, tmp, ns, nt);
            return;
        }
    }
    mix_float(y, facc, x, gk, k, ns, soft);
    if (nt) store_frame(dst, tmp, ns, nt);
}

/* ------------------------------------------------------------------ entry points */

/* Mix one set of listeners (rows of gains g, width w) from this tick's frames of one call. */
static inline void mix_rows_of_call(int16_t *out, const float *g, int64_t listeners, int64_t w,
                                    const int16_t *const *frame, int64_t ns, int soft, int nt, int16_t *tmp,
                                    int32_t *iacc, float *facc) {
    const int16_t *heard[MAX_LEGS];
    float gk[MAX_LEGS];
    for (int64_t l = 0; l < listeners; l++) {
        int k = 0, unit = 1;
        for (int64_t s = 0; s < w; s++) {
            float gs = g[l * w + s];
            if (gs == 0.0f || frame[s] == NULL) continue;
            heard[k] = frame[s];
            gk[k++] = gs;
            unit &= gs == 1.0f;
        }
        int16_t *dst = out + l * ns;
        if (k == 0) zero_frame(dst, ns, nt);
        else mix_listener(dst, heard, gk, k, unit, ns, soft, nt, tmp, iacc, facc);
    }
}

/* Where leg slot i's frame of this tick is: a frame lent by the caller for this tick (src), the ring, or none. */
static inline const int16_t *next_frame(const int16_t *ring, const int64_t *wr, const int64_t *rd,
                                        const int64_t *src, int64_t i, int64_t ns, int64_t depth,
                                        int64_t plane_stride) {
    if (src[i]) return (const int16_t *)(intptr_t)src[i];
    if (wr[i] > rd[i]) return ring + ((rd[i] % depth) * plane_stride + i) * ns;
    return NULL;
}

/* The pool arrays a tick reads and writes (addresses, in _Pool.addrs order). */
typedef struct {
    const int16_t *ring;
    int64_t *wr, *rd, *missing, *src;
    const float *gains;
    int16_t *out;
    const int64_t *rec_id;  /* >= 0: the call is recorded */
    const float *rec_gains; /* (cap, max(w, 2), w): rows 0 and 1 are the recording's left and right */
    int16_t *rec_out;       /* (cap, 2, ns) */
} pool_arrays;

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
int bargein_tick_rows(const pool_arrays *p, int64_t row0, int64_t row1, int64_t w, int64_t ns, int64_t depth,
                      int64_t plane_stride, int soft, int nt) {
    float facc[MAX_SAMPLES];
    int32_t iacc[MAX_SAMPLES];
    int16_t tmp[MAX_SAMPLES] __attribute__((aligned(64)));
    const int16_t *frame[MAX_LEGS];
    if (ns > MAX_SAMPLES || w > MAX_LEGS) return -1;
    const int16_t *ring = p->ring;
    int64_t *wr = p->wr, *rd = p->rd, *missing = p->missing, *src = p->src;
    const int64_t rec_w = w < 2 ? 2 : w;
    for (int64_t c = row0; c < row1; c++) {
        const int64_t base = c * w;
        if (c + PREFETCH_CALLS < row1) {  /* the frames of a call a little ahead: memory latency, not bandwidth, */
            const int64_t ahead = base + PREFETCH_CALLS * w;  /* is what a tick waits on */
            for (int64_t s = 0; s < w; s++) {
                const char *q = (const char *)next_frame(ring, wr, rd, src, ahead + s, ns, depth, plane_stride);
                if (q)
                    for (int64_t b = 0; b < ns * 2; b += 64) __builtin_prefetch(q + b, 0, 0);
            }
        }
        for (int64_t s = 0; s < w; s++) {  /* take this tick's frame of every leg */
            const int64_t i = base + s;
            frame[s] = next_frame(ring, wr, rd, src, i, ns, depth, plane_stride);
            if (src[i]) src[i] = 0;  /* a lent frame: the ring stays empty */
            else if (frame[s]) rd[i]++;
            else missing[i]++;
            if (wr[i] == rd[i]) wr[i] = rd[i] = 0;  /* empty: the next frame goes to plane 0, still in cache */
        }
        mix_rows_of_call(p->out + base * ns, p->gains + c * w * w, w, w, frame, ns, soft, nt, tmp, iacc, facc);
        if (p->rec_id[c] >= 0)  /* the recording: two more listeners of the same frames */
            mix_rows_of_call(p->rec_out + c * 2 * ns, p->rec_gains + c * rec_w * w, 2, w, frame, ns, soft, 0, tmp,
                             iacc, facc);
    }
    if (nt) _mm_sfence();  /* streamed stores visible before another thread reads the outputs */
    return 0;
}

/* A tick's work as chunks of call rows, each a row of CHUNK_FIELDS int64 (kernel.CHUNK_FIELDS): the address of
 * the pool's pool_arrays, row0, row1, w, ns, depth, plane_stride, nt. Every mix thread calls bargein_tick_chunks
 * with the same chunks and counters (next chunk to take, chunks finished; fresh for every tick) and takes the next
 * chunk until none is left: a thread that starts late or runs slowly (its CPU taken by another process or the
 * hypervisor) leaves its share to the others instead of holding the tick up. With wait, the caller then waits
 * for the chunks other threads still have in hand (at most one each), so the whole tick is mixed when it returns;
 * a thread that had not started by then finds nothing left and returns at once.
 * Returns how many chunks this thread mixed, or -1 when the kernel refused one (frames or calls too large). */
#define CHUNK_FIELDS 8

int64_t bargein_tick_chunks(const int64_t *chunks, int64_t n, int64_t *counters, int soft, int wait) {
    int64_t *next = counters, *finished = counters + 1;
    int64_t done = 0;
    int refused = 0;
    for (;;) {
        const int64_t i = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
        if (i >= n) break;
        const int64_t *c = chunks + i * CHUNK_FIELDS;
        refused |= bargein_tick_rows((const pool_arrays *)(intptr_t)c[0], c[1], c[2], c[3], c[4], c[5], c[6], soft,
                                     (int)c[7]) != 0;
        __atomic_fetch_add(finished, 1, __ATOMIC_RELEASE);  /* after the chunk's stores (and their sfence) */
        done++;
    }
    if (wait)
        while (__atomic_load_n(finished, __ATOMIC_ACQUIRE) < n) _mm_pause();
    return refused ? -1 : done;
}

/* Per pool width w, a row of POOL_FIELDS int64 in the pool table (kernel.POOL_FIELDS). */
enum { P_RING, P_WR, P_RD, P_DROPPED, P_DEPTH, P_PLANE_STRIDE, P_NT, P_SRC };
#define POOL_FIELDS 8

/* Queue one frame for leg slot j of pool p: dropping the oldest when full; returns whether streamed. */
static inline int push_one(const int64_t *p, int64_t j, const int16_t *frame, int64_t ns) {
    int16_t *ring = (int16_t *)(intptr_t)p[P_RING];
    int64_t *wr = (int64_t *)(intptr_t)p[P_WR];
    int64_t *rd = (int64_t *)(intptr_t)p[P_RD];
    int64_t *dropped = (int64_t *)(intptr_t)p[P_DROPPED];
    const int64_t depth = p[P_DEPTH];
    if (wr[j] == rd[j]) wr[j] = rd[j] = 0;  /* empty: plane 0, where the last tick read */
    if (wr[j] - rd[j] >= depth) {  /* full: the oldest frame is dropped */
        rd[j]++;
        dropped[j]++;
    }
    store_frame(ring + ((wr[j] % depth) * p[P_PLANE_STRIDE] + j) * ns, frame, ns, (int)p[P_NT]);
    wr[j]++;
    return (int)p[P_NT];
}

/* Index of the first leg that is not in any pool, or -1. */
static int64_t first_unknown(const int64_t *leg_loc, int64_t n_loc, const int64_t *legs, int64_t n,
                             const int64_t *pools, int64_t n_widths) {
    for (int64_t i = 0; i < n; i++) {
        int64_t leg = legs[i];
        if (leg < 0 || leg >= n_loc) return i;
        int64_t w = leg_loc[leg * 3];
        if (w <= 0 || w >= n_widths || pools[w * POOL_FIELDS + P_RING] == 0) return i;
    }
    return -1;
}

/* Queue frame i for legs[i]: frames[i], or frames[rows[i]] when rows is given (a table of frames shared by
 * many legs). leg_loc is (n_loc, 3): pool width, row, slot (width -1: no such leg).
 * With lend, a frame whose leg has nothing queued is not copied: its address is kept for the tick that
 * immediately follows (the caller's frames stay untouched until then), so the tick reads it where it is.
 * Returns -1 when done, or the index of the first unknown leg (then nothing was written). */
int64_t bargein_push(const int64_t *leg_loc, int64_t n_loc, const int64_t *legs, int64_t n, const int16_t *frames,
                     const int64_t *rows, int64_t ns, const int64_t *pools, int64_t n_widths, int lend) {
    int64_t bad = first_unknown(leg_loc, n_loc, legs, n, pools, n_widths);
    if (bad >= 0) return bad;
    int any_nt = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t *loc = leg_loc + legs[i] * 3;
        const int64_t *p = pools + loc[0] * POOL_FIELDS;
        const int64_t j = loc[1] * loc[0] + loc[2];
        int64_t *src = (int64_t *)(intptr_t)p[P_SRC];
        const int16_t *frame = frames + (rows ? rows[i] : i) * ns;
        if (src[j]) {  /* a second frame for this leg: the lent one goes into the ring first, in order */
            any_nt |= push_one(p, j, (const int16_t *)(intptr_t)src[j], ns);
            src[j] = 0;
        } else if (lend && ((int64_t *)(intptr_t)p[P_WR])[j] == ((int64_t *)(intptr_t)p[P_RD])[j]) {
            src[j] = (int64_t)(intptr_t)frame;
            continue;
        }
        any_nt |= push_one(p, j, frame, ns);
    }
    if (any_nt) _mm_sfence();
    return -1;
}
