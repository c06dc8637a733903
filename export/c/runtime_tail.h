/* ---- difflogic C runtime, part 3: batching, input packing, GroupSum, threads ----
 * Needs from the generated part: DL_N_IN, DL_K, DL_GROUP, DL_NB, DL_WS_WORDS, DL_ZERO_WORDS,
 * DL_IN_WORDS, dl_in_off[] (input feature -> word), dl_chunk_read[] (per 64 input features:
 * does the network read any of them), dl_gs_idx[] / dl_gs_start[] / dl_gs_ones[]
 * (GroupSum: workspace words per class), dl_run_ops(ws); with an input encoder also DL_IN_C,
 * DL_IN_HW, DL_T, dl_enc[] (per channel: the thermometer words of one pixel from its bytes)
 * and dl_thr[] / dl_thr_used[] (float thresholds).  No global mutable state: every call owns
 * its workspace. */
enum { DL_FORM_U8, DL_FORM_BITS, DL_FORM_PACKED, DL_FORM_F32 };
#define DL_BAD_INPUT (-4)        /* a 0/1 byte that is not 0 or 1, a float that is NaN or inf */
#define DL_PACK_SPAN 2048        /* 0/1 bytes: features per pass (a multiple of 64) */
#define DL_F32_COLS 16           /* floats of each sample row per pass */
#define DL_TILE_BYTES ((DL_PACK_SPAN + 64) * (DL_BLOCK / 8))   /* >= every packer's tile (uint8: 128 x DL_BLOCK) */
typedef struct {
    const void* src;         /* (n, ...) samples in the form's layout */
    size_t n;
    int32_t* counts;         /* (n, K) */
    int form;
    int thread, n_threads;
    int status;
} dl_job;

#if DL_HAS_ENCODER
/* uint8 images (n, C, H, W): pixel by pixel, the channel's encoder writes its thermometer
 * words (from bit planes + gates, or one compare per threshold, whichever the generator
 * found cheaper for the channel's cutoffs). */
static int dl_pack_u8(const uint8_t* src, size_t nv, dl_word* in, uint8_t* tile) {
    const size_t P = (size_t)DL_IN_C * DL_IN_HW;
    dl_word* pl = (dl_word*)(tile + DL_COLS * DL_BLOCK);   /* 8 plane words per column */
    for (size_t p0 = 0; p0 < P; p0 += DL_COLS) {
        const size_t np = P - p0 < DL_COLS ? P - p0 : DL_COLS;
        dl_tile(src, P, nv, p0, np, tile);
        for (size_t j = 0; j < np; j++) {
            const size_t p = p0 + j, c = p / DL_IN_HW, q = p - c * DL_IN_HW;
            const dl_encoder* e = &dl_enc[c];
            if (e->planes) e->planes(tile + j * DL_BLOCK, pl + 8 * j);
            if (e->direct) e->direct(tile + j * DL_BLOCK, in + dl_in_off[c * DL_T * DL_IN_HW + q]);
        }
        for (size_t j = 0; j < np; j++) {
            const size_t p = p0 + j, c = p / DL_IN_HW, q = p - c * DL_IN_HW;
            if (dl_enc[c].gates) dl_enc[c].gates(pl + 8 * j, in + dl_in_off[c * DL_T * DL_IN_HW + q]);
        }
    }
    return 0;
}
#endif

/* packed bits (n, ceil(N_IN / 8)) bytes: feature f is bit f % 8 of byte f / 8 (numpy's
 * packbits(..., bitorder="little")); bits past N_IN are ignored. */
static int dl_pack_packed(const uint8_t* src, size_t nv, dl_word* in, uint8_t* tile) {
    const size_t P = ((size_t)DL_N_IN + 7) / 8;
    for (size_t p0 = 0; p0 < P; p0 += DL_COLS) {
        const size_t np = P - p0 < DL_COLS ? P - p0 : DL_COLS;
        dl_tile(src, P, nv, p0, np, tile);
        for (size_t j = 0; j < np; j++) {
            const size_t f0 = 8 * (p0 + j);
            if (!dl_chunk_read[f0 / 64]) continue;   /* 8 features the network never reads */
            const size_t nb = DL_N_IN - f0 < 8 ? DL_N_IN - f0 : 8;
            dl_word* dst[8];
            for (size_t k = 0; k < nb; k++) dst[k] = in + dl_in_off[f0 + k];
            dl_planes(tile + j * DL_BLOCK, (int)nb, dst);
        }
    }
    return 0;
}

/* 0/1 bytes (n, N_IN): the rows of 8 samples are OR-ed into one row of bytes first (byte j of
 * sample 8g + i shifted left by i inside 64-bit lanes: byte j then holds feature j of those
 * 8 samples, bit i = sample 8g + i), 32 features per AVX2 op, so the byte transpose that
 * follows moves 8x less data than transposing the bytes themselves.  Each group of 8 rows is
 * read DL_PACK_SPAN bytes at a time (long runs the prefetchers follow); 64-feature chunks the
 * network never reads (dl_chunk_read: unused thresholds) are skipped.  A byte other than 0 or
 * 1 in a chunk read makes the call fail (DL_BAD_INPUT) instead of spilling into its
 * neighbours' bits. */
#if defined(__AVX512BW__)
#define DL_OR_W 64
typedef __m512i dl_orv;
#define DL_OR_LOAD(p) _mm512_loadu_si512((const void*)(p))
#define DL_OR_SHL(v, i) _mm512_slli_epi64(v, i)
#define DL_OR_OR(a, b) _mm512_or_si512(a, b)
#define DL_OR_STORE(p, v) _mm512_storeu_si512((void*)(p), v)
#define DL_OR_ZERO _mm512_setzero_si512()
#define DL_OR_BAD(v) (_mm512_test_epi8_mask(v, _mm512_set1_epi8((char)0xfe)) != 0)
#elif defined(__AVX2__)
#define DL_OR_W 32
typedef __m256i dl_orv;
#define DL_OR_LOAD(p) _mm256_loadu_si256((const __m256i*)(p))
#define DL_OR_SHL(v, i) _mm256_slli_epi64(v, i)
#define DL_OR_OR(a, b) _mm256_or_si256(a, b)
#define DL_OR_STORE(p, v) _mm256_storeu_si256((__m256i*)(p), v)
#define DL_OR_ZERO _mm256_setzero_si256()
#define DL_OR_BAD(v) (!_mm256_testz_si256(v, _mm256_set1_epi8((char)0xfe)))
#elif defined(__SSE2__)
#define DL_OR_W 16
typedef __m128i dl_orv;
#define DL_OR_LOAD(p) _mm_loadu_si128((const __m128i*)(p))
#define DL_OR_SHL(v, i) _mm_slli_epi64(v, i)
#define DL_OR_OR(a, b) _mm_or_si128(a, b)
#define DL_OR_STORE(p, v) _mm_storeu_si128((__m128i*)(p), v)
#define DL_OR_ZERO _mm_setzero_si128()
#define DL_OR_BAD(v) (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8((char)0xfe)), _mm_setzero_si128())) != 0xffff)
#else
#define DL_OR_W 8
typedef uint64_t dl_orv;
static inline uint64_t dl_or_load(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return v; }
#define DL_OR_LOAD(p) dl_or_load(p)
#define DL_OR_SHL(v, i) ((v) << (i))
#define DL_OR_OR(a, b) ((a) | (b))
#define DL_OR_STORE(p, v) memcpy(p, &(v), 8)
#define DL_OR_ZERO ((uint64_t)0)
#define DL_OR_BAD(v) (((v) & 0xfefefefefefefefeull) != 0)
#endif

/* out[j] = OR_i q[i * stride + j] << i for j < 64 (8 full rows); *any |= every byte read */
static inline void dl_or8(const uint8_t* q, size_t stride, uint8_t* out, dl_orv* any) {
    for (int h = 0; h < 64; h += DL_OR_W) {
        dl_orv r = DL_OR_LOAD(q + h), acc = r, a = r;
#define DL_ROW(i) r = DL_OR_LOAD(q + (i) * stride + h); acc = DL_OR_OR(acc, DL_OR_SHL(r, i)); a = DL_OR_OR(a, r);
        DL_ROW(1) DL_ROW(2) DL_ROW(3) DL_ROW(4) DL_ROW(5) DL_ROW(6) DL_ROW(7)
#undef DL_ROW
        DL_OR_STORE(out + h, acc);
        *any = DL_OR_OR(*any, a);
    }
}

static int dl_pack_bits(const uint8_t* src, size_t nv, dl_word* in, uint8_t* tile) {
    enum { G = DL_BLOCK / 8 };   /* groups of 8 samples = bytes per word */
    uint8_t* rows = tile;                          /* [chunk][group g][feature j of chunk] */
    uint8_t* cols = tile + G * DL_PACK_SPAN;       /* 64 x G: feature j = the word's bytes */
    int bad = 0;
    dl_orv any = DL_OR_ZERO;
    for (size_t p1 = 0; p1 < DL_N_IN; p1 += DL_PACK_SPAN) {
        const size_t span = DL_N_IN - p1 < DL_PACK_SPAN ? DL_N_IN - p1 : DL_PACK_SPAN;
        for (size_t g = 0; g < G; g++) {   /* group-major: 8 rows read in sequence */
#if defined(__GNUC__)
            if ((g + 1) * 8 + 8 <= nv)     /* the next group's rows: their first lines */
                for (size_t i = 0; i < 8; i++)
                    for (size_t l = 0; l < 256 && l < span; l += 64)
                        __builtin_prefetch(src + ((g + 1) * 8 + i) * (size_t)DL_N_IN + p1 + l, 0, 2);
#endif
            for (size_t c = 0; c * 64 < span; c++) {
                if (!dl_chunk_read[p1 / 64 + c]) continue;
                const size_t np = span - c * 64 < 64 ? span - c * 64 : 64;
                const uint8_t* q = src + g * 8 * (size_t)DL_N_IN + p1 + c * 64;
                uint8_t* out = rows + (c * G + g) * 64;
                if (np == 64 && g * 8 + 8 <= nv) {
                    dl_or8(q, DL_N_IN, out, &any);
                    continue;
                }
                if (g * 8 + 8 <= nv) {   /* a short chunk of 8 full rows: zero-padded copies */
                    uint8_t pad[8 * 64] = {0};
                    for (size_t i = 0; i < 8; i++) memcpy(pad + 64 * i, q + i * DL_N_IN, np);
                    dl_or8(pad, 64, out, &any);
                    continue;
                }
                for (size_t j = 0; j < 64; j++) {
                    uint8_t b = 0;
                    for (size_t i = 0; i < 8 && g * 8 + i < nv; i++) {
                        const uint8_t v = j < np ? q[i * DL_N_IN + j] : 0;
                        bad |= v > 1;
                        b |= (uint8_t)(v << i);
                    }
                    out[j] = b;
                }
            }
        }
        for (size_t c = 0; c * 64 < span; c++) {
            if (!dl_chunk_read[p1 / 64 + c]) continue;
            const size_t np = span - c * 64 < 64 ? span - c * 64 : 64;
            const uint8_t* r = rows + c * G * 64;
            size_t g0 = 0;
#if defined(__SSE2__)
            for (; g0 + 16 <= G; g0 += 16)
                for (size_t j0 = 0; j0 < 64; j0 += 16) dl_transpose16(r + g0 * 64 + j0, 64, cols + j0 * G + g0, G);
#endif
            for (size_t g = g0; g < G; g++)
                for (size_t j = 0; j < np; j++) cols[j * G + g] = r[g * 64 + j];
            for (size_t j = 0; j < np; j++) memcpy(in + dl_in_off[p1 + c * 64 + j], cols + j * G, G);
        }
    }
    return bad || DL_OR_BAD(any) ? DL_BAD_INPUT : 0;
}

#if DL_HAS_ENCODER
/* float32 inputs (n, C, ...): bit c*T + t = x[c] > thresholds[c, t], IEEE compares exactly as
 * PyTorch's float32 ``>``.  The block's rows are transposed 16 floats (one cache line) at a
 * time (AVX: 8 x 8 transposes), the next line of every row prefetched.  A NaN or infinite
 * value makes the call fail (DL_BAD_INPUT). */
static inline int dl_bad_f32(float v) { return !(v - v == 0.0f); }   /* NaN, +-inf -> NaN */

#if defined(__AVX__)
static void dl_transpose8f(const float* src, size_t stride, float* dst, size_t dstride, __m256* bad) {
    const __m256 inf = _mm256_set1_ps(__builtin_inff()), abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) {
        r[i] = _mm256_loadu_ps(src + i * stride);
        *bad = _mm256_or_ps(*bad, _mm256_cmp_ps(_mm256_and_ps(r[i], abs), inf, _CMP_NLT_UQ));
    }
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0x44);
        u[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0xEE);
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {   /* u[j]: columns j | j + 4 of rows 0-3; u[4 + j]: of rows 4-7 */
        _mm256_storeu_ps(dst + j * dstride, _mm256_permute2f128_ps(u[j], u[4 + j], 0x20));
        _mm256_storeu_ps(dst + (j + 4) * dstride, _mm256_permute2f128_ps(u[j], u[4 + j], 0x31));
    }
}
#endif

static int dl_pack_f32(const float* src, size_t nv, dl_word* in, uint8_t* tile_bytes) {
    const size_t P = (size_t)DL_IN_C * DL_IN_HW;
    float* tile = (float*)tile_bytes;              /* [DL_F32_COLS][DL_BLOCK] */
    int bad = 0;
#if defined(__AVX__)
    __m256 badv = _mm256_setzero_ps();
#endif
    for (size_t p0 = 0; p0 < P; p0 += DL_F32_COLS) {
        const size_t np = P - p0 < DL_F32_COLS ? P - p0 : DL_F32_COLS;
        for (size_t s0 = 0; s0 < DL_BLOCK; s0 += 8) {
            const float* r = src + s0 * P + p0;
            size_t j0 = 0;
            if (s0 + 8 <= nv) {
#if defined(__GNUC__)
                for (size_t i = 0; i < 8; i++) __builtin_prefetch(r + i * P + DL_F32_COLS);
#endif
#if defined(__AVX__)
                for (; j0 + 8 <= np; j0 += 8) dl_transpose8f(r + j0, P, tile + j0 * DL_BLOCK + s0, DL_BLOCK, &badv);
#endif
            }
            for (size_t j = j0; j < np; j++)
                for (size_t i = 0; i < 8; i++) {
                    const float v = s0 + i < nv ? r[i * P + j] : 0.0f;
                    bad |= dl_bad_f32(v);
                    tile[j * DL_BLOCK + s0 + i] = v;
                }
        }
        for (size_t j = 0; j < np; j++) {
            const size_t p = p0 + j, c = p / DL_IN_HW, q = p - c * DL_IN_HW;
            const float* col = tile + j * DL_BLOCK;
            for (size_t t = 0; t < DL_T; t++) {
                if (!dl_thr_used[c * DL_T + t]) continue;
                const float thr = dl_thr[c * DL_T + t];
                dl_word* w = in + dl_in_off[(c * DL_T + t) * DL_IN_HW + q];
#if defined(__AVX512F__)
                for (size_t k = 0; k < DL_BLOCK / 16; k++) {
                    const uint16_t m = _mm512_cmp_ps_mask(_mm512_loadu_ps(col + 16 * k), _mm512_set1_ps(thr), _CMP_GT_OQ);
                    dl_put(w, 2 * k, &m, 2);
                }
#elif defined(__AVX__)
                for (size_t k = 0; k < DL_BLOCK / 32; k++) {
                    const __m256 th = _mm256_set1_ps(thr);
                    uint32_t m = 0;
                    for (int h = 0; h < 4; h++)
                        m |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(col + 32 * k + 8 * h), th, _CMP_GT_OQ)) << (8 * h);
                    dl_put(w, 4 * k, &m, 4);
                }
#else
                for (size_t k = 0; k < DL_BLOCK / 8; k++) {
                    uint8_t m = 0;
                    for (int i = 0; i < 8; i++) m |= (uint8_t)((col[8 * k + i] > thr) << i);
                    dl_put(w, k, &m, 1);
                }
#endif
            }
        }
    }
#if defined(__AVX__)
    bad |= _mm256_movemask_ps(badv) != 0;
#endif
    return bad ? DL_BAD_INPUT : 0;
}
#endif

static int dl_pack_block(const dl_job* job, size_t b0, size_t nv, dl_word* in, uint8_t* tile) {
    switch (job->form) {
    case DL_FORM_BITS:
        return dl_pack_bits((const uint8_t*)job->src + b0 * (size_t)DL_N_IN, nv, in, tile);
    case DL_FORM_PACKED:
        return dl_pack_packed((const uint8_t*)job->src + b0 * (((size_t)DL_N_IN + 7) / 8), nv, in, tile);
#if DL_HAS_ENCODER
    case DL_FORM_U8:
        return dl_pack_u8((const uint8_t*)job->src + b0 * (size_t)(DL_IN_C * DL_IN_HW), nv, in, tile);
    case DL_FORM_F32:
        return dl_pack_f32((const float*)job->src + b0 * (size_t)(DL_IN_C * DL_IN_HW), nv, in, tile);
#endif
    default:
        return -3;
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
    int status = 0;
    for (size_t blk = (size_t)job->thread; blk < nblocks; blk += (size_t)job->n_threads) {
        const size_t b0 = blk * DL_BLOCK;
        const size_t nv = job->n - b0 < DL_BLOCK ? job->n - b0 : DL_BLOCK;
        const int r = dl_pack_block(job, b0, nv, ws, tile);
        if (r != 0) { status = r; break; }
        dl_run_ops(ws);
        dl_group_sum(ws, cnt, job->counts + b0 * DL_K, nv);
    }
    free(mem);
    job->status = status;
    return NULL;
}

static int dl_run(const void* src, size_t n, int32_t* counts, int n_threads, int form) {
    if (n == 0) return 0;
    if (!src || !counts) return -2;
    const size_t nblocks = (n + DL_BLOCK - 1) / DL_BLOCK;
    if (n_threads < 1) n_threads = 1;
    if ((size_t)n_threads > nblocks) n_threads = (int)nblocks;
    if (n_threads > 256) n_threads = 256;
    dl_job jobs[256];
    pthread_t tids[256];
    for (int t = 0; t < n_threads; t++) {
        dl_job j = {src, n, counts, form, t, n_threads, -1};
        jobs[t] = j;
    }
    for (int t = 1; t < n_threads; t++)
        if (pthread_create(&tids[t], NULL, dl_worker, &jobs[t]) != 0)  /* fall back: run it here */
            jobs[t].n_threads = -1;
    dl_worker(&jobs[0]);
    int status = jobs[0].status;
    for (int t = 1; t < n_threads; t++) {
        if (jobs[t].n_threads == -1) { jobs[t].n_threads = n_threads; dl_worker(&jobs[t]); }
        else pthread_join(tids[t], NULL);
        if (jobs[t].status != 0 && (status == 0 || jobs[t].status == -1)) status = jobs[t].status;
    }
    return status;
}
