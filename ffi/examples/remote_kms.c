/*
 * remote_kms.c - a hypervisor's volume lifecycle with the master keys in AWS
 * KMS (or a compatible endpoint), inside a PKCS#11 HSM or on a KMIP key
 * server, through envol's C
 * ABI: create a volume, write, detach, attach (the data key unwrapped by the
 * service, or by the cache in front of it), read back, rewrap under a second
 * master key, detach, attach, read back.
 *
 * Build (from the workspace root; the `remote` feature adds the services):
 *
 *   cargo build --release -p envol-ffi --features remote
 *   cc -std=c99 -Wall -Wextra -Werror -Iffi/include ffi/examples/remote_kms.c \
 *       target/release/libenvol.a -lpthread -ldl -lm -o remote_kms
 *
 * AWS KMS: the usual AWS environment (or ~/.aws files) says where and who:
 *
 *   AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
 *   [AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5000] \
 *   ENVOL_KMS=aws ENVOL_KEY_ID=<key id or alias> ENVOL_KEY_ID_2=<another> \
 *   ./remote_kms
 *
 * PKCS#11 (SoftHSM2 here; any module path works):
 *
 *   softhsm2-util --init-token --free --label envol --so-pin 12345678 --pin 1234
 *   ENVOL_KMS=pkcs11 ENVOL_PKCS11_TOKEN=envol ENVOL_PKCS11_PIN=1234 \
 *   [ENVOL_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so] [ENVOL_CREATE_KEYS=1] \
 *   ENVOL_KEY_ID=disk-key ENVOL_KEY_ID_2=disk-key-2 ./remote_kms
 *
 * KMIP (a key server that accepts this client's certificate; TLS 1.2+):
 *
 *   ENVOL_KMS=kmip ENVOL_KMIP_ADDRESS=kms.example:5696 ENVOL_KMIP_CA=ca.pem \
 *   ENVOL_KMIP_CERT=client.pem ENVOL_KMIP_KEY=client.key [ENVOL_CREATE_KEYS=1] \
 *   ENVOL_KEY_ID=disk-key ENVOL_KEY_ID_2=disk-key-2 ./remote_kms
 *
 * (ENVOL_CREATE_KEYS=1 creates the two master keys in the token or on the
 * KMIP server first.)
 * Exit status 0 only if every step behaved as expected.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envol.h"

#define SECTOR 4096u
#define SECTORS 16u
#define DISK_SIZE ((size_t)ENVOL_DEFAULT_DATA_OFFSET + SECTORS * SECTOR)

static uint8_t g_disk[DISK_SIZE];
static uint8_t g_data[4 * SECTOR];
static uint8_t g_back[4 * SECTOR];
static envol_volume g_vol;
static int g_failures;

static void expect_status(envol_status got, envol_status want, const char *what)
{
    if (got != want) {
        g_failures++;
        printf("    UNEXPECTED: %s gave %s, expected %s\n", what, envol_status_name(got),
               envol_status_name(want));
    } else {
        printf("    %s: %s\n", what, envol_status_name(got));
    }
}

static void expect(int ok, const char *what)
{
    if (!ok) {
        g_failures++;
        printf("    UNEXPECTED: %s\n", what);
    }
}

/* The block device: memory. */
static int mem_read(void *user, uint64_t offset, uint8_t *buf, size_t len)
{
    (void)user;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) {
        return 5;
    }
    memcpy(buf, g_disk + offset, len);
    return 0;
}

static int mem_write(void *user, uint64_t offset, const uint8_t *buf, size_t len)
{
    (void)user;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) {
        return 5;
    }
    memcpy(g_disk + offset, buf, len);
    return 0;
}

static int mem_flush(void *user)
{
    (void)user;
    return 0;
}

static int contains(const uint8_t *hay, size_t hay_len, const char *needle, size_t n)
{
    size_t i;
    for (i = 0; i + n <= hay_len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : fallback;
}

int main(void)
{
    const char *which = env_or("ENVOL_KMS", "");
    const char *key1 = env_or("ENVOL_KEY_ID", NULL);
    const char *key2 = env_or("ENVOL_KEY_ID_2", NULL);
    envol_remote_kms *kms = NULL;
    envol_kms_callbacks cb;
    envol_block_device dev = {NULL, mem_read, mem_write, mem_flush};
    envol_volume_params params;
    char key_id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int attached = 0;
    size_t i;
    envol_status st;

    if (key1 == NULL || key2 == NULL) {
        fprintf(stderr, "set ENVOL_KEY_ID and ENVOL_KEY_ID_2 (see the comment at the top)\n");
        return 2;
    }
    if (strcmp(which, "aws") == 0) {
        /* NULL: everything from the AWS environment; a struct overrides. */
        envol_aws_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.timeout_ms = 5000;
        cfg.max_attempts = 4;
        st = envol_aws_kms_new(&cfg, &kms);
        printf("[1] AWS KMS at %s\n", env_or("AWS_ENDPOINT_URL_KMS",
                                            env_or("AWS_ENDPOINT_URL", "the region's endpoint")));
    } else if (strcmp(which, "pkcs11") == 0) {
        st = envol_pkcs11_kms_new(getenv("ENVOL_PKCS11_MODULE"), env_or("ENVOL_PKCS11_TOKEN", "envol"),
                                  env_or("ENVOL_PKCS11_PIN", ""), &kms);
        printf("[1] PKCS#11 token `%s`\n", env_or("ENVOL_PKCS11_TOKEN", "envol"));
        if (st == ENVOL_OK && getenv("ENVOL_CREATE_KEYS") != NULL) {
            expect_status(envol_pkcs11_kms_create_key(kms, key1), ENVOL_OK, "create master key 1");
            expect_status(envol_pkcs11_kms_create_key(kms, key2), ENVOL_OK, "create master key 2");
        }
    } else if (strcmp(which, "kmip") == 0) {
        /* NULL: everything from ENVOL_KMIP_*; a struct overrides. */
        st = envol_kmip_kms_new(NULL, &kms);
        printf("[1] KMIP server at %s\n", env_or("ENVOL_KMIP_ADDRESS", "(unset)"));
        if (st == ENVOL_OK && getenv("ENVOL_CREATE_KEYS") != NULL) {
            expect_status(envol_kmip_kms_create_key(kms, key1), ENVOL_OK, "create master key 1");
            expect_status(envol_kmip_kms_create_key(kms, key2), ENVOL_OK, "create master key 2");
        }
    } else {
        fprintf(stderr, "set ENVOL_KMS to aws, pkcs11 or kmip\n");
        return 2;
    }
    expect_status(st, ENVOL_OK, "connect");
    if (st != ENVOL_OK) {
        return 1;
    }
    /* A boot storm does not hammer the service: keys unwrapped in the last
     * minute are reused for up to 100 attaches, at most 64 held. */
    expect_status(envol_remote_kms_enable_cache(kms, 60000, 100, 64), ENVOL_OK, "data-key cache");
    expect_status(envol_remote_kms_callbacks(kms, &cb), ENVOL_OK, "callback table");

    printf("[2] create a volume under `%s`, write, detach\n", key1);
    memset(&params, 0, sizeof params);
    params.cipher = ENVOL_CIPHER_AES_XTS_256;
    params.sector_size = SECTOR;
    params.data_offset = ENVOL_DEFAULT_DATA_OFFSET;
    params.volume_size = (uint64_t)SECTORS * SECTOR;
    for (i = 0; i < 16; i++) {
        params.volume_id[i] = (uint8_t)(0x40 + i * 7);
    }
    for (i = 0; i < sizeof g_data; i++) {
        g_data[i] = (uint8_t)"remote guest data "[i % 18];
    }
    expect_status(envol_volume_create(&g_vol, &dev, &cb, "hypervisor", key1, &params), ENVOL_OK,
                  "envol_volume_create");
    expect_status(envol_volume_write(&g_vol, 2, g_data, sizeof g_data), ENVOL_OK, "write 4 sectors");
    expect_status(envol_volume_detach(&g_vol), ENVOL_OK, "detach (data key wiped)");
    expect(!contains(g_disk, sizeof g_disk, "remote guest", 12), "no plaintext on the disk");
    envol_volume_close(&g_vol);

    printf("[3] start again: open, attach (unwrap through the service), read back\n");
    expect_status(envol_volume_open(&g_vol, &dev, &cb), ENVOL_OK, "envol_volume_open");
    expect_status(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK, "attach");
    expect_status(envol_volume_read(&g_vol, 2, g_back, sizeof g_back), ENVOL_OK, "read");
    expect(memcmp(g_back, g_data, sizeof g_data) == 0, "data read back");

    printf("[4] rewrap under `%s` (the service re-encrypts; data untouched)\n", key2);
    expect_status(envol_volume_rewrap(&g_vol, "hypervisor", key2), ENVOL_OK, "rewrap");
    expect_status(envol_volume_info(&g_vol, &params, &seq, key_id, &attached), ENVOL_OK, "info");
    printf("    header names `%s`, sequence %llu\n", key_id, (unsigned long long)seq);
    expect(seq == 2 && attached == 1, "rewrapped header, still attached");
    expect_status(envol_volume_detach(&g_vol), ENVOL_OK, "detach");
    expect_status(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK, "attach under the new key");
    memset(g_back, 0, sizeof g_back);
    expect_status(envol_volume_read(&g_vol, 2, g_back, sizeof g_back), ENVOL_OK, "read");
    expect(memcmp(g_back, g_data, sizeof g_data) == 0, "data read back after rewrap");
    envol_volume_close(&g_vol);

    printf("[5] a damaged header is refused before any key is asked for\n");
    {
        /* One byte flipped in both header copies: the checksum refuses. */
        static uint8_t saved[ENVOL_HEADERS_SIZE];
        memcpy(saved, g_disk, sizeof saved);
        g_disk[100] ^= 1;
        g_disk[ENVOL_HEADERS_SIZE / 2 + 100] ^= 1;
        st = envol_volume_open(&g_vol, &dev, &cb);
        expect(st != ENVOL_OK, "damaged headers refused");
        printf("    open: %s\n", envol_status_name(st));
        memcpy(g_disk, saved, sizeof saved);
    }

    envol_remote_kms_free(kms);
    if (g_failures != 0) {
        printf("\n%d step(s) did not behave as expected\n", g_failures);
        return 1;
    }
    printf("\ndone: every step behaved as expected\n");
    return 0;
}
