/*
 * volume_test.c - tests of the volume part of envol's C ABI (envol.h).
 *
 * Built and run by `cargo test -p envol-ffi` (test `c_abi_tests_pass` in
 * ffi/src/tests.rs), once plain and once under ASan + UBSan:
 *
 *   gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -Iffi/include \
 *       ffi/tests/volume_test.c target/ctest/release/libenvol.a \
 *       -lpthread -ldl -lm -o target/ctest/volume_test
 *
 * Covers, through C only, over an in-memory block device written in C (with
 * fault injection: failing and torn reads, writes and flushes) and the
 * reference key service (envol_local_kms) or key services written in C:
 * the high level (envol_volume_*: create, open with repair, attach, read,
 * write through the bounce buffer without touching the caller's buffer,
 * flush, rewrap, detach, retire, close, info, backend) in every state and
 * with every NULL pointer; sectors out of range and partial sector lengths;
 * header damage (one copy, both copies, bad magic, version, flags,
 * malformed fields, tampering with the checksum fixed up); refusals by the
 * key service (wrong principal, disabled key, unknown key) and by a C key
 * service that misbehaves; device callbacks that fail, with the volume still
 * usable; a rewrap torn at several byte offsets of each of its two header
 * writes, after which the volume opens with the old or the new key id and
 * reads back its data; the low level (envol_header_check / _parse /
 * _context / _unwrap / _build) agreeing with the high level, including a
 * volume made by hand from a key service's data key; 128-bit keys and
 * sector sizes 512, 4096 and 65536; the key schedule gone from the struct
 * after detach, and from the stack below the caller after envol_xts_init,
 * envol_header_unwrap, attach, rewrap, detach, retire and wipe (the plain
 * build scans it; ASan moves frames, so its build says it did not);
 * outputs untouched on error.
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

#include "envol.h"

#include "check.h"


/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4), to fix up header checksums after editing a field    */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64], v[8], t1, t2;
    int i;
    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof v);
    for (i = 0; i < 64; i++) {
        uint32_t e = v[4], a = v[0];
        t1 = v[7] + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & v[5]) ^ (~e & v[6])) +
             K256[i] + w[i];
        t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) +
             ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
        v[7] = v[6];
        v[6] = v[5];
        v[5] = v[4];
        v[4] = v[3] + t1;
        v[3] = v[2];
        v[2] = v[1];
        v[1] = v[0];
        v[0] = t1 + t2;
    }
    for (i = 0; i < 8; i++) {
        h[i] += v[i];
    }
}

static void sha256(const uint8_t *m, size_t len, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t tail[128];
    uint64_t bits = (uint64_t)len * 8;
    size_t i, n;
    while (len >= 64) {
        sha256_block(h, m);
        m += 64;
        len -= 64;
    }
    memset(tail, 0, sizeof tail);
    memcpy(tail, m, len);
    tail[len] = 0x80;
    n = len + 9 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++) {
        tail[n - 1 - i] = (uint8_t)(bits >> (8 * i));
    }
    sha256_block(h, tail);
    if (n == 128) {
        sha256_block(h, tail + 64);
    }
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* ------------------------------------------------------------------------ */
/* Header bytes (see core/src/header.rs for the layout)                      */

#define H_VERSION 8
#define H_FLAGS 10
#define H_LENGTH 12
#define H_SEQUENCE 16
#define H_STATE 26
#define H_SECTOR 28
#define H_ID 48

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Recomputes the checksum of the header copy in `slot` (the last 32 bytes
 * of the copy: SHA-256 of everything before them), as an attacker with
 * write access to the disk could. */
static void reseal(uint8_t *slot)
{
    uint32_t total = le32(slot + H_LENGTH);
    if (total >= 64 && total <= ENVOL_HEADER_SLOT_SIZE) {
        sha256(slot, total - 32, slot + total - 32);
    }
}

/* ------------------------------------------------------------------------ */
/* An in-memory block device with fault injection                            */

typedef struct memdev {
    uint8_t *bytes;
    size_t size;
    int fail_read;  /* > 0: the fail_read-th read from now fails */
    int fail_write; /* > 0: the fail_write-th write from now fails ... */
    size_t torn;    /* ... after its first `torn` bytes landed */
    int fail_flush; /* > 0: the fail_flush-th flush from now fails */
    int rc;         /* what failing calls return */
    unsigned reads, writes, flushes;
    size_t max_write;
    int bad_calls; /* zero-length or out-of-bounds requests */
    uint8_t failed_write[ENVOL_HEADER_SLOT_SIZE]; /* what the failing write held */
} memdev;

static int md_read(void *user, uint64_t off, uint8_t *buf, size_t len)
{
    memdev *d = (memdev *)user;
    d->reads++;
    if (len == 0 || buf == NULL || off > d->size || len > d->size - off) {
        d->bad_calls++;
        return 34;
    }
    if (d->fail_read > 0 && --d->fail_read == 0) {
        return d->rc;
    }
    memcpy(buf, d->bytes + off, len);
    return 0;
}

static int md_write(void *user, uint64_t off, const uint8_t *buf, size_t len)
{
    memdev *d = (memdev *)user;
    d->writes++;
    if (len == 0 || buf == NULL || off > d->size || len > d->size - off) {
        d->bad_calls++;
        return 34;
    }
    if (len > d->max_write) {
        d->max_write = len;
    }
    if (d->fail_write > 0 && --d->fail_write == 0) {
        size_t n = d->torn < len ? d->torn : len;
        memcpy(d->bytes + off, buf, n);
        memset(d->failed_write, 0, sizeof d->failed_write);
        memcpy(d->failed_write, buf, len < sizeof d->failed_write ? len : sizeof d->failed_write);
        return d->rc;
    }
    memcpy(d->bytes + off, buf, len);
    return 0;
}

static int md_flush(void *user)
{
    memdev *d = (memdev *)user;
    d->flushes++;
    if (d->fail_flush > 0 && --d->fail_flush == 0) {
        return d->rc;
    }
    return 0;
}

/* The disk: big enough for a 64 KiB-sector volume at offset 64 KiB. */
#define DISK_MAX (1u << 20)
static uint8_t g_disk[DISK_MAX];
static uint8_t g_disk_copy[DISK_MAX];
static memdev g_md;

/* Resets the device to `size` zero bytes, no faults armed. */
static void md_reset(memdev *d, uint8_t *bytes, size_t size)
{
    memset(d, 0, sizeof *d);
    d->bytes = bytes;
    d->size = size;
    d->rc = 5; /* EIO */
    memset(bytes, 0, size);
}

static envol_block_device dev_of(memdev *d)
{
    envol_block_device t;
    t.user = d;
    t.read_at = md_read;
    t.write_at = md_write;
    t.flush = md_flush;
    return t;
}

/* ------------------------------------------------------------------------ */
/* Key service, volumes, shared state                                        */

/* The seed's least-privilege policy (core/examples/lifecycle.rs). */
/* Who may create keys: the operator. */
static const char SERVICE_POLICY[] =
    "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Envol\":\"operator\"},"
    "\"Action\":\"kms:CreateKey\"}}";

static const char LEAST_PRIVILEGE[] =
    "{\"Version\": \"2012-10-17\", \"Statement\": ["
    "{\"Effect\": \"Allow\", \"Principal\": {\"Envol\": \"hypervisor\"},"
    " \"Action\": [\"kms:GenerateDataKey*\", \"kms:Decrypt\", \"kms:ReEncrypt*\"],"
    " \"Condition\": {\"StringLike\": {\"kms:EncryptionContext:volume\": \"vol-*\"}}},"
    "{\"Effect\": \"Allow\", \"Principal\": {\"Envol\": \"admin\"}, \"Action\": \"kms:*\"},"
    "{\"Effect\": \"Deny\", \"Principal\": {\"Envol\": \"admin\"},"
    " \"Action\": [\"kms:Decrypt\", \"kms:GenerateDataKey*\", \"kms:ReEncrypt*\","
    " \"kms:Encrypt\"]}]}";

static envol_local_kms *g_kms;
static envol_kms_callbacks g_cb; /* the local service's table */

/* Volumes: the ENVOL_ALIGNED(64) type makes these 64-byte aligned. Static,
 * so they start zeroed (empty). */
static envol_volume g_vol;
static envol_volume g_vol2;
static envol_volume g_misbuf[2];
static uint8_t g_snap[ENVOL_VOLUME_SIZE];
static envol_xts g_ctx;
static envol_xts g_ctx2;
/* Another key of the same size: what the contexts share with it (the
 * backend's tag, the round count) is not key material. */
static envol_xts g_other;
static uint8_t g_ctx_snap[ENVOL_XTS_SIZE];

/* The usual test volume: 512 sectors of 512 bytes at byte 8192. */
#define SS 512u
#define NSECT 512u
#define DOFF 8192u
#define DISK_SIZE (DOFF + SS * NSECT)

static uint8_t g_data[SS * NSECT];
static uint8_t g_copy[SS * NSECT];
static uint8_t g_back[SS * NSECT];
static uint8_t g_raw[SS * NSECT];

static const char SECRET[] = "Dear guest, this is your secret data. ";

static envol_volume_params params_of(uint32_t cipher, uint32_t ss, uint64_t doff,
                                     uint64_t vsize, uint8_t id)
{
    envol_volume_params p;
    int i;
    memset(&p, 0, sizeof p);
    p.cipher = cipher;
    p.sector_size = ss;
    p.data_offset = doff;
    p.volume_size = vsize;
    for (i = 0; i < 16; i++) {
        p.volume_id[i] = (uint8_t)(id + i * 17);
    }
    return p;
}

/* The id of the usual volume: a new one for every make_std_volume, since
 * retired volumes' ids stay tombstoned in the key service. */
static uint8_t g_std_id = 0x42;

static envol_volume_params std_params(void)
{
    return params_of(ENVOL_CIPHER_AES_XTS_256, SS, DOFF, (uint64_t)SS * NSECT, g_std_id);
}

static void fill_data(uint8_t *buf, size_t len, unsigned salt)
{
    size_t i;
    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)(SECRET[(i + salt) % (sizeof SECRET - 1)]);
    }
}

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

/* 1 if the needle occurs in the haystack. */
static int contains(const uint8_t *hay, size_t hay_len, const void *needle, size_t n)
{
    size_t i;
    if (n == 0 || n > hay_len) {
        return 0;
    }
    for (i = 0; i + n <= hay_len; i++) {
        if (hay[i] == *(const uint8_t *)needle && memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static void snap_vol(const envol_volume *v)
{
    memcpy(g_snap, v, sizeof g_snap);
}

static int vol_unchanged(const envol_volume *v)
{
    return memcmp(g_snap, v, sizeof g_snap) == 0;
}

/* The key id, sequence and attached flag of a volume; 1 on success. */
static int vol_info(const envol_volume *v, char *key_id, uint64_t *seq, int *attached)
{
    envol_volume_params p;
    char id[ENVOL_MAX_KEY_ID + 1];
    uint64_t s = 0;
    int a = -1;
    if (envol_volume_info(v, &p, &s, id, &a) != ENVOL_OK) {
        return 0;
    }
    if (key_id != NULL) {
        memcpy(key_id, id, sizeof id);
    }
    if (seq != NULL) {
        *seq = s;
    }
    if (attached != NULL) {
        *attached = a;
    }
    return 1;
}

static int key_is(const envol_volume *v, const char *want)
{
    char id[ENVOL_MAX_KEY_ID + 1];
    return vol_info(v, id, NULL, NULL) && strcmp(id, want) == 0;
}

/* Creates the usual volume on a fresh g_md, attached in g_vol, and writes
 * g_data (all sectors); 1 on success. */
static int make_std_volume(const char *key_id)
{
    envol_block_device dev = dev_of(&g_md);
    envol_volume_params p;
    g_std_id++;
    p = std_params();
    envol_volume_close(&g_vol);
    md_reset(&g_md, g_disk, DISK_SIZE);
    fill_data(g_data, sizeof g_data, 0);
    return envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", key_id, &p) == ENVOL_OK &&
           envol_volume_write(&g_vol, 0, g_data, sizeof g_data) == ENVOL_OK &&
           envol_volume_flush(&g_vol) == ENVOL_OK;
}

/* Opens the device g_md in `v` and attaches as hypervisor; 1 on success. */
static int reopen(envol_volume *v)
{
    envol_block_device dev = dev_of(&g_md);
    envol_volume_close(v);
    return envol_volume_open(v, &dev, &g_cb) == ENVOL_OK &&
           envol_volume_attach(v, "hypervisor") == ENVOL_OK;
}

/* ------------------------------------------------------------------------ */
/* A key service written in C that misbehaves on request                     */

typedef struct fake_kms {
    int mode; /* 0: short key, 1: unknown status, 2: garbage blob */
    unsigned calls;
} fake_kms;

static envol_status fake_generate(void *user, const char *principal, const char *key_id,
                                  size_t dek_len, const envol_kv *ctx, size_t ctx_len,
                                  uint8_t *dek_out, uint8_t *blob_out, size_t blob_cap,
                                  size_t *blob_len)
{
    fake_kms *f = (fake_kms *)user;
    size_t i;
    (void)principal;
    (void)key_id;
    (void)ctx;
    (void)ctx_len;
    f->calls++;
    for (i = 0; i < dek_len; i++) {
        dek_out[i] = (uint8_t)(i + 1);
    }
    if (f->mode == 1) {
        return (envol_status)777;
    }
    memset(blob_out, 0xb0, blob_cap < 100 ? blob_cap : 100);
    *blob_len = blob_cap < 100 ? blob_cap : 100;
    return ENVOL_OK;
}

static envol_status fake_decrypt(void *user, const char *principal, const uint8_t *blob,
                                 size_t blob_len, const envol_kv *ctx, size_t ctx_len,
                                 uint8_t *dek_out, size_t dek_cap, size_t *dek_len)
{
    fake_kms *f = (fake_kms *)user;
    size_t i;
    (void)principal;
    (void)blob;
    (void)blob_len;
    (void)ctx;
    (void)ctx_len;
    f->calls++;
    if (f->mode == 1) {
        return (envol_status)777;
    }
    for (i = 0; i < dek_cap && i < 32; i++) {
        dek_out[i] = (uint8_t)(i + 1);
    }
    *dek_len = 32; /* an AES-128 key, whatever the volume's cipher */
    return ENVOL_OK;
}

/* ------------------------------------------------------------------------ */
/* Groups                                                                    */

static void test_basics(void)
{
    static const envol_status statuses[] = {
        ENVOL_ERR_IO,
        ENVOL_ERR_HEADER_BAD_MAGIC,
        ENVOL_ERR_HEADER_VERSION,
        ENVOL_ERR_HEADER_FLAGS,
        ENVOL_ERR_HEADER_CORRUPT,
        ENVOL_ERR_HEADER_BOTH_CORRUPT,
        ENVOL_ERR_HEADER_MALFORMED,
        ENVOL_ERR_HEADER_TAMPERED,
        ENVOL_ERR_OUT_OF_RANGE,
        ENVOL_ERR_VOLUME_RETIRED,
        ENVOL_ERR_VOLUME_ATTACHED,
        ENVOL_ERR_VOLUME_DETACHED,
        ENVOL_ERR_KEY_MISMATCH,
        ENVOL_ERR_VOLUME_PARAMS,  ENVOL_ERR_LIMIT_EXCEEDED, ENVOL_ERR_VOLUME_EXISTS,
        ENVOL_ERR_WRONG_VOLUME,   ENVOL_ERR_LEASE_EXPIRED,
    };
    static const char *const names[] = {
        "ENVOL_ERR_IO",
        "ENVOL_ERR_HEADER_BAD_MAGIC",
        "ENVOL_ERR_HEADER_VERSION",
        "ENVOL_ERR_HEADER_FLAGS",
        "ENVOL_ERR_HEADER_CORRUPT",
        "ENVOL_ERR_HEADER_BOTH_CORRUPT",
        "ENVOL_ERR_HEADER_MALFORMED",
        "ENVOL_ERR_HEADER_TAMPERED",
        "ENVOL_ERR_OUT_OF_RANGE",
        "ENVOL_ERR_VOLUME_RETIRED",
        "ENVOL_ERR_VOLUME_ATTACHED",
        "ENVOL_ERR_VOLUME_DETACHED",
        "ENVOL_ERR_KEY_MISMATCH",
        "ENVOL_ERR_VOLUME_PARAMS",
        "ENVOL_ERR_LIMIT_EXCEEDED",
        "ENVOL_ERR_VOLUME_EXISTS",
        "ENVOL_ERR_WRONG_VOLUME",
        "ENVOL_ERR_LEASE_EXPIRED",
    };
    static const uint8_t abc_sha[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    uint8_t d[32];
    size_t i;

    where("sizes");
    CHECK(envol_volume_size() == sizeof(envol_volume));
    CHECK(sizeof(envol_volume) == ENVOL_VOLUME_SIZE);
    CHECK((uintptr_t)&g_vol % ENVOL_VOLUME_ALIGN == 0);
    CHECK(ENVOL_HEADER_SLOT_SIZE == 4096);
    CHECK(ENVOL_HEADERS_SIZE == 2 * ENVOL_HEADER_SLOT_SIZE);
    CHECK(ENVOL_DEFAULT_DATA_OFFSET == 1048576);
    CHECK(sizeof(envol_volume_params) == 40);
    CHECK(ENVOL_CIPHER_AES_XTS_256 == 1 && ENVOL_CIPHER_AES_XTS_128 == 2);

    for (i = 0; i < N(statuses); i++) {
        where("envol_status_name(%d)", (int)statuses[i]);
        CHECK((int)statuses[i] == (int)(26 + i));
        CHECK(strcmp(envol_status_name(statuses[i]), names[i]) == 0);
    }
    where("status past the end");
    CHECK(strcmp(envol_status_name((envol_status)(26 + N(statuses))), "ENVOL_ERR_UNKNOWN") == 0);

    where("sha256 self-test");
    sha256((const uint8_t *)"abc", 3, d);
    CHECK(memcmp(d, abc_sha, 32) == 0);
}

/* Every call on an empty (zeroed or closed) volume. */
static void test_empty_state(void)
{
    envol_volume_params p;
    uint64_t seq = 99;
    char id[ENVOL_MAX_KEY_ID + 1] = "untouched";
    int att = 99;
    uint8_t buf[SS];

    where("empty volume");
    envol_volume_close(&g_vol);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    memset(&p, 0x5a, sizeof p);
    snap_vol(&g_vol);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, buf, sizeof buf), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, buf, sizeof buf), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_flush(&g_vol), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"),
                 ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_NOT_INITIALIZED);
    CHECK_STATUS(envol_volume_info(&g_vol, &p, &seq, id, &att), ENVOL_ERR_NOT_INITIALIZED);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);
    CHECK(vol_unchanged(&g_vol));
    CHECK(is_filled(&p, sizeof p, 0x5a) && seq == 99 && att == 99 &&
          strcmp(id, "untouched") == 0);

    where("NULL and misaligned volume pointers");
    CHECK_NULL(envol_volume_attach(NULL, "hypervisor"));
    CHECK_NULL(envol_volume_detach(NULL));
    CHECK_NULL(envol_volume_read(NULL, 0, buf, sizeof buf));
    CHECK_NULL(envol_volume_write(NULL, 0, buf, sizeof buf));
    CHECK_NULL(envol_volume_flush(NULL));
    CHECK_NULL(envol_volume_rewrap(NULL, "hypervisor", "disk-key-2"));
    CHECK_NULL(envol_volume_retire(NULL, "admin"));
    CHECK_NULL(envol_volume_info(NULL, &p, &seq, id, &att));
    CHECK(envol_volume_backend(NULL) == ENVOL_BACKEND_AUTO);
    envol_volume_close(NULL);
    {
        envol_volume *mis = (envol_volume *)(void *)((uint8_t *)g_misbuf + 8);
        envol_block_device dev = dev_of(&g_md);
        envol_volume_params sp = std_params();
        memset(g_misbuf, 0x77, sizeof g_misbuf);
        CHECK_STATUS(envol_volume_create(mis, &dev, &g_cb, "hypervisor", "disk-key", &sp),
                     ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_open(mis, &dev, &g_cb), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_attach(mis, "hypervisor"), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_detach(mis), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_read(mis, 0, buf, sizeof buf), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_write(mis, 0, buf, sizeof buf), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_flush(mis), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_rewrap(mis, "hypervisor", "k"), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_retire(mis, "admin"), ENVOL_ERR_ALIGNMENT);
        CHECK_STATUS(envol_volume_info(mis, &p, &seq, id, &att), ENVOL_ERR_ALIGNMENT);
        CHECK(envol_volume_backend(mis) == ENVOL_BACKEND_AUTO);
        envol_volume_close(mis); /* ignored: nothing written */
        CHECK(is_filled(g_misbuf, sizeof g_misbuf, 0x77));
    }
}

/* envol_volume_create: every argument check, then success. */
static void test_create(void)
{
    envol_block_device dev, no_read, no_write, no_flush;
    envol_kms_callbacks no_gen = g_cb;
    envol_volume_params p = std_params(), bad;
    char long_id[ENVOL_MAX_KEY_ID + 2];
    char long_principal[ENVOL_MAX_PRINCIPAL + 2];
    char id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int att = -1;
    envol_volume_params got;
    size_t k;

    md_reset(&g_md, g_disk, DISK_SIZE);
    dev = dev_of(&g_md);
    no_read = dev;
    no_read.read_at = NULL;
    no_write = dev;
    no_write.write_at = NULL;
    no_flush = dev;
    no_flush.flush = NULL;
    no_gen.generate_data_key = NULL;
    memset(long_id, 'k', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    memset(long_principal, 'p', sizeof long_principal - 1);
    long_principal[sizeof long_principal - 1] = 0;
    envol_volume_close(&g_vol);
    snap_vol(&g_vol);

    where("create: NULL pointers");
    CHECK_NULL(envol_volume_create(NULL, &dev, &g_cb, "hypervisor", "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, NULL, &g_cb, "hypervisor", "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, &dev, NULL, "hypervisor", "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, &dev, &g_cb, NULL, "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", NULL, &p));
    CHECK_NULL(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", NULL));
    CHECK_NULL(envol_volume_create(&g_vol, &no_read, &g_cb, "hypervisor", "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, &no_write, &g_cb, "hypervisor", "disk-key", &p));
    CHECK_NULL(envol_volume_create(&g_vol, &dev, &no_gen, "hypervisor", "disk-key", &p));

    where("create: parameters");
    bad = p;
    bad.cipher = 0;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_INVALID_ARGUMENT);
    bad.cipher = 3;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_INVALID_ARGUMENT);
    {
        static const uint32_t bad_ss[] = {0, 256, 1000, 131072, 4095};
        for (k = 0; k < N(bad_ss); k++) {
            where("create: sector size %u", (unsigned)bad_ss[k]);
            bad = p;
            bad.sector_size = bad_ss[k];
            CHECK_STATUS(
                envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                ENVOL_ERR_VOLUME_PARAMS);
        }
    }
    where("create: data offset and size");
    bad = p;
    bad.data_offset = 4096; /* inside the headers */
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);
    bad = p;
    bad.data_offset = 8192 + 512; /* not a multiple of 4096 */
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);
    bad = p;
    bad.sector_size = 16384;
    bad.data_offset = 8192; /* not a multiple of the sector size */
    bad.volume_size = 16384;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);
    bad = p;
    bad.volume_size = 0;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);
    bad = p;
    bad.volume_size = 1000;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);
    bad = p;
    bad.volume_size = UINT64_MAX - 511; /* offset + size overflows */
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &bad),
                 ENVOL_ERR_VOLUME_PARAMS);

    where("create: strings and the key service");
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", long_id, &p),
                 ENVOL_ERR_KEY_ID);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "k\xff", &p),
                 ENVOL_ERR_KEY_ID);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, long_principal, "disk-key", &p),
                 ENVOL_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "no-such-key", &p),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "admin", "disk-key", &p),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "mallory", "disk-key", &p),
                 ENVOL_ERR_ACCESS_DENIED);
    CHECK(g_md.writes == 0);

    where("create: device failures");
    g_md.fail_read = 1;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_IO);
    CHECK(g_md.writes == 0);
    g_md.fail_write = 1;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_IO);
    g_md.fail_flush = 1;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_IO);
    md_reset(&g_md, g_disk, DISK_SIZE);
    g_md.rc = -1; /* any non-zero value is a failure */
    g_md.fail_write = 1;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_IO);
    g_md.rc = 5;
    md_reset(&g_md, g_disk, DISK_SIZE);
    g_md.fail_write = 2;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_IO);
    where("create: a torn create leaves a volume, which a retry does not destroy");
    CHECK_STATUS(envol_header_check(g_md.bytes), ENVOL_OK);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_VOLUME_EXISTS);
    where("create: failures leave the volume empty and untouched");
    CHECK(vol_unchanged(&g_vol));
    md_reset(&g_md, g_disk, DISK_SIZE);

    where("create: success");
    md_reset(&g_md, g_disk, DISK_SIZE);
    CHECK_STATUS(envol_volume_create(&g_vol, &no_flush, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_OK);
    CHECK(g_md.writes == 2 && g_md.flushes == 0);
    CHECK(memcmp(g_md.bytes, g_md.bytes + ENVOL_HEADER_SLOT_SIZE, ENVOL_HEADER_SLOT_SIZE) == 0);
    CHECK_STATUS(envol_header_check(g_md.bytes), ENVOL_OK);
    CHECK(is_filled(g_md.bytes + DOFF, SS * NSECT, 0)); /* data area untouched */
    memset(&got, 0, sizeof got);
    CHECK_STATUS(envol_volume_info(&g_vol, &got, &seq, id, &att), ENVOL_OK);
    CHECK(memcmp(&got, &p, sizeof p) == 0);
    CHECK(seq == 1 && att == 1 && strcmp(id, "disk-key") == 0);
    CHECK(envol_volume_backend(&g_vol) == envol_backend_detect());

    where("create/open on a live volume");
    snap_vol(&g_vol);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_VOLUME_ATTACHED);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_VOLUME_ATTACHED);
    CHECK(vol_unchanged(&g_vol));
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
    snap_vol(&g_vol);
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_ERR_VOLUME_DETACHED);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_VOLUME_DETACHED);
    CHECK(vol_unchanged(&g_vol));

    where("close");
    envol_volume_close(&g_vol);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    CHECK(g_md.bad_calls == 0);
}

/* Reads and writes: bounds, lengths, the bounce buffer, faults. */
static void test_read_write(void)
{
    static const uint8_t rodata[4 * SS] = {1, 2, 3, 4, 5};
    uint8_t one[SS], big[SS * NSECT + SS];
    unsigned writes;

    where("read/write: set-up");
    CHECK(make_std_volume("disk-key"));

    where("read back");
    memset(g_back, 0, sizeof g_back);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, g_back, 3 * SS), ENVOL_OK);
    CHECK(memcmp(g_back, g_data + 7 * SS, 3 * SS) == 0);

    where("no plaintext on the device");
    CHECK(!contains(g_md.bytes, g_md.size, SECRET, 20));
    CHECK(!contains(g_md.bytes, g_md.size, g_data + 5 * SS, 64));

    where("the caller's write buffer is not modified");
    fill_data(g_copy, sizeof g_copy, 3);
    memcpy(big, g_copy, sizeof g_copy);
    writes = g_md.writes;
    g_md.max_write = 0;
    CHECK_STATUS(envol_volume_write(&g_vol, 0, big, sizeof g_copy), ENVOL_OK);
    CHECK(memcmp(big, g_copy, sizeof g_copy) == 0);
    /* 256 KiB through the 64 KiB bounce buffer: four device writes. */
    CHECK(g_md.writes - writes == (SS * NSECT) / 65536);
    CHECK(g_md.max_write == 65536);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_copy, sizeof g_copy) == 0);
    /* A buffer in read-only memory: writing to it would crash. */
    CHECK_STATUS(envol_volume_write(&g_vol, 100, rodata, sizeof rodata), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 100, g_back, sizeof rodata), ENVOL_OK);
    CHECK(memcmp(g_back, rodata, sizeof rodata) == 0);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, g_data, sizeof g_data), ENVOL_OK);
    CHECK_STATUS(envol_volume_flush(&g_vol), ENVOL_OK);

    where("sector number is the XTS tweak: equal plaintext, different ciphertext");
    memset(one, 0xab, sizeof one);
    CHECK_STATUS(envol_volume_write(&g_vol, 10, one, SS), ENVOL_OK);
    CHECK_STATUS(envol_volume_write(&g_vol, 11, one, SS), ENVOL_OK);
    CHECK(memcmp(g_md.bytes + DOFF + 10 * SS, g_md.bytes + DOFF + 11 * SS, SS) != 0);
    CHECK_STATUS(envol_volume_write(&g_vol, 10, g_data + 10 * SS, 2 * SS), ENVOL_OK);

    where("out of range");
    memset(g_back, 0x5a, sizeof g_back);
    writes = g_md.writes;
    CHECK_STATUS(envol_volume_read(&g_vol, NSECT, g_back, SS), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_read(&g_vol, NSECT - 1, g_back, 2 * SS), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_read(&g_vol, UINT64_MAX, g_back, SS), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, big, sizeof big), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_write(&g_vol, NSECT, one, SS), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_write(&g_vol, UINT64_MAX - 1, one, SS), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_write(&g_vol, 1, big, SS * NSECT), ENVOL_ERR_OUT_OF_RANGE);
    where("partial sectors");
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, SS - 1), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, SS + 16), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, 1), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, one, 100), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, big, 3 * SS + 1), ENVOL_ERR_LENGTH);
    CHECK(is_filled(g_back, sizeof g_back, 0x5a));
    CHECK(g_md.writes == writes);
    where("zero length");
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, 0), ENVOL_OK);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, one, 0), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, NSECT, g_back, 0), ENVOL_OK);
    CHECK(g_md.writes == writes && is_filled(g_back, sizeof g_back, 0x5a));
    where("NULL buffers, overlap with the volume");
    CHECK_NULL(envol_volume_read(&g_vol, 0, NULL, SS));
    CHECK_NULL(envol_volume_write(&g_vol, 0, NULL, SS));
    CHECK_NULL(envol_volume_read(&g_vol, 0, NULL, 0));
    CHECK_STATUS(envol_volume_read(&g_vol, 0, (uint8_t *)&g_vol + 1024, SS), ENVOL_ERR_OVERLAP);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, (const uint8_t *)&g_vol, SS), ENVOL_ERR_OVERLAP);

    where("device failures: ENVOL_ERR_IO, the volume stays usable");
    g_md.fail_read = 1;
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, SS), ENVOL_ERR_IO);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, SS), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, SS) == 0);
    g_md.fail_write = 1;
    g_md.torn = 0;
    CHECK_STATUS(envol_volume_write(&g_vol, 3, one, SS), ENVOL_ERR_IO);
    g_md.fail_write = 2; /* the second 64 KiB chunk */
    CHECK_STATUS(envol_volume_write(&g_vol, 0, g_data, 4 * 65536), ENVOL_ERR_IO);
    g_md.fail_flush = 1;
    CHECK_STATUS(envol_volume_flush(&g_vol), ENVOL_ERR_IO);
    CHECK_STATUS(envol_volume_flush(&g_vol), ENVOL_OK);
    CHECK_STATUS(envol_volume_write(&g_vol, 0, g_data, sizeof g_data), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    CHECK(vol_info(&g_vol, NULL, NULL, NULL));
    CHECK(g_md.bad_calls == 0);
}

/* Detach, attach and the states they move between. */
static void test_attach_detach(void)
{
    char id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int att = -1;
    uint8_t buf[SS];
    envol_volume_params p;

    where("attach/detach: set-up");
    CHECK(make_std_volume("disk-key"));

    where("detach flushes; a failed flush keeps the volume attached");
    CHECK_STATUS(envol_volume_write(&g_vol, 1, g_data + SS, SS), ENVOL_OK);
    g_md.fail_flush = 1;
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_ERR_IO);
    CHECK(vol_info(&g_vol, NULL, NULL, &att) && att == 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 1, buf, SS), ENVOL_OK);
    CHECK(memcmp(buf, g_data + SS, SS) == 0);
    {
        unsigned flushes = g_md.flushes, writes = g_md.writes;
        where("detach");
        CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
        CHECK(g_md.flushes == flushes + 1 && g_md.writes == writes);
    }
    CHECK(vol_info(&g_vol, id, &seq, &att) && att == 0 && seq == 1);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);
    snap_vol(&g_vol);
    memset(buf, 0x5a, sizeof buf);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, buf, sizeof buf), ENVOL_ERR_VOLUME_DETACHED);
    CHECK(is_filled(buf, sizeof buf, 0x5a));
    CHECK_STATUS(envol_volume_write(&g_vol, 0, buf, sizeof buf), ENVOL_ERR_VOLUME_DETACHED);
    CHECK_STATUS(envol_volume_flush(&g_vol), ENVOL_OK); /* allowed detached */
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"),
                 ENVOL_ERR_VOLUME_DETACHED);
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_VOLUME_DETACHED);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_ERR_VOLUME_DETACHED);
    CHECK(vol_unchanged(&g_vol));

    where("attach refused");
    CHECK_NULL(envol_volume_attach(&g_vol, NULL));
    CHECK_STATUS(envol_volume_attach(&g_vol, "admin"), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_volume_attach(&g_vol, "mallory"), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_volume_attach(&g_vol, ""), ENVOL_ERR_INVALID_ARGUMENT);
    CHECK(vol_info(&g_vol, id, &seq, &att) && att == 0 && seq == 1 &&
          strcmp(id, "disk-key") == 0);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);
    where("attach refused: disabled key");
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_KEY_DISABLED);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(vol_info(&g_vol, NULL, NULL, &att) && att == 0);

    where("attach");
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(vol_info(&g_vol, NULL, NULL, &att) && att == 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_ATTACHED);
    CHECK(envol_volume_backend(&g_vol) == envol_backend_detect());

    where("info: NULL outputs, outputs untouched on error");
    memset(&p, 0x5a, sizeof p);
    seq = 77;
    att = 77;
    strcpy(id, "same");
    CHECK_NULL(envol_volume_info(&g_vol, NULL, &seq, id, &att));
    CHECK_NULL(envol_volume_info(&g_vol, &p, NULL, id, &att));
    CHECK_NULL(envol_volume_info(&g_vol, &p, &seq, NULL, &att));
    CHECK_NULL(envol_volume_info(&g_vol, &p, &seq, id, NULL));
    CHECK(is_filled(&p, sizeof p, 0x5a) && seq == 77 && att == 77 && strcmp(id, "same") == 0);

    where("detach, attach, many times");
    {
        int i, ok = 1;
        for (i = 0; i < 20; i++) {
            ok &= envol_volume_detach(&g_vol) == ENVOL_OK;
            ok &= envol_volume_attach(&g_vol, "hypervisor") == ENVOL_OK;
        }
        CHECK(ok);
    }
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);

    where("close an attached volume; reopen");
    envol_volume_close(&g_vol);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    CHECK(reopen(&g_vol));
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    CHECK(g_md.bad_calls == 0);
}

/* Key-schedule blocks of g_ctx: 16-byte blocks that are not zero, equal
 * the block at the same offset of g_ctx2 (the same key set up through
 * another path, so stack leftovers in unused bytes do not count), differ
 * from it in g_other (so the backend's tag and the round count, the same
 * for every key, do not count: an armv8 tag block is 1 and fifteen zero
 * bytes, found in many a struct), and occur nowhere in the device's header
 * area (public bytes). */
static int is_key_block(size_t i)
{
    const uint8_t *c = (const uint8_t *)&g_ctx + i;
    return !is_filled(c, 16, 0) && memcmp(c, (const uint8_t *)&g_ctx2 + i, 16) == 0 &&
           memcmp(c, (const uint8_t *)&g_other + i, 16) != 0 &&
           !contains(g_md.bytes, ENVOL_HEADERS_SIZE, c, 16);
}

/* How many key-schedule blocks of g_ctx occur in `vol`; their number in
 * *blocks. */
static size_t key_blocks_in(const envol_volume *vol, size_t *blocks)
{
    size_t i, n = 0, found = 0;
    for (i = 16; i + 16 <= sizeof g_ctx; i += 16) {
        if (is_key_block(i)) {
            n++;
            found += (size_t)contains((const uint8_t *)vol, sizeof *vol,
                                      (const uint8_t *)&g_ctx + i, 16);
        }
    }
    *blocks = n;
    return found;
}

/* Key-schedule blocks of g_ctx kept for the stack scan after g_ctx is
 * wiped: static, so never on the stack the scan reads. */
static uint8_t g_sched[sizeof(envol_xts)];
static size_t g_sched_len;

static void keep_key_blocks(void)
{
    size_t i;
    g_sched_len = 0;
    for (i = 16; i + 16 <= sizeof g_ctx; i += 16) {
        if (is_key_block(i)) {
            memcpy(g_sched + g_sched_len, (const uint8_t *)&g_ctx + i, 16);
            g_sched_len += 16;
        }
    }
}

#if !defined(__SANITIZE_ADDRESS__)
/* What the stack scan read, copied out of its frame. */
#define STACK_SCAN_BYTES (60 * 1024)
static uint8_t g_scan[STACK_SCAN_BYTES];

/* Copies the stack below the caller's frame (where the library's frames
 * were during the caller's calls) into g_scan. The area is deliberately
 * read uninitialised: what earlier calls left there is the point. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static __attribute__((noinline)) void copy_stack_below(void)
{
    volatile uint8_t area[STACK_SCAN_BYTES];
    size_t i;
    for (i = 0; i < sizeof area; i++) {
        g_scan[i] = area[i];
    }
}
#pragma GCC diagnostic pop
#endif

/* How many of the kept key-schedule blocks occur on the stack below the
 * caller; -1 when this build cannot tell (AddressSanitizer moves frames). */
static long key_blocks_on_stack(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return -1;
#else
    size_t i;
    long found = 0;
    copy_stack_below();
    for (i = 0; i < g_sched_len; i += 16) {
        found += contains(g_scan, sizeof g_scan, g_sched + i, 16);
    }
    return found;
#endif
}

/* The key schedule lives in the struct while attached, and nowhere in it
 * after detach (or retire). */
static void test_key_wiped(void)
{
    envol_volume_params p;
    envol_kv pairs[ENVOL_HEADER_CONTEXT_PAIRS];
    char strings[ENVOL_HEADER_CONTEXT_STRINGS];
    uint8_t blob[ENVOL_MAX_BLOB], dek[64];
    size_t blob_len = 0, dek_len = 0, n_pairs = 0, blocks = 0;
    uint64_t seq = 0;
    int repair = 0;

    where("key wiped: set-up");
    CHECK(make_std_volume("disk-key"));
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", g_md.bytes,
                                     g_md.bytes + ENVOL_HEADER_SLOT_SIZE),
                 ENVOL_OK);
    CHECK_STATUS(envol_header_parse(g_md.bytes, g_md.bytes + ENVOL_HEADER_SLOT_SIZE, &p, &seq,
                                    blob, sizeof blob, &blob_len, &repair),
                 ENVOL_OK);
    CHECK_STATUS(envol_header_context(&p, pairs, strings, sizeof strings, &n_pairs), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", blob, blob_len, pairs,
                                                  n_pairs, dek, sizeof dek, &dek_len),
                 ENVOL_OK);
    CHECK_STATUS(envol_xts_init(&g_ctx2, dek, dek_len), ENVOL_OK);
    {
        size_t k;
        for (k = 0; k < dek_len; k++) {
            dek[k] ^= 0x5a;
        }
    }
    CHECK_STATUS(envol_xts_init(&g_other, dek, dek_len), ENVOL_OK);
    memset(dek, 0, sizeof dek);

    where("key schedule inside the attached volume");
    CHECK(key_blocks_in(&g_vol, &blocks) == blocks);
    CHECK(blocks >= 16);
    where("nothing of it after detach");
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
    CHECK(key_blocks_in(&g_vol, &blocks) == 0 && blocks >= 16);
    where("detached after rewrap and writes: still nothing of the key");
    {
        envol_block_device dev = dev_of(&g_md);
        envol_volume_close(&g_vol2);
        CHECK_STATUS(envol_volume_open(&g_vol2, &dev, &g_cb), ENVOL_OK);
        CHECK(key_blocks_in(&g_vol2, &blocks) == 0);
        CHECK_STATUS(envol_volume_attach(&g_vol2, "hypervisor"), ENVOL_OK);
        CHECK(key_blocks_in(&g_vol2, &blocks) == blocks);
        CHECK_STATUS(envol_volume_rewrap(&g_vol2, "hypervisor", "disk-key-2"), ENVOL_OK);
        CHECK_STATUS(envol_volume_write(&g_vol2, 3, g_data, 2 * SS), ENVOL_OK);
        CHECK_STATUS(envol_volume_detach(&g_vol2), ENVOL_OK);
        CHECK(key_blocks_in(&g_vol2, &blocks) == 0 && blocks >= 16);
        envol_volume_close(&g_vol2);
        envol_volume_close(&g_vol);
        CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    }
    where("attached again, then retired");
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(key_blocks_in(&g_vol, &blocks) == blocks);
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_OK);
    CHECK(key_blocks_in(&g_vol, &blocks) == 0 && blocks >= 16);
    keep_key_blocks();
    CHECK(g_sched_len >= 16 * 16);
    envol_xts_wipe(&g_ctx);
    envol_xts_wipe(&g_ctx2);
    envol_xts_wipe(&g_other);
    envol_volume_close(&g_vol);
    where("no key-schedule block left on the stack by init, unwrap, attach, detach, wipe");
    {
        long on_stack = key_blocks_on_stack();
        if (on_stack < 0) {
            printf("  stack scan not run: AddressSanitizer build (the plain build runs it)\n");
        } else {
            CHECK(on_stack == 0);
            if (on_stack != 0) {
                printf("  %ld of %zu key-schedule blocks found on the stack\n", on_stack,
                       g_sched_len / 16);
            }
        }
    }
    memset(g_sched, 0, sizeof g_sched);
}

/* envol_volume_open: repair, damage, device failures. */
static void test_open(void)
{
    envol_block_device dev = dev_of(&g_md), no_write = dev;
    uint8_t *a = g_disk, *b = g_disk + ENVOL_HEADER_SLOT_SIZE;
    uint8_t slot[ENVOL_HEADER_SLOT_SIZE];
    uint64_t seq = 0;
    char id[ENVOL_MAX_KEY_ID + 1];
    int att = -1;

    no_write.write_at = NULL;
    where("open: set-up");
    CHECK(make_std_volume("disk-key"));
    envol_volume_close(&g_vol);
    memcpy(slot, a, sizeof slot);
    memcpy(g_disk_copy, g_disk, DISK_SIZE);

    where("open: NULL pointers");
    CHECK_NULL(envol_volume_open(NULL, &dev, &g_cb));
    CHECK_NULL(envol_volume_open(&g_vol, NULL, &g_cb));
    CHECK_NULL(envol_volume_open(&g_vol, &dev, NULL));
    CHECK_NULL(envol_volume_open(&g_vol, &no_write, &g_cb));
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));

    where("open: both copies good, nothing written");
    g_md.writes = 0;
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK(g_md.writes == 0);
    CHECK(vol_info(&g_vol, id, &seq, &att) && att == 0 && seq == 1 &&
          strcmp(id, "disk-key") == 0);
    envol_volume_close(&g_vol);

    where("open: one copy damaged is read, and repaired only after attach verified the other");
    b[100] ^= 1;
    CHECK_STATUS(envol_header_check(b), ENVOL_ERR_HEADER_CORRUPT);
    g_md.writes = 0;
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK(g_md.writes == 0 && memcmp(b, slot, sizeof slot) != 0);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(memcmp(b, slot, sizeof slot) == 0);
    envol_volume_close(&g_vol);
    memset(a, 0, ENVOL_HEADER_SLOT_SIZE); /* copy A wiped */
    CHECK_STATUS(envol_header_check(a), ENVOL_ERR_HEADER_BAD_MAGIC);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK(is_filled(a, ENVOL_HEADER_SLOT_SIZE, 0));
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(memcmp(a, slot, sizeof slot) == 0);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    envol_volume_close(&g_vol);

    where("open: a forged newest copy is never used to repair the good one");
    {
        /* This volume's parameters and a higher sequence number, with the
         * checksum fixed up: only the MAC (or the wrap) can tell. */
        memcpy(b, slot, sizeof slot);
        put_le64(b + H_SEQUENCE, 99);
        reseal(b);
        CHECK_STATUS(envol_header_check(b), ENVOL_OK);
        g_md.writes = 0;
        CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
        CHECK(g_md.writes == 0 && memcmp(a, slot, sizeof slot) == 0);
        CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
        CHECK(memcmp(a, slot, sizeof slot) == 0 && memcmp(b, slot, sizeof slot) == 0);
        CHECK(vol_info(&g_vol, id, &seq, &att) && seq == 1);
        envol_volume_close(&g_vol);
    }

    where("open: repair fails on the device (attach still succeeds)");
    b[7] ^= 0x80;
    g_md.fail_read = 2;
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_IO);
    g_md.fail_read = 1;
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_IO);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    g_md.fail_write = 1;
    g_md.torn = 0;
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(memcmp(b, slot, sizeof slot) != 0);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(memcmp(b, slot, sizeof slot) == 0);
    envol_volume_close(&g_vol);

    where("open: both copies damaged");
    a[100] ^= 1; /* both inside the copy (bytes past it are ignored) */
    b[150] ^= 1;
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_BOTH_CORRUPT);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    memset(b, 0, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_BOTH_CORRUPT);

    where("open: no volume");
    memset(a, 0, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_BAD_MAGIC);
    memset(a, 0xff, ENVOL_HEADER_SLOT_SIZE);
    memset(b, 0xff, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_BAD_MAGIC);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));

    where("open: unsupported version (checksums fixed up)");
    memcpy(a, slot, sizeof slot);
    put_le16(a + H_VERSION, 2);
    reseal(a);
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_header_check(a), ENVOL_ERR_HEADER_VERSION);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_VERSION);

    where("open: unknown flags");
    memcpy(a, slot, sizeof slot);
    put_le16(a + H_FLAGS, 1);
    reseal(a);
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_header_check(a), ENVOL_ERR_HEADER_FLAGS);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_FLAGS);

    where("open: malformed field");
    memcpy(a, slot, sizeof slot);
    put_le32(a + H_SECTOR, 1000);
    reseal(a);
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_header_check(a), ENVOL_ERR_HEADER_MALFORMED);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_HEADER_MALFORMED);
    where("open: one good copy beside a malformed one");
    memcpy(b, slot, sizeof slot);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK(memcmp(a, slot, sizeof slot) == 0);
    envol_volume_close(&g_vol);

    where("open: another volume's good copy in one slot");
    {
        envol_volume_params p = std_params();
        uint8_t other_id[16];
        memcpy(a, slot, sizeof slot);
        memcpy(b, slot, sizeof slot);
        b[H_ID] ^= 1; /* another id: an authentic copy of another volume would
                         also carry its own MAC; this one only needs to parse */
        reseal(b);
        CHECK_STATUS(envol_header_check(b), ENVOL_OK);
        CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_ERR_WRONG_VOLUME);
        CHECK(is_filled(&g_vol, sizeof g_vol, 0));
        CHECK_STATUS(envol_volume_open_expect(&g_vol, &dev, &g_cb, p.volume_id), ENVOL_OK);
        CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
        CHECK(memcmp(b, slot, sizeof slot) == 0);
        envol_volume_close(&g_vol);
        memcpy(other_id, p.volume_id, 16);
        other_id[0] ^= 1;
        CHECK_STATUS(envol_volume_open_expect(&g_vol, &dev, &g_cb, other_id),
                     ENVOL_ERR_WRONG_VOLUME);
        CHECK_NULL(envol_volume_open_expect(&g_vol, &dev, &g_cb, NULL));
        CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    }

    where("envol_header_check: NULL");
    CHECK_NULL(envol_header_check(NULL));
    CHECK_STATUS(envol_header_check(slot), ENVOL_OK);
    memcpy(g_disk, g_disk_copy, DISK_SIZE);
    CHECK(g_md.bad_calls == 0);
}

/* An attacker with write access edits the header and fixes the checksum:
 * refused at attach by the MAC. */
static void test_tampered(void)
{
    envol_block_device dev = dev_of(&g_md);
    uint8_t *a = g_disk, *b = g_disk + ENVOL_HEADER_SLOT_SIZE;
    uint8_t retired[ENVOL_HEADER_SLOT_SIZE];

    envol_kms_callbacks no_tomb = g_cb;

    /* Retired in the header only (a key service without tombstones), so
     * that what refuses the edited copies below is the header MAC. */
    no_tomb.retire_context = NULL;
    where("tampered: set-up");
    CHECK(make_std_volume("disk-key"));
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &no_tomb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_OK);
    envol_volume_close(&g_vol);
    memcpy(retired, a, sizeof retired);
    CHECK(memcmp(a, b, ENVOL_HEADER_SLOT_SIZE) == 0 && retired[H_STATE] == 1);

    where("retired volume un-retired by editing the state");
    a[H_STATE] = 0;
    reseal(a);
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_header_check(a), ENVOL_OK);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_HEADER_TAMPERED);
    CHECK(vol_info(&g_vol, NULL, NULL, NULL));
    memset(&g_ctx, 0, sizeof g_ctx);
    memcpy(g_ctx_snap, &g_ctx, sizeof g_ctx_snap);
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", a, b),
                 ENVOL_ERR_HEADER_TAMPERED);
    CHECK(memcmp(g_ctx_snap, &g_ctx, sizeof g_ctx_snap) == 0);
    envol_volume_close(&g_vol);

    where("sequence number edited in one copy");
    memcpy(a, retired, sizeof retired);
    a[H_STATE] = 0;
    put_le64(a + H_SEQUENCE, 1000);
    reseal(a);
    memcpy(b, retired, sizeof retired);
    /* The edited copy looks newest, but fails its MAC: the authentic copy
     * (retired) decides, and nothing is copied over it. */
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK(memcmp(b, retired, ENVOL_HEADER_SLOT_SIZE) == 0);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);
    CHECK(memcmp(b, retired, ENVOL_HEADER_SLOT_SIZE) == 0);
    envol_volume_close(&g_vol);
    where("sequence number edited in both copies");
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_HEADER_TAMPERED);
    envol_volume_close(&g_vol);

    where("retired for real");
    memcpy(a, retired, sizeof retired);
    memcpy(b, retired, sizeof retired);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);
    envol_volume_close(&g_vol);

    where("parameters edited: the wrap's context no longer matches");
    memcpy(a, retired, sizeof retired);
    a[H_STATE] = 0;
    put_le64(a + 40, (uint64_t)SS * (NSECT - 8)); /* volume size */
    reseal(a);
    memcpy(b, a, ENVOL_HEADER_SLOT_SIZE);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_INVALID_CIPHERTEXT);
    envol_volume_close(&g_vol);
    CHECK(g_md.bad_calls == 0);
}

/* Retire: detaches; attach refused after; failures keep it attached. */
static void test_retire(void)
{
    envol_block_device dev = dev_of(&g_md);
    int att = -1;
    uint64_t seq = 0;

    envol_kms_callbacks no_tomb = g_cb;

    no_tomb.retire_context = NULL;
    where("retire: set-up");
    CHECK(make_std_volume("disk-key"));

    where("retire fails on the device: still attached, but the key service retired it");
    g_md.fail_write = 1;
    g_md.torn = 0;
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_IO);
    CHECK(vol_info(&g_vol, NULL, &seq, &att) && att == 1 && seq == 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);
    envol_volume_close(&g_vol);

    where("retire without tombstones fails on the device: nothing landed");
    CHECK(make_std_volume("disk-key"));
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &no_tomb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    g_md.fail_write = 1;
    g_md.torn = 0;
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_IO);
    CHECK(vol_info(&g_vol, NULL, &seq, &att) && att == 1 && seq == 1);
    envol_volume_close(&g_vol);
    CHECK(reopen(&g_vol)); /* not retired */
    where("retire fails after both header writes: still attached, retired on disk");
    g_md.fail_flush = 2;
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_IO);
    CHECK(vol_info(&g_vol, NULL, NULL, &att) && att == 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);

    where("retire");
    CHECK(make_std_volume("disk-key"));
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_OK);
    CHECK(vol_info(&g_vol, NULL, &seq, &att) && att == 0 && seq == 2);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);
    CHECK(memcmp(g_disk, g_disk + ENVOL_HEADER_SLOT_SIZE, ENVOL_HEADER_SLOT_SIZE) == 0);
    CHECK_STATUS(envol_volume_retire(&g_vol, "admin"), ENVOL_ERR_VOLUME_DETACHED);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);
    /* Authorization comes first: a principal that may not decrypt learns
     * nothing, not even that the volume was retired. */
    CHECK_STATUS(envol_volume_attach(&g_vol, "admin"), ENVOL_ERR_ACCESS_DENIED);
    CHECK(vol_info(&g_vol, NULL, NULL, &att) && att == 0);
    envol_volume_close(&g_vol);
    where("retired after reopening");
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_VOLUME_RETIRED);
    memset(&g_ctx, 0, sizeof g_ctx);
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", g_disk,
                                     g_disk + ENVOL_HEADER_SLOT_SIZE),
                 ENVOL_ERR_VOLUME_RETIRED);
    CHECK(is_filled(&g_ctx, sizeof g_ctx, 0));
    envol_volume_close(&g_vol);
    CHECK(g_md.bad_calls == 0);
}

/* Rewrap: success, refusals, the key service's table without re_encrypt. */
static void test_rewrap(void)
{
    envol_block_device dev = dev_of(&g_md);
    envol_kms_callbacks no_re = g_cb;
    char id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int att = -1;

    no_re.re_encrypt = NULL;
    where("rewrap: set-up");
    CHECK(make_std_volume("disk-key"));

    where("rewrap: refusals keep the volume attached and unchanged");
    CHECK_NULL(envol_volume_rewrap(&g_vol, NULL, "disk-key-2"));
    CHECK_NULL(envol_volume_rewrap(&g_vol, "hypervisor", NULL));
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "admin", "disk-key-2"), ENVOL_ERR_ACCESS_DENIED);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "no-such-key"),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "bad key id"),
                 ENVOL_ERR_KEY_NOT_FOUND);
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key-2"), ENVOL_OK);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"),
                 ENVOL_ERR_KEY_DISABLED);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key-2"), ENVOL_OK);
    CHECK(vol_info(&g_vol, id, &seq, &att) && att == 1 && seq == 1 &&
          strcmp(id, "disk-key") == 0);

    where("rewrap");
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_OK);
    CHECK(vol_info(&g_vol, id, &seq, &att) && att == 1 && seq == 2 &&
          strcmp(id, "disk-key-2") == 0);
    CHECK(memcmp(g_disk, g_disk + ENVOL_HEADER_SLOT_SIZE, ENVOL_HEADER_SLOT_SIZE) == 0);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    where("rewrap: the old master key no longer matters");
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK(reopen(&g_vol));
    CHECK(key_is(&g_vol, "disk-key-2"));
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    where("rewrap: and back");
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key"), ENVOL_OK);
    CHECK(vol_info(&g_vol, id, &seq, NULL) && seq == 3 && strcmp(id, "disk-key") == 0);

    where("rewrap: a key service without re_encrypt");
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &no_re), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(key_is(&g_vol, "disk-key"));
    envol_volume_close(&g_vol);
    CHECK(g_md.bad_calls == 0);
}

/* A rewrap torn at several byte offsets of each of its two header writes:
 * the volume opens with the old or the new key id, and reads back. */
static void test_torn_rewrap(void)
{
    static const size_t offsets[] = {0, 1, 16, 64, 100, 200, 300, 4000, 4095};
    int which;
    size_t k;

    for (which = 1; which <= 2; which++) {
        for (k = 0; k < N(offsets); k++) {
            char id[ENVOL_MAX_KEY_ID + 1];
            uint64_t seq = 0;
            int att = -1;
            uint32_t new_len;
            int want_new;

            where("torn rewrap: write %d torn at %u", which, (unsigned)offsets[k]);
            CHECK(make_std_volume("disk-key"));
            g_md.fail_write = which;
            g_md.torn = offsets[k];
            CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_ERR_IO);
            CHECK(g_md.fail_write == 0); /* the armed write was reached */
            /* Still attached and usable; the header is the old one if the
             * first write failed, the new one (durable in one slot) if the
             * second did. */
            CHECK(vol_info(&g_vol, id, &seq, &att) && att == 1);
            CHECK(which == 1 ? seq == 1 && strcmp(id, "disk-key") == 0
                             : seq == 2 && strcmp(id, "disk-key-2") == 0);
            CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
            CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
            envol_volume_close(&g_vol);

            /* "Power comes back": open, repair, attach. */
            new_len = le32(g_md.failed_write + H_LENGTH);
            want_new = which == 2 || offsets[k] >= new_len;
            CHECK(reopen(&g_vol));
            CHECK(vol_info(&g_vol, id, &seq, &att) && att == 1);
            CHECK(strcmp(id, want_new ? "disk-key-2" : "disk-key") == 0);
            CHECK(seq == (want_new ? 2u : 1u));
            CHECK(memcmp(g_disk, g_disk + ENVOL_HEADER_SLOT_SIZE, ENVOL_HEADER_SLOT_SIZE) == 0);
            CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
            CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
            /* And the rewrap can be finished. */
            CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_OK);
            CHECK(key_is(&g_vol, "disk-key-2"));
            envol_volume_close(&g_vol);
        }
    }
    where("torn rewrap: flush between the writes fails");
    CHECK(make_std_volume("disk-key"));
    g_md.fail_flush = 1;
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_ERR_IO);
    envol_volume_close(&g_vol);
    CHECK(reopen(&g_vol));
    CHECK(key_is(&g_vol, "disk-key-2")); /* the first copy landed whole */
    envol_volume_close(&g_vol);
    CHECK(g_md.bad_calls == 0);
}

/* The low level: parse, context, unwrap, build, agreeing with the high
 * level. */
static void test_low_level(void)
{
    envol_volume_params p, got, bad;
    uint64_t seq = 0;
    uint8_t blob[ENVOL_MAX_BLOB], dek[64], slot[ENVOL_HEADER_SLOT_SIZE];
    size_t blob_len = 0, dek_len = 0, n_pairs = 0, i;
    int repair = 7;
    envol_kv pairs[ENVOL_HEADER_CONTEXT_PAIRS];
    char strings[ENVOL_HEADER_CONTEXT_STRINGS];
    uint8_t *a = g_disk, *b = g_disk + ENVOL_HEADER_SLOT_SIZE;
    envol_kms_callbacks no_dec = g_cb;

    no_dec.decrypt_data_key = NULL;
    where("low level: set-up");
    CHECK(make_std_volume("disk-key"));
    p = std_params();

    where("envol_header_parse");
    memset(&got, 0, sizeof got);
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, &repair),
                 ENVOL_OK);
    CHECK(memcmp(&got, &p, sizeof p) == 0 && seq == 1 && repair == -1);
    CHECK(blob_len == 43 + 8 + 64);
    CHECK(contains(a, ENVOL_HEADER_SLOT_SIZE, blob, blob_len));
    b[50] ^= 1;
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, &repair),
                 ENVOL_OK);
    CHECK(repair == 1);
    b[50] ^= 1;
    a[50] ^= 1;
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, &repair),
                 ENVOL_OK);
    CHECK(repair == 0);
    b[60] ^= 1;
    where("envol_header_parse: errors leave the outputs untouched");
    memset(&got, 0x5a, sizeof got);
    memset(blob, 0x5a, sizeof blob);
    seq = 77;
    blob_len = 77;
    repair = 77;
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, &repair),
                 ENVOL_ERR_HEADER_BOTH_CORRUPT);
    a[50] ^= 1;
    b[60] ^= 1;
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, 100, &blob_len, &repair),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK_NULL(envol_header_parse(NULL, b, &got, &seq, blob, sizeof blob, &blob_len, &repair));
    CHECK_NULL(envol_header_parse(a, NULL, &got, &seq, blob, sizeof blob, &blob_len, &repair));
    CHECK_NULL(envol_header_parse(a, b, NULL, &seq, blob, sizeof blob, &blob_len, &repair));
    CHECK_NULL(envol_header_parse(a, b, &got, NULL, blob, sizeof blob, &blob_len, &repair));
    CHECK_NULL(envol_header_parse(a, b, &got, &seq, NULL, sizeof blob, &blob_len, &repair));
    CHECK_NULL(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, NULL, &repair));
    CHECK_NULL(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, NULL));
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, g_disk + 100, 200, &blob_len, &repair),
                 ENVOL_ERR_OVERLAP);
    CHECK(is_filled(&got, sizeof got, 0x5a) && is_filled(blob, sizeof blob, 0x5a));
    CHECK(seq == 77 && blob_len == 77 && repair == 77);
    CHECK_STATUS(envol_header_parse(a, b, &got, &seq, blob, sizeof blob, &blob_len, &repair),
                 ENVOL_OK);

    where("envol_header_context");
    memset(strings, 0x5a, sizeof strings);
    CHECK_STATUS(envol_header_context(&p, pairs, strings, sizeof strings, &n_pairs), ENVOL_OK);
    CHECK(n_pairs == ENVOL_HEADER_CONTEXT_PAIRS);
    CHECK(strcmp(pairs[0].key, "envol:cipher") == 0 &&
          strcmp(pairs[0].value, "aes-xts-plain64-512") == 0);
    CHECK(strcmp(pairs[1].key, "envol:data-offset") == 0 && strcmp(pairs[1].value, "8192") == 0);
    CHECK(strcmp(pairs[2].key, "envol:sector-size") == 0 && strcmp(pairs[2].value, "512") == 0);
    CHECK(strcmp(pairs[3].key, "envol:volume-size") == 0 &&
          strcmp(pairs[3].value, "262144") == 0);
    {
        char want[37];
        int j;
        memcpy(want, "vol-", 4);
        for (j = 0; j < 16; j++) {
            snprintf(want + 4 + 2 * j, 3, "%02x", p.volume_id[j]);
        }
        CHECK(strcmp(pairs[4].key, "volume") == 0 && strcmp(pairs[4].value, want) == 0);
    }
    for (i = 0; i < n_pairs; i++) {
        CHECK(pairs[i].key >= strings && pairs[i].value < strings + sizeof strings);
    }
    where("envol_header_context: errors");
    memset(strings, 0x5a, sizeof strings);
    memset(pairs, 0x5a, sizeof pairs);
    n_pairs = 77;
    CHECK_STATUS(envol_header_context(&p, pairs, strings, 100, &n_pairs),
                 ENVOL_ERR_BUFFER_TOO_SMALL);
    CHECK_NULL(envol_header_context(NULL, pairs, strings, sizeof strings, &n_pairs));
    CHECK_NULL(envol_header_context(&p, NULL, strings, sizeof strings, &n_pairs));
    CHECK_NULL(envol_header_context(&p, pairs, NULL, sizeof strings, &n_pairs));
    CHECK_NULL(envol_header_context(&p, pairs, strings, sizeof strings, NULL));
    CHECK_STATUS(envol_header_context(&p, (envol_kv *)(void *)strings, strings, sizeof strings,
                                      &n_pairs),
                 ENVOL_ERR_OVERLAP);
    bad = p;
    bad.cipher = 9;
    CHECK_STATUS(envol_header_context(&bad, pairs, strings, sizeof strings, &n_pairs),
                 ENVOL_ERR_INVALID_ARGUMENT);
    bad = p;
    bad.sector_size = 100;
    CHECK_STATUS(envol_header_context(&bad, pairs, strings, sizeof strings, &n_pairs),
                 ENVOL_ERR_VOLUME_PARAMS);
    CHECK(is_filled(strings, sizeof strings, 0x5a) && is_filled(pairs, sizeof pairs, 0x5a));
    CHECK(n_pairs == 77);
    CHECK_STATUS(envol_header_context(&p, pairs, strings, sizeof strings, &n_pairs), ENVOL_OK);

    where("the context is the one the blob was wrapped under");
    CHECK_STATUS(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", blob, blob_len, pairs,
                                                  n_pairs, dek, sizeof dek, &dek_len),
                 ENVOL_OK);
    CHECK(dek_len == 64);
    CHECK_STATUS(envol_local_kms_decrypt_data_key(g_kms, "hypervisor", blob, blob_len,
                                                  pairs + 1, n_pairs - 1, dek, sizeof dek,
                                                  &dek_len),
                 ENVOL_ERR_INVALID_CIPHERTEXT);

    where("envol_header_unwrap equals the high-level read");
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", a, b), ENVOL_OK);
    CHECK(envol_xts_backend(&g_ctx) == envol_backend_detect());
    memcpy(g_raw, g_disk + DOFF + 40 * SS, 24 * SS);
    CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 40, SS, g_raw, g_raw, 24 * SS), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 40, g_back, 24 * SS), ENVOL_OK);
    CHECK(memcmp(g_raw, g_back, 24 * SS) == 0 && memcmp(g_raw, g_data + 40 * SS, 24 * SS) == 0);
    where("envol_xts from the plaintext key is the same engine");
    CHECK_STATUS(envol_xts_init(&g_ctx2, dek, dek_len), ENVOL_OK);
    memcpy(g_raw, g_disk + DOFF, SS * NSECT);
    CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx2, 0, SS, g_raw, g_raw, SS * NSECT), ENVOL_OK);
    CHECK(memcmp(g_raw, g_data, SS * NSECT) == 0);
    where("low-level writes read back through the high level");
    fill_data(g_copy, 8 * SS, 11);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 300, SS, g_copy, g_disk + DOFF + 300 * SS,
                                           8 * SS),
                 ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 300, g_back, 8 * SS), ENVOL_OK);
    CHECK(memcmp(g_back, g_copy, 8 * SS) == 0);
    CHECK_STATUS(envol_volume_write(&g_vol, 300, g_data + 300 * SS, 8 * SS), ENVOL_OK);

    where("envol_header_unwrap: errors leave ctx untouched");
    memcpy(g_ctx_snap, &g_ctx, sizeof g_ctx_snap);
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "admin", a, b), ENVOL_ERR_ACCESS_DENIED);
    CHECK_NULL(envol_header_unwrap(NULL, &g_cb, "hypervisor", a, b));
    CHECK_NULL(envol_header_unwrap(&g_ctx, NULL, "hypervisor", a, b));
    CHECK_NULL(envol_header_unwrap(&g_ctx, &no_dec, "hypervisor", a, b));
    CHECK_NULL(envol_header_unwrap(&g_ctx, &g_cb, NULL, a, b));
    CHECK_NULL(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", NULL, b));
    CHECK_NULL(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", a, NULL));
    CHECK_STATUS(envol_header_unwrap((envol_xts *)(void *)((uint8_t *)&g_misbuf + 16), &g_cb,
                                     "hypervisor", a, b),
                 ENVOL_ERR_ALIGNMENT);
    memset(slot, 0, sizeof slot);
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", slot, slot),
                 ENVOL_ERR_HEADER_BAD_MAGIC);
    CHECK(memcmp(g_ctx_snap, &g_ctx, sizeof g_ctx_snap) == 0);

    where("envol_header_build reproduces the volume's header");
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 1, dek, dek_len, slot), ENVOL_OK);
    CHECK(memcmp(slot, a, sizeof slot) == 0);
    CHECK_STATUS(envol_header_check(slot), ENVOL_OK);
    where("envol_header_build: a newer copy is picked and attaches");
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 9, dek, dek_len, slot), ENVOL_OK);
    memcpy(b, slot, sizeof slot);
    CHECK(reopen(&g_vol));
    CHECK(vol_info(&g_vol, NULL, &seq, NULL) && seq == 9);
    CHECK(memcmp(a, b, ENVOL_HEADER_SLOT_SIZE) == 0);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, sizeof g_back), ENVOL_OK);
    CHECK(memcmp(g_back, g_data, sizeof g_data) == 0);
    where("envol_header_build with a wrong data key: refused at attach");
    dek[5] ^= 1;
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 10, dek, dek_len, slot), ENVOL_OK);
    dek[5] ^= 1;
    memcpy(a, slot, sizeof slot);
    memcpy(b, slot, sizeof slot);
    envol_volume_close(&g_vol);
    {
        envol_block_device dev = dev_of(&g_md);
        CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    }
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_HEADER_TAMPERED);
    envol_volume_close(&g_vol);
    where("envol_header_build: errors leave the slot untouched");
    memset(slot, 0x5a, sizeof slot);
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 1, dek, 16, slot), ENVOL_ERR_KEY_LENGTH);
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 1, dek, 32, slot),
                 ENVOL_ERR_KEY_MISMATCH);
    bad = p;
    bad.cipher = ENVOL_CIPHER_AES_XTS_128;
    CHECK_STATUS(envol_header_build(&bad, blob, blob_len, 1, dek, 32, slot),
                 ENVOL_ERR_HEADER_MALFORMED); /* the blob holds a 64-byte key */
    CHECK_STATUS(envol_header_build(&p, blob, blob_len - 1, 1, dek, dek_len, slot),
                 ENVOL_ERR_HEADER_MALFORMED);
    CHECK_STATUS(envol_header_build(&p, dek, 64, 1, dek, dek_len, slot),
                 ENVOL_ERR_HEADER_MALFORMED);
    bad = p;
    bad.volume_size = 7;
    CHECK_STATUS(envol_header_build(&bad, blob, blob_len, 1, dek, dek_len, slot),
                 ENVOL_ERR_VOLUME_PARAMS);
    CHECK_NULL(envol_header_build(NULL, blob, blob_len, 1, dek, dek_len, slot));
    CHECK_NULL(envol_header_build(&p, NULL, blob_len, 1, dek, dek_len, slot));
    CHECK_NULL(envol_header_build(&p, blob, blob_len, 1, NULL, dek_len, slot));
    CHECK_NULL(envol_header_build(&p, blob, blob_len, 1, dek, dek_len, NULL));
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 1, dek, dek_len, blob),
                 ENVOL_ERR_OVERLAP);
    CHECK(is_filled(slot, sizeof slot, 0x5a));
    memset(dek, 0, sizeof dek);
    envol_xts_wipe(&g_ctx);
    envol_xts_wipe(&g_ctx2);
    CHECK(g_md.bad_calls == 0);
}

/* A tool makes a volume by hand with the low level and its own key-service
 * calls; the high level then uses it. */
static void test_volume_by_hand(void)
{
    envol_volume_params p =
        params_of(ENVOL_CIPHER_AES_XTS_128, 4096, 16384, (uint64_t)4096 * 32, 0x99);
    envol_kv pairs[ENVOL_HEADER_CONTEXT_PAIRS];
    char strings[ENVOL_HEADER_CONTEXT_STRINGS];
    uint8_t dek[32], blob[ENVOL_MAX_BLOB], slot[ENVOL_HEADER_SLOT_SIZE];
    size_t n_pairs = 0, blob_len = 0;
    envol_block_device dev = dev_of(&g_md);
    char id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int att = -1;
    envol_volume_params got;

    where("volume by hand");
    envol_volume_close(&g_vol);
    md_reset(&g_md, g_disk, 16384 + 4096 * 32);
    CHECK_STATUS(envol_header_context(&p, pairs, strings, sizeof strings, &n_pairs), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_generate_data_key(g_kms, "hypervisor", "disk-key", sizeof dek,
                                                   pairs, n_pairs, dek, blob, sizeof blob,
                                                   &blob_len),
                 ENVOL_OK);
    CHECK_STATUS(envol_header_build(&p, blob, blob_len, 1, dek, sizeof dek, slot), ENVOL_OK);
    memcpy(g_disk, slot, sizeof slot);
    memcpy(g_disk + ENVOL_HEADER_SLOT_SIZE, slot, sizeof slot);
    /* Sector 5 written by the tool itself. */
    CHECK_STATUS(envol_xts_init(&g_ctx, dek, sizeof dek), ENVOL_OK);
    fill_data(g_copy, 4096, 5);
    CHECK_STATUS(envol_xts_encrypt_sectors(&g_ctx, 5, 4096, g_copy, g_disk + 16384 + 5 * 4096,
                                           4096),
                 ENVOL_OK);
    memset(dek, 0, sizeof dek);
    envol_xts_wipe(&g_ctx);

    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &g_cb), ENVOL_OK);
    CHECK_STATUS(envol_volume_info(&g_vol, &got, &seq, id, &att), ENVOL_OK);
    CHECK(memcmp(&got, &p, sizeof p) == 0 && seq == 1 && strcmp(id, "disk-key") == 0);
    CHECK(att == 0);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 5, g_back, 4096), ENVOL_OK);
    CHECK(memcmp(g_back, g_copy, 4096) == 0);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, 4096 * 32), ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, 4096 * 33), ENVOL_ERR_OUT_OF_RANGE);
    CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, 512), ENVOL_ERR_LENGTH);
    CHECK_STATUS(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_OK);
    CHECK(key_is(&g_vol, "disk-key-2"));
    envol_volume_close(&g_vol);
    CHECK(g_md.bad_calls == 0);
}

/* Other ciphers and sector sizes, each checked against the low level. */
static void test_geometries(void)
{
    static const struct {
        uint32_t cipher, ss;
        uint64_t doff, sectors;
    } geo[] = {
        {ENVOL_CIPHER_AES_XTS_128, 512, 8192, 64},
        {ENVOL_CIPHER_AES_XTS_256, 4096, ENVOL_DEFAULT_DATA_OFFSET - 4096 * 64, 16},
        {ENVOL_CIPHER_AES_XTS_256, 65536, 65536, 4},
        {ENVOL_CIPHER_AES_XTS_128, 65536, 131072, 3},
    };
    size_t k;
    for (k = 0; k < N(geo); k++) {
        envol_volume_params p =
            params_of(geo[k].cipher, geo[k].ss, geo[k].doff, geo[k].ss * geo[k].sectors,
                      (uint8_t)k);
        envol_block_device dev = dev_of(&g_md);
        size_t len = (size_t)(geo[k].ss * geo[k].sectors);
        unsigned writes;

        where("geometry %u: cipher %u, sectors of %u at %u", (unsigned)k,
              (unsigned)geo[k].cipher, (unsigned)geo[k].ss, (unsigned)geo[k].doff);
        envol_volume_close(&g_vol);
        md_reset(&g_md, g_disk, (size_t)geo[k].doff + len);
        fill_data(g_copy, len, (unsigned)k);
        memcpy(g_data, g_copy, len);
        CHECK_STATUS(envol_volume_create(&g_vol, &dev, &g_cb, "hypervisor", "disk-key", &p),
                     ENVOL_OK);
        writes = g_md.writes;
        CHECK_STATUS(envol_volume_write(&g_vol, 0, g_data, len), ENVOL_OK);
        CHECK(memcmp(g_data, g_copy, len) == 0);
        CHECK(g_md.writes - writes == (len + 65535) / 65536);
        CHECK(!contains(g_disk, g_md.size, SECRET, 20));
        CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, len), ENVOL_OK);
        CHECK(memcmp(g_back, g_copy, len) == 0);
        CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, geo[k].ss / 2), ENVOL_ERR_LENGTH);
        CHECK_STATUS(envol_volume_read(&g_vol, geo[k].sectors, g_back, geo[k].ss),
                     ENVOL_ERR_OUT_OF_RANGE);
        CHECK_STATUS(envol_header_unwrap(&g_ctx, &g_cb, "hypervisor", g_disk,
                                         g_disk + ENVOL_HEADER_SLOT_SIZE),
                     ENVOL_OK);
        memcpy(g_raw, g_disk + geo[k].doff + geo[k].ss, geo[k].ss);
        CHECK_STATUS(envol_xts_decrypt_sectors(&g_ctx, 1, geo[k].ss, g_raw, g_raw, geo[k].ss),
                     ENVOL_OK);
        CHECK(memcmp(g_raw, g_copy + geo[k].ss, geo[k].ss) == 0);
        envol_xts_wipe(&g_ctx);
        CHECK(reopen(&g_vol));
        CHECK_STATUS(envol_volume_read(&g_vol, 0, g_back, len), ENVOL_OK);
        CHECK(memcmp(g_back, g_copy, len) == 0);
        envol_volume_close(&g_vol);
        CHECK(g_md.bad_calls == 0);
    }
}

/* Key services written in C that misbehave. */
static void test_bad_key_service(void)
{
    fake_kms fake;
    envol_kms_callbacks t;
    envol_block_device dev = dev_of(&g_md);
    envol_volume_params p = std_params();

    memset(&fake, 0, sizeof fake);
    t.user = &fake;
    t.generate_data_key = fake_generate;
    t.decrypt_data_key = fake_decrypt;
    t.re_encrypt = NULL;
    t.retire_context = NULL;

    where("C key service: a 32-byte key for an AES-256 volume");
    CHECK(make_std_volume("disk-key"));
    envol_volume_close(&g_vol);
    CHECK_STATUS(envol_volume_open(&g_vol, &dev, &t), ENVOL_OK);
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_KEY_MISMATCH);
    CHECK(vol_info(&g_vol, NULL, NULL, NULL));
    memset(&g_ctx, 0, sizeof g_ctx);
    CHECK_STATUS(envol_header_unwrap(&g_ctx, &t, "hypervisor", g_disk,
                                     g_disk + ENVOL_HEADER_SLOT_SIZE),
                 ENVOL_ERR_KEY_MISMATCH);
    CHECK(is_filled(&g_ctx, sizeof g_ctx, 0));
    where("C key service: unknown status");
    fake.mode = 1;
    CHECK_STATUS(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_ERR_KMS_UNAVAILABLE);
    envol_volume_close(&g_vol);
    where("C key service: create with a blob that is not one");
    md_reset(&g_md, g_disk, DISK_SIZE);
    fake.mode = 0;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &t, "hypervisor", "k", &p),
                 ENVOL_ERR_HEADER_MALFORMED);
    fake.mode = 1;
    CHECK_STATUS(envol_volume_create(&g_vol, &dev, &t, "hypervisor", "k", &p),
                 ENVOL_ERR_KMS_UNAVAILABLE);
    CHECK(is_filled(&g_vol, sizeof g_vol, 0));
    CHECK(g_md.writes == 0);
    /* A key that does not fit is tried against both header copies. */
    CHECK(fake.calls == 7);
}

int main(void)
{
    printf("envol %s, auto backend: %s\n", envol_version(),
           envol_backend_name(envol_backend_detect()));

    if (envol_local_kms_new(&g_kms) != ENVOL_OK ||
        envol_local_kms_set_service_policy(g_kms, "operator", SERVICE_POLICY) != ENVOL_OK ||
        envol_local_kms_create_key(g_kms, "operator", "disk-key", LEAST_PRIVILEGE) != ENVOL_OK ||
        envol_local_kms_create_key(g_kms, "operator", "disk-key-2", LEAST_PRIVILEGE) !=
            ENVOL_OK ||
        envol_local_kms_callbacks(g_kms, &g_cb) != ENVOL_OK) {
        printf("no key service; giving up\n0 passed, 1 failed\n");
        return 1;
    }

    run("basics", test_basics);
    run("empty state", test_empty_state);
    run("create", test_create);
    run("read/write", test_read_write);
    run("attach/detach", test_attach_detach);
    run("key wiped", test_key_wiped);
    run("open", test_open);
    run("tampered", test_tampered);
    run("retire", test_retire);
    run("rewrap", test_rewrap);
    run("torn rewrap", test_torn_rewrap);
    run("low level", test_low_level);
    run("volume by hand", test_volume_by_hand);
    run("geometries", test_geometries);
    run("bad key service", test_bad_key_service);

    envol_volume_close(&g_vol);
    envol_volume_close(&g_vol2);
    envol_local_kms_free(g_kms);

    return check_summary();
}
