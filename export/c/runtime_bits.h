/* ---- difflogic C runtime, part 2: bytes -> words of bits (inlined into the generated .c) ----
 * Input packing turns sample-major bytes into bit-sliced words.  A block's rows are transposed
 * into a tile of columns (one byte per sample), and a column becomes a word with one vector
 * operation per 32 samples (AVX2) or 64 (AVX-512BW): a bit plane (movemask / test) or a
 * thermometer bit (byte >= cutoff).  The generated encoder functions call these. */
#define DL_COLS 64               /* bytes of each sample row per pass: one cache line */
/* a channel's thermometer encoder (generated): bit planes of a tile column, then gates over
 * them (two passes over the tile's columns, so that the planes' partial-word stores have
 * landed before the gates load the words), or direct byte >= cutoff compares */
typedef struct {
    void (*planes)(const uint8_t* col, dl_word* pl);
    void (*gates)(const dl_word* pl, dl_word* out);
    void (*direct)(const uint8_t* col, dl_word* out);
} dl_encoder;
/* ---- byte rows -> a tile of columns.  tile[j * DL_BLOCK + s] = byte p0 + j of sample s (0
 * past the nv valid samples): 16 x 16 byte transposes (SSE2; AVX2: two at once), 16 samples x
 * one cache line of each row per step, so every line fetched is used whole. */
/* one perfect shuffle of 16 rows: d[2i], d[2i+1] = interleave(s[i], s[i+8]); four of them
 * transpose 16 x 16 bytes (in each 128-bit lane) */
#define DL_SHUFFLE16(LO, HI, d, s) do { \
    d##0 = LO(s##0, s##8); d##1 = HI(s##0, s##8); d##2 = LO(s##1, s##9); d##3 = HI(s##1, s##9); \
    d##4 = LO(s##2, s##10); d##5 = HI(s##2, s##10); d##6 = LO(s##3, s##11); d##7 = HI(s##3, s##11); \
    d##8 = LO(s##4, s##12); d##9 = HI(s##4, s##12); d##10 = LO(s##5, s##13); d##11 = HI(s##5, s##13); \
    d##12 = LO(s##6, s##14); d##13 = HI(s##6, s##14); d##14 = LO(s##7, s##15); d##15 = HI(s##7, s##15); } while (0)
#define DL_X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

/* a 16-row byte transpose over registers of type V: LOAD(i) declares row register r<i>, four
 * perfect shuffles, STORE(i) writes register r<i> */
#define DL_TRANSPOSE16(V, LOAD, LO, HI, STORE) \
    DL_X16(LOAD) \
    V a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15; \
    DL_SHUFFLE16(LO, HI, a, r); DL_SHUFFLE16(LO, HI, r, a); \
    DL_SHUFFLE16(LO, HI, a, r); DL_SHUFFLE16(LO, HI, r, a); \
    DL_X16(STORE)

#if defined(__AVX2__)
/* 16 rows x 32 bytes: columns j and 16 + j of the rows go to dst rows j and 16 + j */
static void dl_transpose16x32(const uint8_t* src, size_t stride, uint8_t* dst, size_t dstride) {
#define DL_LD(i) __m256i r##i = _mm256_loadu_si256((const __m256i*)(src + (i) * stride));
#define DL_ST(i) _mm_storeu_si128((__m128i*)(dst + (i) * dstride), _mm256_castsi256_si128(r##i)); \
    _mm_storeu_si128((__m128i*)(dst + (16 + (i)) * dstride), _mm256_extracti128_si256(r##i, 1));
    DL_TRANSPOSE16(__m256i, DL_LD, _mm256_unpacklo_epi8, _mm256_unpackhi_epi8, DL_ST)
#undef DL_LD
#undef DL_ST
}
#endif
#if defined(__SSE2__)
static void dl_transpose16(const uint8_t* src, size_t stride, uint8_t* dst, size_t dstride) {
#define DL_LD(i) __m128i r##i = _mm_loadu_si128((const __m128i*)(src + (i) * stride));
#define DL_ST(i) _mm_storeu_si128((__m128i*)(dst + (i) * dstride), r##i);
    DL_TRANSPOSE16(__m128i, DL_LD, _mm_unpacklo_epi8, _mm_unpackhi_epi8, DL_ST)
#undef DL_LD
#undef DL_ST
}
#endif

static void dl_tile(const uint8_t* src, size_t P, size_t nv, size_t p0, size_t np, uint8_t* tile) {
    for (size_t s0 = 0; s0 < DL_BLOCK; s0 += 16) {
        const uint8_t* r = src + s0 * P + p0;
        size_t j0 = 0;
#if defined(__GNUC__)
        {   /* the rows two steps ahead (or the next columns' first rows): in flight meanwhile */
            size_t row = s0 + 32, col = p0;
            if (row >= DL_BLOCK) { row -= DL_BLOCK; col += DL_COLS; }
            if (row + 16 <= nv && col < P)
                for (size_t i = 0; i < 16; i++) {
                    __builtin_prefetch(src + (row + i) * P + col, 0, 2);   /* to L2: rows at a power-of-two stride share few L1 sets */
                    __builtin_prefetch(src + (row + i) * P + col + DL_COLS - 1, 0, 2);
                }
        }
#endif
        if (s0 + 16 <= nv) {
#if defined(__AVX2__)
            for (; j0 + 32 <= np; j0 += 32) dl_transpose16x32(r + j0, P, tile + j0 * DL_BLOCK + s0, DL_BLOCK);
#endif
#if defined(__SSE2__)
            for (; j0 + 16 <= np; j0 += 16) dl_transpose16(r + j0, P, tile + j0 * DL_BLOCK + s0, DL_BLOCK);
#endif
        }
        for (size_t j = j0; j < np; j++)
            for (size_t i = 0; i < 16; i++)
                tile[j * DL_BLOCK + s0 + i] = s0 + i < nv ? r[i * P + j] : 0;
    }
}

/* ---- a tile column (DL_BLOCK bytes, one per sample) -> words of bits.
 * Bit planes: bit k of every byte (AVX2: shift + movemask per 32 samples; AVX-512BW: one test
 * per 64).  dl_ge_word: byte >= cut (1..255), the thermometer bit of one threshold. */
static inline void dl_put(dl_word* w, size_t byte, const void* bits, size_t n) {
    memcpy((char*)w + byte, bits, n);   /* little-endian: sample s is bit s % 8 of byte s / 8 */
}

/* DL_PLOAD(col, c): piece c of a column (DL_PCHUNK samples); DL_PLANE_PUT(w, v, k, c): bit k of
 * its bytes into piece c of word w (k a constant: one shift + movemask, or one test). */
#if defined(__AVX512BW__)
#define DL_PCHUNK 64
typedef __m512i dl_pvec;
#define DL_PLOAD(col, c) _mm512_loadu_si512((const void*)((col) + 64 * (c)))
#define DL_PLANE_PUT(w, v, k, c) do { \
    const uint64_t m_ = _mm512_test_epi8_mask(v, _mm512_set1_epi8((char)(1 << (k)))); dl_put(&(w), 8 * (c), &m_, 8); } while (0)
#elif defined(__AVX2__)
#define DL_PCHUNK 32
typedef __m256i dl_pvec;
#define DL_PLOAD(col, c) _mm256_loadu_si256((const __m256i*)((col) + 32 * (c)))
#define DL_PLANE_PUT(w, v, k, c) do { \
    const uint32_t m_ = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(v, 7 - (k))); dl_put(&(w), 4 * (c), &m_, 4); } while (0)
#elif defined(__SSE2__)
#define DL_PCHUNK 16
typedef __m128i dl_pvec;
#define DL_PLOAD(col, c) _mm_loadu_si128((const __m128i*)((col) + 16 * (c)))
#define DL_PLANE_PUT(w, v, k, c) do { \
    const uint16_t m_ = (uint16_t)_mm_movemask_epi8(_mm_slli_epi16(v, 7 - (k))); dl_put(&(w), 2 * (c), &m_, 2); } while (0)
#else
#define DL_PCHUNK 8
typedef const uint8_t* dl_pvec;
#define DL_PLOAD(col, c) ((col) + 8 * (c))
#define DL_PLANE_PUT(w, v, k, c) do { uint8_t m_ = 0; \
    for (int i_ = 0; i_ < 8; i_++) m_ |= (uint8_t)((((v)[i_] >> (k)) & 1) << i_); dl_put(&(w), (c), &m_, 1); } while (0)
#endif

/* bit k of every byte of a column, for each k < nb, into *dst[k] */
static inline void dl_planes(const uint8_t* col, int nb, dl_word* const* dst) {
    for (size_t c = 0; c < DL_BLOCK / DL_PCHUNK; c++) {
        const dl_pvec v = DL_PLOAD(col, c);
#define DL_P(k) if ((k) < nb) DL_PLANE_PUT(*dst[k], v, k, c);
        DL_P(0) DL_P(1) DL_P(2) DL_P(3) DL_P(4) DL_P(5) DL_P(6) DL_P(7)
#undef DL_P
    }
}

static inline void dl_ge_word(const uint8_t* col, int cut, dl_word* w) {
#if defined(__AVX512BW__)
    for (size_t c = 0; c < DL_BLOCK / 64; c++) {
        const uint64_t m = _mm512_cmpge_epu8_mask(_mm512_loadu_si512((const void*)(col + 64 * c)),
                                                  _mm512_set1_epi8((char)cut));
        dl_put(w, 8 * c, &m, 8);
    }
#elif defined(__AVX2__)
    const __m256i t = _mm256_set1_epi8((char)cut);
    for (size_t c = 0; c < DL_BLOCK / 32; c++) {
        const __m256i x = _mm256_loadu_si256((const __m256i*)(col + 32 * c));
        const uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(x, t), x));
        dl_put(w, 4 * c, &m, 4);
    }
#elif defined(__SSE2__)
    const __m128i t = _mm_set1_epi8((char)cut);
    for (size_t c = 0; c < DL_BLOCK / 16; c++) {
        const __m128i x = _mm_loadu_si128((const __m128i*)(col + 16 * c));
        const uint16_t m = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, t), x));
        dl_put(w, 2 * c, &m, 2);
    }
#else
    for (size_t c = 0; c < DL_BLOCK / 8; c++) {
        uint8_t m = 0;
        for (int i = 0; i < 8; i++) m |= (uint8_t)((col[8 * c + i] >= cut) << i);
        dl_put(w, c, &m, 1);
    }
#endif
}

