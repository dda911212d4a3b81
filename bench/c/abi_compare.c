/*
 * abi_compare.c - envol through its C ABI next to OpenSSL's EVP AES-XTS, in
 * one process, the way a C hypervisor would drive each: the harness the
 * performance issue asks for, independent of the Rust `compare` binary.
 *
 * Both encrypt and decrypt out of place (in -> out), sector by sector for
 * OpenSSL (a new IV per data unit: EVP_CipherInit_ex + EVP_CipherUpdate) and
 * one envol_xts_{en,de}crypt_sectors call per run for envol. Every figure is
 * the best of several samples taken in rotation, so a slow phase of a noisy
 * machine hits both alike; read the ratios. Prints markdown.
 *
 *   bench/c/run.sh            (builds libenvol.a and this file, runs it)
 *   bench/c/run.sh --quick
 *   bench/c/run.sh --check    (the byte checks only, no timing; CI runs this)
 *
 * Before timing, every configuration is checked: envol's output must equal
 * OpenSSL's byte for byte, and decryption must give the plaintext back.
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "envol.h"

#define RUN (64 * 1024)        /* bytes per timed call: L2-resident */
#define UNIT_RUN (4u << 20)    /* runs of 1 MiB data units */
#define POOL_RUN (4u << 20)    /* runs for the pool */

static int g_rounds = 7;
static double g_min_ns = 60e6;
static int g_check_only;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "abi_compare: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) die("out of memory");
    return p;
}

struct job {
    int encrypt;
    size_t sector;
    size_t len;
    const uint8_t *in;
    uint8_t *out;
    envol_xts *ctx;
    envol_xts_pool *pool;
    EVP_CIPHER_CTX *evp_enc, *evp_dec;
};

static void run_envol(const struct job *j)
{
    envol_status st = j->encrypt
        ? envol_xts_encrypt_sectors(j->ctx, 0, j->sector, j->in, j->out, j->len)
        : envol_xts_decrypt_sectors(j->ctx, 0, j->sector, j->in, j->out, j->len);
    if (st != ENVOL_OK) die(envol_status_name(st));
}

static void run_pool(const struct job *j)
{
    envol_status st = j->encrypt
        ? envol_xts_pool_encrypt_sectors(j->pool, j->ctx, 0, j->sector, j->in, j->out, j->len)
        : envol_xts_pool_decrypt_sectors(j->pool, j->ctx, 0, j->sector, j->in, j->out, j->len);
    if (st != ENVOL_OK) die(envol_status_name(st));
}

static void run_openssl(const struct job *j)
{
    EVP_CIPHER_CTX *c = j->encrypt ? j->evp_enc : j->evp_dec;
    size_t off;
    uint64_t sector = 0;
    for (off = 0; off < j->len; off += j->sector, sector++) {
        uint8_t iv[16] = {0};
        int outl = 0, k;
        for (k = 0; k < 8; k++) iv[k] = (uint8_t)(sector >> (8 * k));
        if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1) die("EVP_CipherInit_ex");
        if (EVP_CipherUpdate(c, j->out + off, &outl, j->in + off, (int)j->sector) != 1 ||
            (size_t)outl != j->sector) {
            die("EVP_CipherUpdate");
        }
    }
}

typedef void (*runner)(const struct job *);

/* Nanoseconds per call: the best of g_rounds samples of >= g_min_ns each,
 * the n runners measured in rotation. */
static void rotate(int n, runner *f, const struct job *jobs, double *best)
{
    int r, i;
    for (i = 0; i < n; i++) {
        f[i](&jobs[i]);
        best[i] = 1e300;
    }
    for (r = 0; r < g_rounds; r++) {
        for (i = 0; i < n; i++) {
            double t0 = now_ns(), e;
            long iters = 0;
            do {
                f[i](&jobs[i]);
                iters++;
                e = now_ns() - t0;
            } while (e < g_min_ns);
            if (e / (double)iters < best[i]) best[i] = e / (double)iters;
        }
    }
}

static EVP_CIPHER_CTX *evp_ctx(const uint8_t *key, size_t klen, int enc)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *cipher = klen == 32 ? EVP_aes_128_xts() : EVP_aes_256_xts();
    uint8_t iv[16] = {0};
    if (c == NULL || EVP_CipherInit_ex(c, cipher, NULL, key, iv, enc) != 1) die("EVP init");
    return c;
}

int main(int argc, char **argv)
{
    static const size_t key_lens[] = {32, 64};
    static const size_t sectors[] = {512, 4096};
    uint8_t key[64];
    uint8_t *pt = xmalloc(UNIT_RUN), *ct = xmalloc(UNIT_RUN), *a = xmalloc(UNIT_RUN),
            *b = xmalloc(UNIT_RUN);
    envol_xts *ctx = aligned_alloc(ENVOL_XTS_ALIGN, sizeof(envol_xts));
    envol_xts_pool *pool = NULL;
    size_t i, ki, si;
    int e;

    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        g_rounds = 3;
        g_min_ns = 20e6;
    } else if (argc > 1 && strcmp(argv[1], "--check") == 0) {
        g_check_only = 1;
    }
    if (ctx == NULL) die("out of memory");
    if (envol_xts_size() != sizeof(envol_xts)) die("envol.h does not match the library");
    for (i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 31 + 7);
    for (i = 0; i < UNIT_RUN; i++) pt[i] = (uint8_t)(i * 13 + (i >> 12));
    if (envol_xts_pool_new(2, &pool) != ENVOL_OK) die("envol_xts_pool_new");

    printf("## envol C ABI against OpenSSL EVP, one process\n\n");
    printf("- OpenSSL: %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("- envol %s, backend `%s`\n", envol_version(),
           envol_backend_name(envol_backend_detect()));
    if (!g_check_only) {
        printf("- out of place; %d KiB runs; best of %d samples of >= %.0f ms each, in rotation\n\n",
               RUN / 1024, g_rounds, g_min_ns / 1e6);
        printf("| key | op | data unit | envol GB/s | OpenSSL GB/s | envol / OpenSSL |\n");
        printf("| --- | --- | ---: | ---: | ---: | ---: |\n");
    }

    for (ki = 0; ki < 2; ki++) {
        size_t klen = key_lens[ki];
        EVP_CIPHER_CTX *enc = evp_ctx(key, klen, 1), *dec = evp_ctx(key, klen, 0);
        if (envol_xts_init(ctx, key, klen) != ENVOL_OK) die("envol_xts_init");
        for (si = 0; si < 3; si++) {
            size_t sector = si < 2 ? sectors[si] : (size_t)1 << 20;
            size_t len = si < 2 ? RUN : UNIT_RUN;
            for (e = 1; e >= 0; e--) {
                struct job jobs[2];
                runner f[2] = {run_envol, run_openssl};
                double best[2];
                /* The input: plaintext to encrypt, ciphertext to decrypt. */
                struct job mk = {1, sector, len, pt, ct, ctx, NULL, enc, dec};
                run_openssl(&mk);
                jobs[0] = (struct job){e, sector, len, e ? pt : ct, a, ctx, NULL, enc, dec};
                jobs[1] = (struct job){e, sector, len, e ? pt : ct, b, ctx, NULL, enc, dec};
                /* Same bytes before any timing. */
                run_envol(&jobs[0]);
                run_openssl(&jobs[1]);
                if (memcmp(a, b, len) != 0) die("envol and OpenSSL disagree");
                if (!e && memcmp(a, pt, len) != 0) die("decryption does not invert");
                if (g_check_only) continue;
                rotate(2, f, jobs, best);
                printf("| XTS-AES-%d | %s | %zu%s | %.2f | %.2f | %.2f |\n", klen == 32 ? 128 : 256,
                       e ? "encrypt" : "decrypt", si < 2 ? sector : (size_t)1,
                       si < 2 ? "" : " MiB", (double)len / best[0], (double)len / best[1],
                       best[1] / best[0]);
            }
        }
        EVP_CIPHER_CTX_free(enc);
        EVP_CIPHER_CTX_free(dec);
    }

    /* The pool: 4 MiB runs of 4 KiB sectors, two threads against one. */
    {
        struct job jobs[2];
        runner f[2] = {run_envol, run_pool};
        double best[2];
        if (envol_xts_init(ctx, key, 64) != ENVOL_OK) die("envol_xts_init");
        jobs[0] = (struct job){1, 4096, POOL_RUN, pt, a, ctx, NULL, NULL, NULL};
        jobs[1] = (struct job){1, 4096, POOL_RUN, pt, b, ctx, pool, NULL, NULL};
        run_envol(&jobs[0]);
        run_pool(&jobs[1]);
        if (memcmp(a, b, POOL_RUN) != 0) die("pool and single thread disagree");
        if (g_check_only) {
            printf("\nchecked: envol (C ABI, %s) = OpenSSL EVP for XTS-AES-128/256, both directions, "
                   "512 B, 4 KiB and 1 MiB units; the pool = one thread\n",
                   envol_backend_name(envol_backend_detect()));
            goto done;
        }
        rotate(2, f, jobs, best);
        printf("\nenvol_xts_pool (2 threads) on %u MiB runs of 4 KiB sectors, XTS-AES-256 "
               "encrypt: %.2f GB/s against %.2f GB/s on one thread, %.2fx\n",
               POOL_RUN >> 20, (double)POOL_RUN / best[1], (double)POOL_RUN / best[0],
               best[0] / best[1]);
    }

done:
    envol_xts_pool_free(pool);
    envol_xts_wipe(ctx);
    free(ctx);
    free(pt);
    free(ct);
    free(a);
    free(b);
    return 0;
}
