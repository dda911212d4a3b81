/*
 * hypervisor.c - the whole envelope-encryption lifecycle of one volume on a
 * file-backed disk, driven through envol's C ABI the way a hypervisor would,
 * printed step by step.
 *
 * Build and run (from the workspace root):
 *
 *   cargo build --release -p envol-ffi
 *   cc -std=c99 -Wall -Wextra -Wpedantic -Werror -Iffi/include \
 *       ffi/examples/hypervisor.c target/release/libenvol.a \
 *       -lpthread -ldl -lm -o hypervisor
 *   ./hypervisor [disk image path]
 *
 * Without an argument the disk is a sparse file in /tmp, removed at the end;
 * a given path is created (or truncated) and kept. `cargo test -p envol-ffi`
 * runs this program too (plain, under ASan + UBSan, and under valgrind when
 * it is installed). Exit status 0 only if every step behaved as expected.
 *
 * The block device is three callbacks over the file (pread, pwrite, fsync);
 * the key service is envol's reference service (envol_local_kms) through
 * its callback table, so the same code runs against any key service that
 * fills an envol_kms_callbacks table. No malloc: the volume is a static
 * envol_volume.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "envol.h"

/* Who may create keys on the service: the operator. */
static const char SERVICE_POLICY[] =
    "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Envol\":\"operator\"},"
    "\"Action\":\"kms:CreateKey\"}}";

/* The seed's least-privilege policy (core/examples/lifecycle.rs). */
static const char POLICY[] =
    "{\n"
    "  \"Version\": \"2012-10-17\",\n"
    "  \"Statement\": [\n"
    "    { \"Sid\": \"HypervisorUsesKeyForVolumes\", \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\"Envol\": \"hypervisor\"},\n"
    "      \"Action\": [\"kms:GenerateDataKey*\", \"kms:Decrypt\", \"kms:ReEncrypt*\"],\n"
    "      \"Condition\": {\"StringLike\": {\"kms:EncryptionContext:volume\": \"vol-*\"}} },\n"
    "    { \"Sid\": \"AdminManagesKey\", \"Effect\": \"Allow\",\n"
    "      \"Principal\": {\"Envol\": \"admin\"}, \"Action\": \"kms:*\" },\n"
    "    { \"Sid\": \"AdminNeverSeesDataKeys\", \"Effect\": \"Deny\",\n"
    "      \"Principal\": {\"Envol\": \"admin\"},\n"
    "      \"Action\": [\"kms:Decrypt\", \"kms:GenerateDataKey*\", \"kms:ReEncrypt*\", "
    "\"kms:Encrypt\"] }\n"
    "  ]\n"
    "}";

#define SECTOR 4096u
#define SECTORS 256u
#define FIRST 100u /* where the guest writes */
#define COUNT 16u  /* how many sectors */

static const char MESSAGE[] = "Dear guest, this is your secret data. ";

/* Static storage: the volume struct is large (ENVOL_VOLUME_SIZE bytes). */
static envol_volume g_vol;
static envol_xts g_ctx;
static uint8_t g_data[COUNT * SECTOR];
static uint8_t g_copy[COUNT * SECTOR];
static uint8_t g_back[COUNT * SECTOR];
static uint8_t g_raw[(size_t)ENVOL_DEFAULT_DATA_OFFSET + SECTORS * SECTOR];
static uint8_t g_slots[ENVOL_HEADERS_SIZE];
static uint8_t g_blob[ENVOL_MAX_BLOB];
static char g_line[2048];

static int g_failures;

/* Records the outcome of a step's check. */
static void expect(int ok, const char *what)
{
    if (!ok) {
        g_failures++;
        printf("    UNEXPECTED: %s\n", what);
    }
}

/* Records that a call returned `want`; prints what it returned otherwise. */
static void expect_status(envol_status got, envol_status want, const char *what)
{
    if (got != want) {
        g_failures++;
        printf("    UNEXPECTED: %s gave %s, expected %s\n", what, envol_status_name(got),
               envol_status_name(want));
    }
}

static void step(int n, const char *what)
{
    printf("\n[%d] %s\n", n, what);
}

/* ------------------------------------------------------------------------ */
/* The block device: a file                                                  */

typedef struct file_disk {
    int fd;
} file_disk;

static int disk_read(void *user, uint64_t offset, uint8_t *buf, size_t len)
{
    file_disk *d = (file_disk *)user;
    while (len > 0) {
        ssize_t n = pread(d->fd, buf, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return EIO; /* past the end of the file */
        }
        buf += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int disk_write(void *user, uint64_t offset, const uint8_t *buf, size_t len)
{
    file_disk *d = (file_disk *)user;
    while (len > 0) {
        ssize_t n = pwrite(d->fd, buf, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        buf += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int disk_flush(void *user)
{
    file_disk *d = (file_disk *)user;
    return fsync(d->fd) == 0 ? 0 : errno;
}

/* ------------------------------------------------------------------------ */

/* A random volume id from the OS (a fixed one if /dev/urandom is missing). */
static void random_id(uint8_t id[16])
{
    FILE *f = fopen("/dev/urandom", "rb");
    size_t i, got = 0;
    if (f != NULL) {
        got = fread(id, 1, 16, f);
        fclose(f);
    }
    for (i = got; i < 16; i++) {
        id[i] = (uint8_t)(0xa5 ^ (i * 29));
    }
}

static int contains(const uint8_t *hay, size_t hay_len, const void *needle, size_t n)
{
    size_t i;
    for (i = 0; i + n <= hay_len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The most recent audit line naming `principal`, into g_line; 1 if found. */
static int last_audit_line(envol_local_kms *kms, const char *principal)
{
    char needle[300];
    uint64_t first = 0, seq = 0;
    size_t len = 0;
    snprintf(needle, sizeof needle, "principal=%s ", principal);
    if (envol_local_kms_audit_range(kms, &first, &seq) != ENVOL_OK) {
        return 0;
    }
    while (seq-- > first) {
        if (envol_local_kms_audit_event_line(kms, seq, g_line, sizeof g_line, &len) == ENVOL_OK &&
            strstr(g_line, needle) != NULL) {
            return 1;
        }
    }
    return 0;
}

static const char *cipher_name(uint32_t c)
{
    return c == ENVOL_CIPHER_AES_XTS_256   ? "AES-256-XTS"
           : c == ENVOL_CIPHER_AES_XTS_128 ? "AES-128-XTS"
                                           : "unknown";
}

int main(int argc, char **argv)
{
    char path[256];
    int keep = argc > 1;
    file_disk disk;
    envol_block_device dev;
    envol_local_kms *kms = NULL;
    envol_kms_callbacks cb;
    envol_volume_params params, got;
    char key_id[ENVOL_MAX_KEY_ID + 1];
    uint64_t seq = 0;
    int attached = -1, repair = 0;
    size_t i, blob_len = 0;
    envol_status st;
    uint64_t disk_size = ENVOL_DEFAULT_DATA_OFFSET + (uint64_t)SECTORS * SECTOR;

    if (keep) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        snprintf(path, sizeof path, "/tmp/envol-hypervisor-%ld.img", (long)getpid());
    }
    printf("envol %s - volume lifecycle through the C ABI (hypervisor.c)\n", envol_version());
    if (envol_volume_size() != sizeof(envol_volume) || envol_xts_size() != sizeof(envol_xts)) {
        printf("envol.h does not match the library\n");
        return 1;
    }

    step(1, "key service: master keys `disk-key`, `disk-key-2` with a least-privilege policy");
    if (envol_local_kms_new(&kms) != ENVOL_OK) {
        printf("    cannot start the key service\n");
        return 1;
    }
    /* Who may create keys at all is the service policy's to say. */
    expect_status(envol_local_kms_set_service_policy(kms, "operator", SERVICE_POLICY), ENVOL_OK,
                  "service policy");
    expect_status(envol_local_kms_create_key(kms, "operator", "disk-key", POLICY), ENVOL_OK,
                  "create disk-key");
    expect_status(envol_local_kms_create_key(kms, "operator", "disk-key-2", POLICY), ENVOL_OK,
                  "create disk-key-2");
    expect_status(envol_local_kms_callbacks(kms, &cb), ENVOL_OK, "callback table");
    printf("    hypervisor: GenerateDataKey*/Decrypt/ReEncrypt* for contexts volume=vol-*\n");
    printf("    admin: manages the keys, explicitly denied data keys\n");

    step(2, "create an encrypted volume (fresh data key, wrapped in the header)");
    disk.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (disk.fd < 0 || ftruncate(disk.fd, (off_t)disk_size) != 0) {
        printf("    cannot create %s: %s\n", path, strerror(errno));
        envol_local_kms_free(kms);
        return 1;
    }
    dev.user = &disk;
    dev.read_at = disk_read;
    dev.write_at = disk_write;
    dev.flush = disk_flush;
    memset(&params, 0, sizeof params);
    params.cipher = ENVOL_CIPHER_AES_XTS_256;
    params.sector_size = SECTOR;
    params.data_offset = ENVOL_DEFAULT_DATA_OFFSET;
    params.volume_size = (uint64_t)SECTORS * SECTOR;
    random_id(params.volume_id);
    st = envol_volume_create(&g_vol, &dev, &cb, "hypervisor", "disk-key", &params);
    expect_status(st, ENVOL_OK, "envol_volume_create");
    expect_status(envol_volume_info(&g_vol, &got, &seq, key_id, &attached), ENVOL_OK,
                  "envol_volume_info");
    printf("    %s: %u sectors of %u bytes, data at byte %llu, backend %s\n", path, SECTORS,
           SECTOR, (unsigned long long)got.data_offset,
           envol_backend_name(envol_volume_backend(&g_vol)));
    printf("    volume id vol-");
    for (i = 0; i < 16; i++) {
        printf("%02x", got.volume_id[i]);
    }
    printf(", data key wrapped under `%s`, header sequence %llu, %s\n", key_id,
           (unsigned long long)seq, attached ? "attached" : "detached");
    expect(attached == 1 && strcmp(key_id, "disk-key") == 0, "attached under disk-key");

    step(3, "the guest writes data");
    for (i = 0; i < sizeof g_data; i++) {
        g_data[i] = (uint8_t)MESSAGE[i % (sizeof MESSAGE - 1)];
    }
    memcpy(g_copy, g_data, sizeof g_data);
    expect_status(envol_volume_write(&g_vol, FIRST, g_data, sizeof g_data), ENVOL_OK,
                  "envol_volume_write");
    expect_status(envol_volume_flush(&g_vol), ENVOL_OK, "envol_volume_flush");
    printf("    wrote %u bytes at sectors %u..%u (encrypted through envol's bounce buffer;\n"
           "    the guest's buffer is %s)\n",
           (unsigned)sizeof g_data, FIRST, FIRST + COUNT,
           memcmp(g_data, g_copy, sizeof g_data) == 0 ? "unchanged" : "MODIFIED");
    expect(memcmp(g_data, g_copy, sizeof g_data) == 0, "guest buffer unchanged");

    step(4, "the raw disk holds no plaintext");
    expect(disk_read(&disk, 0, g_raw, sizeof g_raw) == 0, "read the raw disk");
    {
        int found = contains(g_raw, sizeof g_raw, MESSAGE, 20);
        printf("    searched %u bytes of %s for the guest's text: %s\n", (unsigned)sizeof g_raw,
               path, found ? "FOUND (bug)" : "not found");
        expect(!found, "no plaintext on disk");
    }

    step(5, "the low level: the same sectors through a hypervisor's own I/O path");
    expect(disk_read(&disk, 0, g_slots, sizeof g_slots) == 0, "read the header slots");
    st = envol_header_parse(g_slots, g_slots + ENVOL_HEADER_SLOT_SIZE, &got, &seq, g_blob,
                            sizeof g_blob, &blob_len, &repair);
    expect_status(st, ENVOL_OK, "envol_header_parse");
    printf("    envol_header_parse: %s, %u-byte sectors from byte %llu, sequence %llu, "
           "%u-byte wrapped key\n",
           cipher_name(got.cipher), (unsigned)got.sector_size,
           (unsigned long long)got.data_offset, (unsigned long long)seq, (unsigned)blob_len);
    st = envol_header_unwrap(&g_ctx, &cb, "hypervisor", g_slots,
                             g_slots + ENVOL_HEADER_SLOT_SIZE);
    expect_status(st, ENVOL_OK, "envol_header_unwrap");
    printf("    envol_header_unwrap as `hypervisor`: envol_xts ready on %s\n",
           envol_backend_name(envol_xts_backend(&g_ctx)));
    {
        uint64_t off = got.data_offset + (uint64_t)(FIRST + 3) * got.sector_size;
        uint8_t *sector = g_raw; /* reused as scratch */
        expect(disk_read(&disk, off, sector, SECTOR) == 0, "pread one sector");
        st = envol_xts_decrypt_sectors(&g_ctx, FIRST + 3, SECTOR, sector, sector, SECTOR);
        expect_status(st, ENVOL_OK, "envol_xts_decrypt_sectors");
        expect_status(envol_volume_read(&g_vol, FIRST + 3, g_back, SECTOR), ENVOL_OK,
                      "envol_volume_read");
        printf("    pread %u bytes at byte %llu (data sector %u), envol_xts_decrypt_sectors:\n"
               "    %s envol_volume_read of sector %u\n",
               SECTOR, (unsigned long long)off, FIRST + 3,
               memcmp(sector, g_back, SECTOR) == 0 ? "identical to" : "DIFFERENT from",
               FIRST + 3);
        expect(memcmp(sector, g_back, SECTOR) == 0 &&
                   memcmp(sector, g_data + 3 * SECTOR, SECTOR) == 0,
               "low level equals high level");
    }
    envol_xts_wipe(&g_ctx);
    printf("    envol_xts_wipe: the context now reports backend %s (no key)\n",
           envol_backend_name(envol_xts_backend(&g_ctx)));
    expect(envol_xts_backend(&g_ctx) == ENVOL_BACKEND_AUTO, "context wiped");

    step(6, "stop: detach wipes the data key from memory");
    expect_status(envol_volume_detach(&g_vol), ENVOL_OK, "envol_volume_detach");
    st = envol_volume_read(&g_vol, FIRST, g_back, SECTOR);
    printf("    envol_volume_read after detach: %s\n", envol_status_name(st));
    expect_status(st, ENVOL_ERR_VOLUME_DETACHED, "read after detach");
    printf("    engine inside the volume: %s (none)\n",
           envol_backend_name(envol_volume_backend(&g_vol)));
    expect(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO, "no engine after detach");
    {
        /* For this demonstration only: unwrap the data key here too and look
         * for it, 16 bytes at a time (the key halves are also the first
         * round keys), in the detached struct. */
        envol_kv pairs[ENVOL_HEADER_CONTEXT_PAIRS];
        char strings[ENVOL_HEADER_CONTEXT_STRINGS];
        uint8_t dek[64];
        size_t n_pairs = 0, dek_len = 0, j;
        int found = 0;
        expect_status(envol_header_context(&got, pairs, strings, sizeof strings, &n_pairs),
                      ENVOL_OK, "envol_header_context");
        expect_status(envol_local_kms_decrypt_data_key(kms, "hypervisor", g_blob, blob_len, pairs,
                                                       n_pairs, dek, sizeof dek, &dek_len),
                      ENVOL_OK, "unwrap the data key for the check");
        for (j = 0; j + 16 <= dek_len; j += 16) {
            found |= contains((const uint8_t *)&g_vol, sizeof g_vol, dek + j, 16);
        }
        memset(dek, 0, sizeof dek);
        printf("    the %u-byte envol_volume holds %s of the %u-byte data key\n",
               (unsigned)sizeof g_vol, found ? "PART (bug)" : "no part", (unsigned)dek_len);
        expect(!found && dek_len == 64, "no key left in the detached volume");
    }


    step(7, "start: attach as `hypervisor` (unwrap through the key service) and read back");
    expect_status(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK, "attach as hypervisor");
    memset(g_back, 0, sizeof g_back);
    expect_status(envol_volume_read(&g_vol, FIRST, g_back, sizeof g_back), ENVOL_OK,
                  "envol_volume_read");
    printf("    read back %u bytes: %s\n", (unsigned)sizeof g_back,
           memcmp(g_back, g_data, sizeof g_data) == 0 ? "identical" : "MISMATCH");
    expect(memcmp(g_back, g_data, sizeof g_data) == 0, "read back");
    expect_status(envol_volume_detach(&g_vol), ENVOL_OK, "envol_volume_detach");

    step(8, "an unauthorized principal is refused, and the refusal is audited");
    st = envol_volume_attach(&g_vol, "admin");
    printf("    attach as `admin`: %s\n", envol_status_name(st));
    expect_status(st, ENVOL_ERR_ACCESS_DENIED, "attach as admin");
    if (last_audit_line(kms, "admin")) {
        printf("    audit: %s\n", g_line);
        expect(strstr(g_line, "outcome=ENVOL_ERR_ACCESS_DENIED") != NULL &&
                   strstr(g_line, "action=kms:Decrypt") != NULL,
               "refusal audited");
    } else {
        expect(0, "an audit line for admin");
    }
    st = envol_local_kms_audit_verify(kms);
    printf("    audit chain of %u events: %s\n", (unsigned)envol_local_kms_audit_len(kms),
           st == ENVOL_OK ? "verifies" : envol_status_name(st));
    expect_status(st, ENVOL_OK, "audit chain");

    step(9, "rewrap to a new master key (data untouched, crash-safe header update)");
    expect_status(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK, "attach");
    expect_status(envol_volume_rewrap(&g_vol, "hypervisor", "disk-key-2"), ENVOL_OK,
                  "envol_volume_rewrap");
    expect_status(envol_volume_info(&g_vol, &got, &seq, key_id, &attached), ENVOL_OK,
                  "envol_volume_info");
    printf("    header now names `%s`, sequence %llu\n", key_id, (unsigned long long)seq);
    expect(strcmp(key_id, "disk-key-2") == 0 && seq == 2, "rewrapped");
    expect_status(envol_volume_detach(&g_vol), ENVOL_OK, "envol_volume_detach");

    step(10, "disable the master key: the next start is refused");
    expect_status(envol_local_kms_disable_key(kms, "admin", "disk-key-2"), ENVOL_OK,
                  "disable disk-key-2");
    st = envol_volume_attach(&g_vol, "hypervisor");
    printf("    attach as `hypervisor`: %s\n", envol_status_name(st));
    expect_status(st, ENVOL_ERR_KEY_DISABLED, "attach with the key disabled");
    expect_status(envol_local_kms_enable_key(kms, "admin", "disk-key-2"), ENVOL_OK,
                  "enable disk-key-2");
    expect_status(envol_volume_attach(&g_vol, "hypervisor"), ENVOL_OK, "attach");
    memset(g_back, 0, sizeof g_back);
    expect_status(envol_volume_read(&g_vol, FIRST, g_back, sizeof g_back), ENVOL_OK,
                  "envol_volume_read");
    printf("    re-enabled: attach and read back %s\n",
           memcmp(g_back, g_data, sizeof g_data) == 0 ? "ok" : "MISMATCH");
    expect(memcmp(g_back, g_data, sizeof g_data) == 0, "read back after re-enable");

    envol_volume_close(&g_vol);
    envol_local_kms_free(kms);
    close(disk.fd);
    if (!keep) {
        unlink(path);
    }
    if (g_failures != 0) {
        printf("\n%d step(s) did not behave as expected\n", g_failures);
        return 1;
    }
    printf("\ndone: every step behaved as expected\n");
    return 0;
}
