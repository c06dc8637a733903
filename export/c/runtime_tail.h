/* ---- difflogic C runtime, part 2: batching, input packing, GroupSum, threads ----
 * Needs from the generated part: DL_N_IN, DL_IN_C, DL_IN_HW, DL_T, DL_K, DL_GROUP, DL_NB,
 * DL_WS_WORDS, DL_ZERO_WORDS, DL_IN_WORDS, dl_in_off[], dl_cut[] (when DL_HAS_ENCODER),
 * dl_gs_idx[] / dl_gs_start[] / dl_gs_ones[] (GroupSum: workspace words per class) and dl_run_ops(ws).  No global mutable state: every call owns its workspace. */
/* input tile: 16 x DL_BLOCK bytes for dl_pack, (DL_PACK_SPAN + 64) x DL_BLOCK / 8 for
 * dl_pack_bits (DL_PACK_SPAN: features per pass, a multiple of 64) */
#define DL_PACK_SPAN 512
#define DL_TILE_BYTES ((DL_PACK_SPAN + 64) * (DL_BLOCK / 8))
typedef struct {
    const uint8_t* src;      /* images (n, C, H, W) uint8 or bits (n, N_IN) 0/1 */
    size_t n;
    int32_t* counts;         /* (n, K) */
    int is_bits;
    int thread, n_threads;
    int status;
} dl_job;

/* Input packing.  The block's samples are transposed 16 pixels at a time into a tile
 * (pixel-major, sample-minor bytes; SSE2 16x16 byte transposes), then each (pixel, threshold)
 * word is built 32 samples at a time with one compare + movemask (AVX2) -- the thermometer
 * encoding costs a few instructions per 32 samples instead of a read-modify-write per bit. */
static inline uint32_t dl_ge_mask32(const uint8_t* v, int cut) {
#if defined(__AVX2__)
    const __m256i x = _mm256_loadu_si256((const __m256i*)v);
    const __m256i c = _mm256_set1_epi8((char)cut);
    return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(x, c), x));
#elif defined(__SSE2__)
    const __m128i c = _mm_set1_epi8((char)cut);
    const __m128i lo = _mm_loadu_si128((const __m128i*)v), hi = _mm_loadu_si128((const __m128i*)(v + 16));
    const uint32_t a = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(lo, c), lo));
    const uint32_t b = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(hi, c), hi));
    return a | (b << 16);
#else
    uint32_t m = 0;
    for (int i = 0; i < 32; i++) m |= (uint32_t)(v[i] >= cut) << i;
    return m;
#endif
}

/* one perfect shuffle of 16 rows: d[2i], d[2i+1] = interleave(s[i], s[i+8]) */
#define DL_SHUFFLE16(d, s) do { \
    d##0 = _mm_unpacklo_epi8(s##0, s##8); d##1 = _mm_unpackhi_epi8(s##0, s##8); \
    d##2 = _mm_unpacklo_epi8(s##1, s##9); d##3 = _mm_unpackhi_epi8(s##1, s##9); \
    d##4 = _mm_unpacklo_epi8(s##2, s##10); d##5 = _mm_unpackhi_epi8(s##2, s##10); \
    d##6 = _mm_unpacklo_epi8(s##3, s##11); d##7 = _mm_unpackhi_epi8(s##3, s##11); \
    d##8 = _mm_unpacklo_epi8(s##4, s##12); d##9 = _mm_unpackhi_epi8(s##4, s##12); \
    d##10 = _mm_unpacklo_epi8(s##5, s##13); d##11 = _mm_unpackhi_epi8(s##5, s##13); \
    d##12 = _mm_unpacklo_epi8(s##6, s##14); d##13 = _mm_unpackhi_epi8(s##6, s##14); \
    d##14 = _mm_unpacklo_epi8(s##7, s##15); d##15 = _mm_unpackhi_epi8(s##7, s##15); } while (0)
static void dl_transpose16(const uint8_t* src, size_t stride, uint8_t* dst, size_t dstride) {
#if defined(__SSE2__)
    /* 4 perfect shuffles (interleave rows i and i+8) = a 16x16 byte transpose; written out so
     * every value stays in a register */
    __m128i r0 = _mm_loadu_si128((const __m128i*)(src + 0 * stride)), r1 = _mm_loadu_si128((const __m128i*)(src + 1 * stride)), r2 = _mm_loadu_si128((const __m128i*)(src + 2 * stride)), r3 = _mm_loadu_si128((const __m128i*)(src + 3 * stride)), r4 = _mm_loadu_si128((const __m128i*)(src + 4 * stride)), r5 = _mm_loadu_si128((const __m128i*)(src + 5 * stride)), r6 = _mm_loadu_si128((const __m128i*)(src + 6 * stride)), r7 = _mm_loadu_si128((const __m128i*)(src + 7 * stride)), r8 = _mm_loadu_si128((const __m128i*)(src + 8 * stride)), r9 = _mm_loadu_si128((const __m128i*)(src + 9 * stride)), r10 = _mm_loadu_si128((const __m128i*)(src + 10 * stride)), r11 = _mm_loadu_si128((const __m128i*)(src + 11 * stride)), r12 = _mm_loadu_si128((const __m128i*)(src + 12 * stride)), r13 = _mm_loadu_si128((const __m128i*)(src + 13 * stride)), r14 = _mm_loadu_si128((const __m128i*)(src + 14 * stride)), r15 = _mm_loadu_si128((const __m128i*)(src + 15 * stride));
    __m128i a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    DL_SHUFFLE16(a, r); DL_SHUFFLE16(r, a); DL_SHUFFLE16(a, r); DL_SHUFFLE16(r, a);
    _mm_storeu_si128((__m128i*)(dst + 0 * dstride), r0);
    _mm_storeu_si128((__m128i*)(dst + 1 * dstride), r1);
    _mm_storeu_si128((__m128i*)(dst + 2 * dstride), r2);
    _mm_storeu_si128((__m128i*)(dst + 3 * dstride), r3);
    _mm_storeu_si128((__m128i*)(dst + 4 * dstride), r4);
    _mm_storeu_si128((__m128i*)(dst + 5 * dstride), r5);
    _mm_storeu_si128((__m128i*)(dst + 6 * dstride), r6);
    _mm_storeu_si128((__m128i*)(dst + 7 * dstride), r7);
    _mm_storeu_si128((__m128i*)(dst + 8 * dstride), r8);
    _mm_storeu_si128((__m128i*)(dst + 9 * dstride), r9);
    _mm_storeu_si128((__m128i*)(dst + 10 * dstride), r10);
    _mm_storeu_si128((__m128i*)(dst + 11 * dstride), r11);
    _mm_storeu_si128((__m128i*)(dst + 12 * dstride), r12);
    _mm_storeu_si128((__m128i*)(dst + 13 * dstride), r13);
    _mm_storeu_si128((__m128i*)(dst + 14 * dstride), r14);
    _mm_storeu_si128((__m128i*)(dst + 15 * dstride), r15);
#else
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) dst[j * dstride + i] = src[i * stride + j];
#endif
}

/* src: nv samples of C*HW bytes; feature (c*T + t)*HW + q = (src[c*HW + q] >= cut[c*T + t]). */
static void dl_pack(const uint8_t* src, size_t nv, size_t C, size_t HW, size_t T, const int16_t* cut,
                    dl_word* in, uint8_t* tile) {
    const size_t P = C * HW;   /* every feature word is fully written: no clearing needed */
    for (size_t p0 = 0; p0 < P; p0 += 16) {
        const size_t np = P - p0 < 16 ? P - p0 : 16;
        for (size_t s0 = 0; s0 < DL_BLOCK; s0 += 16) {
            if (np == 16 && s0 + 16 <= nv) {
#if defined(__GNUC__)
                if ((p0 & 63) == 0)   /* rows are 256 separate streams: fetch each row's next line */
                    for (size_t i = 0; i < 16; i++) __builtin_prefetch(src + (s0 + i) * P + p0 + 64);
#endif
                dl_transpose16(src + s0 * P + p0, P, tile + s0, DL_BLOCK);
            } else {
                for (size_t i = 0; i < 16; i++)
                    for (size_t j = 0; j < np; j++)
                        tile[j * DL_BLOCK + s0 + i] = s0 + i < nv ? src[(s0 + i) * P + p0 + j] : 0;
            }
        }
        for (size_t j = 0; j < np; j++) {
            const size_t p = p0 + j, c = p / HW, q = p - c * HW;
            for (size_t t = 0; t < T; t++) {
                const int cv = cut[c * T + t];
                char* w = (char*)(in + dl_in_off[(c * T + t) * HW + q]);
                for (size_t k = 0; k < DL_BLOCK / 32; k++) {
                    const uint32_t m = cv <= 0 ? 0xffffffffu : cv > 255 ? 0u
                                     : dl_ge_mask32(tile + j * DL_BLOCK + 32 * k, cv);
                    memcpy(w + 4 * k, &m, 4);   /* little-endian: samples 32k..32k+31 */
                }
            }
        }
    }
}

#if defined(__GNUC__)
/* Pre-encoded 0/1 bytes: 8 samples' rows are OR-ed into one row of bytes first (byte j of
 * sample 8g+i shifted left by i: byte j then holds feature j of those 8 samples, bit i =
 * sample 8g+i), 64 features per vector op, so the byte transpose that follows moves 8x less
 * data than transposing the bytes themselves.  Any nonzero byte counts as 1. */
typedef uint8_t dl_v64b __attribute__((vector_size(64)));
typedef uint64_t dl_v64q __attribute__((vector_size(64)));
static void dl_pack_bits(const uint8_t* src, size_t nv, dl_word* in, uint8_t* tile) {
    enum { G = DL_BLOCK / 8 };   /* groups of 8 samples = bytes per word */
    uint8_t* rows = tile;                          /* [chunk][group g][feature j of chunk] */
    uint8_t* cols = tile + G * DL_PACK_SPAN;       /* 64 x G: feature j = the word's bytes */
    for (size_t p1 = 0; p1 < DL_N_IN; p1 += DL_PACK_SPAN) {
        const size_t span = DL_N_IN - p1 < DL_PACK_SPAN ? DL_N_IN - p1 : DL_PACK_SPAN;
        /* group-major: each group reads its 8 rows' span sequentially (prefetch friendly) */
        for (size_t g = 0; g < G; g++) {
            for (size_t c = 0; c * 64 < span; c++) {
                const size_t np = span - c * 64 < 64 ? span - c * 64 : 64;
                const uint8_t* q = src + g * 8 * (size_t)DL_N_IN + p1 + c * 64;
                dl_v64q acc = {0};
                if (np == 64 && g * 8 + 8 <= nv) {
                    for (size_t i = 0; i < 8; i++) {
                        dl_v64b r;
                        memcpy(&r, q + i * DL_N_IN, 64);
                        acc |= (dl_v64q)((dl_v64b)(r != 0) & 1) << i;
                    }
                } else {
                    for (size_t i = 0; i < 8 && g * 8 + i < nv; i++) {
                        dl_v64b r = {0};
                        memcpy(&r, q + i * DL_N_IN, np);
                        acc |= (dl_v64q)((dl_v64b)(r != 0) & 1) << i;
                    }
                }
                memcpy(rows + (c * G + g) * 64, &acc, 64);
            }
        }
        for (size_t c = 0; c * 64 < span; c++) {
            const size_t np = span - c * 64 < 64 ? span - c * 64 : 64;
            const uint8_t* r = rows + c * G * 64;
#if defined(__SSE2__)
            if (G % 16 == 0) {
                for (size_t g0 = 0; g0 < G; g0 += 16)
                    for (size_t j0 = 0; j0 < np; j0 += 16)
                        dl_transpose16(r + g0 * 64 + j0, 64, cols + j0 * G + g0, G);
            } else
#endif
            {
                for (size_t g = 0; g < G; g++)
                    for (size_t j = 0; j < np; j++) cols[j * G + g] = r[g * 64 + j];
            }
            for (size_t j = 0; j < np; j++) memcpy(in + dl_in_off[p1 + c * 64 + j], cols + j * G, G);
        }
    }
}
#endif

static void dl_pack_block(const dl_job* job, size_t b0, size_t nv, dl_word* in, uint8_t* tile) {
    if (job->is_bits) {
#if defined(__GNUC__)
        dl_pack_bits(job->src + b0 * (size_t)DL_N_IN, nv, in, tile);
#else
        static const int16_t one = 1;
        dl_pack(job->src + b0 * (size_t)DL_N_IN, nv, 1, DL_N_IN, 1, &one, in, tile);
#endif
    } else {
#if DL_HAS_ENCODER
        dl_pack(job->src + b0 * (size_t)(DL_IN_C * DL_IN_HW), nv, DL_IN_C, DL_IN_HW, DL_T, dl_cut, in, tile);
#endif
    }
}

/* GroupSum: bit-sliced counting per class over its non-constant features (constant-one
 * features are added as a number).  Harley-Seal: carry-save adders (5 word ops each) reduce
 * 16 features at a time into ones/twos/fours/eights planes plus one "sixteens" word, which is
 * rippled into the high planes.  Planes 0..3 hold weights 1..8, plane 4+j weight 16*2^j. */
#define DL_CSA(h, l, a, b, c) do { const dl_word u_ = (a) ^ (b), c_ = (c); \
    h = ((a) & (b)) | (u_ & c_); l = u_ ^ c_; } while (0)

static inline void dl_ripple(dl_word* c, int from, dl_word x) {
    for (int j = from; j < DL_NB; j++) {
        const dl_word t = c[j] & x;
        c[j] ^= x;
        x = t;
    }
}

static void dl_group_sum(const dl_word* feats, dl_word* cnt, int32_t* counts, size_t nv) {
    for (size_t k = 0; k < DL_K; k++) {
        dl_word* c = cnt + k * DL_NB;
        for (int j = 0; j < DL_NB; j++) c[j] = DL_ZERO;
        const int32_t* idx = dl_gs_idx + dl_gs_start[k];
        const int32_t n = dl_gs_start[k + 1] - dl_gs_start[k];
        dl_word ones = DL_ZERO, twos = DL_ZERO, fours = DL_ZERO, eights = DL_ZERO;
        int32_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const int32_t* q = idx + i;
            dl_word tA, tB, fA, fB, eA, eB, sixteens;
            DL_CSA(tA, ones, ones, feats[q[0]], feats[q[1]]);
            DL_CSA(tB, ones, ones, feats[q[2]], feats[q[3]]);
            DL_CSA(fA, twos, twos, tA, tB);
            DL_CSA(tA, ones, ones, feats[q[4]], feats[q[5]]);
            DL_CSA(tB, ones, ones, feats[q[6]], feats[q[7]]);
            DL_CSA(fB, twos, twos, tA, tB);
            DL_CSA(eA, fours, fours, fA, fB);
            DL_CSA(tA, ones, ones, feats[q[8]], feats[q[9]]);
            DL_CSA(tB, ones, ones, feats[q[10]], feats[q[11]]);
            DL_CSA(fA, twos, twos, tA, tB);
            DL_CSA(tA, ones, ones, feats[q[12]], feats[q[13]]);
            DL_CSA(tB, ones, ones, feats[q[14]], feats[q[15]]);
            DL_CSA(fB, twos, twos, tA, tB);
            DL_CSA(eB, fours, fours, fA, fB);
            DL_CSA(sixteens, eights, eights, eA, eB);
            dl_ripple(c, 4, sixteens);
        }
        c[0] = ones; c[1] = twos; c[2] = fours; c[3] = eights;
        for (; i < n; i++) dl_ripple(c, 0, feats[idx[i]]);
    }
    /* read the bit planes back, 64 samples (one lane) at a time: per class, count(s) =
     * ones + sum_j bit s of plane j << j, built in registers (AVX-512: one masked add per
     * 16 samples and plane; GCC vectors: 8 samples per vector op), written class-major to
     * a small tile, then transposed into the sample-major (n, K) output */
    int32_t tile[DL_K * 64];
    for (size_t lane = 0; lane * 64 < nv; lane++) {
        const size_t ns = nv - lane * 64 < 64 ? nv - lane * 64 : 64;
        for (size_t k = 0; k < DL_K; k++) {
            int32_t* acc = tile + k * 64;
#if defined(__AVX512F__)
            __m512i a0 = _mm512_set1_epi32(dl_gs_ones[k]), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < DL_NB; j++) {
                const uint64_t w = DL_LANE(cnt, k * DL_NB + j, lane);
                const __m512i c = _mm512_set1_epi32((int32_t)(1u << j));
                a0 = _mm512_mask_add_epi32(a0, (__mmask16)w, a0, c);
                a1 = _mm512_mask_add_epi32(a1, (__mmask16)(w >> 16), a1, c);
                a2 = _mm512_mask_add_epi32(a2, (__mmask16)(w >> 32), a2, c);
                a3 = _mm512_mask_add_epi32(a3, (__mmask16)(w >> 48), a3, c);
            }
            _mm512_storeu_si512((void*)acc, a0);
            _mm512_storeu_si512((void*)(acc + 16), a1);
            _mm512_storeu_si512((void*)(acc + 32), a2);
            _mm512_storeu_si512((void*)(acc + 48), a3);
#elif defined(__GNUC__)
            typedef int32_t dl_v8i __attribute__((vector_size(32)));
            const dl_v8i sh = {0, 1, 2, 3, 4, 5, 6, 7};
            for (int g = 0; g < 8; g++) {
                dl_v8i a = (dl_v8i){0} + dl_gs_ones[k];
                for (int j = 0; j < DL_NB; j++) {
                    const int32_t byte = (int32_t)((DL_LANE(cnt, k * DL_NB + j, lane) >> (8 * g)) & 255);
                    a += (((dl_v8i){0} + byte) >> sh & 1) << j;
                }
                memcpy(acc + 8 * g, &a, sizeof a);
            }
#else
            for (int s = 0; s < 64; s++) acc[s] = dl_gs_ones[k];
            for (int j = 0; j < DL_NB; j++) {
                const uint64_t w = DL_LANE(cnt, k * DL_NB + j, lane);
                for (int s = 0; s < 64; s++) acc[s] += (int32_t)((w >> s) & 1) << j;
            }
#endif
        }
        int32_t* out = counts + lane * 64 * DL_K;
        for (size_t s = 0; s < ns; s++)
            for (size_t k = 0; k < DL_K; k++) out[s * DL_K + k] = tile[k * 64 + s];
    }
}

static void* dl_worker(void* arg) {
    dl_job* job = (dl_job*)arg;
    void* mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(dl_word) * (DL_WS_WORDS + DL_K * DL_NB) + DL_TILE_BYTES) != 0) {
        job->status = -1;
        return NULL;
    }
    dl_word* ws = (dl_word*)mem;
    /* zero once: the borders of padded buffers and constant-0 outputs are never written, so
     * they stay 0; gate words, counters and the tile are always written before being read */
    memset(mem, 0, sizeof(dl_word) * DL_ZERO_WORDS);
    dl_word* cnt = ws + DL_WS_WORDS;
    uint8_t* tile = (uint8_t*)(cnt + DL_K * DL_NB);
    const size_t nblocks = (job->n + DL_BLOCK - 1) / DL_BLOCK;
    for (size_t blk = (size_t)job->thread; blk < nblocks; blk += (size_t)job->n_threads) {
        const size_t b0 = blk * DL_BLOCK;
        const size_t nv = job->n - b0 < DL_BLOCK ? job->n - b0 : DL_BLOCK;
        dl_pack_block(job, b0, nv, ws, tile);
        dl_run_ops(ws);
        dl_group_sum(ws, cnt, job->counts + b0 * DL_K, nv);
    }
    free(mem);
    job->status = 0;
    return NULL;
}

static int dl_run(const uint8_t* src, size_t n, int32_t* counts, int n_threads, int is_bits) {
    if (n == 0) return 0;
    if (!src || !counts) return -2;
    const size_t nblocks = (n + DL_BLOCK - 1) / DL_BLOCK;
    if (n_threads < 1) n_threads = 1;
    if ((size_t)n_threads > nblocks) n_threads = (int)nblocks;
    if (n_threads > 256) n_threads = 256;
    dl_job jobs[256];
    pthread_t tids[256];
    for (int t = 0; t < n_threads; t++) {
        dl_job j = {src, n, counts, is_bits, t, n_threads, -1};
        jobs[t] = j;
    }
    int started = 1;
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&tids[t], NULL, dl_worker, &jobs[t]) != 0) {  /* fall back: run it here */
            jobs[t].n_threads = -1;
            continue;
        }
        started++;
    }
    dl_worker(&jobs[0]);
    int status = jobs[0].status;
    for (int t = 1; t < n_threads; t++) {
        if (jobs[t].n_threads == -1) { jobs[t].n_threads = n_threads; dl_worker(&jobs[t]); }
        else pthread_join(tids[t], NULL);
        if (jobs[t].status != 0) status = jobs[t].status;
    }
    (void)started;
    return status;
}
