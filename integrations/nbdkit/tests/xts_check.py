#!/usr/bin/env python3
"""Decrypts an envol volume's data area the way dm-crypt's aes-xts-plain64
with --iv-large-sectors does (tweak = sector number, little-endian, in units
of the volume's sector size), with an implementation independent of envol
(Python's `cryptography`, OpenSSL underneath).

    xts_check.py compare VOLUME KEY_HEX DATA_OFFSET SECTOR_SIZE PLAIN_IMAGE
        exits 0 if the data area decrypts to the image, 1 (naming the first
        sector that does not) otherwise
    xts_check.py decrypt VOLUME KEY_HEX DATA_OFFSET SECTOR_SIZE SECTORS OUT
        writes the decrypted data area to OUT"""
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def sectors(volume, key, offset, size):
    with open(volume, "rb") as v:
        v.seek(offset)
        n = 0
        while True:
            ct = v.read(size)
            if len(ct) < size:
                return
            dec = Cipher(algorithms.AES(key), modes.XTS(n.to_bytes(16, "little"))).decryptor()
            yield n, dec.update(ct) + dec.finalize()
            n += 1


def main():
    mode, volume, key_hex, offset, size = sys.argv[1:6]
    key, offset, size = bytes.fromhex(key_hex), int(offset), int(size)
    if mode == "compare":
        count = 0
        with open(sys.argv[6], "rb") as p:
            for n, got in sectors(volume, key, offset, size):
                want = p.read(size)
                if not want:
                    break
                if got != want:
                    print(f"sector {n} does not decrypt to the plaintext image")
                    return 1
                count += 1
        print(f"{count} sectors of {size} bytes decrypt as aes-xts-plain64 to the image")
        return 0
    if mode == "decrypt":
        total = int(sys.argv[6])
        with open(sys.argv[7], "wb") as out:
            for n, got in sectors(volume, key, offset, size):
                if n >= total:
                    break
                out.write(got)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
