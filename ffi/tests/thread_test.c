/*
 * thread_test.c - leases and threads through envol's C ABI (envol.h).
 *
 * Built and run by `cargo test -p envol-ffi` (test `c_abi_tests_pass` in
 * ffi/src/tests.rs), once plain and once under ASan + UBSan:
 *
 *   gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -Iffi/include \
 *       ffi/tests/thread_test.c target/ctest/release/libenvol.a \
 *       -lpthread -ldl -lm -o target/ctest/thread_test
 *
 * One volume in a temporary file (pread/pwrite/fdatasync: safe from
 * several threads), on the reference key service behind a C table that can
 * play unreachable or hold a call until released, with a lease on a clock
 * this program sets (no sleeping for the lease itself):
 *
 * - renewal: not due → VALID; due → RENEWED with the key service asked
 *   again; the new end is one lease from then;
 * - refusal: the key disabled → the renewal's status, and every later data
 *   call ENVOL_ERR_LEASE_EXPIRED with the device and the caller's buffers
 *   untouched; attach again once the key is enabled;
 * - unreachable: ENVOL_OK / UNREACHABLE until the lease's end plus grace,
 *   data still served; at the deadline ENVOL_ERR_LEASE_EXPIRED; a service
 *   back before the deadline renews;
 * - detach during a renewal held inside the key service: data calls keep
 *   running, detach waits for the renewal, then the volume is detached;
 * - threads racing detach: four threads write, read, encrypt and decrypt
 *   their own sectors (both the bounce-buffer and the zero-copy calls)
 *   while the main thread detaches; every call gives ENVOL_OK or
 *   ENVOL_ERR_VOLUME_DETACHED, and after attaching again every sector holds
 *   exactly what its last acknowledged write wrote. Five rounds.
 *
 * Prints one line per group and ends with "N passed, M failed"; exits
 * non-zero if anything failed. A watchdog ends a hung run after 120 s.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envol.h"

#include "check.h"

/* ------------------------------------------------------------------------ */
/* A file-backed block device                                                */

typedef struct filedev {
    int fd;
} filedev;

/* Moves all `len` bytes at `off` with pread (write 0) or pwrite (write 1). */
static int fd_io(int fd, int write, uint64_t off, uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int fd_read(void *user, uint64_t off, uint8_t *buf, size_t len)
{
    return fd_io(((filedev *)user)->fd, 0, off, buf, len);
}

static int fd_write(void *user, uint64_t off, const uint8_t *buf, size_t len)
{
    /* pwrite only reads the buffer; the cast serves the shared loop. */
    return fd_io(((filedev *)user)->fd, 1, off, (uint8_t *)buf, len);
}

static int fd_flush(void *user)
{
    return fdatasync(((filedev *)user)->fd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* A key service that can be unreachable or hold a call                      */

typedef struct ctl_kms {
    envol_kms_callbacks inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int unreachable; /* decrypt answers ENVOL_ERR_KMS_UNAVAILABLE */
    int hold;        /* decrypt waits until this is cleared */
    int held;        /* a decrypt is waiting */
    unsigned decrypts;
} ctl_kms;

static ctl_kms g_ctl = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static envol_status ctl_generate(void *user, const char *principal, const char *key_id,
                                 size_t dek_len, const envol_kv *ctx, size_t ctx_len,
                                 uint8_t *dek_out, uint8_t *blob_out, size_t blob_cap,
                                 size_t *blob_len)
{
    ctl_kms *c = (ctl_kms *)user;
    return c->inner.generate_data_key(c->inner.user, principal, key_id, dek_len, ctx, ctx_len,
                                      dek_out, blob_out, blob_cap, blob_len);
}

static envol_status ctl_decrypt(void *user, const char *principal, const uint8_t *blob,
                                size_t blob_len, const envol_kv *ctx, size_t ctx_len,
                                uint8_t *dek_out, size_t dek_cap, size_t *dek_len)
{
    ctl_kms *c = (ctl_kms *)user;
    pthread_mutex_lock(&c->mu);
    c->decrypts++;
    if (c->unreachable) {
        pthread_mutex_unlock(&c->mu);
        return ENVOL_ERR_KMS_UNAVAILABLE;
    }
    while (c->hold) {
        c->held = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_cond_wait(&c->cv, &c->mu);
    }
    c->held = 0;
    pthread_mutex_unlock(&c->mu);
    return c->inner.decrypt_data_key(c->inner.user, principal, blob, blob_len, ctx, ctx_len,
                                     dek_out, dek_cap, dek_len);
}

static void ctl_set(int *field, int value)
{
    pthread_mutex_lock(&g_ctl.mu);
    *field = value;
    pthread_cond_broadcast(&g_ctl.cv);
    pthread_mutex_unlock(&g_ctl.mu);
}

static unsigned ctl_decrypts(void)
{
    unsigned n;
    pthread_mutex_lock(&g_ctl.mu);
    n = g_ctl.decrypts;
    pthread_mutex_unlock(&g_ctl.mu);
    return n;
}

/* Waits until a decrypt is held. */
static void ctl_wait_held(void)
{
    pthread_mutex_lock(&g_ctl.mu);
    while (!g_ctl.held) {
        pthread_cond_wait(&g_ctl.cv, &g_ctl.mu);
    }
    pthread_mutex_unlock(&g_ctl.mu);
}

/* ------------------------------------------------------------------------ */
/* Shared state                                                              */

static const char SERVICE_POLICY[] =
    "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Envol\":\"operator\"},"
    "\"Action\":\"kms:CreateKey\"}}";

/* The hypervisor may use the key for volumes; the admin may manage it but
 * not use it. */
static const char LEAST_PRIVILEGE[] =
    "{\"Statement\": ["
    "{\"Effect\": \"Allow\", \"Principal\": {\"Envol\": \"hypervisor\"},"
    " \"Action\": [\"kms:GenerateDataKey*\", \"kms:Decrypt\"],"
    " \"Condition\": {\"StringLike\": {\"kms:EncryptionContext:volume\": \"vol-*\"}}},"
    "{\"Effect\": \"Allow\", \"Principal\": {\"Envol\": \"admin\"}, \"Action\": \"kms:*\"},"
    "{\"Effect\": \"Deny\", \"Principal\": {\"Envol\": \"admin\"},"
    " \"Action\": [\"kms:Decrypt\", \"kms:GenerateDataKey*\", \"kms:ReEncrypt*\"]}]}";

#define SS 512u
#define NSECT 256u
#define THREADS 4
#define PER_THREAD (NSECT / THREADS)

static envol_local_kms *g_kms;
static envol_kms_callbacks g_cb; /* g_ctl's table */
static filedev g_dev;
static envol_block_device g_bdev;
static envol_volume g_vol;
static uint64_t g_doff;
static uint64_t g_now; /* the lease clock, read with __atomic builtins */

static uint64_t clock_now(void *user)
{
    (void)user;
    return __atomic_load_n(&g_now, __ATOMIC_SEQ_CST);
}

static void set_now(uint64_t t)
{
    __atomic_store_n(&g_now, t, __ATOMIC_SEQ_CST);
}

/* Deterministic contents of sector `s` as written in round/iteration `n`. */
static void pattern(uint8_t *buf, uint32_t s, uint32_t n)
{
    uint32_t x = s * 2654435761u ^ n * 40503u ^ 0x9e3779b9u;
    size_t i;
    for (i = 0; i < SS; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads the whole data area as stored (ciphertext) into `out`. */
static int raw_data(uint8_t *out)
{
    return fd_read(&g_dev, g_doff, out, (size_t)SS * NSECT);
}

static uint8_t g_raw[SS * NSECT];
static uint8_t g_raw2[SS * NSECT];

static envol_status attach(void)
{
    return envol_volume_attach(&g_vol, "hypervisor");
}

static void lease(uint64_t duration, uint64_t renew_before, uint64_t grace)
{
    envol_lease l;
    l.duration_s = duration;
    l.renew_before_s = renew_before;
    l.grace_s = grace;
    l.now = clock_now;
    l.user = NULL;
    CHECK_STATUS(envol_volume_set_lease(&g_vol, &l), ENVOL_OK);
}

static envol_status maintain(uint32_t *state, uint64_t *expires, uint64_t *deadline)
{
    envol_lease_info info;
    envol_status st;
    memset(&info, 0xee, sizeof info);
    st = envol_volume_maintain(&g_vol, &info);
    *state = info.state;
    *expires = info.expires_at;
    *deadline = info.deadline;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Leases                                                                    */

static void test_renewal(void)
{
    uint32_t state;
    uint64_t exp, dl;
    unsigned before;
    uint8_t buf[SS], want[SS];

    where("renewal: attach with a lease of 300 s, renewed 60 s before its end, 120 s grace");
    set_now(1000);
    lease(300, 60, 120);
    CHECK_STATUS(attach(), ENVOL_OK);
    pattern(want, 7, 1);
    CHECK_STATUS(envol_volume_write(&g_vol, 7, want, SS), ENVOL_OK);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_VALID && exp == 1300 && dl == 1420);

    where("renewal: not due one second before the renewal point");
    before = ctl_decrypts();
    set_now(1239);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_VALID && exp == 1300);
    CHECK(ctl_decrypts() == before);

    where("renewal: due, the key service asked again");
    set_now(1240);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_RENEWED && exp == 1540 && dl == 1660);
    CHECK(ctl_decrypts() == before + 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_OK);
    CHECK(memcmp(buf, want, SS) == 0);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
}

static void test_refusal(void)
{
    uint32_t state;
    uint64_t exp, dl;
    uint8_t buf[SS], out[SS], want[SS];

    where("refusal: attached, then the admin disables the key");
    set_now(5000);
    lease(300, 60, 120);
    CHECK_STATUS(attach(), ENVOL_OK);
    CHECK_STATUS(envol_local_kms_disable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    set_now(5100);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_VALID);

    where("refusal: at the renewal the key is wiped (within one lease of the change)");
    set_now(5240);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_ERR_KEY_DISABLED);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);

    where("refusal: every data call refused, nothing written, buffers untouched");
    CHECK(raw_data(g_raw) == 0);
    memset(buf, 0x5a, SS);
    memset(out, 0xa5, SS);
    pattern(want, 9, 2);
    CHECK_STATUS(envol_volume_read(&g_vol, 9, buf, SS), ENVOL_ERR_LEASE_EXPIRED);
    CHECK_STATUS(envol_volume_write(&g_vol, 9, want, SS), ENVOL_ERR_LEASE_EXPIRED);
    CHECK_STATUS(envol_volume_encrypt(&g_vol, 9, want, out, SS), ENVOL_ERR_LEASE_EXPIRED);
    CHECK_STATUS(envol_volume_decrypt(&g_vol, 9, want, buf, SS), ENVOL_ERR_LEASE_EXPIRED);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_ERR_LEASE_EXPIRED);
    {
        uint8_t ff[SS];
        memset(ff, 0x5a, SS);
        CHECK(memcmp(buf, ff, SS) == 0);
        memset(ff, 0xa5, SS);
        CHECK(memcmp(out, ff, SS) == 0);
    }
    CHECK(raw_data(g_raw2) == 0 && memcmp(g_raw, g_raw2, sizeof g_raw) == 0);

    where("refusal: detach, then attach refused until the key is enabled again");
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
    CHECK_STATUS(attach(), ENVOL_ERR_KEY_DISABLED);
    CHECK_STATUS(envol_local_kms_enable_key(g_kms, "admin", "disk-key"), ENVOL_OK);
    CHECK_STATUS(attach(), ENVOL_OK);
    pattern(want, 7, 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_OK);
    CHECK(memcmp(buf, want, SS) == 0);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
}

static void test_unreachable(void)
{
    uint32_t state;
    uint64_t exp, dl;
    uint8_t buf[SS], want[SS];

    where("unreachable: tolerated until the lease's end plus grace, data still served");
    set_now(10000);
    lease(300, 60, 120);
    CHECK_STATUS(attach(), ENVOL_OK);
    ctl_set(&g_ctl.unreachable, 1);
    set_now(10240);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_UNREACHABLE && exp == 10300 && dl == 10420);
    pattern(want, 7, 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_OK);
    CHECK(memcmp(buf, want, SS) == 0);
    set_now(10419);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_UNREACHABLE);

    where("unreachable: back before the deadline, renewed");
    ctl_set(&g_ctl.unreachable, 0);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_RENEWED && exp == 10719 && dl == 10839);

    where("unreachable: past the deadline the key is wiped");
    ctl_set(&g_ctl.unreachable, 1);
    set_now(10700);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_OK);
    CHECK(state == ENVOL_LEASE_UNREACHABLE);
    set_now(10839);
    CHECK_STATUS(maintain(&state, &exp, &dl), ENVOL_ERR_LEASE_EXPIRED);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_ERR_LEASE_EXPIRED);
    ctl_set(&g_ctl.unreachable, 0);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
}

typedef struct call_result {
    envol_status status;
    int done; /* set with __atomic builtins */
} call_result;

static void *maintain_thread(void *arg)
{
    call_result *r = (call_result *)arg;
    uint32_t state;
    uint64_t exp, dl;
    r->status = maintain(&state, &exp, &dl);
    __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *detach_thread(void *arg)
{
    call_result *r = (call_result *)arg;
    r->status = envol_volume_detach(&g_vol);
    __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_detach_during_renewal(void)
{
    pthread_t m, d;
    call_result rm = {ENVOL_OK, 0}, rd = {ENVOL_OK, 0};
    uint8_t buf[SS], want[SS];

    where("detach during renewal: the renewal held inside the key service");
    set_now(20000);
    lease(300, 60, 0);
    CHECK_STATUS(attach(), ENVOL_OK);
    ctl_set(&g_ctl.hold, 1);
    set_now(20240);
    CHECK(pthread_create(&m, NULL, maintain_thread, &rm) == 0);
    ctl_wait_held();

    where("detach during renewal: data calls keep running meanwhile");
    pattern(want, 7, 1);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_OK);
    CHECK(memcmp(buf, want, SS) == 0);

    where("detach during renewal: detach waits for the renewal");
    CHECK(pthread_create(&d, NULL, detach_thread, &rd) == 0);
    sleep_ms(200);
    CHECK(!__atomic_load_n(&rd.done, __ATOMIC_SEQ_CST));
    CHECK(!__atomic_load_n(&rm.done, __ATOMIC_SEQ_CST));
    ctl_set(&g_ctl.hold, 0);
    CHECK(pthread_join(m, NULL) == 0);
    CHECK(pthread_join(d, NULL) == 0);
    CHECK_STATUS(rm.status, ENVOL_OK);
    CHECK_STATUS(rd.status, ENVOL_OK);
    CHECK_STATUS(envol_volume_read(&g_vol, 7, buf, SS), ENVOL_ERR_VOLUME_DETACHED);
    CHECK(envol_volume_backend(&g_vol) == ENVOL_BACKEND_AUTO);
}

/* ------------------------------------------------------------------------ */
/* Threads racing detach                                                     */

typedef struct worker {
    pthread_t thread;
    uint32_t index;
    uint32_t acked[PER_THREAD]; /* iteration of the last acknowledged write; 0 none */
    unsigned long ops;          /* calls that gave ENVOL_OK (atomic) */
    unsigned long bad;          /* calls with any other status than OK/DETACHED */
    envol_status first_bad;
    unsigned long mismatches; /* reads that did not give the acknowledged data */
    int stopped;              /* saw ENVOL_ERR_VOLUME_DETACHED */
} worker;

static worker g_workers[THREADS];

/* Records `st`; 1 if the worker goes on. */
static int note(worker *w, envol_status st)
{
    if (st == ENVOL_OK) {
        __atomic_add_fetch(&w->ops, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    if (st == ENVOL_ERR_VOLUME_DETACHED) {
        w->stopped = 1;
        return 0;
    }
    if (w->bad++ == 0) {
        w->first_bad = st;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    uint8_t buf[SS], want[SS], ct[SS];
    uint32_t n;
    for (n = 1;; n++) {
        uint32_t k = (n * 7u) % PER_THREAD;
        uint32_t s = w->index * PER_THREAD + k;
        uint32_t r = (n * 13u + 5u) % PER_THREAD;
        uint32_t rs = w->index * PER_THREAD + r;
        envol_status st;
        /* Write: bounce buffer on odd n, zero-copy (encrypt + pwrite) on even. */
        pattern(want, s, n);
        if (n % 2) {
            st = envol_volume_write(&g_vol, s, want, SS);
        } else {
            st = envol_volume_encrypt(&g_vol, s, want, ct, SS);
            if (st == ENVOL_OK && fd_write(&g_dev, g_doff + (uint64_t)s * SS, ct, SS) != 0) {
                st = ENVOL_ERR_IO;
            }
        }
        if (!note(w, st)) {
            break;
        }
        w->acked[k] = n;
        /* Read back another own sector: library read, or pread + decrypt. */
        if (n % 3) {
            st = envol_volume_read(&g_vol, rs, buf, SS);
        } else {
            st = fd_read(&g_dev, g_doff + (uint64_t)rs * SS, ct, SS) == 0
                     ? envol_volume_decrypt(&g_vol, rs, ct, buf, SS)
                     : ENVOL_ERR_IO;
        }
        if (!note(w, st)) {
            break;
        }
        if (w->acked[r] != 0) {
            pattern(want, rs, w->acked[r]);
            w->mismatches += memcmp(buf, want, SS) != 0;
        }
    }
    return NULL;
}

static unsigned long worker_ops(const worker *w)
{
    return __atomic_load_n(&w->ops, __ATOMIC_SEQ_CST);
}

static void test_race(void)
{
    int round, t;
    for (round = 0; round < 5; round++) {
        unsigned long bad = 0, mism = 0, ops = 0;
        int stopped = 1, verified = 1;
        where("race round %d: four threads writing and reading while the main thread detaches",
              round);
        set_now(30000);
        lease(0, 0, 0);
        CHECK_STATUS(attach(), ENVOL_OK);
        for (t = 0; t < THREADS; t++) {
            worker *w = &g_workers[t];
            uint32_t keep[PER_THREAD];
            memcpy(keep, w->acked, sizeof keep);
            memset(w, 0, sizeof *w);
            memcpy(w->acked, keep, sizeof keep);
            w->index = (uint32_t)t;
            CHECK(pthread_create(&w->thread, NULL, worker_main, w) == 0);
        }
        /* Let every thread get going (at least 50 calls each), varying
         * the moment of the detach from round to round. */
        for (t = 0; t < THREADS; t++) {
            while (worker_ops(&g_workers[t]) < 50u + 40u * (unsigned)round) {
                sleep_ms(1);
            }
        }
        CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
        for (t = 0; t < THREADS; t++) {
            CHECK(pthread_join(g_workers[t].thread, NULL) == 0);
            bad += g_workers[t].bad;
            mism += g_workers[t].mismatches;
            ops += g_workers[t].ops;
            stopped &= g_workers[t].stopped;
            if (g_workers[t].bad) {
                printf("  thread %d: %lu calls failed, first with %s\n", t, g_workers[t].bad,
                       envol_status_name(g_workers[t].first_bad));
            }
        }
        CHECK(bad == 0);
        CHECK(mism == 0);
        CHECK(stopped);
        CHECK(ops >= THREADS * 50u);

        where("race round %d: attached again, every sector holds its last acknowledged write",
              round);
        CHECK_STATUS(attach(), ENVOL_OK);
        for (t = 0; t < THREADS; t++) {
            uint32_t k;
            for (k = 0; k < PER_THREAD; k++) {
                uint8_t buf[SS], want[SS];
                uint32_t s = (uint32_t)t * PER_THREAD + k;
                if (g_workers[t].acked[k] == 0) {
                    continue;
                }
                pattern(want, s, g_workers[t].acked[k]);
                if (envol_volume_read(&g_vol, s, buf, SS) != ENVOL_OK ||
                    memcmp(buf, want, SS) != 0) {
                    verified = 0;
                }
            }
        }
        CHECK(verified);
        CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);
    }
}

/* ------------------------------------------------------------------------ */

static void on_alarm(int sig)
{
    static const char msg[] = "thread_test: no progress for 120 s (a hang); giving up\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
        _exit(2);
    }
    _exit(2);
}

int main(void)
{
    char path[] = "/tmp/envol-thread-test-XXXXXX";
    envol_volume_params p;
    uint8_t zero[SS];
    uint64_t i;

    signal(SIGALRM, on_alarm);
    alarm(120);
    printf("envol %s, auto backend: %s\n", envol_version(),
           envol_backend_name(envol_backend_detect()));

    g_dev.fd = mkstemp(path);
    if (g_dev.fd < 0) {
        printf("no temporary file; giving up\n0 passed, 1 failed\n");
        return 1;
    }
    unlink(path);
    g_doff = ENVOL_DEFAULT_DATA_OFFSET;
    memset(zero, 0, sizeof zero);
    for (i = 0; i < (g_doff + (uint64_t)SS * NSECT) / SS; i++) {
        if (fd_write(&g_dev, i * SS, zero, SS) != 0) {
            printf("cannot size the temporary file; giving up\n0 passed, 1 failed\n");
            return 1;
        }
    }
    g_bdev.user = &g_dev;
    g_bdev.read_at = fd_read;
    g_bdev.write_at = fd_write;
    g_bdev.flush = fd_flush;

    if (envol_local_kms_new(&g_kms) != ENVOL_OK ||
        envol_local_kms_set_service_policy(g_kms, "operator", SERVICE_POLICY) != ENVOL_OK ||
        envol_local_kms_create_key(g_kms, "operator", "disk-key", LEAST_PRIVILEGE) != ENVOL_OK ||
        envol_local_kms_callbacks(g_kms, &g_ctl.inner) != ENVOL_OK) {
        printf("no key service; giving up\n0 passed, 1 failed\n");
        return 1;
    }
    g_cb = g_ctl.inner;
    g_cb.user = &g_ctl;
    g_cb.generate_data_key = ctl_generate;
    g_cb.decrypt_data_key = ctl_decrypt;

    memset(&p, 0, sizeof p);
    p.cipher = ENVOL_CIPHER_AES_XTS_256;
    p.sector_size = SS;
    p.data_offset = g_doff;
    p.volume_size = (uint64_t)SS * NSECT;
    for (i = 0; i < sizeof p.volume_id; i++) {
        p.volume_id[i] = (uint8_t)(0x70 + i * 3);
    }
    where("set-up");
    CHECK_STATUS(envol_volume_create(&g_vol, &g_bdev, &g_cb, "hypervisor", "disk-key", &p),
                 ENVOL_OK);
    CHECK_STATUS(envol_volume_detach(&g_vol), ENVOL_OK);

    run("lease renewal", test_renewal);
    run("lease refusal", test_refusal);
    run("lease unreachable", test_unreachable);
    run("detach in renewal", test_detach_during_renewal);
    run("threads vs detach", test_race);

    envol_volume_close(&g_vol);
    envol_local_kms_free(g_kms);
    close(g_dev.fd);
    return check_summary();
}
