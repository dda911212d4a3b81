/* Size probes: PROBE=0 links nothing of envol, PROBE=1 the sector engine
 * only, PROBE=2 engine + envelope + header + volume (through callbacks).
 * The differences in .text/.data/.bss are envol's footprint. */
#include <stddef.h>
#include <stdint.h>
#include "envol.h"

void envol_panic_hook(void) { for (;;) {} }

#if PROBE >= 1
static envol_xts ctx;
static uint8_t sector[512];
#endif
#if PROBE >= 2
static envol_volume vol;
static int rd(void *u, uint64_t o, uint8_t *b, size_t l) { (void)u; (void)o; (void)b; (void)l; return 0; }
static int wr(void *u, uint64_t o, const uint8_t *b, size_t l) { (void)u; (void)o; (void)b; (void)l; return 0; }
static int fl(void *u) { (void)u; return 0; }
#endif

int main(void) {
    int r = 0;
#if PROBE >= 1
    static const uint8_t key[64] = {1};
    r |= (int)envol_xts_init(&ctx, key, sizeof key);
    r |= (int)envol_xts_encrypt_sectors(&ctx, 0, 512, sector, sector, sizeof sector);
    r |= (int)envol_xts_decrypt_sectors(&ctx, 0, 512, sector, sector, sizeof sector);
    envol_xts_wipe(&ctx);
#endif
#if PROBE >= 2
    {
        envol_block_device dev = {0, rd, wr, fl};
        envol_kms_callbacks kms = {0};
        r |= (int)envol_volume_open(&vol, &dev, &kms);
        r |= (int)envol_volume_attach(&vol, "firmware");
        r |= (int)envol_volume_read(&vol, 0, sector, sizeof sector);
        r |= (int)envol_volume_write(&vol, 0, sector, sizeof sector);
        r |= (int)envol_volume_rewrap(&vol, "firmware", "k2");
        envol_volume_close(&vol);
    }
#endif
    return r;
}
