/*
 * kms_test.c - tests of the key-service part of envol's C ABI (envol.h).
 *
 * Built and run by `cargo test -p envol-ffi` (test `c_abi_tests_pass` in
 * ffi/src/tests.rs), once plain and once under ASan + UBSan:
 *
 *   gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -Iffi/include \
 *       ffi/tests/kms_test.c target/ctest/release/libenvol.a \
 *       -lpthread -ldl -lm -o target/ctest/kms_test
 *
 * Covers, through C only: the seed's least-privilege story on the reference
 * key service (envol_local_kms): the hypervisor makes and unwraps data keys
 * for volumes only, the admin manages the key but never sees a data key;
 * an envol_xts initialised from a wrapped blob through a callback table
 * (envol_local_kms_callbacks + envol_xts_init_from_blob) encrypts exactly
 * like one initialised from the plaintext key; context binding; key states
 * (disabled, pending deletion with and without force, cancel); rotation;
 * grants (constraints, retire, revoke); re-encryption to a second key;
 * sealing and unsealing (right root, wrong root, damage); the audit log
 * (lines, size queries, chain verification); a key service written in C
 * (a fake that "wraps" by XOR and checks the context), including callbacks
 * that return garbage; every NULL pointer argument; bad policies, bad
 * contexts, bad key ids and short buffers; outputs untouched on error.
 *
 * Prints one line per group and ends with "N passed, M failed"; exits
 * non-zero if anything failed.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envol.h"

#include "check.h"

/* ------------------------------------------------------------------------ */
/* Policies, contexts, shared state                                          */

/* The seed's least-privilege policy (core/tests/local_kms.rs). */
static const char LEAST_PRIVILEGE[] =
    "{\n"
    "  \"Version\": \"2012-10-17\",\n"
    "  \"Statement\": [\n"
    "    { \"Sid\": \"HypervisorUsesKeysForVolumes\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\"Envol\": \"hypervisor\"},\n"
    "      \"Action\": [\"kms:GenerateDataKey*\", \"kms:Decrypt\", \"kms:ReEncrypt*\"],\n"
    "      \"Condition\": {\"StringLike\": {\"kms:EncryptionContext:volume\": \"vol-*\"}} },\n"
    "    { \"Sid\": \"AdminManages\",\n"
    "      \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\"Envol\": \"admin\"},\n"
    "      \"Action\": \"kms:*\" },\n"
    "    { \"Sid\": \"AdminNeverSeesDataKeys\",\n"
    "      \"Effect\": \"Deny\",\n"
    "      \"Principal\": {\"Envol\": \"admin\"},\n"
    "      \"Action\": [\"kms:Decrypt\", \"kms:GenerateDataKey*\", \"kms:ReEncrypt*\", "
    "\"kms:Encrypt\"] }\n"
    "  ]\n"
    "}\n";

/* Only the admin, for everything (the key the grants are made on). */
static const char ADMIN_ONLY[] =
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
    "\"Principal\":{\"Envol\":\"admin\"},\"Action\":\"kms:*\"}]}";

/* Who may create keys on the service: the operator and the admin. */
static const char SERVICE_POLICY[] =
    "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Envol\":[\"operator\",\"admin\"]},"
    "\"Action\":\"kms:CreateKey\"}]}";

static const envol_kv VOL1[] = {{"volume", "vol-1"}};
static const envol_kv VOL2[] = {{"volume", "vol-2"}};
static const envol_kv VOL7[] = {{"volume", "vol-7"}};
static const envol_kv VOL8[] = {{"volume", "vol-8"}};
static const envol_kv VOL9[] = {{"volume", "vol-9"}};
static const envol_kv VOL9_HOST[] = {{"host", "h1"}, {"volume", "vol-9"}};
static const envol_kv SCRATCH[] = {{"volume", "scratch"}};


static envol_local_kms *g_kms;

/* The first data key: vol-1 under disk-key, made before rotation. */
static uint8_t g_dek[64];
static uint8_t g_blob[ENVOL_MAX_BLOB];
static size_t g_blob_len;

/* Contexts: the ENVOL_ALIGNED(64) type makes these 64-byte aligned. */
static envol_xts g_a;
static envol_xts g_b;
static envol_xts g_snap; /* byte snapshot of a context; never used as one */
static envol_xts g_misbuf[2];

/* Sector data for engine comparisons. */
#define SECTOR 512
#define SECTORS 8
static uint8_t g_pt[SECTOR * SECTORS];
static uint8_t g_ct_a[SECTOR * SECTORS];
static uint8_t g_ct_b[SECTOR * SECTORS];
static uint8_t g_back[SECTOR * SECTORS];

/* 1 if all n bytes at p equal v. */
static int is_filled(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = (const uint8_t *)p;
    size_t i;
    for (i = 0; i < n; i++) {
        if (b[i] != v) {
            return 0;
        }
    }
    return 1;
}

static void snapshot(const envol_xts *ctx)
{
    memcpy(&g_snap, ctx, sizeof g_snap);
}

static int unchanged(const envol_xts *ctx)
{
    return memcmp(&g_snap, ctx, sizeof g_snap) == 0;
}

/* 1 if a and b encrypt the same sectors to the same bytes, the bytes differ
 * from the plaintext, and a decrypts them back. */
static int same_engine(const envol_xts *a, const envol_xts *b)
{
    size_t i;
    for (i = 0; i < sizeof g_pt; i++) {
        g_pt[i] = (uint8_t)(i * 31 + 7);
    }
    if (envol_xts_encrypt_sectors(a, 1000, SECTOR, g_pt, g_ct_a, sizeof g_pt) != ENVOL_OK ||
        envol_xts_encrypt_sectors(b, 1000, SECTOR, g_pt, g_ct_b, sizeof g_pt) != ENVOL_OK ||
        envol_xts_decrypt_sectors(a, 1000, SECTOR, g_ct_b, g_back, sizeof g_pt) != ENVOL_OK) {
        return 0;
    }
    return memcmp(g_ct_a, g_ct_b, sizeof g_ct_a) == 0 &&
           memcmp(g_ct_a, g_pt, sizeof g_pt) != 0 && memcmp(g_back, g_pt, sizeof g_pt) == 0;
}

/* The key's state as the admin sees it, or -1 on error. */
static int key_state(const char *key_id, uint32_t *versions)
{
    envol_key_state s = ENVOL_KEY_DELETED;
    uint32_t v = 0;
    if (envol_local_kms_describe_key(g_kms, "admin", key_id, &s, &v) != ENVOL_OK) {
        return -1;
    }
    if (versions != NULL) {
        *versions = v;
    }
    return (int)s;
}

/* Decrypts blob as principal under ctx; 1 if it gives want_len bytes equal
 * to want. */
static int decrypts_to(const char *principal, const uint8_t *blob, size_t blob_len,
                       const envol_kv *ctx, size_t ctx_len, const uint8_t *want,
                       size_t want_len)
{
    uint8_t dek[64];
    size_t n = 0;
    if (envol_local_kms_decrypt_data_key(g_kms, principal, blob, blob_len, ctx, ctx_len, dek,
                                         sizeof dek, &n) != ENVOL_OK) {
        return 0;
    }
    return n == want_len && memcmp(dek, want, n) == 0;
}

/* The status of a decrypt, for checks on refusals. */
static envol_status decrypt_status(const char *principal, const uint8_t *blob, size_t blob_len,
                                   const envol_kv *ctx, size_t ctx_len)
{
    uint8_t dek[64];
    size_t n = 0;
    return envol_local_kms_decrypt_data_key(g_kms, principal, blob, blob_len, ctx, ctx_len, dek,
                                            sizeof dek, &n);
}

/* ------------------------------------------------------------------------ */
/* Groups                                                                    */

static void test_names(void)
{
    static const char *const names[] = {
        "ENVOL_ERR_ACCESS_DENIED",        "ENVOL_ERR_KEY_NOT_FOUND",
        "ENVOL_ERR_KEY_DISABLED",         "ENVOL_ERR_KEY_PENDING_DELETION",
        "ENVOL_ERR_INVALID_CIPHERTEXT",   "ENVOL_ERR_BUFFER_TOO_SMALL",
        "ENVOL_ERR_KMS_UNAVAILABLE",      "ENVOL_ERR_AUDIT_FAILED",
        "ENVOL_ERR_KEY_IN_USE",           "ENVOL_ERR_POLICY",
        "ENVOL_ERR_SEALED_STORE",         "ENVOL_ERR_CONTEXT",
        "ENVOL_ERR_KEY_ID",
    };
    static const envol_status statuses[] = {
        ENVOL_ERR_ACCESS_DENIED,      ENVOL_ERR_KEY_NOT_FOUND,   ENVOL_ERR_KEY_DISABLED,
        ENVOL_ERR_KEY_PENDING_DELETION, ENVOL_ERR_INVALID_CIPHERTEXT, ENVOL_ERR_BUFFER_TOO_SMALL,
        ENVOL_ERR_KMS_UNAVAILABLE,    ENVOL_ERR_AUDIT_FAILED,    ENVOL_ERR_KEY_IN_USE,
        ENVOL_ERR_POLICY,             ENVOL_ERR_SEALED_STORE,    ENVOL_ERR_CONTEXT,
        ENVOL_ERR_KEY_ID,
    };
    size_t i;
    const char *s;

    for (i = 0; i < N(statuses); i++) {
        where("envol_status_name(%d)", (int)statuses[i]);
        CHECK((int)statuses[i] == (int)(13 + i));
        s = envol_status_name(statuses[i]);
        CHECK(s != NULL && strcmp(s, names[i]) == 0);
    }
    where("envol_status_name past the end");
    s = envol_status_name((envol_status)44);
    CHECK(s != NULL && strcmp(s, "ENVOL_ERR_UNKNOWN") == 0);

    where("constants");
    CHECK(ENVOL_MAX_BLOB == 4203);
    CHECK(ENVOL_MAX_KEY_ID == 64);
    CHECK(ENVOL_MAX_CONTEXT_PAIRS == 16);
    CHECK(ENVOL_GRANT_ID_SIZE >= 39);
    CHECK(ENVOL_KEY_ENABLED == 0 && ENVOL_KEY_DISABLED == 1 && ENVOL_KEY_PENDING_DELETION == 2 &&
          ENVOL_KEY_DELETED == 3);
    CHECK(ENVOL_GRANT_NO_CONSTRAINT == 0 && ENVOL_GRANT_CONTEXT_EQUALS == 1 &&
          ENVOL_GRANT_CONTEXT_SUBSET == 2);
}

static void test_least_privilege(void)
{
    envol_kms_callbacks cb;
    uint8_t dek[64], dek2[64], blob2[ENVOL_MAX_BLOB];
    size_t n = 0, n2 = 0, count = 0;
    uint64_t delete_at = 0;
    uint32_t version = 0, versions = 0;
    time_t now = time(NULL);

    where("create the service and the key");
    CHECK_STATUS(envol_local_kms_new(&g_kms), ENVOL_OK);
    CHECK(g_kms != NULL);
    /* Nobody may create keys before the operator sets the service policy. */
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "disk-key", LEAST_PRIVILEGE),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_set_service_policy(g_kms, "operator", SERVICE_POLICY), ENVOL_OK);
    /* Changing it needs kms:PutServicePolicy, which nobody has. */
    CHECK_STATUS(envol_local_kms_set_service_policy(g_kms, "operator", ADMIN_ONLY),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "mallory", "disk-key", LEAST_PRIVILEGE),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "", "disk-key", LEAST_PRIVILEGE),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "disk-key", LEAST_PRIVILEGE),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "disk-key", LEAST_PRIVILEGE),
                 ENVOL_ERR_KEY_ID);

    where("hypervisor generates a data key for vol-1");
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                   g_dek, g_blob, sizeof g_blob, &g_blob_len),
                 ENVOL_OK);
    CHECK(g_blob_len == 43 + strlen("disk-key") + 64);
    CHECK(memcmp(g_dek, g_dek + 32, 32) != 0);

    where("envol_xts from the blob through the local callback table");
    memset(&cb, 0, sizeof cb);
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);
    CHECK(cb.user == (void *)g_kms);
    CHECK(cb.generate_data_key != NULL && cb.decrypt_data_key != NULL && cb.re_encrypt != NULL);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, g_dek, 64), ENVOL_OK);
    CHECK(envol_xts_backend(&g_a) == envol_backend_detect());
    CHECK(same_engine(&g_a, &g_b));
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));

    where("the table's functions called from C");
    n = 0;
    CHECK_STATUS(cb.decrypt_data_key(cb.user, "hypervisor", g_blob, g_blob_len, VOL1, 1, dek,
                                     sizeof dek, &n),
                 ENVOL_OK);
    CHECK(n == 64 && memcmp(dek, g_dek, 64) == 0);
    CHECK_STATUS(cb.generate_data_key(cb.user, "hypervisor", "disk-key", 32, VOL2, 1, dek2, blob2,
                                      sizeof blob2, &n2),
                 ENVOL_OK);
    CHECK(n2 == 43 + strlen("disk-key") + 32);
    CHECK(decrypts_to("hypervisor", blob2, n2, VOL2, 1, dek2, 32));

    where("a 32-byte data key makes an XTS-AES-128 engine");
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", blob2, n2, VOL2, 1), ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, dek2, 32), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));

    where("the blob is bound to its volume");
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_OK);
    snapshot(&g_a);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL2, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK(unchanged(&g_a));
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, VOL2, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, VOL9_HOST, 2),
                 ENVOL_ERR_INVALID_CIPHERTEXT);

    where("only volume contexts");
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, SCRATCH, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, NULL, 0),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, SCRATCH,
                                                   1, dek, blob2, sizeof blob2, &n2),
                 ENVOL_ERR_ACCESS_DENIED);

    where("the admin never sees a data key");
    CHECK_STATUS(decrypt_status("admin", g_blob, g_blob_len, VOL1, 1), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "admin", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK(unchanged(&g_a));
    memset(dek, 0x5a, sizeof dek);
    memset(blob2, 0x5a, sizeof blob2);
    n2 = 12345;
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "admin", "disk-key", 64, VOL1, 1, dek,
                                                   blob2, sizeof blob2, &n2),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK(is_filled(dek, sizeof dek, 0x5a) && is_filled(blob2, sizeof blob2, 0x5a) && n2 == 12345);
    CHECK_STATUS(decrypt_status("mallory", g_blob, g_blob_len, VOL1, 1), ENVOL_ERR_ACCESS_DENIED);

    where("the hypervisor cannot manage the key");
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "hypervisor", "disk-key"),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_schedule_key_deletion(g_kms, "hypervisor", "disk-key", 7, 1,
                                                       &delete_at),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_put_key_policy(g_kms, "hypervisor", "disk-key", ADMIN_ONLY),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_rotate_key(g_kms, "hypervisor", "disk-key", &version),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK(delete_at == 0 && version == 0);
    CHECK(key_state("disk-key", &versions) == ENVOL_KEY_ENABLED && versions == 1);

    where("a disabled key refuses to unwrap");
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(key_state("disk-key", NULL) == ENVOL_KEY_DISABLED);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_KEY_DISABLED);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_KEY_DISABLED);
    CHECK(unchanged(&g_a));
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                   dek, blob2, sizeof blob2, &n2),
                 ENVOL_ERR_KEY_DISABLED);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));

    where("deletion of a key that protects volumes");
    CHECK_STATUS(envol_local_kms_protected_volume_count(g_kms, "admin", "disk-key", &count),
                 ENVOL_OK);
    CHECK(count == 2); /* vol-1 and vol-2 */
    CHECK_STATUS(envol_local_kms_schedule_key_deletion(g_kms, "admin", "disk-key", 7, 0,
                                                       &delete_at),
                 ENVOL_ERR_KEY_IN_USE);
    CHECK(delete_at == 0);
    CHECK_STATUS(envol_local_kms_schedule_key_deletion(g_kms, "admin", "disk-key", 3, 1,
                                                       &delete_at),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_schedule_key_deletion(g_kms, "admin", "disk-key", 7, 1,
                                                       &delete_at),
                 ENVOL_OK);
    CHECK(delete_at >= (uint64_t)now + 7 * 86400 && delete_at <= (uint64_t)now + 7 * 86400 + 600);
    CHECK(key_state("disk-key", NULL) == ENVOL_KEY_PENDING_DELETION);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_KEY_PENDING_DELETION);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_KEY_PENDING_DELETION);
    CHECK(unchanged(&g_a));
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"),
                 ENVOL_ERR_KEY_PENDING_DELETION);
    CHECK_STATUS(envol_local_kms_cancel_key_deletion(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(key_state("disk-key", NULL) == ENVOL_KEY_DISABLED);
    CHECK_STATUS(envol_local_kms_cancel_key_deletion(g_kms, "admin", "disk-key"),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));

    where("rotation keeps old blobs readable");
    CHECK_STATUS(envol_local_kms_rotate_key(g_kms, "admin", "disk-key", &version), ENVOL_OK);
    CHECK(version == 2);
    CHECK(key_state("disk-key", &versions) == ENVOL_KEY_ENABLED && versions == 2);
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, g_dek, 64), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                   dek, blob2, sizeof blob2, &n2),
                 ENVOL_OK);
    CHECK(memcmp(blob2, g_blob, 9 + strlen("disk-key")) == 0); /* same header up to the id */
    CHECK(blob2[9 + strlen("disk-key")] == 2);                 /* backing version 2 */
    CHECK(g_blob[9 + strlen("disk-key")] == 1);
    CHECK(decrypts_to("hypervisor", blob2, n2, VOL1, 1, dek, 64));
    CHECK_STATUS(envol_local_kms_enable_key_rotation(g_kms, "admin", "disk-key", 365), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_enable_key_rotation(g_kms, "admin", "disk-key", 0),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_enable_key_rotation(g_kms, "hypervisor", "disk-key", 365),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_disable_key_rotation(g_kms, "admin", "disk-key"), ENVOL_OK);

    where("unknown keys");
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "no-such-key", 64, VOL1,
                                                   1, dek, blob2, sizeof blob2, &n2),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "no-such-key"),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK(key_state("no-such-key", NULL) == -1);
}

static void test_grants(void)
{
    static const char *const ops[] = {"kms:Decrypt", "kms:GenerateDataKey"};
    static const char *const decrypt_only[] = {"kms:decrypt"}; /* case-insensitive */
    static const char *const bad_ops[] = {"kms:Decrypt", "kms:Fly"};
    static const envol_kv dup[] = {{"volume", "vol-9"}, {"volume", "vol-8"}};
    char gid[ENVOL_GRANT_ID_SIZE], gid2[ENVOL_GRANT_ID_SIZE], small[16];
    uint8_t dek[64], dek9[64], blob9[ENVOL_MAX_BLOB], blob9h[ENVOL_MAX_BLOB];
    size_t n9 = 0, n9h = 0, n = 0, count = 99;
    envol_kms_callbacks cb;

    where("a key only the admin may use");
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "admin", "grant-key", ADMIN_ONLY), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "backup", "grant-key", 64, VOL9, 1, dek9,
                                                   blob9, sizeof blob9, &n9),
                 ENVOL_ERR_ACCESS_DENIED);

    where("a grant id buffer that is too small");
    memset(small, 0x5a, sizeof small);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2,
                                              ENVOL_GRANT_CONTEXT_EQUALS, VOL9, 1, NULL, small,
                                              sizeof small),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(is_filled(small, sizeof small, 0x5a));
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "admin", "grant-key", &count), ENVOL_OK);
    CHECK(count == 0);

    where("a grant with a context-equals constraint");
    memset(gid, 0x5a, sizeof gid);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2,
                                              ENVOL_GRANT_CONTEXT_EQUALS, VOL9, 1, NULL, gid,
                                              sizeof gid),
                 ENVOL_OK);
    CHECK(memchr(gid, '\0', sizeof gid) != NULL);
    CHECK(strncmp(gid, "grant-", 6) == 0 && strlen(gid) > 6);
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "admin", "grant-key", &count), ENVOL_OK);
    CHECK(count == 1);
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "backup", "grant-key", &count),
                 ENVOL_ERR_ACCESS_DENIED);

    where("the grantee uses the grant");
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "backup", "grant-key", 64, VOL9, 1, dek9,
                                                   blob9, sizeof blob9, &n9),
                 ENVOL_OK);
    CHECK(decrypts_to("backup", blob9, n9, VOL9, 1, dek9, 64));
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "backup", blob9, n9, VOL9, 1), ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, dek9, 64), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));

    where("only within the constraint and the operations");
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "backup", "grant-key", 64, VOL8, 1, dek,
                                                   blob9h, sizeof blob9h, &n9h),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "admin", "grant-key", 64, VOL9_HOST, 2,
                                                   dek, blob9h, sizeof blob9h, &n9h),
                 ENVOL_OK);
    CHECK_STATUS(decrypt_status("backup", blob9h, n9h, VOL9_HOST, 2), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(decrypt_status("hypervisor", blob9, n9, VOL9, 1), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "backup", "grant-key"),
                 ENVOL_ERR_ACCESS_DENIED);

    where("retire");
    CHECK_STATUS(envol_local_kms_retire_grant(g_kms, "mallory", "grant-key", gid),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_retire_grant(g_kms, "backup", "grant-key", gid), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "admin", "grant-key", &count), ENVOL_OK);
    CHECK(count == 0);
    CHECK_STATUS(decrypt_status("backup", blob9, n9, VOL9, 1), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "backup", blob9, n9, VOL9, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_retire_grant(g_kms, "backup", "grant-key", gid),
                 ENVOL_ERR_KEY_NOT_FOUND);

    where("a subset-constrained grant, retired by its retiring principal");
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", decrypt_only,
                                              1, ENVOL_GRANT_CONTEXT_SUBSET, VOL9, 1, "ops-team",
                                              gid2, sizeof gid2),
                 ENVOL_OK);
    CHECK(strcmp(gid, gid2) != 0);
    CHECK(decrypts_to("backup", blob9h, n9h, VOL9_HOST, 2, dek, 64));
    CHECK(decrypts_to("backup", blob9, n9, VOL9, 1, dek9, 64));
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "backup", "grant-key", 64, VOL9, 1, dek,
                                                   blob9h, sizeof blob9h, &n),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_retire_grant(g_kms, "ops-team", "grant-key", gid2), ENVOL_OK);
    CHECK_STATUS(decrypt_status("backup", blob9, n9, VOL9, 1), ENVOL_ERR_ACCESS_DENIED);

    where("revoke");
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_OK);
    CHECK(decrypts_to("backup", blob9, n9, VOL9, 1, dek9, 64));
    CHECK_STATUS(envol_local_kms_revoke_grant(g_kms, "backup", "grant-key", gid),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_revoke_grant(g_kms, "admin", "grant-key", gid), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_revoke_grant(g_kms, "admin", "grant-key", gid),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(decrypt_status("backup", blob9, n9, VOL9, 1), ENVOL_ERR_ACCESS_DENIED);

    where("grants that are refused");
    memset(gid, 0x5a, sizeof gid);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", bad_ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 0,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2, 3,
                                              VOL9, 1, NULL, gid, sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2, -1,
                                              VOL9, 1, NULL, gid, sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, VOL9, 1, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 2,
                                              ENVOL_GRANT_CONTEXT_EQUALS, dup, 2, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "", ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "hypervisor", "disk-key", "backup", ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_create_grant(g_kms, "admin", "no-such-key", "backup", ops, 2,
                                              ENVOL_GRANT_NO_CONSTRAINT, NULL, 0, NULL, gid,
                                              sizeof gid),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK(is_filled(gid, sizeof gid, 0x5a));
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "admin", "grant-key", &count), ENVOL_OK);
    CHECK(count == 0);
}

static void test_re_encrypt(void)
{
    uint8_t blob2[ENVOL_MAX_BLOB], blob3[ENVOL_MAX_BLOB], small[64];
    size_t n2 = 0, n3 = 0, ns = 777;
    envol_kms_callbacks cb;

    where("a second key");
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "disk-key-2", LEAST_PRIVILEGE),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);

    where("re-encrypt vol-1's data key to the second key");
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            "disk-key-2", VOL1, 1, blob2, sizeof blob2, &n2),
                 ENVOL_OK);
    CHECK(n2 == 43 + strlen("disk-key-2") + 64);
    CHECK(decrypts_to("hypervisor", blob2, n2, VOL1, 1, g_dek, 64));
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", blob2, n2, VOL1, 1), ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, g_dek, 64), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));

    where("re-encrypt through the callback table, to another volume");
    CHECK_STATUS(cb.re_encrypt(cb.user, "hypervisor", g_blob, g_blob_len, VOL1, 1, "disk-key-2",
                               VOL2, 1, blob3, sizeof blob3, &n3),
                 ENVOL_OK);
    CHECK(decrypts_to("hypervisor", blob3, n3, VOL2, 1, g_dek, 64));
    CHECK_STATUS(decrypt_status("hypervisor", blob3, n3, VOL1, 1), ENVOL_ERR_INVALID_CIPHERTEXT);

    where("re-encrypt refusals");
    memset(small, 0x5a, sizeof small);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            "disk-key-2", VOL1, 1, small, sizeof small, &ns),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(is_filled(small, sizeof small, 0x5a) && ns == 777);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "admin", g_blob, g_blob_len, VOL1, 1,
                                            "disk-key-2", VOL1, 1, blob3, sizeof blob3, &n3),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL2, 1,
                                            "disk-key-2", VOL1, 1, blob3, sizeof blob3, &n3),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            "no-such-key", VOL1, 1, blob3, sizeof blob3, &n3),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            "disk-key-2", SCRATCH, 1, blob3, sizeof blob3, &n3),
                 ENVOL_ERR_ACCESS_DENIED);
}

/* ------------------------------------------------------------------------ */
/* A key service written in C                                                */

/* Blob: "FAKE", data key length (1 byte), volume length (1 byte), volume,
 * data key XOR FAKE_XOR. */
#define FAKE_XOR 0x5c

enum fake_mode {
    FAKE_OK,
    FAKE_GARBAGE_LEN, /* *dek_len = 1000 */
    FAKE_SHORT_KEY,   /* *dek_len = 16 */
    FAKE_NO_LEN,      /* ENVOL_OK without writing *dek_len */
    FAKE_UNKNOWN,     /* returns 777 */
    FAKE_WEAK_KEY,    /* both halves equal */
    FAKE_DENY,        /* ENVOL_ERR_ACCESS_DENIED */
    FAKE_BUSY         /* ENVOL_ERR_KMS_UNAVAILABLE */
};

struct fake_kms {
    enum fake_mode mode;
    int calls;
    char last_principal[ENVOL_MAX_PRINCIPAL + 1];
    size_t last_ctx_len;
};

static const char *ctx_get(const envol_kv *ctx, size_t n, const char *key)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (ctx[i].key != NULL && strcmp(ctx[i].key, key) == 0) {
            return ctx[i].value;
        }
    }
    return NULL;
}

static envol_status fake_generate(void *user, const char *principal, const char *key_id,
                                  size_t dek_len, const envol_kv *ctx, size_t ctx_len,
                                  uint8_t *dek_out, uint8_t *blob_out, size_t blob_cap,
                                  size_t *blob_len)
{
    struct fake_kms *f = (struct fake_kms *)user;
    const char *vol = ctx_get(ctx, ctx_len, "volume");
    size_t vlen, need, i;

    f->calls++;
    (void)key_id;
    if (strcmp(principal, "hypervisor") != 0 || vol == NULL || ctx_len != 1) {
        return ENVOL_ERR_ACCESS_DENIED;
    }
    if (dek_len != 32 && dek_len != 64) {
        return ENVOL_ERR_KEY_LENGTH;
    }
    vlen = strlen(vol);
    need = 6 + vlen + dek_len;
    if (need > blob_cap) {
        return ENVOL_ERR_BUFFER_TOO_SMALL;
    }
    for (i = 0; i < dek_len; i++) {
        dek_out[i] = (uint8_t)(0xA0 + 7 * i + (size_t)f->calls);
    }
    memcpy(blob_out, "FAKE", 4);
    blob_out[4] = (uint8_t)dek_len;
    blob_out[5] = (uint8_t)vlen;
    memcpy(blob_out + 6, vol, vlen);
    for (i = 0; i < dek_len; i++) {
        blob_out[6 + vlen + i] = (uint8_t)(dek_out[i] ^ FAKE_XOR);
    }
    *blob_len = need;
    return ENVOL_OK;
}

static envol_status fake_decrypt(void *user, const char *principal, const uint8_t *blob,
                                 size_t blob_len, const envol_kv *ctx, size_t ctx_len,
                                 uint8_t *dek_out, size_t dek_cap, size_t *dek_len)
{
    struct fake_kms *f = (struct fake_kms *)user;
    const char *vol = ctx_get(ctx, ctx_len, "volume");
    size_t n, vlen, i;

    f->calls++;
    snprintf(f->last_principal, sizeof f->last_principal, "%s", principal);
    f->last_ctx_len = ctx_len;
    switch (f->mode) {
    case FAKE_UNKNOWN:
        return (envol_status)777;
    case FAKE_DENY:
        return ENVOL_ERR_ACCESS_DENIED;
    case FAKE_BUSY:
        return ENVOL_ERR_KMS_UNAVAILABLE;
    default:
        break;
    }
    if (strcmp(principal, "hypervisor") != 0) {
        return ENVOL_ERR_ACCESS_DENIED;
    }
    if (blob_len < 6 || memcmp(blob, "FAKE", 4) != 0) {
        return ENVOL_ERR_INVALID_CIPHERTEXT;
    }
    n = blob[4];
    vlen = blob[5];
    if (blob_len != 6 + vlen + n || vol == NULL || ctx_len != 1 || strlen(vol) != vlen ||
        memcmp(vol, blob + 6, vlen) != 0) {
        return ENVOL_ERR_INVALID_CIPHERTEXT;
    }
    if (n > dek_cap) {
        return ENVOL_ERR_BUFFER_TOO_SMALL;
    }
    for (i = 0; i < n; i++) {
        dek_out[i] = (uint8_t)(blob[6 + vlen + i] ^ FAKE_XOR);
    }
    switch (f->mode) {
    case FAKE_GARBAGE_LEN:
        *dek_len = 1000;
        break;
    case FAKE_SHORT_KEY:
        *dek_len = 16;
        break;
    case FAKE_NO_LEN:
        break;
    case FAKE_WEAK_KEY:
        memset(dek_out, 0x11, n);
        *dek_len = n;
        break;
    default:
        *dek_len = n;
        break;
    }
    return ENVOL_OK;
}

static void test_custom_callbacks(void)
{
    struct fake_kms fake;
    envol_kms_callbacks table;
    uint8_t dek[64], dek32[32], blob[ENVOL_MAX_BLOB], blob32[ENVOL_MAX_BLOB];
    size_t n = 0, n32 = 0;
    char long_principal[300];
    int calls;

    memset(&fake, 0, sizeof fake);
    table.user = &fake;
    table.generate_data_key = fake_generate;
    table.decrypt_data_key = fake_decrypt;
    table.re_encrypt = NULL;

    where("the C key service makes a data key");
    CHECK_STATUS(table.generate_data_key(table.user, "hypervisor", "fake-key", 64, VOL7, 1, dek,
                                         blob, sizeof blob, &n),
                 ENVOL_OK);
    CHECK(n == 6 + 5 + 64);

    where("envol_xts from the C service's blob");
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1), ENVOL_OK);
    CHECK(fake.calls == 2);
    CHECK(strcmp(fake.last_principal, "hypervisor") == 0 && fake.last_ctx_len == 1);
    CHECK_STATUS(envol_xts_init(&g_b, dek, 64), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));
    CHECK_STATUS(table.generate_data_key(table.user, "hypervisor", "fake-key", 32, VOL8, 1, dek32,
                                         blob32, sizeof blob32, &n32),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init_from_blob(&g_b, &table, "hypervisor", blob32, n32, VOL8, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_a, dek32, 32), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));

    where("the C service's refusals come through");
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1), ENVOL_OK);
    snapshot(&g_a);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL8, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK(unchanged(&g_a));
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "admin", blob, n, VOL7, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_DENY;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    fake.mode = FAKE_BUSY;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(unchanged(&g_a));

    where("callbacks that answer garbage are refused");
    fake.mode = FAKE_GARBAGE_LEN;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_SHORT_KEY;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_NO_LEN;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_UNKNOWN;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_WEAK_KEY;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_WEAK_KEY);
    CHECK(unchanged(&g_a));
    fake.mode = FAKE_OK;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1), ENVOL_OK);

    where("arguments refused before the callback runs");
    calls = fake.calls;
    memset(long_principal, 'p', sizeof long_principal - 1);
    long_principal[sizeof long_principal - 1] = '\0';
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, long_principal, blob, n, VOL7, 1),
                 ENVOL_ERR_INVALID_ARGUMENT);
    table.decrypt_data_key = NULL;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &table, "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_NULL_POINTER);
    table.decrypt_data_key = fake_decrypt;
    CHECK_STATUS(envol_xts_init_from_blob((envol_xts *)((uint8_t *)&g_misbuf[0] + 8), &table,
                                          "hypervisor", blob, n, VOL7, 1),
                 ENVOL_ERR_ALIGNMENT);
    CHECK(fake.calls == calls);
    CHECK(envol_xts_backend(&g_a) == envol_backend_detect()); /* still live */
}

/* ------------------------------------------------------------------------ */

static void test_null_pointers(void)
{
    static const char *const ops[] = {"kms:Decrypt"};
    static const char *const null_op[] = {NULL};
    static const uint8_t root[32] = {1};
    envol_kms_callbacks cb, no_decrypt;
    envol_local_kms *out = (envol_local_kms *)&g_misbuf[1];
    uint8_t dek[64], blob[ENVOL_MAX_BLOB], sealed[16];
    char gid[ENVOL_GRANT_ID_SIZE], line[256];
    size_t len = 4242, audit_before, count = 4242;
    uint64_t at = 4242, seq_out = 4242;
    uint32_t version = 4242;
    envol_key_state state = (envol_key_state)42;

    where("NULL handles and outputs");
    audit_before = envol_local_kms_audit_len(g_kms);
    memset(dek, 0x5a, sizeof dek);
    memset(blob, 0x5a, sizeof blob);
    memset(gid, 0x5a, sizeof gid);
    memset(line, 0x5a, sizeof line);
    memset(sealed, 0x5a, sizeof sealed);
    memset(&cb, 0x5a, sizeof cb);

    CHECK_NULL(envol_local_kms_new(NULL));
    envol_local_kms_free(NULL);

    CHECK_NULL(envol_local_kms_seal(NULL, root, sealed, sizeof sealed, &len));
    CHECK_NULL(envol_local_kms_seal(g_kms, NULL, sealed, sizeof sealed, &len));
    CHECK_NULL(envol_local_kms_seal(g_kms, root, NULL, sizeof sealed, &len));
    CHECK_NULL(envol_local_kms_seal(g_kms, root, sealed, sizeof sealed, NULL));
    CHECK_NULL(envol_local_kms_unseal(NULL, g_blob, g_blob_len, &out));
    CHECK_NULL(envol_local_kms_unseal(root, NULL, 10, &out));
    CHECK_NULL(envol_local_kms_unseal(root, g_blob, g_blob_len, NULL));

    CHECK_NULL(envol_local_kms_create_key(NULL, "admin", "k1", ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_create_key(g_kms, NULL, "k1", ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_create_key(g_kms, "admin", NULL, ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_create_key(g_kms, "admin", "k1", NULL));
    CHECK_NULL(envol_local_kms_put_key_policy(NULL, "admin", "disk-key", ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_put_key_policy(g_kms, NULL, "disk-key", ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_put_key_policy(g_kms, "admin", NULL, ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_put_key_policy(g_kms, "admin", "disk-key", NULL));

    CHECK_NULL(envol_local_kms_enable_key(NULL, "admin", "disk-key"));
    CHECK_NULL(envol_local_kms_enable_key(g_kms, NULL, "disk-key"));
    CHECK_NULL(envol_local_kms_enable_key(g_kms, "admin", NULL));
    CHECK_NULL(envol_local_kms_disable_key(NULL, "admin", "disk-key"));
    CHECK_NULL(envol_local_kms_disable_key(g_kms, NULL, "disk-key"));
    CHECK_NULL(envol_local_kms_disable_key(g_kms, "admin", NULL));
    CHECK_NULL(envol_local_kms_schedule_key_deletion(NULL, "admin", "disk-key", 7, 1, &at));
    CHECK_NULL(envol_local_kms_schedule_key_deletion(g_kms, NULL, "disk-key", 7, 1, &at));
    CHECK_NULL(envol_local_kms_schedule_key_deletion(g_kms, "admin", NULL, 7, 1, &at));
    CHECK_NULL(envol_local_kms_schedule_key_deletion(g_kms, "admin", "disk-key", 7, 1, NULL));
    CHECK_NULL(envol_local_kms_cancel_key_deletion(NULL, "admin", "disk-key"));
    CHECK_NULL(envol_local_kms_cancel_key_deletion(g_kms, NULL, "disk-key"));
    CHECK_NULL(envol_local_kms_cancel_key_deletion(g_kms, "admin", NULL));
    CHECK_NULL(envol_local_kms_rotate_key(NULL, "admin", "disk-key", &version));
    CHECK_NULL(envol_local_kms_rotate_key(g_kms, NULL, "disk-key", &version));
    CHECK_NULL(envol_local_kms_rotate_key(g_kms, "admin", NULL, &version));
    CHECK_NULL(envol_local_kms_rotate_key(g_kms, "admin", "disk-key", NULL));
    CHECK_NULL(envol_local_kms_enable_key_rotation(NULL, "admin", "disk-key", 30));
    CHECK_NULL(envol_local_kms_enable_key_rotation(g_kms, NULL, "disk-key", 30));
    CHECK_NULL(envol_local_kms_enable_key_rotation(g_kms, "admin", NULL, 30));
    CHECK_NULL(envol_local_kms_disable_key_rotation(NULL, "admin", "disk-key"));
    CHECK_NULL(envol_local_kms_disable_key_rotation(g_kms, NULL, "disk-key"));
    CHECK_NULL(envol_local_kms_disable_key_rotation(g_kms, "admin", NULL));
    CHECK_NULL(envol_local_kms_describe_key(NULL, "admin", "disk-key", &state, &version));
    CHECK_NULL(envol_local_kms_describe_key(g_kms, NULL, "disk-key", &state, &version));
    CHECK_NULL(envol_local_kms_describe_key(g_kms, "admin", NULL, &state, &version));
    CHECK_NULL(envol_local_kms_describe_key(g_kms, "admin", "disk-key", NULL, &version));
    CHECK_NULL(envol_local_kms_describe_key(g_kms, "admin", "disk-key", &state, NULL));

    CHECK_NULL(envol_local_kms_create_grant(NULL, "admin", "grant-key", "backup", ops, 1, 0, NULL,
                                            0, NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, NULL, "grant-key", "backup", ops, 1, 0, NULL,
                                            0, NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", NULL, "backup", ops, 1, 0, NULL, 0,
                                            NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", "grant-key", NULL, ops, 1, 0, NULL, 0,
                                            NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", NULL, 1, 0,
                                            NULL, 0, NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", null_op, 1, 0,
                                            NULL, 0, NULL, gid, sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 1,
                                            ENVOL_GRANT_CONTEXT_EQUALS, NULL, 1, NULL, gid,
                                            sizeof gid));
    CHECK_NULL(envol_local_kms_create_grant(g_kms, "admin", "grant-key", "backup", ops, 1, 0, NULL,
                                            0, NULL, NULL, sizeof gid));
    CHECK_NULL(envol_local_kms_retire_grant(NULL, "admin", "grant-key", "grant-x"));
    CHECK_NULL(envol_local_kms_retire_grant(g_kms, NULL, "grant-key", "grant-x"));
    CHECK_NULL(envol_local_kms_retire_grant(g_kms, "admin", NULL, "grant-x"));
    CHECK_NULL(envol_local_kms_retire_grant(g_kms, "admin", "grant-key", NULL));
    CHECK_NULL(envol_local_kms_revoke_grant(NULL, "admin", "grant-key", "grant-x"));
    CHECK_NULL(envol_local_kms_revoke_grant(g_kms, NULL, "grant-key", "grant-x"));
    CHECK_NULL(envol_local_kms_revoke_grant(g_kms, "admin", NULL, "grant-x"));
    CHECK_NULL(envol_local_kms_revoke_grant(g_kms, "admin", "grant-key", NULL));
    CHECK_NULL(envol_local_kms_grant_count(NULL, "admin", "grant-key", &count));
    CHECK_NULL(envol_local_kms_grant_count(g_kms, NULL, "grant-key", &count));
    CHECK_NULL(envol_local_kms_grant_count(g_kms, "admin", NULL, &count));
    CHECK_NULL(envol_local_kms_grant_count(g_kms, "admin", "grant-key", NULL));
    CHECK_NULL(envol_local_kms_protected_volume_count(NULL, "admin", "disk-key", &count));
    CHECK_NULL(envol_local_kms_protected_volume_count(g_kms, NULL, "disk-key", &count));
    CHECK_NULL(envol_local_kms_protected_volume_count(g_kms, "admin", NULL, &count));
    CHECK_NULL(envol_local_kms_protected_volume_count(g_kms, "admin", "disk-key", NULL));

    CHECK(envol_local_kms_audit_len(NULL) == 0);
    CHECK_NULL(envol_local_kms_audit_event_line(NULL, 0, line, sizeof line, &len));
    CHECK_NULL(envol_local_kms_audit_event_line(g_kms, 0, NULL, sizeof line, &len));
    CHECK_NULL(envol_local_kms_audit_event_line(g_kms, 0, line, sizeof line, NULL));
    CHECK_NULL(envol_local_kms_audit_head(NULL, line, sizeof line, &len));
    CHECK_NULL(envol_local_kms_audit_head(g_kms, line, sizeof line, NULL));
    CHECK_NULL(envol_local_kms_audit_range(g_kms, NULL, &seq_out));
    CHECK_NULL(envol_local_kms_audit_verify_lines(NULL, "", 0, NULL, 1));
    CHECK_NULL(envol_local_kms_set_service_policy(g_kms, NULL, ADMIN_ONLY));
    CHECK_NULL(envol_local_kms_set_service_policy(g_kms, "operator", NULL));
    CHECK_NULL(envol_local_kms_audit_verify(NULL));

    where("NULL arguments of the data-key calls");
    CHECK_NULL(envol_local_kms_generate_data_key(NULL, "hypervisor", "disk-key", 64, VOL1, 1, dek,
                                                 blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, NULL, "disk-key", 64, VOL1, 1, dek, blob,
                                                 sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, "hypervisor", NULL, 64, VOL1, 1, dek, blob,
                                                 sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, NULL, 1, dek,
                                                 blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                 NULL, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1, dek,
                                                 NULL, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1, dek,
                                                 blob, sizeof blob, NULL));
    CHECK_NULL(envol_local_kms_decrypt_data_key(NULL, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                                dek, sizeof dek, &len));
    CHECK_NULL(envol_local_kms_decrypt_data_key(g_kms, NULL, g_blob, g_blob_len, VOL1, 1, dek,
                                                sizeof dek, &len));
    CHECK_NULL(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", NULL, g_blob_len, VOL1, 1,
                                                dek, sizeof dek, &len));
    CHECK_NULL(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", g_blob, g_blob_len, NULL, 1,
                                                dek, sizeof dek, &len));
    CHECK_NULL(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                                NULL, sizeof dek, &len));
    CHECK_NULL(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                                dek, sizeof dek, NULL));
    CHECK_NULL(envol_local_kms_re_encrypt(NULL, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                          "disk-key-2", VOL1, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, NULL, g_blob, g_blob_len, VOL1, 1, "disk-key-2",
                                          VOL1, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", NULL, g_blob_len, VOL1, 1,
                                          "disk-key-2", VOL1, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, NULL, 1,
                                          "disk-key-2", VOL1, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1, NULL,
                                          VOL1, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                          "disk-key-2", NULL, 1, blob, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                          "disk-key-2", VOL1, 1, NULL, sizeof blob, &len));
    CHECK_NULL(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                          "disk-key-2", VOL1, 1, blob, sizeof blob, NULL));
    CHECK_NULL(envol_local_kms_callbacks(NULL, &cb));
    CHECK_NULL(envol_local_kms_callbacks(g_kms, NULL));

    where("NULL arguments of envol_xts_init_from_blob");
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &no_decrypt), ENVOL_OK);
    no_decrypt.decrypt_data_key = NULL;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, NULL, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_NULL_POINTER);
    snapshot(&g_a);
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);
    CHECK_NULL(envol_xts_init_from_blob(NULL, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1));
    CHECK_NULL(envol_xts_init_from_blob(&g_a, &cb, NULL, g_blob, g_blob_len, VOL1, 1));
    CHECK_NULL(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", NULL, g_blob_len, VOL1, 1));
    CHECK_NULL(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, NULL, 1));
    CHECK_NULL(
        envol_xts_init_from_blob(&g_a, &no_decrypt, "hypervisor", g_blob, g_blob_len, VOL1, 1));
    CHECK(unchanged(&g_a));

    where("outputs untouched, nothing reached the service");
    CHECK(is_filled(dek, sizeof dek, 0x5a) && is_filled(blob, sizeof blob, 0x5a));
    CHECK(is_filled(gid, sizeof gid, 0x5a) && is_filled(line, sizeof line, 0x5a));
    CHECK(is_filled(sealed, sizeof sealed, 0x5a));
    CHECK(len == 4242 && count == 4242 && at == 4242 && version == 4242 && (int)state == 42);
    CHECK(out == (envol_local_kms *)&g_misbuf[1]);
    CHECK(envol_local_kms_audit_len(g_kms) == audit_before);
}

static void test_invalid_arguments(void)
{
    static const char *const bad_policies[] = {
        "not json",
        "{}",
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Maybe\","
        "\"Principal\":{\"Envol\":\"admin\"},\"Action\":\"kms:*\"}]}",
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
        "\"Principal\":{\"Envol\":\"admin\"},\"Action\":\"kms:Fly\"}]}",
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
        "\"Principal\":{\"Envol\":\"adm\xff\"},\"Action\":\"kms:*\"}]}",
    };
    static const envol_kv dup[] = {{"volume", "vol-1"}, {"volume", "vol-2"}};
    static const envol_kv null_key[] = {{NULL, "vol-1"}};
    static const envol_kv null_value[] = {{"volume", NULL}};
    static const envol_kv empty_key[] = {{"", "x"}};
    static const envol_kv bad_utf8[] = {{"volume", "vol-\xc3\x28"}};
    static char long_key[ENVOL_MAX_CONTEXT_KEY + 2];
    static char long_value[ENVOL_MAX_CONTEXT_VALUE + 2];
    static char max_value[ENVOL_MAX_CONTEXT_VALUE + 1];
    static char keys[17][8];
    static char long_id[ENVOL_MAX_KEY_ID + 2];
    static char long_principal[ENVOL_MAX_PRINCIPAL + 2];
    envol_kv many[17], too_long[1];
    envol_kms_callbacks cb;
    uint8_t dek[64], blob[ENVOL_MAX_BLOB], bad[ENVOL_MAX_BLOB];
    size_t n = 0, i, len = 4242;

    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);

    for (i = 0; i < N(bad_policies); i++) {
        where("bad policy %d", (int)i);
        CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "new-key", bad_policies[i]),
                     ENVOL_ERR_POLICY);
        CHECK_STATUS(envol_local_kms_put_key_policy(g_kms, "admin", "disk-key", bad_policies[i]),
                     ENVOL_ERR_POLICY);
    }
    where("the old policy still holds");
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));
    CHECK(key_state("new-key", NULL) == -1);

    where("bad key ids");
    memset(long_id, 'k', sizeof long_id - 1);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", long_id, ADMIN_ONLY),
                 ENVOL_ERR_KEY_ID);
    long_id[ENVOL_MAX_KEY_ID] = '\0'; /* exactly 64: fine */
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", long_id, ADMIN_ONLY), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "bad key!", ADMIN_ONLY),
                 ENVOL_ERR_KEY_ID);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "", ADMIN_ONLY), ENVOL_ERR_KEY_ID);
    CHECK_STATUS(envol_local_kms_create_key(g_kms, "operator", "k\xff", ADMIN_ONLY),
                 ENVOL_ERR_KEY_ID);
    memset(long_id, 'k', sizeof long_id - 1);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", long_id, 64, VOL1, 1, dek,
                                                   blob, sizeof blob, &n),
                 ENVOL_ERR_KEY_ID);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            long_id, VOL1, 1, blob, sizeof blob, &n),
                 ENVOL_ERR_KEY_ID);

    where("bad principals");
    memset(long_principal, 'p', sizeof long_principal - 1);
    CHECK_STATUS(decrypt_status(long_principal, g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, long_principal, "disk-key"),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(decrypt_status("hyper\xffvisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_INVALID_ARGUMENT);
    long_principal[ENVOL_MAX_PRINCIPAL] = '\0'; /* exactly 256: fine, and denied */
    CHECK_STATUS(decrypt_status(long_principal, g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_ACCESS_DENIED);

    where("bad contexts");
    for (i = 0; i < 17; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02d", (int)i);
        many[i].key = keys[i];
        many[i].value = "v";
    }
    many[0].key = "volume";
    many[0].value = "vol-1";
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, many, 17,
                                                   dek, blob, sizeof blob, &n),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, many, 16,
                                                   dek, blob, sizeof blob, &n),
                 ENVOL_OK); /* 16 pairs are fine */
    CHECK(decrypts_to("hypervisor", blob, n, many, 16, dek, 64));
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", blob, n, many, 16), ENVOL_OK);
    snapshot(&g_a);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", blob, n, many, 17),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, dup, 2), ENVOL_ERR_CONTEXT);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, dup, 2),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, null_key, 1), ENVOL_ERR_CONTEXT);
    CHECK_STATUS(
        envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, null_key, 1),
        ENVOL_ERR_CONTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, null_value, 1),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, empty_key, 1),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, bad_utf8, 1), ENVOL_ERR_CONTEXT);
    memset(long_key, 'k', sizeof long_key - 1);
    too_long[0].key = long_key;
    too_long[0].value = "v";
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, too_long, 1), ENVOL_ERR_CONTEXT);
    memset(long_value, 'v', sizeof long_value - 1);
    too_long[0].key = "volume";
    too_long[0].value = long_value;
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, too_long, 1), ENVOL_ERR_CONTEXT);
    memset(max_value, 'v', sizeof max_value - 1);
    too_long[0].value = max_value; /* 256 bytes: a valid context, not vol-1's */
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len, too_long, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, dup, 2,
                                            "disk-key-2", VOL1, 1, blob, sizeof blob, &n),
                 ENVOL_ERR_CONTEXT);
    CHECK_STATUS(envol_local_kms_re_encrypt(g_kms, "hypervisor", g_blob, g_blob_len, VOL1, 1,
                                            "disk-key-2", null_value, 1, blob, sizeof blob, &n),
                 ENVOL_ERR_CONTEXT);
    CHECK(unchanged(&g_a));

    where("data key lengths and short buffers");
    memset(dek, 0x5a, sizeof dek);
    memset(blob, 0x5a, sizeof blob);
    len = 4242;
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 48, VOL1, 1,
                                                   dek, blob, sizeof blob, &len),
                 ENVOL_ERR_KEY_LENGTH);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 0, VOL1, 1,
                                                   dek, blob, sizeof blob, &len),
                 ENVOL_ERR_KEY_LENGTH);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                   dek, blob, 43 + 8 + 63, &len),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", g_blob, g_blob_len, VOL1,
                                                  1, dek, 32, &len),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(is_filled(dek, sizeof dek, 0x5a) && is_filled(blob, sizeof blob, 0x5a) && len == 4242);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", 64, VOL1, 1,
                                                   dek, blob, 43 + 8 + 64, &len),
                 ENVOL_OK); /* exactly enough */
    CHECK(len == 43 + 8 + 64);

    where("damaged blobs");
    len = 4242;
    CHECK_STATUS(decrypt_status("hypervisor", (const uint8_t *)"hello", 5, VOL1, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, 0, VOL1, 1), ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK_STATUS(decrypt_status("hypervisor", g_blob, g_blob_len - 1, VOL1, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    for (i = 0; i < g_blob_len; i += 7) {
        memcpy(bad, g_blob, g_blob_len);
        bad[i] ^= 0x01;
        where("damaged blob, byte %d", (int)i);
        CHECK(decrypt_status("hypervisor", bad, g_blob_len, VOL1, 1) != ENVOL_OK);
    }
    where("damaged blob through the callbacks");
    memcpy(bad, g_blob, g_blob_len);
    bad[g_blob_len - 1] ^= 0x80;
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", bad, g_blob_len, VOL1, 1),
                 ENVOL_ERR_INVALID_CIPHERTEXT);
    CHECK(unchanged(&g_a));
}

/* A sink for the audit tests: keeps lines, or fails while g_sink_fail. */
static int g_sink_fail;
static char g_sink_text[1 << 16];
static size_t g_sink_len;
static unsigned g_sink_calls;

static int test_sink(void *user, const char *line, size_t len)
{
    CHECK(user == &g_sink_calls);
    CHECK(strlen(line) == len);
    g_sink_calls++;
    if (g_sink_fail || g_sink_len + len + 1 > sizeof g_sink_text) {
        return 1;
    }
    memcpy(g_sink_text + g_sink_len, line, len);
    g_sink_text[g_sink_len + len] = '\n';
    g_sink_len += len + 1;
    return 0;
}

static void test_audit(void)
{
    static char line[1024], head[ENVOL_AUDIT_HEAD_SIZE], cut_head[ENVOL_AUDIT_HEAD_SIZE];
    static char text[1 << 16];
    size_t count, len = 0, need = 0, kept;
    uint64_t first = 99, next = 99, seq;
    int found_admin = 0, found_escaped = 0;
    uint32_t versions = 0;
    const char *h;
    char *p;

    where("audit log");
    /* A refused call by a principal with characters that need escaping. */
    CHECK_STATUS(decrypt_status("eve the=bad", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_ERR_ACCESS_DENIED);
    count = envol_local_kms_audit_len(g_kms);
    CHECK(count > 50);
    CHECK_STATUS(envol_local_kms_audit_range(g_kms, &first, &next), ENVOL_OK);
    CHECK(first == 0 && next == count);
    for (seq = first; seq < next; seq++) {
        where("audit line %d", (int)seq);
        if (envol_local_kms_audit_event_line(g_kms, seq, line, sizeof line, &len) != ENVOL_OK) {
            CHECK(0);
            continue;
        }
        CHECK(len == strlen(line) && len > 0);
        CHECK(strncmp(line, "seq=", 4) == 0 && strchr(line, '\n') == NULL);
        h = strstr(line, " hash=");
        CHECK(h != NULL && strlen(h) == 6 + 64);
        CHECK(strstr(line, " prev=") != NULL);
        if (strstr(line, " principal=admin ") != NULL &&
            strstr(line, " action=kms:Decrypt ") != NULL &&
            strstr(line, " key=disk-key ") != NULL &&
            strstr(line, " context={volume=vol-1} ") != NULL &&
            strstr(line, " outcome=ENVOL_ERR_ACCESS_DENIED ") != NULL) {
            found_admin++;
        }
        if (strstr(line, " principal=eve\\x20the\\x3dbad ") != NULL) {
            found_escaped++;
        }
    }
    where("audit content");
    CHECK(found_admin >= 1);
    CHECK(found_escaped == 1);
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 0, line, sizeof line, &len), ENVOL_OK);
    CHECK(strncmp(line, "seq=0 time=", 11) == 0);
    CHECK(strstr(line, " principal=operator action=kms:CreateKey key=disk-key context={} "
                       "outcome=ENVOL_ERR_ACCESS_DENIED prev=00000000") != NULL);
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 1, line, sizeof line, &len), ENVOL_OK);
    CHECK(strstr(line, " principal=operator action=kms:PutServicePolicy key= context={} "
                       "outcome=ENVOL_OK ") != NULL);

    where("audit line size queries");
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 0, NULL, 0, &need),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 0, line, sizeof line, &len), ENVOL_OK);
    CHECK(need == strlen(line) + 1);
    memset(line, 0x5a, sizeof line);
    len = 4242;
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 0, line, need - 1, &len),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == need && is_filled(line, sizeof line, 0x5a));
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, 0, line, need, &len), ENVOL_OK);
    CHECK(len == need - 1 && line[len] == '\0' && (uint8_t)line[need] == 0x5a);
    len = 4242;
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, next, line, sizeof line, &len),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK(len == 4242);

    where("audit chain");
    CHECK_STATUS(envol_local_kms_audit_verify(g_kms), ENVOL_OK);
    CHECK(envol_local_kms_audit_len(g_kms) == count); /* reading is not audited */

    where("the whole window as text verifies offline, against the head");
    p = text;
    for (seq = first; seq < next; seq++) {
        CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, seq, p, sizeof text - (size_t)(p - text), &len),
                     ENVOL_OK);
        p += len;
        *p++ = '\n';
    }
    CHECK_STATUS(envol_local_kms_audit_head(g_kms, head, sizeof head, &len), ENVOL_OK);
    CHECK(strncmp(head, "seq=", 4) == 0 && len == strlen(head));
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, (size_t)(p - text), head, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, (size_t)(p - text), NULL, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, (size_t)(p - text), "seq=1", 1),
                 ENVOL_ERR_INVALID_ARGUMENT);
    /* Cut the last line: it still chains, but no longer reaches the head. */
    kept = (size_t)(p - text) - 1;
    while (kept > 0 && text[kept - 1] != '\n') {
        kept--;
    }
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, kept, NULL, 1), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, kept, head, 1),
                 ENVOL_ERR_AUDIT_FAILED);
    /* An edited line (the escaped principal renamed) fails its MAC. */
    h = strstr(text, "eve\\x20the");
    CHECK(h != NULL);
    if (h != NULL) {
        text[h - text] = 'E';
        CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, (size_t)(p - text), NULL, 1),
                     ENVOL_ERR_AUDIT_FAILED);
        text[h - text] = 'e';
    }

    where("a failing sink refuses management calls and changes nothing");
    CHECK_STATUS(envol_local_kms_set_audit_sink(g_kms, test_sink, &g_sink_calls), ENVOL_OK);
    g_sink_fail = 1;
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key"), ENVOL_ERR_AUDIT_FAILED);
    CHECK_STATUS(envol_local_kms_put_key_policy(g_kms, "admin", "disk-key", ADMIN_ONLY),
                 ENVOL_ERR_AUDIT_FAILED);
    CHECK_STATUS(envol_local_kms_rotate_key(g_kms, "admin", "disk-key", &versions),
                 ENVOL_ERR_AUDIT_FAILED);
    CHECK(g_sink_calls == 3 && g_sink_len == 0);
    g_sink_fail = 0;
    CHECK(key_state("disk-key", &versions) == ENVOL_KEY_ENABLED && versions == 2);
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));
    CHECK_STATUS(envol_local_kms_audit_range(g_kms, &first, &next), ENVOL_OK);
    CHECK(next == count + 2); /* the two calls just made, nothing refused by the sink */

    where("the sink's lines continue the chain and verify against the new head");
    CHECK(g_sink_len > 0 && g_sink_text[g_sink_len - 1] == '\n');
    memcpy(p, g_sink_text, g_sink_len);
    CHECK_STATUS(envol_local_kms_audit_head(g_kms, cut_head, sizeof cut_head, &len), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, text, (size_t)(p - text) + g_sink_len,
                                                    cut_head, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_audit_verify_lines(g_kms, g_sink_text, g_sink_len, cut_head, 0),
                 ENVOL_OK);
    CHECK_STATUS(envol_local_kms_set_audit_sink(g_kms, NULL, NULL), ENVOL_OK);
}

static void test_seal(void)
{
    uint8_t root[32], wrong[32], *sealed, *damaged;
    envol_local_kms *opened = (envol_local_kms *)&g_misbuf[1];
    envol_kms_callbacks cb;
    size_t need = 0, len = 0, i, events_before;
    uint32_t versions = 0;
    size_t count = 99;
    char line[1024], expect[32];

    for (i = 0; i < 32; i++) {
        root[i] = (uint8_t)(i * 13 + 1);
        wrong[i] = root[i];
    }
    wrong[31] ^= 1;

    where("seal: size query and short buffer");
    CHECK_STATUS(envol_local_kms_seal(g_kms, root, NULL, 0, &need), ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 100);
    sealed = (uint8_t *)malloc(need + 1);
    damaged = (uint8_t *)malloc(need + 1);
    if (sealed == NULL || damaged == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(sealed, 0x5a, need + 1);
    len = 4242;
    CHECK_STATUS(envol_local_kms_seal(g_kms, root, sealed, need - 1, &len),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == need && is_filled(sealed, need + 1, 0x5a));

    where("seal");
    CHECK_STATUS(envol_local_kms_seal(g_kms, root, sealed, need + 1, &len), ENVOL_OK);
    CHECK(len == need && memcmp(sealed, "EVKS", 4) == 0 && sealed[need] == 0x5a);
    {
        uint64_t first = 0, next = 0;
        CHECK_STATUS(envol_local_kms_audit_range(g_kms, &first, &next), ENVOL_OK);
        events_before = (size_t)next;
    }
    envol_local_kms_free(g_kms);
    g_kms = NULL;

    where("unseal with the wrong root key, or damaged");
    CHECK_STATUS(envol_local_kms_unseal(wrong, sealed, len, &opened), ENVOL_ERR_SEALED_STORE);
    memcpy(damaged, sealed, len);
    damaged[len / 2] ^= 0x04;
    CHECK_STATUS(envol_local_kms_unseal(root, damaged, len, &opened), ENVOL_ERR_SEALED_STORE);
    CHECK_STATUS(envol_local_kms_unseal(root, sealed, len - 1, &opened), ENVOL_ERR_SEALED_STORE);
    CHECK_STATUS(envol_local_kms_unseal(root, sealed, 0, &opened), ENVOL_ERR_SEALED_STORE);
    CHECK_STATUS(envol_local_kms_unseal(root, (const uint8_t *)"hello", 5, &opened),
                 ENVOL_ERR_SEALED_STORE);
    memcpy(damaged, sealed, len);
    damaged[4] = 99; /* a format version nobody wrote */
    CHECK_STATUS(envol_local_kms_unseal(root, damaged, len, &opened), ENVOL_ERR_SEALED_STORE);
    CHECK(opened == (envol_local_kms *)&g_misbuf[1]);

    where("unseal with the same root key");
    CHECK_STATUS(envol_local_kms_unseal(root, sealed, len, &opened), ENVOL_OK);
    CHECK(opened != NULL && opened != (envol_local_kms *)&g_misbuf[1]);
    g_kms = opened;
    CHECK(envol_local_kms_audit_len(g_kms) == 0);
    CHECK(decrypts_to("hypervisor", g_blob, g_blob_len, VOL1, 1, g_dek, 64));
    CHECK_STATUS(envol_local_kms_callbacks(g_kms, &cb), ENVOL_OK);
    CHECK_STATUS(envol_xts_init_from_blob(&g_a, &cb, "hypervisor", g_blob, g_blob_len, VOL1, 1),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_b, g_dek, 64), ENVOL_OK);
    CHECK(same_engine(&g_a, &g_b));
    CHECK_STATUS(decrypt_status("admin", g_blob, g_blob_len, VOL1, 1), ENVOL_ERR_ACCESS_DENIED);
    CHECK(key_state("disk-key", &versions) == ENVOL_KEY_ENABLED && versions == 2);
    CHECK(key_state("grant-key", NULL) == ENVOL_KEY_ENABLED);
    CHECK_STATUS(envol_local_kms_grant_count(g_kms, "admin", "grant-key", &count), ENVOL_OK);
    CHECK(count == 0);

    where("the audit chain continues across sealing");
    CHECK_STATUS(envol_local_kms_audit_event_line(g_kms, events_before, line, sizeof line, &len),
                 ENVOL_OK);
    snprintf(expect, sizeof expect, "seq=%lu ", (unsigned long)events_before);
    CHECK(strncmp(line, expect, strlen(expect)) == 0);
    CHECK_STATUS(envol_local_kms_audit_verify(g_kms), ENVOL_OK);

    free(sealed);
    free(damaged);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    printf("envol %s, auto backend: %s\n", envol_version(),
           envol_backend_name(envol_backend_detect()));

    run("names", test_names);
    run("least privilege", test_least_privilege);
    if (g_kms == NULL) {
        printf("no key service; giving up\n%d passed, %d failed\n", g_passed, g_failed + 1);
        return 1;
    }
    run("grants", test_grants);
    run("re-encrypt", test_re_encrypt);
    run("C key service", test_custom_callbacks);
    run("NULL pointers", test_null_pointers);
    run("invalid arguments", test_invalid_arguments);
    run("audit", test_audit);
    run("seal", test_seal);

    envol_local_kms_free(g_kms);
    envol_xts_wipe(&g_a);
    envol_xts_wipe(&g_b);

    return check_summary();
}
