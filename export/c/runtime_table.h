/* ---- difflogic C runtime, the table form of big dense blocks (inlined when a network has one) ----
 * dl_tab: DL_TAB_INTS int32, per gate (destination word, word a, word b), decoded once per
 * process from the base64 literal dl_tab_b64 (one literal: compilers read it in a fraction of
 * the time of an array initializer).  A block's rows come in runs of one op (runs[2r] = op,
 * runs[2r + 1] = rows), so the loop switches once per run, not per gate. */
static void* dl_tab_mem;
static pthread_once_t dl_tab_once = PTHREAD_ONCE_INIT;

static void dl_tab_decode(void) {
    int8_t val[256];
    memset(val, -1, sizeof val);
    for (int i = 0; i < 26; i++) { val['A' + i] = (int8_t)i; val['a' + i] = (int8_t)(26 + i); }
    for (int i = 0; i < 10; i++) val['0' + i] = (int8_t)(52 + i);
    val['+'] = 62; val['/'] = 63;
    uint8_t* p = (uint8_t*)malloc(DL_TAB_BYTES + 4);   /* + 4: never malloc(0) */
    if (!p) return;
    const unsigned char* s = (const unsigned char*)dl_tab_b64;
    for (size_t i = 0, o = 0; o < DL_TAB_BYTES; i += 4, o += 3) {
        const uint32_t v = (uint32_t)val[s[i]] << 18 | (uint32_t)val[s[i + 1]] << 12 |
                           (uint32_t)val[s[i + 2]] << 6 | (uint32_t)val[s[i + 3]];
        p[o] = (uint8_t)(v >> 16); p[o + 1] = (uint8_t)(v >> 8); p[o + 2] = (uint8_t)v;
    }
    int32_t* t = (int32_t*)(void*)p;   /* little-endian bytes -> int32, in place */
    for (size_t k = 0; k < DL_TAB_INTS; k++) {
        const uint8_t* q = p + 4 * k;
        const uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        t[k] = (int32_t)u;
    }
    dl_tab_mem = p;
}

/* 0 when the tables are decoded, -1 out of memory */
static int dl_tab_ready(void) {
    pthread_once(&dl_tab_once, dl_tab_decode);
    return dl_tab_mem ? 0 : -1;
}

#define DL_TABLE_LOOP(EXPR) \
    for (int32_t i = 0; i < n; i++, t += 3) { \
        const dl_word x = w[t[1]], y = w[t[2]]; (void)x; (void)y; \
        w[t[0]] = (EXPR); }

/* rows of one block from offset `first` of the table, in `nruns` runs */
static void dl_table_run(dl_word* restrict w, size_t first, const int32_t* restrict runs, int nruns) {
    const int32_t* restrict t = (const int32_t*)dl_tab_mem + first;
    for (int r = 0; r < nruns; r++) {
        const int32_t n = runs[2 * r + 1];
        switch (runs[2 * r]) {
@CASES@
        default: t += 3 * (size_t)n; break;
        }
    }
}
