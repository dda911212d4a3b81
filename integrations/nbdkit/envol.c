/*
 * nbdkit-envol-plugin: serves one envol volume as an NBD export.
 *
 * Build (one command, from the repository root):
 *
 *   integrations/nbdkit/build.sh      # -> target/nbdkit/nbdkit-envol-plugin.so
 *
 * Run (the blocksize filter turns requests smaller than a sector into
 * read-modify-write, so every client works):
 *
 *   nbdkit -U /tmp/disk.sock --filter=blocksize \
 *       target/nbdkit/nbdkit-envol-plugin.so \
 *       volume=disk.img principal=hypervisor \
 *       store=kms.store root-key-file=root.key
 *
 * The data path is envol's multi-queue one: nbdkit's thread model is
 * PARALLEL, every request runs on its own nbdkit thread, reads decrypt in
 * place in nbdkit's buffer (envol_volume_decrypt) and writes encrypt into a
 * per-thread buffer (envol_volume_encrypt) written with one pwrite. No lock
 * on the hot path.
 *
 * The volume is attached when the first client connects and detached (its
 * data key wiped) when the last one leaves, and at exit. A key service that
 * refuses the attach (key disabled, principal not allowed) makes the
 * connection fail with the reason in nbdkit's log; nothing is written.
 *
 * Flush (and FUA) make writes durable with fdatasync; header updates are
 * flushed by envol itself. Trim is not offered: passing discards through
 * would show which sectors are free (as dm-crypt's allow_discards warns),
 * so discarded sectors keep their old ciphertext. Write-zeroes writes
 * encrypted zero sectors, so zeroed ranges read back as zeros and look like
 * any other data on disk; it is never turned into a hole.
 */

#define NBDKIT_API_VERSION 2
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "envol.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Largest request nbdkit hands a plugin (and what block_size advertises). */
#define MAX_REQUEST (32u * 1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

static char *cfg_volume;
static char *cfg_principal;
static char *cfg_kms = "local";
static char *cfg_store;
static char *cfg_root_key_file;
static char *cfg_pkcs11_module;
static char *cfg_pkcs11_token;
static char *cfg_pkcs11_pin_file;
static char *cfg_kmip_address;
static char *cfg_kmip_ca;
static char *cfg_kmip_cert;
static char *cfg_kmip_key;
static char *cfg_kmip_server_name;
static char *cfg_audit_log;
static int cfg_have_volume_id;
static uint8_t cfg_volume_id[16];
static uint64_t cfg_lease;
static uint64_t cfg_lease_grace;
static uint64_t cfg_cache_ms;

/* ------------------------------------------------------------------------ */
/* State                                                                     */

static int g_fd = -1;
static envol_local_kms *g_local;
static envol_remote_kms *g_remote;
static envol_kms_callbacks g_kms;
static envol_block_device g_dev;
static envol_volume g_vol; /* static: large, 64-byte aligned by its type */
static envol_volume_params g_params;
static int g_audit_fd = -1;

static pthread_mutex_t g_attach_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_clients; /* connections open; the volume is attached while > 0 */

static pthread_key_t g_scratch_key;
static int g_scratch_key_made;

static pthread_t g_lease_thread;
static int g_lease_thread_started;
static pthread_mutex_t g_lease_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_lease_cv = PTHREAD_COND_INITIALIZER;
static int g_stopping;

static const char *sname(envol_status st)
{
    return envol_status_name(st);
}

/* ------------------------------------------------------------------------ */
/* Whole-buffer positional I/O                                               */

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            errno = EIO; /* past the end of the file: the volume is short */
            return -1;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return -1;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* The block device envol uses for its headers. */
static int dev_read(void *user, uint64_t off, uint8_t *buf, size_t len)
{
    (void)user;
    return full_pread(g_fd, buf, len, off);
}

static int dev_write(void *user, uint64_t off, const uint8_t *buf, size_t len)
{
    (void)user;
    return full_pwrite(g_fd, buf, len, off);
}

static int dev_flush(void *user)
{
    (void)user;
    return fdatasync(g_fd);
}

/* ------------------------------------------------------------------------ */
/* Secrets read from files, never from arguments                             */

/* Reads at most `cap` bytes of `path` into `out`; the length, or -1. */
static ssize_t read_small_file(const char *path, uint8_t *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0) {
        nbdkit_error("cannot open %s: %m", path);
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, out + got, cap - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            nbdkit_error("cannot read %s: %m", path);
            close(fd);
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
        if (got == cap) {
            uint8_t extra;
            if (read(fd, &extra, 1) != 0) {
                nbdkit_error("%s is longer than expected", path);
                close(fd);
                return -1;
            }
            break;
        }
    }
    close(fd);
    return (ssize_t)got;
}

static int hex_digit(uint8_t c)
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

/* `n` bytes from 2n hex digits; 0 on success. */
static int parse_hex(const uint8_t *hex, size_t hex_len, uint8_t *out, size_t n)
{
    size_t i;
    if (hex_len != 2 * n) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* The root key: a file of 32 raw bytes, or of 64 hex digits and an
 * optional newline. */
static int read_root_key(uint8_t key[32])
{
    uint8_t buf[66];
    ssize_t n = read_small_file(cfg_root_key_file, buf, sizeof buf);
    int rc = -1;
    if (n < 0) {
        return -1;
    }
    if (n == 32) {
        memcpy(key, buf, 32);
        rc = 0;
    } else {
        size_t len = (size_t)n;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            len--;
        }
        rc = parse_hex(buf, len, key, 32);
    }
    if (rc != 0) {
        nbdkit_error("%s: a root key is 32 bytes, or 64 hex digits", cfg_root_key_file);
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* nbdkit callbacks: configuration                                           */

static int envol_config(const char *key, const char *value)
{
    char **slot = NULL;
    if (strcmp(key, "volume") == 0) {
        slot = &cfg_volume;
    } else if (strcmp(key, "principal") == 0) {
        slot = &cfg_principal;
    } else if (strcmp(key, "kms") == 0) {
        if (strcmp(value, "local") != 0 && strcmp(value, "aws") != 0 &&
            strcmp(value, "pkcs11") != 0 && strcmp(value, "kmip") != 0) {
            nbdkit_error("kms=%s: the key service is local, aws, pkcs11 or kmip", value);
            return -1;
        }
        slot = &cfg_kms;
    } else if (strcmp(key, "store") == 0) {
        slot = &cfg_store;
    } else if (strcmp(key, "root-key-file") == 0) {
        slot = &cfg_root_key_file;
    } else if (strcmp(key, "pkcs11-module") == 0) {
        slot = &cfg_pkcs11_module;
    } else if (strcmp(key, "pkcs11-token") == 0) {
        slot = &cfg_pkcs11_token;
    } else if (strcmp(key, "pkcs11-pin-file") == 0) {
        slot = &cfg_pkcs11_pin_file;
    } else if (strcmp(key, "kmip-address") == 0) {
        slot = &cfg_kmip_address;
    } else if (strcmp(key, "kmip-ca") == 0) {
        slot = &cfg_kmip_ca;
    } else if (strcmp(key, "kmip-cert") == 0) {
        slot = &cfg_kmip_cert;
    } else if (strcmp(key, "kmip-key") == 0) {
        slot = &cfg_kmip_key;
    } else if (strcmp(key, "kmip-server-name") == 0) {
        slot = &cfg_kmip_server_name;
    } else if (strcmp(key, "audit-log") == 0) {
        slot = &cfg_audit_log;
    } else if (strcmp(key, "volume-id") == 0) {
        const char *hex = strncmp(value, "vol-", 4) == 0 ? value + 4 : value;
        if (parse_hex((const uint8_t *)hex, strlen(hex), cfg_volume_id, 16) != 0) {
            nbdkit_error("volume-id=%s: vol-<32 hex digits> expected", value);
            return -1;
        }
        cfg_have_volume_id = 1;
        return 0;
    } else if (strcmp(key, "lease") == 0) {
        return nbdkit_parse_uint64_t("lease", value, &cfg_lease);
    } else if (strcmp(key, "lease-grace") == 0) {
        return nbdkit_parse_uint64_t("lease-grace", value, &cfg_lease_grace);
    } else if (strcmp(key, "cache-ms") == 0) {
        return nbdkit_parse_uint64_t("cache-ms", value, &cfg_cache_ms);
    } else if (strcmp(key, "root-key") == 0 || strcmp(key, "pkcs11-pin") == 0) {
        nbdkit_error("%s: secrets are never taken from the command line; use %s-file=PATH",
                     key, key);
        return -1;
    } else {
        nbdkit_error("unknown parameter %s (see nbdkit envol --help)", key);
        return -1;
    }
    *slot = (char *)value; /* nbdkit keeps argv alive */
    return 0;
}

static int envol_config_complete(void)
{
    if (cfg_volume == NULL || cfg_principal == NULL) {
        nbdkit_error("volume=FILE and principal=NAME are required");
        return -1;
    }
    if (strcmp(cfg_kms, "local") == 0 && (cfg_store == NULL || cfg_root_key_file == NULL)) {
        nbdkit_error("kms=local needs store=FILE and root-key-file=FILE");
        return -1;
    }
    if (strcmp(cfg_kms, "pkcs11") == 0 &&
        (cfg_pkcs11_module == NULL || cfg_pkcs11_token == NULL || cfg_pkcs11_pin_file == NULL)) {
        nbdkit_error("kms=pkcs11 needs pkcs11-module, pkcs11-token and pkcs11-pin-file");
        return -1;
    }
    if (strcmp(cfg_kms, "kmip") == 0 && (cfg_kmip_address == NULL || cfg_kmip_ca == NULL ||
                                         cfg_kmip_cert == NULL || cfg_kmip_key == NULL)) {
        nbdkit_error("kms=kmip needs kmip-address, kmip-ca, kmip-cert and kmip-key");
        return -1;
    }
    if (cfg_audit_log != NULL && strcmp(cfg_kms, "local") != 0) {
        nbdkit_error("audit-log is for kms=local (AWS, HSMs and KMIP servers keep their own trail)");
        return -1;
    }
    return 0;
}

#define envol_config_help                                                                     \
    "volume=<FILE>          (required) the envol volume (file or block device)\n"           \
    "principal=<NAME>       (required) who attaches, as the key policy names it\n"          \
    "kms=local|aws|pkcs11|kmip   key service (default local)\n"                             \
    "store=<FILE>           kms=local: the sealed store\n"                                  \
    "root-key-file=<FILE>   kms=local: 32 bytes or 64 hex digits\n"                         \
    "audit-log=<FILE>       kms=local: append audit events (fail-closed)\n"                 \
    "pkcs11-module=<SO> pkcs11-token=<LABEL> pkcs11-pin-file=<FILE>   kms=pkcs11\n"          \
    "kmip-address=<HOST[:PORT]> kmip-ca=<PEM> kmip-cert=<PEM> kmip-key=<PEM>   kms=kmip\n"  \
    "kmip-server-name=<NAME> kms=kmip: the server certificate's name, if not the host\n"    \
    "                       (kms=aws: the AWS environment and shared files)\n"              \
    "volume-id=vol-<HEX>    refuse any other volume (as `envol volume inspect` shows it)\n"                      \
    "lease=<SECONDS>        renew the key service's consent this often (0: off)\n"          \
    "lease-grace=<SECONDS>  keep serving this long if the service is unreachable\n"         \
    "cache-ms=<MS>          kms=aws|pkcs11|kmip: cache unwrapped keys this long (0: off)"

/* ------------------------------------------------------------------------ */
/* Key service and volume                                                    */

/* One event per line, durable before the audited call goes on (a failure
 * here fails that call and changes nothing). */
static int audit_sink(void *user, const char *line, size_t len)
{
    char *rec = malloc(len + 1);
    size_t done = 0;
    (void)user;
    if (rec == NULL) {
        return -1;
    }
    memcpy(rec, line, len);
    rec[len] = '\n';
    while (done < len + 1) {
        ssize_t n = write(g_audit_fd, rec + done, len + 1 - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            free(rec);
            return -1;
        }
        done += (size_t)n;
    }
    free(rec);
    return fdatasync(g_audit_fd) == 0 ? 0 : -1;
}

static int open_local_kms(void)
{
    uint8_t root[32];
    uint8_t *store;
    struct stat sb;
    int fd;
    envol_status st;

    if (read_root_key(root) != 0) {
        return -1;
    }
    fd = open(cfg_store, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        nbdkit_error("cannot open store %s: %m", cfg_store);
        explicit_bzero(root, sizeof root);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (sb.st_size <= 0 || sb.st_size > 64 * 1024 * 1024) {
        nbdkit_error("store %s: %lld bytes is not a sealed store", cfg_store,
                     (long long)sb.st_size);
        explicit_bzero(root, sizeof root);
        close(fd);
        return -1;
    }
    store = malloc((size_t)sb.st_size);
    if (store == NULL || full_pread(fd, store, (size_t)sb.st_size, 0) != 0) {
        nbdkit_error("cannot read store %s: %m", cfg_store);
        explicit_bzero(root, sizeof root);
        free(store);
        close(fd);
        return -1;
    }
    close(fd);
    st = envol_local_kms_unseal(root, store, (size_t)sb.st_size, &g_local);
    explicit_bzero(root, sizeof root);
    free(store);
    if (st != ENVOL_OK) {
        nbdkit_error("store %s does not open with that root key: %s", cfg_store, sname(st));
        return -1;
    }
    if (cfg_audit_log != NULL) {
        g_audit_fd = open(cfg_audit_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (g_audit_fd < 0) {
            nbdkit_error("cannot open audit log %s: %m", cfg_audit_log);
            return -1;
        }
        st = envol_local_kms_set_audit_sink(g_local, audit_sink, NULL);
        if (st != ENVOL_OK) {
            nbdkit_error("audit sink: %s", sname(st));
            return -1;
        }
    }
    st = envol_local_kms_callbacks(g_local, &g_kms);
    if (st != ENVOL_OK) {
        nbdkit_error("key service table: %s", sname(st));
        return -1;
    }
    return 0;
}

static int open_remote_kms(void)
{
    envol_status st;
    if (strcmp(cfg_kms, "aws") == 0) {
        st = envol_aws_kms_new(NULL, &g_remote);
        if (st != ENVOL_OK) {
            nbdkit_error("AWS KMS configuration (environment and ~/.aws): %s", sname(st));
            return -1;
        }
    } else if (strcmp(cfg_kms, "kmip") == 0) {
        envol_kmip_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.address = cfg_kmip_address;
        cfg.server_name = cfg_kmip_server_name;
        cfg.ca_path = cfg_kmip_ca;
        cfg.cert_path = cfg_kmip_cert;
        cfg.key_path = cfg_kmip_key;
        st = envol_kmip_kms_new(&cfg, &g_remote);
        if (st != ENVOL_OK) {
            nbdkit_error("KMIP server %s (certificate %s, key %s, CA %s): %s", cfg_kmip_address,
                         cfg_kmip_cert, cfg_kmip_key, cfg_kmip_ca, sname(st));
            return -1;
        }
    } else {
        char pin[257];
        ssize_t n = read_small_file(cfg_pkcs11_pin_file, (uint8_t *)pin, sizeof pin - 1);
        if (n < 0) {
            return -1;
        }
        while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r')) {
            n--;
        }
        pin[n] = '\0';
        st = envol_pkcs11_kms_new(cfg_pkcs11_module, cfg_pkcs11_token, pin, &g_remote);
        explicit_bzero(pin, sizeof pin);
        if (st != ENVOL_OK) {
            nbdkit_error("PKCS#11 token %s in %s: %s", cfg_pkcs11_token, cfg_pkcs11_module,
                         sname(st));
            return -1;
        }
    }
    if (cfg_cache_ms > 0) {
        st = envol_remote_kms_enable_cache(g_remote, cfg_cache_ms, UINT64_MAX / 2, 64);
        if (st != ENVOL_OK) {
            nbdkit_error("cache: %s", sname(st));
            return -1;
        }
    }
    st = envol_remote_kms_callbacks(g_remote, &g_kms);
    if (st != ENVOL_OK) {
        nbdkit_error("key service table: %s", sname(st));
        return -1;
    }
    return 0;
}

static void free_scratch(void *p)
{
    free(p);
}

/* Opens the key service and the volume's headers (no key is used yet). */
static int envol_get_ready(void)
{
    envol_status st;
    if (strcmp(cfg_kms, "local") == 0 ? open_local_kms() != 0 : open_remote_kms() != 0) {
        return -1;
    }
    g_fd = open(cfg_volume, O_RDWR | O_CLOEXEC);
    if (g_fd < 0) {
        nbdkit_error("cannot open volume %s: %m", cfg_volume);
        return -1;
    }
    g_dev.user = NULL;
    g_dev.read_at = dev_read;
    g_dev.write_at = dev_write;
    g_dev.flush = dev_flush;
    st = cfg_have_volume_id ? envol_volume_open_expect(&g_vol, &g_dev, &g_kms, cfg_volume_id)
                            : envol_volume_open(&g_vol, &g_dev, &g_kms);
    if (st != ENVOL_OK) {
        nbdkit_error("%s is not an envol volume this plugin can open: %s", cfg_volume, sname(st));
        return -1;
    }
    {
        uint64_t seq;
        char key_id[ENVOL_MAX_KEY_ID + 1];
        int attached;
        st = envol_volume_info(&g_vol, &g_params, &seq, key_id, &attached);
    }
    if (st != ENVOL_OK) {
        nbdkit_error("volume info: %s", sname(st));
        return -1;
    }
    if (cfg_lease > 0) {
        envol_lease l;
        memset(&l, 0, sizeof l);
        l.duration_s = cfg_lease;
        l.grace_s = cfg_lease_grace;
        st = envol_volume_set_lease(&g_vol, &l);
        if (st != ENVOL_OK) {
            nbdkit_error("lease: %s", sname(st));
            return -1;
        }
    }
    if (pthread_key_create(&g_scratch_key, free_scratch) != 0) {
        nbdkit_error("pthread_key_create failed");
        return -1;
    }
    g_scratch_key_made = 1;
    nbdkit_debug("envol: %s, %" PRIu64 " bytes in sectors of %" PRIu32 " at byte %" PRIu64
                 ", key service %s, principal %s",
                 cfg_volume, g_params.volume_size, g_params.sector_size, g_params.data_offset,
                 cfg_kms, cfg_principal);
    return 0;
}

/* Renews the lease from its own thread (nbdkit calls after_fork once the
 * server is in the background, where threads survive). */
static void *lease_main(void *arg)
{
    uint64_t every = cfg_lease / 4 > 0 ? cfg_lease / 4 : 1;
    (void)arg;
    if (every > 5) {
        every = 5;
    }
    pthread_mutex_lock(&g_lease_lock);
    while (!g_stopping) {
        struct timespec until;
        envol_lease_info info;
        envol_status st;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)every;
        pthread_cond_timedwait(&g_lease_cv, &g_lease_lock, &until);
        if (g_stopping) {
            break;
        }
        st = envol_volume_maintain(&g_vol, &info);
        if (st == ENVOL_OK && info.state == ENVOL_LEASE_UNREACHABLE) {
            nbdkit_error("envol: key service unreachable; the key is wiped at %" PRIu64
                         " unless it answers first",
                         info.deadline);
        } else if (st != ENVOL_OK && st != ENVOL_ERR_VOLUME_DETACHED) {
            nbdkit_error("envol: lease not renewed (%s): the key is wiped and every request "
                         "fails until clients reconnect with the key service's consent",
                         sname(st));
        }
    }
    pthread_mutex_unlock(&g_lease_lock);
    return NULL;
}

static int envol_after_fork(void)
{
    if (cfg_lease > 0) {
        if (pthread_create(&g_lease_thread, NULL, lease_main, NULL) != 0) {
            nbdkit_error("cannot start the lease thread");
            return -1;
        }
        g_lease_thread_started = 1;
    }
    return 0;
}

static void envol_unload(void)
{
    if (g_lease_thread_started) {
        pthread_mutex_lock(&g_lease_lock);
        g_stopping = 1;
        pthread_cond_broadcast(&g_lease_cv);
        pthread_mutex_unlock(&g_lease_lock);
        pthread_join(g_lease_thread, NULL);
    }
    if (g_clients > 0) {
        envol_status st = envol_volume_detach(&g_vol); /* flushes, then wipes */
        if (st != ENVOL_OK) {
            nbdkit_error("envol: detach of %s at exit: %s", cfg_volume, sname(st));
        }
    }
    envol_volume_close(&g_vol); /* wipes whatever is left */
    envol_local_kms_free(g_local);
    envol_remote_kms_free(g_remote);
    if (g_fd >= 0) {
        close(g_fd);
    }
    if (g_audit_fd >= 0) {
        close(g_audit_fd);
    }
    if (g_scratch_key_made) {
        pthread_key_delete(g_scratch_key);
    }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static int g_handle; /* every connection shares the one volume */

static void *envol_open(int readonly)
{
    envol_status st = ENVOL_OK;
    (void)readonly;
    pthread_mutex_lock(&g_attach_lock);
    if (g_clients == 0) {
        st = envol_volume_attach(&g_vol, cfg_principal);
    }
    if (st == ENVOL_OK) {
        g_clients++;
    }
    pthread_mutex_unlock(&g_attach_lock);
    if (st != ENVOL_OK) {
        nbdkit_error("envol: %s may not attach %s: %s (nothing was written)", cfg_principal,
                     cfg_volume, sname(st));
        errno = EACCES;
        return NULL;
    }
    return &g_handle;
}

static void envol_close(void *handle)
{
    (void)handle;
    pthread_mutex_lock(&g_attach_lock);
    if (g_clients > 0 && --g_clients == 0) {
        envol_status st = envol_volume_detach(&g_vol);
        if (st != ENVOL_OK) {
            nbdkit_error("envol: detach of %s: %s (still attached)", cfg_volume, sname(st));
        }
    }
    pthread_mutex_unlock(&g_attach_lock);
}

static int64_t envol_get_size(void *handle)
{
    (void)handle;
    return (int64_t)g_params.volume_size;
}

static int envol_block_size(void *handle, uint32_t *minimum, uint32_t *preferred,
                            uint32_t *maximum)
{
    (void)handle;
    *minimum = g_params.sector_size;
    *preferred = g_params.sector_size > 4096 ? g_params.sector_size : 4096;
    *maximum = MAX_REQUEST;
    return 0;
}

static int envol_can_multi_conn(void *handle)
{
    (void)handle;
    return 1; /* one file, one cache: a flush on any connection covers all */
}

static int envol_can_fua(void *handle)
{
    (void)handle;
    return NBDKIT_FUA_NATIVE;
}

static int envol_can_zero(void *handle)
{
    (void)handle;
    return 1;
}

static int envol_can_fast_zero(void *handle)
{
    (void)handle;
    return 0; /* zeroing writes every sector */
}

/* ------------------------------------------------------------------------ */
/* Data path                                                                 */

/* Whole sectors inside the volume, or an error. */
static int check_range(uint32_t count, uint64_t offset)
{
    uint64_t ss = g_params.sector_size;
    if (offset % ss != 0 || count % ss != 0) {
        nbdkit_error("request at %" PRIu64 " of %" PRIu32
                     " bytes is not whole %" PRIu64 "-byte sectors (use --filter=blocksize)",
                     offset, count, ss);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int data_error(const char *what, envol_status st)
{
    nbdkit_error("envol: %s: %s", what, sname(st));
    errno = st == ENVOL_ERR_VOLUME_DETACHED || st == ENVOL_ERR_LEASE_EXPIRED ? EPERM : EIO;
    return -1;
}

/* This thread's buffer for ciphertext, at least `len` bytes. */
static uint8_t *scratch(size_t len)
{
    size_t *p = pthread_getspecific(g_scratch_key);
    if (p == NULL || p[0] < len) {
        size_t want = len < 65536 ? 65536 : len;
        free(p);
        p = malloc(sizeof(size_t) * 8 + want); /* size header keeps 64-byte alignment */
        if (p == NULL || pthread_setspecific(g_scratch_key, p) != 0) {
            free(p);
            pthread_setspecific(g_scratch_key, NULL);
            errno = ENOMEM;
            return NULL;
        }
        p[0] = want;
    }
    return (uint8_t *)(p + 8);
}

static int envol_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
                       uint32_t flags)
{
    envol_status st;
    (void)handle;
    (void)flags;
    if (check_range(count, offset) != 0) {
        return -1;
    }
    if (full_pread(g_fd, buf, count, g_params.data_offset + offset) != 0) {
        nbdkit_error("envol: read of %s: %m", cfg_volume);
        return -1;
    }
    st = envol_volume_decrypt(&g_vol, offset / g_params.sector_size, buf, buf, count);
    if (st != ENVOL_OK) {
        memset(buf, 0, count);
        return data_error("decrypt", st);
    }
    return 0;
}

static int write_encrypted(const uint8_t *plain, uint32_t count, uint64_t offset)
{
    uint8_t *ct = scratch(count);
    envol_status st;
    if (ct == NULL) {
        nbdkit_error("envol: out of memory for a %" PRIu32 "-byte write", count);
        return -1;
    }
    st = envol_volume_encrypt(&g_vol, offset / g_params.sector_size, plain, ct, count);
    if (st != ENVOL_OK) {
        return data_error("encrypt", st);
    }
    if (full_pwrite(g_fd, ct, count, g_params.data_offset + offset) != 0) {
        nbdkit_error("envol: write to %s: %m", cfg_volume);
        return -1;
    }
    return 0;
}

static int flush_now(void)
{
    envol_status st = envol_volume_flush(&g_vol);
    if (st != ENVOL_OK) {
        nbdkit_error("envol: flush of %s: %s", cfg_volume, sname(st));
        errno = EIO;
        return -1;
    }
    return 0;
}

static int envol_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
    (void)handle;
    if (check_range(count, offset) != 0 || write_encrypted(buf, count, offset) != 0) {
        return -1;
    }
    return (flags & NBDKIT_FLAG_FUA) ? flush_now() : 0;
}

static int envol_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    static const uint8_t zeros[1024 * 1024];
    (void)handle;
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
        errno = ENOTSUP;
        return -1;
    }
    if (check_range(count, offset) != 0) {
        return -1;
    }
    while (count > 0) {
        uint32_t n = count < sizeof zeros ? count : (uint32_t)sizeof zeros;
        if (write_encrypted(zeros, n, offset) != 0) {
            return -1;
        }
        count -= n;
        offset += n;
    }
    return (flags & NBDKIT_FLAG_FUA) ? flush_now() : 0;
}

static int envol_flush(void *handle, uint32_t flags)
{
    (void)handle;
    (void)flags;
    return flush_now();
}

static struct nbdkit_plugin plugin = {
    .name = "envol",
    .longname = "envol: XTS-AES volumes with envelope-encrypted keys",
    .version = "0.1.0",
    .description = "Serves one envol volume, encrypting and decrypting on the fly.",
    .config = envol_config,
    .config_complete = envol_config_complete,
    .config_help = envol_config_help,
    .magic_config_key = "volume",
    .get_ready = envol_get_ready,
    .after_fork = envol_after_fork,
    .unload = envol_unload,
    .open = envol_open,
    .close = envol_close,
    .get_size = envol_get_size,
    .block_size = envol_block_size,
    .can_multi_conn = envol_can_multi_conn,
    .can_fua = envol_can_fua,
    .can_zero = envol_can_zero,
    .can_fast_zero = envol_can_fast_zero,
    .pread = envol_pread,
    .pwrite = envol_pwrite,
    .zero = envol_zero,
    .flush = envol_flush,
};

NBDKIT_REGISTER_PLUGIN(plugin)
