/*
 * xts_test.c - tests of the sector-engine part of envol's C ABI (envol.h).
 *
 * Built and run by `cargo test -p envol-ffi` (test `c_abi_tests_pass` in
 * ffi/src/tests.rs), once plain and once under ASan + UBSan:
 *
 *   gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -Iffi/include \
 *       ffi/tests/xts_test.c target/ctest/release/libenvol.a \
 *       -lpthread -ldl -lm -o target/ctest/xts_test
 *
 * Covers: the context's size and alignment; known-answer vectors (IEEE 1619
 * Annex B, NIST CAVP, Wycheproof) on every available backend, both
 * directions, in place and out of place, as units and as one-sector runs;
 * cross-backend agreement with the soft backend on random keys, sector
 * sizes, runs (up to sector 2^64 - 1) and unit lengths; every status code,
 * with outputs left untouched on error; wipe, re-initialisation and the
 * name/detect/version helpers.
 *
 * Prints one line per backend and ends with "N passed, M failed"; exits
 * non-zero if anything failed.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envol.h"

/* Largest data unit and sector size the library accepts: 2^24 bytes. */
#define MAX_UNIT ((size_t)1 << 24)
/* Big buffers hold a maximum unit plus room for offsets and overlap tests. */
#define BIG_LEN (MAX_UNIT + 64)
/* Random sector runs: up to 8 sectors of up to 8192 bytes, or up to 40
 * sectors of up to 128 bytes (crossing the library's 16-tweak batches). */
#define RUN_LEN (8 * 8192 + 64)
#include "check.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* xorshift64 with a fixed seed: the same inputs on every run. */
static uint64_t g_rng = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd64(void)
{
    uint64_t x = g_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g_rng = x;
    return x;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd64() % (uint64_t)n);
}

static void rnd_fill(uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)(rnd64() >> 56);
    }
}

/* A random XTS key of 32 or 64 bytes whose halves differ. */
static void random_key(uint8_t *key, size_t len)
{
    do {
        rnd_fill(key, len);
    } while (memcmp(key, key + len / 2, len / 2) == 0);
}

/* The tweak of a sector: its number as a 128-bit little-endian integer. */
static void le_tweak(uint64_t sector, uint8_t tweak[16])
{
    int i;
    for (i = 0; i < 8; i++) {
        tweak[i] = (uint8_t)(sector >> (8 * i));
        tweak[8 + i] = 0;
    }
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* 1 if all n bytes at p equal v. */
static int is_filled(const uint8_t *p, size_t n, uint8_t v)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] != v) {
            return 0;
        }
    }
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes a hex string into out (at most cap bytes); returns the byte count,
 * or 0 on a malformed string. */
static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    size_t i;
    if (strlen(hex) % 2 != 0 || n > cap) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return 0;
        }
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return n;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%lu bytes)\n", (unsigned long)n);
        exit(2);
    }
    return p;
}

static const char *bname(envol_backend b)
{
    return envol_backend_name(b);
}

/* ------------------------------------------------------------------------ */
/* Shared state                                                              */

/* Contexts: the ENVOL_ALIGNED(64) type makes these 64-byte aligned. */
static envol_xts g_ctx;   /* the backend under test */
static envol_xts g_soft;  /* the reference (ENVOL_BACKEND_SOFT) */
static envol_xts g_other; /* scratch */
static envol_xts g_snap;  /* byte snapshot of a context; never used as one */

/* Two contexts' worth of 64-aligned bytes, for misaligned pointers. */
static envol_xts g_misbuf[2];

/* Heap buffers. */
static uint8_t *g_big_a, *g_big_b, *g_big_c; /* BIG_LEN each */
static uint8_t *g_run_pt, *g_run_ref, *g_run_got, *g_run_tmp; /* RUN_LEN each */

/* A backend envol_backend_available() says is missing, or AUTO if none. */
static envol_backend g_unavailable = ENVOL_BACKEND_AUTO;

/* ------------------------------------------------------------------------ */
/* Known-answer vectors, copied from core/tests/data/xts_aes_vectors.json    */
/* (see core/tests/data/PROVENANCE.md). Hex: key (key1 || key2), tweak, pt,  */
/* ct.                                                                       */

struct kat {
    const char *name;
    const char *key;
    const char *tweak;
    const char *pt;
    const char *ct;
};

static const struct kat KATS[] = {
    {"IEEE 1619 vector 2 (XTS-AES-128, 32 B, seq 0x3333333333)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 2 */
     "1111111111111111111111111111111122222222222222222222222222222222",
     "33333333330000000000000000000000",
     "4444444444444444444444444444444444444444444444444444444444444444",
     "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0"},
    {"IEEE 1619 vector 4 (XTS-AES-128, 512 B, seq 0)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 4 */
     "2718281828459045235360287471352631415926535897932384626433832795",
     "00000000000000000000000000000000",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c"
     "c78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412"
     "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce"
     "93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
     "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8"
     "a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
     "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c"
     "5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e"
     "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc"
     "1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
     "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344"
     "b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
     "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752"
     "afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e"
     "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d"
     "eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568"},
    {"IEEE 1619 vector 9 (XTS-AES-128, 512 B, seq 0xff)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 9 */
     "2718281828459045235360287471352631415926535897932384626433832795",
     "ff000000000000000000000000000000",
     "72efc1ebfe1ee25975a6eb3aa8589dda2b261f1c85bdab442a9e5b2dd1d7c395"
     "7a16fc08e526d4b1223f1b1232a11af274c3d70dac57f83e0983c498f1a6f1ae"
     "cb021c3e70085a1e527f1ce41ee5911a82020161529cd82773762daf5459de94"
     "a0a82adae7e1703c808543c29ed6fb32d9e004327c1355180c995a07741493a0"
     "9c21ba01a387882da4f62534b87bb15d60d197201c0fd3bf30c1500a3ecfecdd"
     "66d8721f90bcc4c17ee925c61b0a03727a9c0d5f5ca462fbfa0af1c2513a9d9d"
     "4b5345bd27a5f6e653f751693e6b6a2b8ead57d511e00e58c45b7b8d005af792"
     "88f5c7c22fd4f1bf7a898b03a5634c6a1ae3f9fae5de4f296a2896b23e7ed43e"
     "d14fa5a2803f4d28f0d3ffcf24757677aebdb47bb388378708948a8d4126ed18"
     "39e0da29a537a8c198b3c66ab00712dd261674bf45a73d67f76914f830ca014b"
     "65596f27e4cf62de66125a5566df9975155628b400fbfb3a29040ed50faffdbb"
     "18aece7c5c44693260aab386c0a37b11b114f1c415aebb653be468179428d43a"
     "4d8bc3ec38813eca30a13cf1bb18d524f1992d44d8b1a42ea30b22e6c95b199d"
     "8d182f8840b09d059585c31ad691fa0619ff038aca2c39a943421157361717c4"
     "9d322028a74648113bd8c9d7ec77cf3c89c1ec8718ceff8516d96b34c3c614f1"
     "0699c9abc4ed0411506223bea16af35c883accdbe1104eef0cfdb54e12fb230a",
     "3260ae8dad1f4a32c5cafe3ab0eb95549d461a67ceb9e5aa2d3afb62dece0553"
     "193ba50c75be251e08d1d08f1088576c7efdfaaf3f459559571e12511753b07a"
     "f073f35da06af0ce0bbf6b8f5ccc5cea500ec1b211bd51f63b606bf6528796ca"
     "12173ba39b8935ee44ccce646f90a45bf9ccc567f0ace13dc2d53ebeedc81f58"
     "b2e41179dddf0d5a5c42f5d8506c1a5d2f8f59f3ea873cbcd0eec19acbf32542"
     "3bd3dcb8c2b1bf1d1eaed0eba7f0698e4314fbeb2f1566d1b9253008cbccf45a"
     "2b0d9c5c9c21474f4076e02be26050b99dee4fd68a4cf890e496e4fcae7b70f9"
     "4ea5a9062da0daeba1993d2ccd1dd3c244b8428801495a58b216547e7e847c46"
     "d1d756377b6242d2e5fb83bf752b54e0df71e889f3a2bb0f4c10805bf3c59037"
     "6e3c24e22ff57f7fa965577375325cea5d920db94b9c336b455f6e894c01866f"
     "e9fbb8c8d3f70a2957285f6dfb5dcd8cbf54782f8fe7766d4723819913ac7734"
     "21e3a31095866bad22c86a6036b2518b2059b4229d18c8c2ccbdf906c6cc6e82"
     "464ee57bddb0bebcb1dc645325bfb3e665ef7251082c88ebb1cf203bd779fdd3"
     "8675713c8daadd17e1cabee432b09787b6ddf3304e38b731b45df5df51b78fcf"
     "b3d32466028d0ba36555e7e11ab0ee0666061d1645d962444bc47a38188930a8"
     "4b4d561395c73c087021927ca638b7afc8a8679ccb84c26555440ec7f10445cd"},
    {"IEEE 1619 vector 10 (XTS-AES-256, 512 B, seq 0xff)",
     /* mbedtls/test_suite_aes.xts.data: AES-256-XTS Encrypt IEEE P1619/D16 Vector 10 */
     "2718281828459045235360287471352662497757247093699959574966967627"
     "3141592653589793238462643383279502884197169399375105820974944592",
     "ff000000000000000000000000000000",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
     "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
     "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
     "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
     "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
     "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
     "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
     "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
     "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
     "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
     "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
     "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
     "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
     "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
     "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
     "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151"},
    {"IEEE 1619 vector 15 (XTS-AES-128, 17 B, stealing)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 15 */
     "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0",
     "9a785634120000000000000000000000",
     "000102030405060708090a0b0c0d0e0f10",
     "6c1625db4671522d3d7599601de7ca09ed"},
    {"IEEE 1619 vector 17 (XTS-AES-128, 19 B, stealing)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 17 */
     "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0",
     "9a785634120000000000000000000000",
     "000102030405060708090a0b0c0d0e0f101112",
     "e5df1351c0544ba1350b3363cd8ef4beedbf9d"},
    {"IEEE 1619 vector 19 (XTS-AES-128, 512 B, seq 0xa987654321)",
     /* mbedtls/test_suite_aes.xts.data: AES-128-XTS Encrypt IEEE P1619/D16 Vector 19 */
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeefc0c1c2c3c4c5c6c7c8c9cacbcccdcecf",
     "21436587a90000000000000000000000",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "38b45812ef43a05bd957e545907e223b954ab4aaf088303ad910eadf14b42be6"
     "8b2461149d8c8ba85f992be970bc621f1b06573f63e867bf5875acafa04e42cc"
     "bd7bd3c2a0fb1fff791ec5ec36c66ae4ac1e806d81fbf709dbe29e471fad3854"
     "9c8e66f5345d7c1eb94f405d1ec785cc6f6a68f6254dd8339f9d84057e01a177"
     "41990482999516b5611a38f41bb6478e6f173f320805dd71b1932fc333cb9ee3"
     "9936beea9ad96fa10fb4112b901734ddad40bc1878995f8e11aee7d141a2f5d4"
     "8b7a4e1e7f0b2c04830e69a4fd1378411c2f287edf48c6c4e5c247a19680f7fe"
     "41cefbd49b582106e3616cbbe4dfb2344b2ae9519391f3e0fb4922254b1d6d2d"
     "19c6d4d537b3a26f3bcc51588b32f3eca0829b6a5ac72578fb814fb43cf80d64"
     "a233e3f997a3f02683342f2b33d25b492536b93becb2f5e1a8b82f5b88334272"
     "9e8ae09d16938841a21a97fb543eea3bbff59f13c1a18449e398701c1ad51648"
     "346cbc04c27bb2da3b93a1372ccae548fb53bee476f9e9c91773b1bb19828394"
     "d55d3e1a20ed69113a860b6829ffa847224604435070221b257e8dff783615d2"
     "cae4803a93aa4334ab482a0afac9c0aeda70b45a481df5dec5df8cc0f423c77a"
     "5fd46cd312021d4b438862419a791be03bb4d97c0e59578542531ba466a83baf"
     "92cefc151b5cc1611a167893819b63fb8a6b18e86de60290fa72b797b0ce59f3"},
    {"NIST XTSGenAES256 seq-no ENCRYPT COUNT=101 (48 B)",
     /* nist-cavp-xts/tweak-dataunitseqno/XTSGenAES256.rsp [ENCRYPT] COUNT = 101 */
     "f6db5326ea996b16ca0d439b5a0106e3a34ed343db489faad06979009399b03b"
     "3cd9ef23332d46414216531d9885a5a30b1964523992f42748202b80a4190d45",
     "f5000000000000000000000000000000",
     "bf6a09f93f94d6bdc8c5f5e158916c3371a540e46644f79414d84dda1339397c"
     "e90ebb768deeb88ecd2be175a396bb85",
     "b11a252c5776c439ea7baeaae7830418e574b2248cc8b524b7fd0cc8e1ecffa9"
     "812f45ae313e3e1f44127b27fb08a613"},
    {"NIST XTSGenAES256 128-hex-str ENCRYPT COUNT=101 (48 B)",
     /* nist-cavp-xts/tweak-128hexstr/XTSGenAES256.rsp [ENCRYPT] COUNT = 101 */
     "266c336b3b01489f3267f52835fd92f674374b88b4e1ebd2d36a5f457581d9d0"
     "42c3eef7b0b7e5137b086496b4d9e6ac658d7196a23f23f036172fdb8faee527",
     "06b209a7a22f486ecbfadb0f3137ba42",
     "ca7d65ef8d3dfad345b61ccddca1ad81de830b9e86c7b426d76cb7db766852d9"
     "81c6b21409399d78f42cc0b33a7bbb06",
     "c73256870cc2f4dd57acc74b5456dbd776912a128bc1f77d72cdebbf270044b7"
     "a43ceed29025e1e8be211fa3c3ed002d"},
    {"NIST XTSGenAES128 128-hex-str ENCRYPT COUNT=301 (25 B, stealing)",
     /* nist-cavp-xts/tweak-128hexstr/XTSGenAES128.rsp [ENCRYPT] COUNT = 301 */
     "394c97881abd989d29c703e48a72b397a7acf51b59649eeea9b33274d8541df4",
     "4b15c684a152d485fe9937d39b168c29",
     "2f3b9dcfbae729583b1d1ffdd16bb6fe2757329435662a78f0",
     "f3473802e38a3ffef4d4fb8e6aa266ebde553a64528a06463e"},
    {"Wycheproof tcId 54 (XTS-AES-256, 17 B, stealing)",
     /* wycheproof/aes_xts_test.json tcId 54 */
     "2f247ad2e9fd78c55085890ddc1fde397d12663c9afc4efbe227b2d527280685"
     "64ce42c96c30967360c9986d63ce82839c3e81d1839b800e8db5aa61980eb3ff",
     "c09e5c393303a1690000000000000000",
     "a431693fb645d0fadd64d5ac98037a1b36",
     "021fbfeb5d7bcec215aae0f32cbe44e9c3"},
};
/* IEEE 1619 vector 1: all-zero key (key1 == key2). */
static const char WEAK_KEY_HEX[] = "0000000000000000000000000000000000000000000000000000000000000000";

#define N_KATS (sizeof KATS / sizeof KATS[0])

/* ------------------------------------------------------------------------ */
/* Known answers on one backend                                              */

static void test_kats(envol_backend be)
{
    static uint8_t key[64], tweak[16], pt[512], ct[512], buf[512 + 16], out[512 + 16];
    size_t i;
    int as_sectors = 0;

    for (i = 0; i < N_KATS; i++) {
        const struct kat *v = &KATS[i];
        size_t klen = hex_decode(v->key, key, sizeof key);
        size_t tlen = hex_decode(v->tweak, tweak, sizeof tweak);
        size_t len = hex_decode(v->pt, pt, sizeof pt);
        size_t ctlen = hex_decode(v->ct, ct, sizeof ct);

        where("%s on %s", v->name, bname(be));
        CHECK((klen == 32 || klen == 64) && tlen == 16 && len >= 16 && ctlen == len);
        CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, klen, be), ENVOL_OK);
        CHECK(envol_xts_backend(&g_ctx) == be);

        /* Out of place; nothing is written past len, the input is kept. */
        memset(out, 0xA5, sizeof out);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, pt, out, len), ENVOL_OK);
        CHECK(memcmp(out, ct, len) == 0);
        CHECK(is_filled(out + len, sizeof out - len, 0xA5));
        memset(out, 0xA5, sizeof out);
        CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, ct, out, len), ENVOL_OK);
        CHECK(memcmp(out, pt, len) == 0);
        CHECK(is_filled(out + len, sizeof out - len, 0xA5));

        /* In place. */
        memset(buf, 0x5A, sizeof buf);
        memcpy(buf, pt, len);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf, buf, len), ENVOL_OK);
        CHECK(memcmp(buf, ct, len) == 0);
        CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, buf, buf, len), ENVOL_OK);
        CHECK(memcmp(buf, pt, len) == 0);
        CHECK(is_filled(buf + len, sizeof buf - len, 0x5A));

        /* A tweak that is a 64-bit sector number, on whole blocks: also a
         * one-sector run with sector_size = len. */
        if (len % 16 == 0 && is_filled(tweak + 8, 8, 0)) {
            uint64_t sector = le64(tweak);
            as_sectors++;
            where("%s on %s as sector %" PRIu64, v->name, bname(be), sector);
            memset(out, 0xA5, sizeof out);
            CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, sector, len, pt, out, len), ENVOL_OK);
            CHECK(memcmp(out, ct, len) == 0);
            CHECK(is_filled(out + len, sizeof out - len, 0xA5));
            memset(out, 0xA5, sizeof out);
            CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, sector, len, ct, out, len), ENVOL_OK);
            CHECK(memcmp(out, pt, len) == 0);
            memcpy(buf, pt, len);
            CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, sector, len, buf, buf, len), ENVOL_OK);
            CHECK(memcmp(buf, ct, len) == 0);
            CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, sector, len, buf, buf, len), ENVOL_OK);
            CHECK(memcmp(buf, pt, len) == 0);
        }
    }
    where("known answers on %s", bname(be));
    CHECK(as_sectors == 6); /* IEEE 2, 4, 9, 10, 19 and NIST seq-no COUNT=101 */

    /* AUTO through envol_xts_init gives the same answers. */
    for (i = 0; i < N_KATS; i++) {
        const struct kat *v = &KATS[i];
        size_t klen = hex_decode(v->key, key, sizeof key);
        size_t len = hex_decode(v->pt, pt, sizeof pt);
        hex_decode(v->tweak, tweak, sizeof tweak);
        hex_decode(v->ct, ct, sizeof ct);
        where("%s via envol_xts_init", v->name);
        CHECK_STATUS(envol_xts_init(&g_other, key, klen), ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, len), ENVOL_OK);
        CHECK(memcmp(out, ct, len) == 0);
    }
    envol_xts_wipe(&g_other);
}

/* ------------------------------------------------------------------------ */
/* Cross-backend agreement                                                   */

/* A first sector for a run of count sectors: often so that the last one is
 * exactly 2^64 - 1, or close to it, or near 2^32; never past 2^64 - 1. */
static uint64_t pick_first(size_t count, int iter)
{
    uint64_t top = UINT64_MAX - (uint64_t)(count - 1);
    if (iter == 0) {
        return top;
    }
    switch (rnd_below(5)) {
    case 0:
        return top;
    case 1:
        return top - (uint64_t)rnd_below(40);
    case 2:
        return UINT64_C(0xffffffff) - (uint64_t)rnd_below(20);
    case 3:
        return (uint64_t)rnd_below(100000);
    default: {
        uint64_t f = rnd64();
        return f > top ? top : f;
    }
    }
}

/* Random runs of sectors: backend be against soft, both directions, in place
 * and out of place, and each sector against a unit with its LE tweak. */
static void test_random_runs(envol_backend be)
{
    uint8_t key[64], tweak[16];
    int iter;

    for (iter = 0; iter < 160; iter++) {
        size_t klen = (rnd64() & 1) ? 64 : 32;
        int long_run = iter % 4 == 3;
        size_t ss = long_run ? 16 * (1 + rnd_below(8)) : 16 * (1 + rnd_below(512));
        size_t count = long_run ? 17 + rnd_below(24) : 1 + rnd_below(8);
        size_t len = ss * count;
        uint64_t first = pick_first(count, iter);
        uint8_t *pt = g_run_pt + rnd_below(16);
        uint8_t *ref = g_run_ref + rnd_below(16);
        uint8_t *got = g_run_got + rnd_below(16);
        size_t k;

        random_key(key, klen);
        where("run %d on %s: key %lu B, sector %lu B x %lu from %" PRIu64, iter, bname(be),
              (unsigned long)klen, (unsigned long)ss, (unsigned long)count, first);
        CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key, klen, ENVOL_BACKEND_SOFT),
                     ENVOL_OK);
        CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, klen, be), ENVOL_OK);
        rnd_fill(pt, len);

        CHECK_STATUS(envol_xts_encrypt_sectors(&g_soft, first, ss, pt, ref, len), ENVOL_OK);
        CHECK(memcmp(ref, pt, len) != 0);
        memset(g_run_got, 0xA5, RUN_LEN);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, first, ss, pt, got, len), ENVOL_OK);
        CHECK(memcmp(got, ref, len) == 0);
        CHECK(is_filled(got + len, (size_t)(g_run_got + RUN_LEN - (got + len)), 0xA5));

        /* In place. */
        memcpy(got, pt, len);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, first, ss, got, got, len), ENVOL_OK);
        CHECK(memcmp(got, ref, len) == 0);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, first, ss, got, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);

        /* Out-of-place decryption, on both. */
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, first, ss, ref, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_soft, first, ss, ref, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);

        /* The run is sector-by-sector units with tweak = LE sector number. */
        for (k = 0; k < count; k++) {
            uint64_t s = first + (uint64_t)k;
            le_tweak(s, tweak);
            CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, pt + k * ss, got, ss), ENVOL_OK);
            CHECK(memcmp(got, ref + k * ss, ss) == 0);
        }
        /* The last sector alone, as a one-sector run. */
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, first + (uint64_t)(count - 1), ss,
                                               pt + (count - 1) * ss, got, ss),
                     ENVOL_OK);
        CHECK(memcmp(got, ref + (count - 1) * ss, ss) == 0);
    }

    /* The very last sector, 2^64 - 1, on its own and at the end of a run. */
    {
        uint8_t *pt = g_run_pt, *ref = g_run_ref, *got = g_run_got;
        random_key(key, 64);
        where("sector 2^64-1 on %s", bname(be));
        CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key, 64, ENVOL_BACKEND_SOFT), ENVOL_OK);
        CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, 64, be), ENVOL_OK);
        rnd_fill(pt, 4096);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX, 512, pt, got, 512), ENVOL_OK);
        le_tweak(UINT64_MAX, tweak);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_soft, tweak, pt, ref, 512), ENVOL_OK);
        CHECK(memcmp(got, ref, 512) == 0);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 7, 512, pt, got, 4096),
                     ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_soft, UINT64_MAX - 7, 512, pt, ref, 4096),
                     ENVOL_OK);
        CHECK(memcmp(got, ref, 4096) == 0);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, UINT64_MAX - 7, 512, got, got, 4096),
                     ENVOL_OK);
        CHECK(memcmp(got, pt, 4096) == 0);
    }
}

/* Every unit length 16..600 (ciphertext stealing included) under random
 * tweaks: backend be against soft. */
static void test_random_units(envol_backend be)
{
    uint8_t key[64], tweak[16];
    size_t len;

    for (len = 16; len <= 600; len++) {
        uint8_t *pt = g_run_pt + rnd_below(16);
        uint8_t *ref = g_run_ref + rnd_below(16);
        uint8_t *got = g_run_got;
        if (len == 16 || len % 37 == 0) {
            size_t klen = (rnd64() & 1) ? 64 : 32;
            random_key(key, klen);
            CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key, klen, ENVOL_BACKEND_SOFT),
                         ENVOL_OK);
            CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, klen, be), ENVOL_OK);
        }
        where("unit of %lu B on %s", (unsigned long)len, bname(be));
        rnd_fill(tweak, 16);
        rnd_fill(pt, len);

        CHECK_STATUS(envol_xts_encrypt_unit(&g_soft, tweak, pt, ref, len), ENVOL_OK);
        memset(got, 0xA5, 640);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, pt, got, len), ENVOL_OK);
        CHECK(memcmp(got, ref, len) == 0);
        CHECK(is_filled(got + len, 640 - len, 0xA5));
        CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, got, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);
        memcpy(got, pt, len);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, got, got, len), ENVOL_OK);
        CHECK(memcmp(got, ref, len) == 0);
        CHECK_STATUS(envol_xts_decrypt_unit(&g_soft, tweak, ref, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);
        CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, ref, got, len), ENVOL_OK);
        CHECK(memcmp(got, pt, len) == 0);
    }
}

/* The largest sector and unit (2^24 bytes), and a 2^24 - 1 byte unit. */
static void test_max_sizes(envol_backend be)
{
    uint8_t key[64], tweak[16];
    uint8_t *pt = g_big_a, *ref = g_big_b, *got = g_big_c;

    where("2^24-byte units on %s", bname(be));
    random_key(key, 32);
    CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key, 32, ENVOL_BACKEND_SOFT), ENVOL_OK);
    CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, 32, be), ENVOL_OK);
    rnd_fill(pt, MAX_UNIT);

    CHECK_STATUS(envol_xts_encrypt_sectors(&g_soft, UINT64_MAX, MAX_UNIT, pt, ref, MAX_UNIT),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX, MAX_UNIT, pt, got, MAX_UNIT),
                 ENVOL_OK);
    CHECK(memcmp(got, ref, MAX_UNIT) == 0);
    le_tweak(UINT64_MAX, tweak);
    memcpy(got, pt, MAX_UNIT);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, got, got, MAX_UNIT), ENVOL_OK);
    CHECK(memcmp(got, ref, MAX_UNIT) == 0);
    CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, UINT64_MAX, MAX_UNIT, got, got, MAX_UNIT),
                 ENVOL_OK);
    CHECK(memcmp(got, pt, MAX_UNIT) == 0);

    rnd_fill(tweak, 16);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_soft, tweak, pt, ref, MAX_UNIT - 1), ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, pt, got, MAX_UNIT - 1), ENVOL_OK);
    CHECK(memcmp(got, ref, MAX_UNIT - 1) == 0);
    CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, got, got, MAX_UNIT - 1), ENVOL_OK);
    CHECK(memcmp(got, pt, MAX_UNIT - 1) == 0);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* Checks an init that must fail: its status, and that ctx kept every byte. */
#define CHECK_INIT_FAILS(ctx, call, want)                                      \
    do {                                                                       \
        memcpy(&g_snap, (ctx), sizeof g_snap);                                 \
        CHECK_STATUS(call, want);                                              \
        CHECK(memcmp((ctx), &g_snap, sizeof g_snap) == 0);                     \
    } while (0)

static void test_init_errors(envol_backend be)
{
    uint8_t key[65], tweak[16], pt[64], ct[64], out[64];
    static const size_t bad_lens[] = {0, 1, 16, 31, 33, 48, 63, 65};
    size_t i;
    int pass;

    random_key(key, 64);
    key[64] = 0x42;
    le_tweak(7, tweak);
    rnd_fill(pt, sizeof pt);

    /* pass 0: a never-initialised (zeroed) context; pass 1: a live one,
     * which must keep working with its old key after each refusal. */
    for (pass = 0; pass < 2; pass++) {
        envol_xts *ctx = &g_other;
        where("init errors on %s (%s context)", bname(be), pass ? "live" : "zeroed");
        if (pass == 0) {
            memset(ctx, 0, sizeof *ctx);
        } else {
            CHECK_STATUS(envol_xts_init_with_backend(ctx, key, 64, be), ENVOL_OK);
            CHECK_STATUS(envol_xts_encrypt_unit(ctx, tweak, pt, ct, sizeof pt), ENVOL_OK);
        }

        CHECK_STATUS(envol_xts_init_with_backend(NULL, key, 64, be), ENVOL_ERR_NULL_POINTER);
        CHECK_STATUS(envol_xts_init(NULL, key, 32), ENVOL_ERR_NULL_POINTER);
        CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, NULL, 32, be),
                         ENVOL_ERR_NULL_POINTER);
        CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, NULL, 0, be),
                         ENVOL_ERR_NULL_POINTER);
        CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, NULL, 64), ENVOL_ERR_NULL_POINTER);

        for (i = 0; i < sizeof bad_lens / sizeof bad_lens[0]; i++) {
            where("init on %s with a %lu-byte key (%s context)", bname(be),
                  (unsigned long)bad_lens[i], pass ? "live" : "zeroed");
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, bad_lens[i], be),
                             ENVOL_ERR_KEY_LENGTH);
            CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, key, bad_lens[i]), ENVOL_ERR_KEY_LENGTH);
        }

        where("init on %s with weak keys (%s context)", bname(be), pass ? "live" : "zeroed");
        {
            uint8_t weak[64];
            rnd_fill(weak, 16);
            memcpy(weak + 16, weak, 16);
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, weak, 32, be),
                             ENVOL_ERR_WEAK_KEY);
            CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, weak, 32), ENVOL_ERR_WEAK_KEY);
            rnd_fill(weak, 32);
            memcpy(weak + 32, weak, 32);
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, weak, 64, be),
                             ENVOL_ERR_WEAK_KEY);
            CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, weak, 64), ENVOL_ERR_WEAK_KEY);
            /* IEEE 1619 Annex B vector 1: the all-zero 32-byte key. */
            memset(weak, 0xEE, sizeof weak);
            CHECK(hex_decode(WEAK_KEY_HEX, weak, sizeof weak) == 32);
            CHECK(is_filled(weak, 32, 0));
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, weak, 32, be),
                             ENVOL_ERR_WEAK_KEY);
            CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, weak, 32), ENVOL_ERR_WEAK_KEY);
            memset(weak, 0, sizeof weak);
            CHECK_INIT_FAILS(ctx, envol_xts_init(ctx, weak, 64), ENVOL_ERR_WEAK_KEY);
        }

        where("init on %s with bad backends (%s context)", bname(be), pass ? "live" : "zeroed");
        CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, 64, (envol_backend)99),
                         ENVOL_ERR_INVALID_ARGUMENT);
        CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, 64, (envol_backend)6),
                         ENVOL_ERR_INVALID_ARGUMENT);
        CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, 64, (envol_backend)-1),
                         ENVOL_ERR_INVALID_ARGUMENT);
        if (g_unavailable != ENVOL_BACKEND_AUTO) {
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, 64, g_unavailable),
                             ENVOL_ERR_BACKEND_UNAVAILABLE);
            CHECK_INIT_FAILS(ctx, envol_xts_init_with_backend(ctx, key, 32, g_unavailable),
                             ENVOL_ERR_BACKEND_UNAVAILABLE);
        }

        if (pass == 0) {
            CHECK(is_filled(ctx->opaque, sizeof ctx->opaque, 0));
            CHECK(envol_xts_backend(ctx) == ENVOL_BACKEND_AUTO);
        } else {
            where("live context on %s after refused inits", bname(be));
            CHECK(envol_xts_backend(ctx) == be);
            CHECK_STATUS(envol_xts_encrypt_unit(ctx, tweak, pt, out, sizeof pt), ENVOL_OK);
            CHECK(memcmp(out, ct, sizeof out) == 0);
        }
    }
    envol_xts_wipe(&g_other);
}

/* Fills a buffer with the 0xA5 "untouched" pattern. */
static void poison(uint8_t *p, size_t n)
{
    memset(p, 0xA5, n);
}

/* Checks a data call that must fail: its status, and that out (n bytes from
 * out_base) still holds the 0xA5 pattern. */
#define CHECK_DATA_FAILS(call, want, out_base, n)                              \
    do {                                                                       \
        poison((out_base), (n));                                               \
        CHECK_STATUS(call, want);                                              \
        CHECK(is_filled((out_base), (n), 0xA5));                               \
    } while (0)

/* Every status a data call can give, on a context set up on be. */
static void test_data_errors(envol_backend be)
{
    static uint8_t in[4096 + 64], out[4096 + 64];
    uint8_t key[64], tweak[16];
    const size_t L = 4096;
    static const size_t bad_sizes[] = {0, 8, 24, 100, 4095, 4097, 1000};
    size_t i;

    random_key(key, 64);
    le_tweak(3, tweak);
    rnd_fill(in, sizeof in);
    where("data errors on %s", bname(be));
    CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, 64, be), ENVOL_OK);

    /* NULL pointers. */
    where("NULL pointers on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(NULL, 0, 512, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(NULL, 0, 512, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(NULL, tweak, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_unit(NULL, tweak, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, NULL, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, NULL, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, tweak, NULL, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_unit(&g_ctx, tweak, NULL, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, NULL, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_unit(&g_ctx, NULL, in, out, L), ENVOL_ERR_NULL_POINTER, out, L);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, in, NULL, L), ENVOL_ERR_NULL_POINTER);
    CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, in, NULL, L), ENVOL_ERR_NULL_POINTER);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, in, NULL, L), ENVOL_ERR_NULL_POINTER);
    CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, in, NULL, L), ENVOL_ERR_NULL_POINTER);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, NULL, NULL, 0), ENVOL_ERR_NULL_POINTER);

    /* Sector sizes. */
    for (i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        size_t ss = bad_sizes[i];
        where("sector size %lu on %s", (unsigned long)ss, bname(be));
        CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, ss, in, out, L), ENVOL_ERR_SECTOR_SIZE, out, L);
        CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, 0, ss, in, out, L), ENVOL_ERR_SECTOR_SIZE, out, L);
        /* Also with nothing to do: the size is still checked. */
        CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, ss, in, out, 0), ENVOL_ERR_SECTOR_SIZE, out, L);
    }
    where("sector size 2^24+16 on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, MAX_UNIT + 16, in, out, L), ENVOL_ERR_SECTOR_SIZE, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, MAX_UNIT + 16, g_big_a, g_big_b, MAX_UNIT + 16),
                     ENVOL_ERR_SECTOR_SIZE, g_big_b, MAX_UNIT + 16);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, 0, MAX_UNIT + 16, g_big_a, g_big_b, MAX_UNIT + 16),
                     ENVOL_ERR_SECTOR_SIZE, g_big_b, MAX_UNIT + 16);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, MAX_UNIT + 16, g_big_b, g_big_b, MAX_UNIT + 16),
                     ENVOL_ERR_SECTOR_SIZE, g_big_b, MAX_UNIT + 16);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 2 * MAX_UNIT, in, out, L), ENVOL_ERR_SECTOR_SIZE, out, L);

    /* Lengths. */
    where("bad lengths on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, in, out, L - 16), ENVOL_ERR_LENGTH, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, in, out, L + 16), ENVOL_ERR_LENGTH, out, L + 16);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 16, in, out, 15), ENVOL_ERR_LENGTH, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 16, in, out, 100), ENVOL_ERR_LENGTH, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 4096, in, out, 512), ENVOL_ERR_LENGTH, out, L);
    {
        static const size_t bad_units[] = {0, 1, 15};
        for (i = 0; i < sizeof bad_units / sizeof bad_units[0]; i++) {
            where("unit of %lu B on %s", (unsigned long)bad_units[i], bname(be));
            CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, tweak, in, out, bad_units[i]), ENVOL_ERR_LENGTH, out, L);
            CHECK_DATA_FAILS(envol_xts_decrypt_unit(&g_ctx, tweak, in, out, bad_units[i]), ENVOL_ERR_LENGTH, out, L);
        }
    }
    where("unit of 2^24+1 B on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, tweak, g_big_a, g_big_b, MAX_UNIT + 1), ENVOL_ERR_LENGTH,
                     g_big_b, MAX_UNIT + 1);
    CHECK_DATA_FAILS(envol_xts_decrypt_unit(&g_ctx, tweak, g_big_a, g_big_b, MAX_UNIT + 1), ENVOL_ERR_LENGTH,
                     g_big_b, MAX_UNIT + 1);
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, tweak, g_big_b, g_big_b, MAX_UNIT + 1), ENVOL_ERR_LENGTH,
                     g_big_b, MAX_UNIT + 1);
    CHECK_DATA_FAILS(envol_xts_encrypt_unit(&g_ctx, tweak, g_big_a, g_big_b, MAX_UNIT + 16), ENVOL_ERR_LENGTH,
                     g_big_b, MAX_UNIT + 16);
    /* A length that no buffer can have: refused before anything is read. */
    CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, in, out, SIZE_MAX), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, in, out, SIZE_MAX - 511), ENVOL_ERR_LENGTH);
    CHECK(is_filled(out, L, 0xA5));

    /* Partial overlap: out = in + 16 and the reverse, and a 1-byte overlap;
     * the whole shared buffer stays as it was. Adjacent buffers and
     * in == out work. */
    where("overlap on %s", bname(be));
    {
        uint8_t *buf = g_run_tmp; /* RUN_LEN bytes */
        uint8_t *buf2 = g_run_got;
        poison(buf, L + 64);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, buf, buf + 16, L), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, buf, buf + 16, L), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, buf + 16, buf, L), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf, buf + 16, 512), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, buf, buf + 16, 512), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf + 16, buf, 512), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf, buf + 1, 17), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf, buf + 511, 512), ENVOL_ERR_OVERLAP);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 16, buf + 31, buf, 32), ENVOL_ERR_OVERLAP);
        CHECK(is_filled(buf, L + 64, 0xA5));

        /* Adjacent (out = in + len) is not an overlap. */
        rnd_fill(buf, 1024);
        memcpy(buf2, buf, 512);         /* plaintext */
        memcpy(buf2 + 512, buf, 512);   /* ciphertext, after the next call */
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf, buf + 512, 512), ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, buf2 + 512, buf2 + 512, 512), ENVOL_OK);
        CHECK(memcmp(buf + 512, buf2 + 512, 512) == 0);
        memset(buf, 0, 512);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 3, 512, buf + 512, buf, 512), ENVOL_OK);
        CHECK(memcmp(buf, buf2, 512) == 0);
        CHECK(memcmp(buf + 512, buf2 + 512, 512) == 0);
        /* in == out. */
        rnd_fill(buf, L);
        memcpy(buf2, buf, L);
        CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, buf, buf, L), ENVOL_OK);
        CHECK(memcmp(buf, buf2, L) != 0);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, buf, buf, L), ENVOL_OK);
        CHECK(memcmp(buf, buf2, L) == 0);
    }

    /* Sector overflow. */
    where("sector overflow on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX, 512, in, out, 1024), ENVOL_ERR_SECTOR_OVERFLOW, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, UINT64_MAX, 512, in, out, 1024), ENVOL_ERR_SECTOR_OVERFLOW, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 6, 512, in, out, L), ENVOL_ERR_SECTOR_OVERFLOW, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 254, 16, in, out, L), ENVOL_ERR_SECTOR_OVERFLOW, out, L);
    memcpy(out, in, L);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX, 512, out, out, 1024), ENVOL_ERR_SECTOR_OVERFLOW);
    CHECK(memcmp(out, in, L) == 0);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 7, 512, in, out, L), ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 255, 16, in, out, L), ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX - 1, 512, in, out, 1024), ENVOL_OK);

    /* A zero-length run: OK, writes nothing (also at sector 2^64 - 1). */
    where("zero-length run on %s", bname(be));
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, 0, 512, in, out, 0), ENVOL_OK, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, 0, 512, in, out, 0), ENVOL_OK, out, L);
    CHECK_DATA_FAILS(envol_xts_encrypt_sectors(&g_ctx, UINT64_MAX, 4096, in, out, 0), ENVOL_OK, out, L);
    CHECK_DATA_FAILS(envol_xts_decrypt_sectors(&g_ctx, UINT64_MAX, 16, out, out, 0), ENVOL_OK, out, L);

    /* Contexts that are not live: zero-filled, wiped, or garbage. */
    where("uninitialised contexts on %s", bname(be));
    {
        int k;
        for (k = 0; k < 3; k++) {
            envol_xts *c = &g_other;
            if (k == 0) {
                memset(c, 0, sizeof *c);
            } else if (k == 1) {
                CHECK_STATUS(envol_xts_init_with_backend(c, key, 64, be), ENVOL_OK);
                CHECK_STATUS(envol_xts_encrypt_unit(c, tweak, in, out, L), ENVOL_OK);
                envol_xts_wipe(c);
            } else {
                memset(c, 0xA5, sizeof *c);
            }
            where("%s context on %s", k == 0 ? "zeroed" : k == 1 ? "wiped" : "garbage", bname(be));
            CHECK_DATA_FAILS(envol_xts_encrypt_sectors(c, 0, 512, in, out, L), ENVOL_ERR_NOT_INITIALIZED, out, L);
            CHECK_DATA_FAILS(envol_xts_decrypt_sectors(c, 0, 512, in, out, L), ENVOL_ERR_NOT_INITIALIZED, out, L);
            CHECK_DATA_FAILS(envol_xts_encrypt_unit(c, tweak, in, out, L), ENVOL_ERR_NOT_INITIALIZED, out, L);
            CHECK_DATA_FAILS(envol_xts_decrypt_unit(c, tweak, in, out, L), ENVOL_ERR_NOT_INITIALIZED, out, L);
            CHECK_DATA_FAILS(envol_xts_encrypt_sectors(c, 0, 512, in, out, 0), ENVOL_ERR_NOT_INITIALIZED, out, L);
            CHECK(envol_xts_backend(c) == ENVOL_BACKEND_AUTO);
        }
        envol_xts_wipe(&g_other);
    }

    /* Misaligned context pointers, inside a 64-aligned buffer of two
     * contexts: every call refuses, and nothing is written through them. */
    {
        static const size_t offsets[] = {1, 8, 16, 32, 48, 63};
        uint8_t *base = (uint8_t *)(void *)g_misbuf;
        CHECK((uintptr_t)(void *)base % ENVOL_XTS_ALIGN == 0);
        for (i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
            envol_xts *mis = (envol_xts *)(void *)(base + offsets[i]);
            where("context misaligned by %lu on %s", (unsigned long)offsets[i], bname(be));
            memset(g_misbuf, 0x5A, sizeof g_misbuf);
            CHECK_STATUS(envol_xts_init_with_backend(mis, key, 64, be), ENVOL_ERR_ALIGNMENT);
            CHECK_STATUS(envol_xts_init(mis, key, 32), ENVOL_ERR_ALIGNMENT);
            CHECK(is_filled(base, sizeof g_misbuf, 0x5A));
            CHECK_DATA_FAILS(envol_xts_encrypt_sectors(mis, 0, 512, in, out, L), ENVOL_ERR_ALIGNMENT, out, L);
            CHECK_DATA_FAILS(envol_xts_decrypt_sectors(mis, 0, 512, in, out, L), ENVOL_ERR_ALIGNMENT, out, L);
            CHECK_DATA_FAILS(envol_xts_encrypt_unit(mis, tweak, in, out, L), ENVOL_ERR_ALIGNMENT, out, L);
            CHECK_DATA_FAILS(envol_xts_decrypt_unit(mis, tweak, in, out, L), ENVOL_ERR_ALIGNMENT, out, L);
            CHECK(envol_xts_backend(mis) == ENVOL_BACKEND_AUTO);
            envol_xts_wipe(mis);
            CHECK(is_filled(base, sizeof g_misbuf, 0x5A));
        }
        /* The aligned context inside the same buffer works. */
        where("aligned context in the misalignment buffer on %s", bname(be));
        CHECK_STATUS(envol_xts_init_with_backend(&g_misbuf[1], key, 64, be), ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_misbuf[1], tweak, in, out, L), ENVOL_OK);
        CHECK(is_filled(g_misbuf[0].opaque, sizeof g_misbuf[0].opaque, 0x5A));
        envol_xts_wipe(&g_misbuf[1]);
        CHECK(is_filled(g_misbuf[1].opaque, sizeof g_misbuf[1].opaque, 0));
    }

    /* The context under test still works after all of that. */
    where("context on %s after the error tests", bname(be));
    CHECK(envol_xts_backend(&g_ctx) == be);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_ctx, tweak, in, out, 512), ENVOL_OK);
    CHECK_STATUS(envol_xts_decrypt_unit(&g_ctx, tweak, out, out, 512), ENVOL_OK);
    CHECK(memcmp(out, in, 512) == 0);
}

/* ------------------------------------------------------------------------ */
/* Backend-independent parts                                                 */

static void test_layout(void)
{
    envol_xts local;
    struct {
        char c;
        envol_xts x;
    } padded;

    where("layout");
    CHECK(envol_xts_size() == sizeof(envol_xts));
    CHECK(envol_xts_size() == ENVOL_XTS_SIZE);
    CHECK(sizeof(envol_xts) == 2048);
    CHECK(ENVOL_XTS_ALIGN == 64);
    CHECK((uintptr_t)(void *)&g_ctx % ENVOL_XTS_ALIGN == 0);
    CHECK((uintptr_t)(void *)&g_soft % ENVOL_XTS_ALIGN == 0);
    CHECK((uintptr_t)(void *)&g_misbuf[1] % ENVOL_XTS_ALIGN == 0);
    CHECK((uintptr_t)(void *)&local % ENVOL_XTS_ALIGN == 0);
    CHECK(offsetof(envol_xts, opaque) == 0);
    CHECK((uintptr_t)(void *)&padded.x % ENVOL_XTS_ALIGN == 0);
    CHECK((char *)(void *)&padded.x - (char *)(void *)&padded == 64);

    /* A stack context is usable like any other. */
    {
        uint8_t key[32], tweak[16], a[32], b[32];
        random_key(key, 32);
        rnd_fill(tweak, 16);
        rnd_fill(a, 32);
        CHECK_STATUS(envol_xts_init(&local, key, 32), ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_unit(&local, tweak, a, b, 32), ENVOL_OK);
        CHECK_STATUS(envol_xts_decrypt_unit(&local, tweak, b, b, 32), ENVOL_OK);
        CHECK(memcmp(a, b, 32) == 0);
        envol_xts_wipe(&local);
        CHECK(is_filled(local.opaque, sizeof local.opaque, 0));
    }
}

static void test_names(void)
{
    static const char *const status_names[] = {
        "ENVOL_OK",
        "ENVOL_ERR_NULL_POINTER",
        "ENVOL_ERR_KEY_LENGTH",
        "ENVOL_ERR_WEAK_KEY",
        "ENVOL_ERR_SECTOR_SIZE",
        "ENVOL_ERR_LENGTH",
        "ENVOL_ERR_OVERLAP",
        "ENVOL_ERR_SECTOR_OVERFLOW",
        "ENVOL_ERR_BACKEND_UNAVAILABLE",
        "ENVOL_ERR_NOT_INITIALIZED",
        "ENVOL_ERR_INVALID_ARGUMENT",
        "ENVOL_ERR_ALIGNMENT",
        "ENVOL_ERR_INTERNAL",
    };
    static const envol_status statuses[] = {
        ENVOL_OK,
        ENVOL_ERR_NULL_POINTER,
        ENVOL_ERR_KEY_LENGTH,
        ENVOL_ERR_WEAK_KEY,
        ENVOL_ERR_SECTOR_SIZE,
        ENVOL_ERR_LENGTH,
        ENVOL_ERR_OVERLAP,
        ENVOL_ERR_SECTOR_OVERFLOW,
        ENVOL_ERR_BACKEND_UNAVAILABLE,
        ENVOL_ERR_NOT_INITIALIZED,
        ENVOL_ERR_INVALID_ARGUMENT,
        ENVOL_ERR_ALIGNMENT,
        ENVOL_ERR_INTERNAL,
    };
    static const char *const backend_names[] = {"auto", "soft", "aesni", "vaes256", "vaes512", "armv8"};
    static const envol_backend backends[] = {
        ENVOL_BACKEND_AUTO,    ENVOL_BACKEND_SOFT,    ENVOL_BACKEND_AESNI,
        ENVOL_BACKEND_VAES256, ENVOL_BACKEND_VAES512, ENVOL_BACKEND_ARMV8,
    };
    size_t i;
    const char *s;

    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        where("envol_status_name(%d)", (int)statuses[i]);
        CHECK((int)statuses[i] == (int)i);
        s = envol_status_name(statuses[i]);
        CHECK(s != NULL && strcmp(s, status_names[i]) == 0);
    }
    where("envol_status_name of unknown values");
    CHECK(strcmp(envol_status_name(ENVOL_ERR_LIMIT_EXCEEDED), "ENVOL_ERR_LIMIT_EXCEEDED") == 0);
    CHECK(strcmp(envol_status_name(ENVOL_ERR_LEASE_EXPIRED), "ENVOL_ERR_LEASE_EXPIRED") == 0);
    s = envol_status_name((envol_status)44); /* the first number not yet used */
    CHECK(s != NULL && strcmp(s, "ENVOL_ERR_UNKNOWN") == 0);
    s = envol_status_name((envol_status)1000);
    CHECK(s != NULL && strcmp(s, "ENVOL_ERR_UNKNOWN") == 0);
    s = envol_status_name((envol_status)-1);
    CHECK(s != NULL && strcmp(s, "ENVOL_ERR_UNKNOWN") == 0);

    for (i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        where("envol_backend_name(%d)", (int)backends[i]);
        CHECK((int)backends[i] == (int)i);
        s = envol_backend_name(backends[i]);
        CHECK(s != NULL && strcmp(s, backend_names[i]) == 0);
    }
    where("envol_backend_name of unknown values");
    s = envol_backend_name((envol_backend)6);
    CHECK(s != NULL && strcmp(s, "unknown") == 0);
    s = envol_backend_name((envol_backend)99);
    CHECK(s != NULL && strcmp(s, "unknown") == 0);
    s = envol_backend_name((envol_backend)-1);
    CHECK(s != NULL && strcmp(s, "unknown") == 0);

    where("envol_version");
    s = envol_version();
    CHECK(s != NULL && s[0] != '\0');
    CHECK(s != NULL && s[0] >= '0' && s[0] <= '9' && strchr(s, '.') != NULL);
}

static void test_detect(void)
{
    uint8_t key[64];
    envol_backend d = envol_backend_detect();

    where("envol_backend_detect");
    CHECK(d >= ENVOL_BACKEND_SOFT && d <= ENVOL_BACKEND_ARMV8);
    CHECK(envol_backend_available(d) == 1);
    CHECK(envol_backend_detect() == d);
    CHECK(envol_backend_available(ENVOL_BACKEND_AUTO) == 1);
    CHECK(envol_backend_available(ENVOL_BACKEND_SOFT) == 1);
    CHECK(envol_backend_available((envol_backend)6) == 0);
    CHECK(envol_backend_available((envol_backend)99) == 0);
    CHECK(envol_backend_available((envol_backend)-1) == 0);
#if defined(__x86_64__) || defined(_M_X64)
    CHECK(envol_backend_available(ENVOL_BACKEND_ARMV8) == 0);
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
    CHECK(envol_backend_available(ENVOL_BACKEND_AESNI) == 0);
    CHECK(envol_backend_available(ENVOL_BACKEND_VAES256) == 0);
    CHECK(envol_backend_available(ENVOL_BACKEND_VAES512) == 0);
#endif

    random_key(key, 64);
    CHECK_STATUS(envol_xts_init(&g_other, key, 64), ENVOL_OK);
    CHECK(envol_xts_backend(&g_other) == d);
    CHECK_STATUS(envol_xts_init(&g_other, key, 32), ENVOL_OK);
    CHECK(envol_xts_backend(&g_other) == d);
    CHECK_STATUS(envol_xts_init_with_backend(&g_other, key, 64, ENVOL_BACKEND_AUTO), ENVOL_OK);
    CHECK(envol_xts_backend(&g_other) == d);
    envol_xts_wipe(&g_other);
    CHECK(envol_xts_backend(&g_other) == ENVOL_BACKEND_AUTO);
    CHECK(envol_xts_backend(NULL) == ENVOL_BACKEND_AUTO);
}

static void test_wipe_and_reinit(void)
{
    uint8_t key_a[64], key_b[32], tweak[16], pt[96], ct_a[96], ct_b[96], out[96];
    envol_backend d = envol_backend_detect();
    int b;

    where("wipe");
    random_key(key_a, 64);
    random_key(key_b, 32);
    rnd_fill(tweak, 16);
    rnd_fill(pt, sizeof pt);

    CHECK_STATUS(envol_xts_init(&g_other, key_a, 64), ENVOL_OK);
    CHECK(!is_filled(g_other.opaque, sizeof g_other.opaque, 0));
    CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, ct_a, sizeof pt), ENVOL_OK);
    envol_xts_wipe(&g_other);
    CHECK(is_filled(g_other.opaque, sizeof g_other.opaque, 0));
    CHECK(envol_xts_backend(&g_other) == ENVOL_BACKEND_AUTO);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, sizeof pt), ENVOL_ERR_NOT_INITIALIZED);
    envol_xts_wipe(&g_other); /* twice */
    CHECK(is_filled(g_other.opaque, sizeof g_other.opaque, 0));
    envol_xts_wipe(NULL);
    CHECK(1); /* still here */

    /* Wiping a never-initialised context zeroes it too. */
    memset(&g_other, 0xA5, sizeof g_other);
    envol_xts_wipe(&g_other);
    CHECK(is_filled(g_other.opaque, sizeof g_other.opaque, 0));

    /* Re-init after wipe works and gives the same ciphertext as before. */
    where("re-init after wipe");
    CHECK_STATUS(envol_xts_init(&g_other, key_a, 64), ENVOL_OK);
    CHECK(envol_xts_backend(&g_other) == d);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, sizeof pt), ENVOL_OK);
    CHECK(memcmp(out, ct_a, sizeof out) == 0);

    /* Re-init of a live context with a new key (no wipe in between). */
    where("re-init of a live context");
    CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key_b, 32, ENVOL_BACKEND_SOFT), ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_soft, tweak, pt, ct_b, sizeof pt), ENVOL_OK);
    CHECK(memcmp(ct_a, ct_b, sizeof ct_a) != 0);
    CHECK_STATUS(envol_xts_init(&g_other, key_b, 32), ENVOL_OK);
    CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, sizeof pt), ENVOL_OK);
    CHECK(memcmp(out, ct_b, sizeof out) == 0);
    CHECK_STATUS(envol_xts_decrypt_unit(&g_other, tweak, ct_b, out, sizeof pt), ENVOL_OK);
    CHECK(memcmp(out, pt, sizeof out) == 0);

    /* Re-init of a live context on each backend in turn, alternating keys. */
    for (b = ENVOL_BACKEND_SOFT; b <= ENVOL_BACKEND_ARMV8; b++) {
        envol_backend be = (envol_backend)b;
        if (!envol_backend_available(be)) {
            continue;
        }
        where("re-init of a live context onto %s", bname(be));
        CHECK_STATUS(envol_xts_init_with_backend(&g_other, key_a, 64, be), ENVOL_OK);
        CHECK(envol_xts_backend(&g_other) == be);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, sizeof pt), ENVOL_OK);
        CHECK(memcmp(out, ct_a, sizeof out) == 0);
        CHECK_STATUS(envol_xts_init_with_backend(&g_other, key_b, 32, be), ENVOL_OK);
        CHECK_STATUS(envol_xts_encrypt_unit(&g_other, tweak, pt, out, sizeof pt), ENVOL_OK);
        CHECK(memcmp(out, ct_b, sizeof out) == 0);
    }
    envol_xts_wipe(&g_other);
    CHECK(is_filled(g_other.opaque, sizeof g_other.opaque, 0));
}

/* ------------------------------------------------------------------------ */

/* The worker pool: the same bytes as the single-threaded calls against the
 * soft reference (in place and out of place, runs ending at sector 2^64-1),
 * every argument error with the output untouched, and handle checks. */
static void test_pool(envol_backend be)
{
    static const size_t thread_counts[] = {1, 2, 3, 8};
    static const size_t sector_sizes[] = {512, 4096};
    /* 3 MiB + 3 sectors of 4 KiB: split into shares of unequal length. */
    const size_t len = ((size_t)3 << 20) + 3 * 4096;
    uint8_t key[64];
    uint8_t *pt = g_big_a, *ref = g_big_b, *got = g_big_c;
    envol_xts_pool *pool;
    static envol_xts never; /* zero: never initialised */
    static char marker_byte;
    envol_xts_pool *const marker = (envol_xts_pool *)(void *)&marker_byte;
    size_t t, s;

    where("pool arguments");
    pool = marker;
    CHECK_STATUS(envol_xts_pool_new(0, &pool), ENVOL_ERR_INVALID_ARGUMENT);
    CHECK(pool == marker);
    CHECK_STATUS(envol_xts_pool_new(ENVOL_XTS_POOL_MAX_THREADS + 1, &pool),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK(pool == marker);
    CHECK_STATUS(envol_xts_pool_new(2, NULL), ENVOL_ERR_NULL_POINTER);
    envol_xts_pool_free(NULL);

    random_key(key, 64);
    CHECK_STATUS(envol_xts_init_with_backend(&g_soft, key, 64, ENVOL_BACKEND_SOFT), ENVOL_OK);
    CHECK_STATUS(envol_xts_init_with_backend(&g_ctx, key, 64, be), ENVOL_OK);
    for (t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        pool = NULL;
        CHECK_STATUS(envol_xts_pool_new(thread_counts[t], &pool), ENVOL_OK);
        CHECK(pool != NULL);
        if (pool == NULL) {
            continue;
        }
        for (s = 0; s < sizeof sector_sizes / sizeof sector_sizes[0]; s++) {
            size_t ss = sector_sizes[s];
            uint64_t first = UINT64_MAX - (uint64_t)(len / ss) + 1;
            where("pool of %lu on %s, %lu-byte sectors", (unsigned long)thread_counts[t], bname(be),
                  (unsigned long)ss);
            rnd_fill(pt, len);
            CHECK_STATUS(envol_xts_encrypt_sectors(&g_soft, first, ss, pt, ref, len), ENVOL_OK);
            memset(got, 0xA5, len + 64);
            CHECK_STATUS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, first, ss, pt, got, len),
                         ENVOL_OK);
            CHECK(memcmp(got, ref, len) == 0);
            CHECK(is_filled(got + len, 64, 0xA5));
            CHECK_STATUS(envol_xts_pool_decrypt_sectors(pool, &g_ctx, first, ss, got, got, len),
                         ENVOL_OK);
            CHECK(memcmp(got, pt, len) == 0);
            CHECK_STATUS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, first, ss, got, got, len),
                         ENVOL_OK);
            CHECK(memcmp(got, ref, len) == 0);
            CHECK_STATUS(envol_xts_pool_decrypt_sectors(pool, &g_ctx, first, ss, ref, got, len),
                         ENVOL_OK);
            CHECK(memcmp(got, pt, len) == 0);
        }

        where("pool of %lu on %s, errors", (unsigned long)thread_counts[t], bname(be));
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(NULL, &g_ctx, 0, 4096, pt, got, len),
                         ENVOL_ERR_NULL_POINTER, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_decrypt_sectors(pool, NULL, 0, 4096, pt, got, len),
                         ENVOL_ERR_NULL_POINTER, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, 0, 4096, NULL, got, len),
                         ENVOL_ERR_NULL_POINTER, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, UINT64_MAX, 4096, pt, got, len),
                         ENVOL_ERR_SECTOR_OVERFLOW, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_decrypt_sectors(pool, &g_ctx, 0, 4097, pt, got, len),
                         ENVOL_ERR_SECTOR_SIZE, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, 0, 4096, pt, got, len - 16),
                         ENVOL_ERR_LENGTH, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(pool, &g_ctx, 0, 4096, got + 16, got, len - 4096),
                         ENVOL_ERR_OVERLAP, got, len);
        CHECK_DATA_FAILS(envol_xts_pool_encrypt_sectors(pool, &never, 0, 4096, pt, got, len),
                         ENVOL_ERR_NOT_INITIALIZED, got, len);
        envol_xts_pool_free(pool);
    }
}

int main(void)
{
    int b;
    int any_skipped = 0;

    g_big_a = xmalloc(BIG_LEN);
    g_big_b = xmalloc(BIG_LEN);
    g_big_c = xmalloc(BIG_LEN);
    g_run_pt = xmalloc(RUN_LEN);
    g_run_ref = xmalloc(RUN_LEN);
    g_run_got = xmalloc(RUN_LEN);
    g_run_tmp = xmalloc(RUN_LEN);
    memset(g_big_a, 0x11, BIG_LEN);

    printf("envol %s, auto backend: %s\n", envol_version(), bname(envol_backend_detect()));

    for (b = ENVOL_BACKEND_SOFT; b <= ENVOL_BACKEND_ARMV8; b++) {
        if (!envol_backend_available((envol_backend)b) && g_unavailable == ENVOL_BACKEND_AUTO) {
            g_unavailable = (envol_backend)b;
        }
    }

    test_layout();
    test_names();
    test_detect();
    test_wipe_and_reinit();
    printf("general      : %d checks, %d failed\n", g_passed + g_failed, g_failed);

    for (b = ENVOL_BACKEND_SOFT; b <= ENVOL_BACKEND_ARMV8; b++) {
        envol_backend be = (envol_backend)b;
        int before = g_passed + g_failed;
        int failed_before = g_failed;
        if (!envol_backend_available(be)) {
            printf("backend %-8s: not available here, skipped\n", bname(be));
            any_skipped = 1;
            continue;
        }
        test_kats(be);
        test_random_runs(be);
        test_random_units(be);
        test_max_sizes(be);
        test_init_errors(be);
        test_data_errors(be);
        test_pool(be);
        printf("backend %-8s: %d checks, %d failed\n", bname(be), g_passed + g_failed - before,
               g_failed - failed_before);
    }
    if (!any_skipped) {
        printf("(every backend is available: ENVOL_ERR_BACKEND_UNAVAILABLE not exercised)\n");
    }

    envol_xts_wipe(&g_ctx);
    envol_xts_wipe(&g_soft);
    envol_xts_wipe(&g_other);
    free(g_big_a);
    free(g_big_b);
    free(g_big_c);
    free(g_run_pt);
    free(g_run_ref);
    free(g_run_got);
    free(g_run_tmp);

    return check_summary();
}
