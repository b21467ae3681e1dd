/* The adaptive inbound buffer of signaling/jitter.py in C (signaling/jitter_fast.py loads it with ctypes).
 *
 * The same algorithm, step for step and in the same floating-point operations (double for times, float32 for
 * the fades, round-half-even), so it makes the same decisions as the Python class, which stays the reference
 * (tests/signaling/test_jitter_fast.py runs both on the same arrivals and compares every frame and counter).
 * Its state is one block of memory the caller owns (bargein_jb_bytes / bargein_jb_init): no allocation here.
 * Built with -ffp-contract=off: a fused multiply-add would round differently from Python.
 *
 * Frames are kept in a ring indexed by frame number: a stored frame's number is always in
 * [next, next + capacity) (older ones are late, newer ones restart the buffer), so the ring never collides.
 * The frames dropped to shrink keep their first ``ramp`` samples for the crossfade in a second ring, whose
 * numbers stay within [next - 1, next + capacity).
 *
 * Besides the buffer, bargein_jb_packet takes one decoded packet as the leg's OpusInbound would (unwrap its RTP
 * timestamp, cut the common case of one aligned 20 ms frame) and bargein_jb_pop_many pulls one frame from each
 * of many buffers: the packet path and the tick's feed without Python per frame.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STALLS 25

typedef struct {
    /* counters first: Python reads them as an int64 array (JB_COUNTERS in jitter_fast.py) */
    int64_t received, played, concealed, shrunk, late, overflow, resyncs, skipped, packets, depth;
    /* configuration */
    int64_t samples, capacity, window, hold, resync_frames, max_grow, jump_frames, ramp, skip_slots;
    double period, margin, resync_after, q, max_delay;
    /* state (has_* flags stand for Python's None) */
    int64_t has_behind_since, has_origin, has_last_pop, has_last_arrival, has_edge, has_next, has_last;
    double behind_since, origin, last_pop, last_arrival, stall, edge;
    double stalls[STALLS];
    int64_t n_stalls, stalls_at, catching_up, grow, edge_age, seen, base, next, early, gap;
    int64_t n_transit, transit_at, low_head, low_len, n_skip;
    /* the packet path (OpusInbound): its timestamp unwrapping and the last packet's arrival */
    int64_t has_ts0, ts_raw, ts;
    double packet_arrival;
    /* offsets of the arrays in the block, in bytes from its start */
    int64_t o_used, o_frames, o_skip_used, o_skip_num, o_skip_head, o_transit, o_low_seen, o_low_val,
        o_last, o_up, o_fade, o_silence, o_sort;
} jb_t;

#define ARR(jb, type, off) ((type *)((char *)(jb) + (jb)->off))

static int64_t align8(int64_t n) { return (n + 7) & ~(int64_t)7; }

static int64_t layout(jb_t *jb, int64_t samples, int64_t capacity, int64_t window, int64_t ramp)
{
    int64_t at = align8((int64_t)sizeof(jb_t)), skip_slots = capacity + 2;
#define PLACE(field, bytes) do { if (jb) jb->field = at; at += align8(bytes); } while (0)
    PLACE(o_used, capacity);
    PLACE(o_frames, capacity * samples * 2);
    PLACE(o_skip_used, skip_slots);
    PLACE(o_skip_num, skip_slots * 8);
    PLACE(o_skip_head, skip_slots * ramp * 2);
    PLACE(o_transit, window * 8);
    PLACE(o_low_seen, (window + 1) * 8);
    PLACE(o_low_val, (window + 1) * 8);
    PLACE(o_last, samples * 2);
    PLACE(o_up, ramp * 4);
    PLACE(o_fade, samples * 4);
    PLACE(o_silence, samples * 2);
    PLACE(o_sort, window * 8);
#undef PLACE
    return at;
}

int64_t bargein_jb_bytes(int64_t samples, int64_t capacity, int64_t window, int64_t ramp)
{
    return layout(NULL, samples, capacity, window, ramp);
}

/* ``mem``: bargein_jb_bytes() bytes, 8-byte aligned, zeroed. ``up`` (ramp) and ``fade`` (samples): the fades,
 * computed by numpy as the Python class computes them. */
void bargein_jb_init(jb_t *jb, int64_t samples, int64_t capacity, int64_t window, int64_t hold,
                     int64_t resync_frames, int64_t max_grow, int64_t jump_frames, int64_t ramp, double period,
                     double margin, double resync_after, double q, double max_delay, const float *up,
                     const float *fade)
{
    layout(jb, samples, capacity, window, ramp);
    jb->samples = samples, jb->capacity = capacity, jb->window = window, jb->hold = hold;
    jb->resync_frames = resync_frames, jb->max_grow = max_grow, jb->jump_frames = jump_frames, jb->ramp = ramp;
    jb->skip_slots = capacity + 2;
    jb->period = period, jb->margin = margin, jb->resync_after = resync_after, jb->q = q;
    jb->max_delay = max_delay;
    memcpy(ARR(jb, float, o_up), up, (size_t)ramp * 4);
    memcpy(ARR(jb, float, o_fade), fade, (size_t)samples * 4);
}

/* ------------------------------------------------------------------ the rings */
static int64_t slot(int64_t number, int64_t n) { int64_t s = number % n; return s < 0 ? s + n : s; }

static int16_t *frame_at(jb_t *jb, int64_t number)
{
    int64_t s = slot(number, jb->capacity);
    if (!jb->has_next || number < jb->next || number >= jb->next + jb->capacity || !ARR(jb, uint8_t, o_used)[s])
        return NULL;
    return ARR(jb, int16_t, o_frames) + s * jb->samples;
}

static void frame_drop(jb_t *jb, int64_t number)
{
    if (frame_at(jb, number)) {
        ARR(jb, uint8_t, o_used)[slot(number, jb->capacity)] = 0;
        jb->depth--;
    }
}

static int16_t *skip_at(jb_t *jb, int64_t number)
{
    int64_t s = slot(number, jb->skip_slots);
    if (!ARR(jb, uint8_t, o_skip_used)[s] || ARR(jb, int64_t, o_skip_num)[s] != number)
        return NULL;
    return ARR(jb, int16_t, o_skip_head) + s * jb->ramp;
}

static void skip_drop(jb_t *jb, int64_t number)
{
    if (skip_at(jb, number)) {
        ARR(jb, uint8_t, o_skip_used)[slot(number, jb->skip_slots)] = 0;
        jb->n_skip--;
    }
}

static double low_front(jb_t *jb) { return ARR(jb, double, o_low_val)[jb->low_head]; }

/* ------------------------------------------------------------------ the late edge */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(jb_t *jb)
{
    double *ordered = ARR(jb, double, o_sort), *transit = ARR(jb, double, o_transit);
    int64_t n = jb->n_transit;
    memcpy(ordered, transit, (size_t)n * 8); /* order does not matter: it is sorted */
    qsort(ordered, (size_t)n, 8, cmp_double);
    double at = jb->q * (double)(n - 1);
    int64_t lo = (int64_t)at, hi = lo + 1 < n - 1 ? lo + 1 : n - 1;
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - (double)lo);
}

static double late_edge(jb_t *jb)
{
    jb->edge_age++;
    if (!jb->has_edge || jb->edge_age >= 10) {
        jb->edge = quantile(jb);
        jb->has_edge = 1;
        jb->edge_age = 0;
    }
    double cap = low_front(jb) + jb->max_delay;
    return jb->edge <= cap ? jb->edge : cap;
}

static void note_transit(jb_t *jb, double transit)
{
    double *ring = ARR(jb, double, o_transit), *low_val = ARR(jb, double, o_low_val);
    int64_t *low_seen = ARR(jb, int64_t, o_low_seen), w = jb->window, lw = w + 1;
    ring[jb->transit_at] = transit;
    jb->transit_at = (jb->transit_at + 1) % w;
    if (jb->n_transit < w)
        jb->n_transit++;
    jb->seen++;
    if (!jb->has_edge || transit > jb->edge)
        jb->edge_age = (int64_t)1 << 30;
    while (jb->low_len && low_val[(jb->low_head + jb->low_len - 1) % lw] >= transit)
        jb->low_len--;
    int64_t tail = (jb->low_head + jb->low_len) % lw;
    low_seen[tail] = jb->seen, low_val[tail] = transit;
    jb->low_len++;
    int64_t oldest = jb->seen - w;
    while (low_seen[jb->low_head] <= oldest) {
        jb->low_head = (jb->low_head + 1) % lw;
        jb->low_len--;
    }
}

static void restart(jb_t *jb, int64_t number)
{
    memset(ARR(jb, uint8_t, o_used), 0, (size_t)jb->capacity);
    memset(ARR(jb, uint8_t, o_skip_used), 0, (size_t)jb->skip_slots);
    jb->depth = jb->n_skip = 0;
    jb->n_transit = jb->transit_at = 0;
    jb->has_edge = 0;
    jb->low_head = jb->low_len = 0;
    jb->base = jb->next = number;
    jb->has_next = 1;
    jb->early = 0;
    jb->has_behind_since = 0;
    jb->has_origin = 0;
    jb->grow = 0;
}

/* ------------------------------------------------------------------ in */
static int64_t ceil_int(double x) { return (int64_t)ceil(x); }
static int64_t min3(int64_t a, int64_t b, int64_t c) { int64_t m = a < b ? a : b; return m < c ? m : c; }

void bargein_jb_put(jb_t *jb, int64_t number, const int16_t *pcm, double arrival)
{
    jb->received++;
    jb->last_arrival = arrival, jb->has_last_arrival = 1;
    if (jb->has_next && number < jb->next) {
        if (!jb->has_behind_since)
            jb->behind_since = arrival, jb->has_behind_since = 1;
        int far = number < jb->next - jb->resync_frames;
        if (arrival - jb->behind_since >= jb->resync_after) {
            jb->resyncs++;
            restart(jb, number);
        } else if (far) {
            jb->late++;
            return;
        }
    } else {
        jb->has_behind_since = 0;
    }
    if (!jb->has_next || number >= jb->next + jb->capacity) {
        if (jb->has_next)
            jb->resyncs++;
        restart(jb, number);
    }
    double transit = arrival - (double)(number - jb->base) * jb->period;
    if (jb->stall > 0 && jb->n_transit) {
        double lowest = low_front(jb), a = transit - jb->stall, b = transit < lowest ? transit : lowest;
        transit = a >= b ? a : b;
    }
    note_transit(jb, transit);
    if (number < jb->next || frame_at(jb, number) || skip_at(jb, number)) {
        jb->late++;
        if (number < jb->next && jb->has_origin) {
            double behind = arrival - (jb->origin + (double)(number - jb->base) * jb->period) - jb->stall;
            int64_t room = ceil_int((late_edge(jb) - jb->origin) / jb->period);
            int64_t need = ceil_int(behind / jb->period);
            int64_t g = min3(jb->max_grow, room, jb->grow > need ? jb->grow : need);
            jb->grow = g > 0 ? g : 0;
        }
        return;
    }
    int64_t s = slot(number, jb->capacity);
    memcpy(ARR(jb, int16_t, o_frames) + s * jb->samples, pcm, (size_t)jb->samples * 2);
    ARR(jb, uint8_t, o_used)[s] = 1;
    jb->depth++;
}

/* ------------------------------------------------------------------ out */
static int16_t clip16(float v)
{
    float r = rintf(v);
    return r > 32767.0f ? 32767 : r < -32768.0f ? -32768 : (int16_t)r;
}

static const int16_t *conceal(jb_t *jb, int16_t *out)
{
    if (jb->gap || !jb->has_last)
        return ARR(jb, int16_t, o_silence);
    jb->gap = 1;
    const int16_t *last = ARR(jb, int16_t, o_last);
    const float *fade = ARR(jb, float, o_fade);
    for (int64_t i = 0; i < jb->samples; i++)
        out[i] = (int16_t)rintf((float)last[i] * fade[i]);
    return out;
}

static const int16_t *play(jb_t *jb, const int16_t *frame, const int16_t *dropped_head, int16_t *out)
{
    jb->played++;
    memcpy(out, frame, (size_t)jb->samples * 2);
    if (jb->gap || dropped_head) {
        const float *up = ARR(jb, float, o_up);
        for (int64_t i = 0; i < jb->ramp; i++) {
            float head = (float)frame[i] * up[i];
            if (dropped_head) {
                float from = (float)dropped_head[i] * (1.0f - up[i]);
                head = head + from;
            }
            out[i] = clip16(head);
        }
    }
    jb->gap = 0;
    memcpy(ARR(jb, int16_t, o_last), frame, (size_t)jb->samples * 2);
    jb->has_last = 1;
    return out;
}

static double jump(jb_t *jb, int64_t frames, double now)
{
    for (int64_t n = jb->next; n < jb->next + frames; n++) {
        if (frame_at(jb, n)) {
            frame_drop(jb, n);
            jb->skipped++;
        }
        skip_drop(jb, n);
    }
    jb->next += frames;
    jb->gap = 1;
    jb->early = 0;
    double offset = now - (double)(jb->next - jb->base) * jb->period;
    jb->origin = offset, jb->has_origin = 1;
    return offset;
}

static void shrink(jb_t *jb)
{
    int64_t quietest = jb->next + 1, best = -1; /* frame numbers may be negative: best < 0 means none yet */
    for (int64_t n = jb->next + 1; frame_at(jb, n); n++) {
        const int16_t *f = frame_at(jb, n);
        int64_t energy = 0;
        for (int64_t i = 0; i < jb->samples; i++)
            energy += f[i] < 0 ? -(int64_t)f[i] : f[i];
        if (best < 0 || energy < best) /* the first of the quietest, as Python's min() */
            quietest = n, best = energy;
    }
    int64_t s = slot(quietest, jb->skip_slots);
    ARR(jb, uint8_t, o_skip_used)[s] = 1;
    ARR(jb, int64_t, o_skip_num)[s] = quietest;
    memcpy(ARR(jb, int16_t, o_skip_head) + s * jb->ramp, frame_at(jb, quietest), (size_t)jb->ramp * 2);
    jb->n_skip++;
    frame_drop(jb, quietest);
    jb->shrunk++;
}

static int any_frame_after(jb_t *jb, int64_t number)
{
    for (int64_t n = number + 1; n < jb->next + jb->capacity; n++)
        if (frame_at(jb, n))
            return 1;
    return 0;
}

static int wait_for_head(jb_t *jb, double offset, double edge, double now)
{
    if (any_frame_after(jb, jb->next))
        return 0;
    if (jb->catching_up || offset < edge + jb->margin)
        return 1;
    int quiet = !jb->has_last_arrival || now - jb->last_arrival > 3 * jb->period;
    return quiet && jb->low_len && offset - jb->stall < low_front(jb) + jb->max_delay;
}

/* The frame for the tick running at ``now`` into ``out`` (samples); returns 0 before the first frame ever
 * arrived (nothing written), 1 otherwise. */
int64_t bargein_jb_pop(jb_t *jb, double now, int16_t *out)
{
    if (jb->has_last_pop) {
        double gap = now - jb->last_pop, late = gap - jb->period;
        jb->stalls[jb->stalls_at] = late > 0.0 ? late : 0.0;
        jb->stalls_at = (jb->stalls_at + 1) % STALLS;
        if (jb->n_stalls < STALLS)
            jb->n_stalls++;
        double worst = jb->stalls[0];
        for (int64_t i = 1; i < jb->n_stalls; i++)
            worst = jb->stalls[i] > worst ? jb->stalls[i] : worst;
        jb->stall = worst;
        jb->catching_up = gap < jb->period / 2;
    }
    jb->last_pop = now, jb->has_last_pop = 1;
    if (!jb->has_next)
        return 0;
    while (skip_at(jb, jb->next))
        jb->next++;
    double offset = now - (double)(jb->next - jb->base) * jb->period;
    jb->origin = offset, jb->has_origin = 1;
    const int16_t *got;
    if (jb->grow > 0) {
        jb->grow--;
        jb->early = 0;
        jb->concealed++;
        got = conceal(jb, out);
    } else {
        double edge = jb->n_transit ? late_edge(jb) : offset;
        int64_t pending = 0;
        for (int64_t s = 0; s < jb->skip_slots; s++)
            pending += ARR(jb, uint8_t, o_skip_used)[s] && ARR(jb, int64_t, o_skip_num)[s] > jb->next;
        double spare = (offset - (double)(1 + pending) * jb->period - edge - jb->margin) / jb->period;
        if (spare >= (double)jb->jump_frames) {
            int64_t run = 0;
            while (frame_at(jb, jb->next + run + 1))
                run++;
            if (run) {
                int64_t whole = (int64_t)spare;
                offset = jump(jb, whole < run ? whole : run, now);
                spare = (offset - (double)(1 + pending) * jb->period - edge - jb->margin) / jb->period;
            }
        }
        if (spare >= 0 && frame_at(jb, jb->next + 1)) {
            jb->early++;
            int64_t need = jb->hold / (1 + (int64_t)spare);
            if (jb->early >= (need > 1 ? need : 1)) {
                shrink(jb);
                jb->early = 0;
            }
        } else {
            jb->early = 0;
        }
        const int16_t *frame = frame_at(jb, jb->next);
        if (frame) {
            int16_t head[jb->ramp > 0 ? jb->ramp : 1];
            const int16_t *dropped = skip_at(jb, jb->next - 1);
            if (dropped) {
                memcpy(head, dropped, (size_t)jb->ramp * 2);
                skip_drop(jb, jb->next - 1);
            }
            got = play(jb, frame, dropped ? head : NULL, out);
            frame_drop(jb, jb->next);
            jb->next++;
        } else {
            jb->concealed++;
            skip_drop(jb, jb->next - 1);
            if (!wait_for_head(jb, offset, edge, now))
                jb->next++; /* lost: its slot is concealed and playout goes on at the same offset */
            got = conceal(jb, out);
        }
    }
    if (got != out)
        memcpy(out, got, (size_t)jb->samples * 2);
    return 1;
}

/* ------------------------------------------------------------------ inspection */
double bargein_jb_jitter(jb_t *jb)
{
    if (!jb->n_transit)
        return 0.0;
    const double *t = ARR(jb, double, o_transit);
    double lo = t[0], hi = t[0];
    for (int64_t i = 1; i < jb->n_transit; i++) {
        lo = t[i] < lo ? t[i] : lo;
        hi = t[i] > hi ? t[i] : hi;
    }
    return hi - lo;
}

/* The last packet's arrival and unwrapped position on the 48 kHz RTP clock (bargein_jb_packet) */
void bargein_jb_last_packet(jb_t *jb, double *arrival, int64_t *pos48)
{
    *arrival = jb->packet_arrival;
    *pos48 = jb->ts;
}

/* When the last packet arrived (bargein_jb_packet), or -1 before the first */
double bargein_jb_packet_arrival(jb_t *jb) { return jb->packets ? jb->packet_arrival : -1.0; }

/* ------------------------------------------------------------------ the packet path and the feed */
static double monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* Python's time.monotonic() on Linux */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One packet as OpusInbound takes it: its arrival (now, on Python's time.monotonic() clock) and its RTP
 * timestamp ``ts`` unwrapped as OpusInbound._unwrap does, into ``*arrival`` and ``*pos48`` (the position on the
 * 48 kHz RTP clock, first packet = 0). Then, when ``pcm`` holds one whole decoded frame (``n`` samples at the
 * mixer rate ``rate``) that starts on a frame boundary and the caller's frame cutter holds nothing
 * (``cutter_idle``), it is put in the buffer and 1 is returned. Otherwise 0: the caller cuts the PCM itself
 * (FrameCutter) from ``*pos48``, or there was none (``n`` < 0: an empty payload, or one that did not decode). */
int64_t bargein_jb_packet(jb_t *jb, int64_t ts, const int16_t *pcm, int64_t n, int64_t rate, int64_t cutter_idle,
                          double *arrival, int64_t *pos48)
{
    double now = monotonic();
    *arrival = jb->packet_arrival = now;
    jb->packets++;
    if (!jb->has_ts0) {
        jb->has_ts0 = 1;
        jb->ts_raw = ts;
        jb->ts = 0;
    } else {
        int64_t delta = (ts - jb->ts_raw) & 0xFFFFFFFF;
        if (delta >= ((int64_t)1 << 31))
            delta -= (int64_t)1 << 32;
        jb->ts_raw = ts;
        jb->ts += delta;
        /* a sender that keeps jumping 2^31 ahead would take the position past what int64 can scale by the rate
         * (Python's ints would not overflow); 2^40 samples is 260 days at 48 kHz: start the timeline again (the
         * buffer sees a jump and restarts, as it does for any) */
        if (jb->ts > ((int64_t)1 << 40) || jb->ts < -((int64_t)1 << 40))
            jb->ts = 0;
    }
    *pos48 = jb->ts;
    if (n != jb->samples || !cutter_idle || !pcm)
        return 0;
    int64_t scaled = jb->ts * rate, pos = scaled / 48000;
    if (scaled < 0 && scaled % 48000) /* Python's // rounds down */
        pos--;
    if (slot(pos, jb->samples) != 0)
        return 0;
    int64_t number = pos / jb->samples; /* exact: pos is a multiple of samples */
    bargein_jb_put(jb, number, pcm, now);
    return 1;
}

/* One frame from each of ``n`` buffers (``jbs``: their addresses) for the tick at ``now`` (< 0: read the clock)
 * into ``out`` (n x samples); ``got[i]`` is 1 where buffer i had a frame. Returns how many had one. */
int64_t bargein_jb_pop_many(const int64_t *jbs, int64_t n, double now, int16_t *out, uint8_t *got)
{
    if (now < 0)
        now = monotonic();
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        jb_t *jb = (jb_t *)(intptr_t)jbs[i];
        got[i] = (uint8_t)bargein_jb_pop(jb, now, out + i * jb->samples);
        k += got[i];
    }
    return k;
}
