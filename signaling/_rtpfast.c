/* The per-packet work of server legs' direct RTP path (signaling/rtp_fast.py), one C call per tick out and
 * one per datagram in, so that no Python runs per leg and packet.
 *
 * Loaded with ctypes like the mixer kernel (no Python API here). The codec and the SRTP library are not
 * linked: their functions come in as pointers taken from the libraries Python already loaded (libopus from
 * signaling/libopus.py, libsrtp from pylibsrtp's cffi binding), so the C path uses exactly the same
 * encoders, decoders and SRTP sessions as the Python path it replaces.
 *
 * Out, per tick (bargein_rtp_send_rows): Opus-encode every group's mix once, then for every leg: the RTP
 * header (SSRC, payload type, marker, sequence number, timestamp, the negotiated header extension), SRTP
 * protect with the leg's session and sendto() on the socket of its nominated ICE pair. Per-leg state lives
 * in an int64 table (one row per leg, fields L_*) and a byte table (destination address and header
 * extension), written by Python only when legs attach or detach.
 *
 * In, per datagram (bargein_rtp_receive, its constants in one context array so the call is cheap): SRTP
 * unprotect, RTP header parse, the receiver statistics aiortc's receiver reports are made of (RFC 3550
 * A.1/A.8, as aiortc's StreamStatistics computes them), the Opus decode into the leg decoder's buffer and, with
 * the leg's adaptive buffer in C (_jitter.c), the frame into that buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef int (*srtp_fn)(void *ctx, void *hdr, int *len);
typedef int32_t (*enc_fn)(void *st, const int16_t *pcm, int frame_size, unsigned char *data, int32_t max);
typedef int (*dec_fn)(void *st, const unsigned char *data, int32_t len, int16_t *pcm, int frame_size, int fec);

/* one row of the leg table (int64 each); keep in step with rtp_fast.py */
enum {
    L_FD, L_SRTP, L_GROUP, L_SEQ, L_TS0, L_STEP, L_FRAMES, L_SENT, L_OCTETS, L_ERRORS, L_LAST_TS, L_HEAD,
    L_SSRC, L_EXTLEN, L_ADDRLEN, L_SPARE, L_FIELDS
};
#define BLOB 96      /* bytes per leg in the byte table: the sockaddr at 0, the header extension at EXT_AT */
#define EXT_AT 32
#define MAX_EXT (BLOB - EXT_AT)
#define SCRATCH 1500 /* bytes per group payload in the caller's scratch */
#define SRTP_TRAILER 144 /* SRTP_MAX_TRAILER_LEN in libsrtp 2 */

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }
static uint32_t get16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

/* Encode ``ngroups`` mixes (group g's: ``n`` int16 at address ``rows[g]``, read where the mixer wrote it) with
 * their encoders, then send one packet per leg.
 * ``glen`` gets each group's payload length. Returns the packets sent, or -1 - g when group g's encode
 * failed (nothing is sent then: the caller falls back as when an encode raises). A leg whose protect or
 * send fails counts an error and keeps its sequence number and timestamp (as the Python path does). */
int64_t bargein_rtp_send_rows(enc_fn enc, srtp_fn protect, const int64_t *encoders, int64_t ngroups,
                              const int64_t *rows, int64_t n, uint8_t *scratch, int64_t *glen,
                              int64_t *legs, const uint8_t *blobs, int64_t nlegs)
{
    for (int64_t g = 0; g < ngroups; g++) {
        int32_t len = enc((void *)(intptr_t)encoders[g], (const int16_t *)(intptr_t)rows[g], (int)n,
                          scratch + g * SCRATCH, SCRATCH);
        if (len < 0)
            return -1 - g;
        glen[g] = len;
    }
    uint8_t packet[12 + MAX_EXT + SCRATCH + SRTP_TRAILER];
    int64_t sent = 0;
    for (int64_t i = 0; i < nlegs; i++) {
        int64_t *L = legs + i * L_FIELDS;
        const uint8_t *blob = blobs + i * BLOB;
        int64_t g = L[L_GROUP];
        if (g < 0 || g >= ngroups)
            continue;
        uint32_t ts = (uint32_t)((uint64_t)L[L_TS0] + (uint64_t)L[L_FRAMES] * (uint64_t)L[L_STEP]);
        int64_t ext = L[L_EXTLEN];
        put16(packet, (uint32_t)L[L_HEAD]);
        put16(packet + 2, (uint32_t)L[L_SEQ]);
        put32(packet + 4, ts);
        put32(packet + 8, (uint32_t)L[L_SSRC]);
        memcpy(packet + 12, blob + EXT_AT, (size_t)ext);
        memcpy(packet + 12 + ext, scratch + g * SCRATCH, (size_t)glen[g]);
        int len = (int)(12 + ext + glen[g]);
        if (protect((void *)(intptr_t)L[L_SRTP], packet, &len) != 0) {
            L[L_ERRORS]++;
            continue;
        }
        ssize_t r;
        do {
            r = sendto((int)L[L_FD], packet, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)blob,
                       (socklen_t)L[L_ADDRLEN]);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            L[L_ERRORS]++;
            continue;
        }
        L[L_SEQ] = (L[L_SEQ] + 1) & 0xFFFF;
        L[L_FRAMES]++;
        L[L_SENT]++;
        L[L_OCTETS] += glen[g];
        L[L_LAST_TS] = ts;
        sent++;
    }
    return sent;
}

/* One leg's receive context: an int64 array of C_FIELDS constants, then its statistics row (S_*, as aiortc's
 * StreamStatistics keeps them; base/max sequence number < 0 stand for None), then what the caller learns of
 * the last datagram (I_*). Keep in step with rtp_fast.py. */
enum { C_UNPROTECT, C_SRTP, C_DECODE, C_DECODER, C_PT, C_WORK, C_WORK_SIZE, C_PCM, C_MAX_PCM, C_CLOCKRATE, C_JB, C_RATE,
       C_CUTTER_BUSY, C_FIELDS };
/* C_JB: the leg's adaptive buffer (_jitter.c), or 0; C_RATE: the mixer rate; C_CUTTER_BUSY: the caller's frame
 * cutter holds samples (then every packet goes back to it) */
int64_t bargein_jb_packet(void *jb, int64_t ts, const int16_t *pcm, int64_t n, int64_t rate, int64_t cutter_idle,
                          double *arrival, int64_t *pos48);
enum { S_SSRC, S_BASE_SEQ, S_MAX_SEQ, S_CYCLES, S_RECEIVED, S_JITTER_Q4, S_LAST_ARRIVAL, S_LAST_TS, S_FIELDS };
enum { I_SEQ, I_TS, I_SSRC, I_FIELDS };

#define RX_NOT_OURS (-1)   /* not SRTP of this payload type (DTLS, RTCP, another type): aiortc's path */
#define RX_UNPROTECT (-2)  /* SRTP authentication or replay check failed: dropped */
#define RX_MALFORMED (-3)  /* unprotected but not a whole RTP packet: dropped */
#define RX_NEW_SSRC (-4)   /* not the SSRC of the statistics row: nothing done, the caller swaps rows and retries */
#define RX_DECODE (-5)     /* counted and in the statistics, but the payload did not decode */
#define RX_EMPTY (-6)      /* counted and in the statistics, no payload */
#define RX_QUEUED (-7)     /* decoded and put in the leg's adaptive buffer (C_JB): nothing left to do */

static int uint16_gt(uint32_t a, uint32_t b) /* RFC 1982 serial number arithmetic, as aiortc's uint16_gt */
{
    return (a > b && a - b < 0x8000) || (a < b && b - a > 0x8000);
}

/* One datagram. Returns (RTP timestamp << 16) | samples decoded into the context's PCM buffer (mono, at most
 * C_MAX_PCM < 65536), or an RX_* code (< 0). The statistics row is updated as aiortc's StreamStatistics.add
 * does. */
int64_t bargein_rtp_receive(int64_t *ctx, const uint8_t *data, int64_t len)
{
    int64_t *stats = ctx + C_FIELDS, *info = ctx + C_FIELDS + S_FIELDS;
    uint8_t *work = (uint8_t *)(intptr_t)ctx[C_WORK];
    if (len < 12 || data[0] < 128 || data[0] >= 192 || (data[1] & 0x7F) != ctx[C_PT] || (data[1] >= 192 && data[1] <= 208))
        return RX_NOT_OURS;
    info[I_SSRC] = get32(data + 8);
    if (stats[S_SSRC] != info[I_SSRC]) /* the header is in clear: ask before unprotecting */
        return RX_NEW_SSRC;
    if (len > ctx[C_WORK_SIZE])
        return RX_MALFORMED;
    memcpy(work, data, (size_t)len);
    int clear = (int)len;
    if (((srtp_fn)(intptr_t)ctx[C_UNPROTECT])((void *)(intptr_t)ctx[C_SRTP], work, &clear) != 0)
        return RX_UNPROTECT;
    if (clear < 12)
        return RX_MALFORMED;
    uint8_t b0 = work[0];
    int64_t start = 12 + 4 * (b0 & 0x0F);
    if (b0 & 0x10) { /* header extension: skipped */
        if (clear < start + 4)
            return RX_MALFORMED;
        start += 4 + 4 * (int64_t)get16(work + start + 2);
    }
    int64_t end = clear - ((b0 & 0x20) ? work[clear - 1] : 0);
    if (end < start)
        return RX_MALFORMED;
    uint32_t seq = get16(work + 2), ts = get32(work + 4);
    info[I_SEQ] = seq;
    info[I_TS] = ts;
    /* StreamStatistics.add */
    int in_order = stats[S_MAX_SEQ] < 0 || uint16_gt(seq, (uint32_t)stats[S_MAX_SEQ]);
    stats[S_RECEIVED]++;
    if (stats[S_BASE_SEQ] < 0)
        stats[S_BASE_SEQ] = seq;
    if (in_order) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t arrival = (int64_t)(((double)now.tv_sec + now.tv_nsec * 1e-9) * (double)ctx[C_CLOCKRATE]);
        if (stats[S_MAX_SEQ] >= 0 && (int64_t)seq < stats[S_MAX_SEQ])
            stats[S_CYCLES] += 1 << 16;
        stats[S_MAX_SEQ] = seq;
        if ((int64_t)ts != stats[S_LAST_TS] && stats[S_RECEIVED] > 1) {
            int64_t diff = (arrival - stats[S_LAST_ARRIVAL]) - ((int64_t)ts - stats[S_LAST_TS]);
            stats[S_JITTER_Q4] += (diff < 0 ? -diff : diff) - ((stats[S_JITTER_Q4] + 8) >> 4);
        }
        stats[S_LAST_ARRIVAL] = arrival;
        stats[S_LAST_TS] = ts;
    }
    if (end == start)
        return RX_EMPTY;
    int samples = ((dec_fn)(intptr_t)ctx[C_DECODE])((void *)(intptr_t)ctx[C_DECODER], work + start,
                                                      (int32_t)(end - start), (int16_t *)(intptr_t)ctx[C_PCM],
                                                      (int)ctx[C_MAX_PCM], 0);
    if (samples < 0)
        return RX_DECODE;
    if (ctx[C_JB]) { /* timed, unwrapped and, when it is one aligned frame, put in the buffer */
        double arrival;
        int64_t pos48;
        if (bargein_jb_packet((void *)(intptr_t)ctx[C_JB], ts, (const int16_t *)(intptr_t)ctx[C_PCM], samples,
                              ctx[C_RATE], !ctx[C_CUTTER_BUSY], &arrival, &pos48))
            return RX_QUEUED;
    }
    return ((int64_t)ts << 16) | samples;
}
