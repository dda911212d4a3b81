/* envol firmware self-test: runs on a bare-metal target (qemu mps2-an386
 * Cortex-M4 or qemu virt AArch64) against the no_std static library.
 *   1. published XTS-AES vectors (IEEE 1619 Annex B, Wycheproof, NIST),
 *      both directions, with the key of equal halves refused;
 *   2. a sector-run round trip that must equal unit-by-unit encryption;
 *   3. a data-key unwrap through a callback key service holding a fixed
 *      test master key, into an envol_xts context.
 * With FW_EXPECT_BACKEND defined it first checks which kernel was selected.
 * Prints through semihosting and exits with the number of failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envol.h"
#include "vectors.h"

extern uint32_t envol_fw_stack_used(void);

static int passed, failed;

#define CHECK(cond, what)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            passed++;                                                       \
        } else {                                                            \
            failed++;                                                       \
            printf("FAIL %s:%d %s\n", __FILE__, __LINE__, what);            \
        }                                                                   \
    } while (0)

/* Called by the library's panic handler (a bug inside envol); never returns. */
void envol_panic_hook(void) {
    printf("envol panic hook called\n");
    exit(98);
}

static envol_xts ctx, ctx2;
static uint8_t buf[4096], buf2[4096];

static void vectors(void) {
    int i;
    for (i = 0; i < FW_VECTOR_COUNT; i++) {
        const fw_vector *v = &fw_vectors[i];
        size_t half = v->key_len / 2u;
        envol_status st = envol_xts_init(&ctx, v->key, v->key_len);
        if (memcmp(v->key, v->key + half, half) == 0) {
            CHECK(st == ENVOL_ERR_WEAK_KEY, v->name);
            continue;
        }
        CHECK(st == ENVOL_OK, v->name);
        memcpy(buf, v->pt, v->len);
        CHECK(envol_xts_encrypt_unit(&ctx, v->tweak, buf, buf, v->len) == ENVOL_OK, v->name);
        CHECK(memcmp(buf, v->ct, v->len) == 0, v->name);
        CHECK(envol_xts_decrypt_unit(&ctx, v->tweak, buf, buf2, v->len) == ENVOL_OK, v->name);
        CHECK(memcmp(buf2, v->pt, v->len) == 0, v->name);
    }
    printf("vectors: %d run on backend %s\n", FW_VECTOR_COUNT,
           envol_backend_name(envol_xts_backend(&ctx)));
}

#ifdef FW_EXPECT_BACKEND
/* The kernel the build selected (build-aarch64.sh: armv8, chosen at compile
 * time from -C target-feature=+aes,+neon, no run-time detection). */
static void backend(void) {
    uint8_t key[32];
    size_t i;
    for (i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i + 1u);
    CHECK(envol_xts_init(&ctx, key, sizeof key) == ENVOL_OK, "init");
    CHECK(envol_xts_backend(&ctx) == FW_EXPECT_BACKEND, "expected backend");
    printf("backend: %s (expected %s)\n", envol_backend_name(envol_xts_backend(&ctx)),
           envol_backend_name(FW_EXPECT_BACKEND));
}
#endif

static void sector_run(void) {
    uint8_t key[64], tweak[16];
    size_t i;
    const uint64_t first = 0xfffffffffffffff8ull; /* the run ends at sector 2^64 - 1 */
    for (i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 13u + 7u);
    for (i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 31u);
    memcpy(buf2, buf, sizeof buf);
    CHECK(envol_xts_init(&ctx, key, sizeof key) == ENVOL_OK, "init");
    CHECK(envol_xts_encrypt_sectors(&ctx, first, 512, buf, buf, sizeof buf) == ENVOL_OK, "run");
    for (i = 0; i < 8; i++) {
        uint64_t s = first + i;
        int b;
        memset(tweak, 0, sizeof tweak);
        for (b = 0; b < 8; b++) tweak[b] = (uint8_t)(s >> (8 * b));
        CHECK(envol_xts_encrypt_unit(&ctx, tweak, buf2 + 512 * i, buf2 + 512 * i, 512) == ENVOL_OK,
              "unit");
    }
    CHECK(memcmp(buf, buf2, sizeof buf) == 0, "run equals units");
    CHECK(envol_xts_decrypt_sectors(&ctx, first, 512, buf, buf, sizeof buf) == ENVOL_OK, "decrypt");
    for (i = 0; i < sizeof buf; i++)
        if (buf[i] != (uint8_t)(i * 31u)) break;
    CHECK(i == sizeof buf, "round trip");
    CHECK(envol_xts_encrypt_sectors(&ctx, first + 1, 512, buf, buf, sizeof buf) ==
              ENVOL_ERR_SECTOR_OVERFLOW,
          "overflow refused");
    printf("sector run: 8 x 512 bytes ending at sector 2^64-1\n");
}

/* The firmware's key service: a fixed test master key (in a product, a key
 * fused into the chip), unwrapping through envol's envelope format. */
static const uint8_t test_master[32] = {
    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f};

static envol_status fw_decrypt(void *user, const char *principal, const uint8_t *blob,
                               size_t blob_len, const envol_kv *c, size_t c_len, uint8_t *dek_out,
                               size_t dek_cap, size_t *dek_len) {
    (void)user;
    if (strcmp(principal, "firmware") != 0) return ENVOL_ERR_ACCESS_DENIED;
    return envol_envelope_open(test_master, blob, blob_len, c, c_len, dek_out, dek_cap, dek_len);
}

static void unwrap(void) {
    static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    envol_kv vol[1] = {{"volume", "vol-boot"}};
    envol_kv other[1] = {{"volume", "vol-other"}};
    envol_kms_callbacks kms;
    uint8_t dek[64], blob[ENVOL_MAX_BLOB], tweak[16] = {0};
    size_t blob_len = 0, i;
    for (i = 0; i < sizeof dek; i++) dek[i] = (uint8_t)(0x40 + i);
    CHECK(envol_envelope_seal(test_master, "fw-kek", 1, vol, 1, dek, sizeof dek, nonce, blob,
                              sizeof blob, &blob_len) == ENVOL_OK,
          "seal");
    memset(&kms, 0, sizeof kms);
    kms.decrypt_data_key = fw_decrypt;
    CHECK(envol_xts_init_from_blob(&ctx, &kms, "firmware", blob, blob_len, vol, 1) == ENVOL_OK,
          "unwrap into xts");
    CHECK(envol_xts_init(&ctx2, dek, sizeof dek) == ENVOL_OK, "direct init");
    memset(buf, 0x5a, 512);
    memset(buf2, 0x5a, 512);
    CHECK(envol_xts_encrypt_unit(&ctx, tweak, buf, buf, 512) == ENVOL_OK, "enc1");
    CHECK(envol_xts_encrypt_unit(&ctx2, tweak, buf2, buf2, 512) == ENVOL_OK, "enc2");
    CHECK(memcmp(buf, buf2, 512) == 0, "unwrapped key is the data key");
    CHECK(envol_xts_init_from_blob(&ctx2, &kms, "firmware", blob, blob_len, other, 1) ==
              ENVOL_ERR_INVALID_CIPHERTEXT,
          "another volume's context refused");
    CHECK(envol_xts_init_from_blob(&ctx2, &kms, "intruder", blob, blob_len, vol, 1) ==
              ENVOL_ERR_ACCESS_DENIED,
          "unknown principal refused");
    blob[blob_len - 1] ^= 1;
    CHECK(envol_xts_init_from_blob(&ctx2, &kms, "firmware", blob, blob_len, vol, 1) ==
              ENVOL_ERR_INVALID_CIPHERTEXT,
          "edited blob refused");
    envol_xts_wipe(&ctx);
    envol_xts_wipe(&ctx2);
    for (i = 0; i < sizeof ctx; i++)
        if (((const uint8_t *)&ctx)[i] != 0) break;
    CHECK(i == sizeof ctx, "wipe zeroes the context");
    memset(dek, 0, sizeof dek);
    printf("unwrap: data key unwrapped through a callback key service (fixed test master key)\n");
}

int main(void) {
    printf("envol %s firmware self-test, envol_xts %u bytes\n", envol_version(),
           (unsigned)envol_xts_size());
    CHECK(envol_xts_size() == sizeof(envol_xts), "context size");
#ifdef FW_EXPECT_BACKEND
    backend();
#endif
    vectors();
    sector_run();
    unwrap();
    printf("stack high-water mark: %lu bytes\n", (unsigned long)envol_fw_stack_used());
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}
