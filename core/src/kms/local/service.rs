//! `LocalKms` as a [`Kms`]: generating, unwrapping and rewrapping data
//! keys, raw encrypt and decrypt, retiring a volume's context.

use super::*;

impl Kms for LocalKms {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        let action = Action::GenerateDataKey;
        self.call(principal, action, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, action, context)?;
            usable(e)?;
            not_retired(st, context)?;
            let dek =
                DataKey::generate(size, &mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
            let n = wrap(e, key_id, context, dek.as_bytes(), rng, blob_out)?;
            Ok(((dek, n), protect(e, key_id, context)))
        })
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let action = Action::GenerateDataKeyWithoutPlaintext;
        self.call(principal, action, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, action, context)?;
            usable(e)?;
            not_retired(st, context)?;
            let dek =
                DataKey::generate(size, &mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
            let n = wrap(e, key_id, context, dek.as_bytes(), rng, blob_out)?;
            Ok((n, protect(e, key_id, context)))
        })
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let key_id = Self::blob_key(blob);
        self.call(principal, Action::Decrypt, &key_id, context, |st, _, _| {
            let (_, w) = authorize_blob(st, principal, blob, Action::Decrypt, context)?;
            if !matches!(w.secret_len(), Some(32 | 64)) {
                return Err(KmsError::InvalidCiphertext);
            }
            let mut buf = [0u8; 64];
            let dek = Self::open_blob(st, &w, context, &mut buf).and_then(|n| {
                DataKey::from_bytes(&buf[..n]).map_err(|_| KmsError::InvalidCiphertext)
            });
            zeroize::Zeroize::zeroize(&mut buf);
            Ok((dek?, Change::None))
        })
    }

    fn re_encrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let src_id = Self::blob_key(blob);
        let from = Action::ReEncryptFrom;
        self.call(principal, from, &src_id, source_context, |st, _, _| {
            authorize_blob(st, principal, blob, from, source_context)?;
            Ok(((), Change::None))
        })?;
        let to = Action::ReEncryptTo;
        self.call(principal, to, dest_key_id, dest_context, |st, rng, _| {
            let e = authorize(st, principal, dest_key_id, to, dest_context)?;
            usable(e)?;
            not_retired(st, dest_context)?;
            let (_, w) = authorize_blob(st, principal, blob, from, source_context)?;
            let mut secret = [0u8; envelope::MAX_SECRET];
            let r = Self::open_blob(st, &w, source_context, &mut secret).and_then(|n| {
                let m = wrap(e, dest_key_id, dest_context, &secret[..n], rng, blob_out)?;
                let change = if matches!(n, 32 | 64) {
                    protect(e, dest_key_id, dest_context)
                } else {
                    Change::None
                };
                Ok((m, change))
            });
            zeroize::Zeroize::zeroize(&mut secret);
            r
        })
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.call(principal, Action::Encrypt, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, Action::Encrypt, context)?;
            usable(e)?;
            if plaintext.is_empty() || plaintext.len() > envelope::MAX_SECRET {
                return Err(KmsError::InvalidArgument);
            }
            Ok((
                wrap(e, key_id, context, plaintext, rng, blob_out)?,
                Change::None,
            ))
        })
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let key_id = Self::blob_key(blob);
        self.call(principal, Action::Decrypt, &key_id, context, |st, _, _| {
            let (_, w) = authorize_blob(st, principal, blob, Action::Decrypt, context)?;
            Ok((Self::open_blob(st, &w, context, out)?, Change::None))
        })
    }

    fn retire_context(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<bool, KmsError> {
        let key_id = Self::blob_key(blob);
        let action = Action::RetireVolume;
        self.call(principal, action, &key_id, context, |st, _, _| {
            let w = parse_blob(blob)?;
            authorize(st, principal, w.key_id(), action, context)?;
            // Only a context the blob really was made for: the tombstone
            // names a volume that exists, not any string a caller sends.
            let mut buf = [0u8; envelope::MAX_SECRET];
            let opened = Self::open_blob(st, &w, context, &mut buf);
            zeroize::Zeroize::zeroize(&mut buf);
            opened?;
            Ok((true, Change::Tombstone(w.key_id().into(), owned(context))))
        })
    }
}

impl LocalKms {
    /// The data key of `w` under `ctx`, into `out`; the caller authorized it.
    fn open_blob(
        st: &State,
        w: &WrappedKey<'_>,
        ctx: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let e = st.keys.get(w.key_id()).ok_or(KmsError::NotFound)?;
        let idx = usize::try_from(w.backing_version())
            .ok()
            .and_then(|v| v.checked_sub(1))
            .ok_or(KmsError::InvalidCiphertext)?;
        let mk = e.versions.get(idx).ok_or(KmsError::InvalidCiphertext)?;
        w.open(mk, ctx, out).map_err(|err| match err {
            envelope::Error::BufferTooSmall => KmsError::BufferTooSmall,
            _ => KmsError::InvalidCiphertext,
        })
    }

    /// The key id named by a blob, for audit records ("" if unparsable).
    fn blob_key(blob: &[u8]) -> String {
        WrappedKey::parse(blob)
            .map(|w| String::from(w.key_id()))
            .unwrap_or_default()
    }
}
