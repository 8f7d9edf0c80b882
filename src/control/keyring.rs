//! The store's sealing key: secrets the gateway must read back in the clear to use (an HS256 JWT
//! key) are sealed with AES-256-GCM under it before they reach the store, so a copy of the store
//! file alone does not give them away.
//!
//! The key comes from `RINGWAY_STORE_KEY` (base64 of 32 bytes) or else a key file next to the
//! store (`<store>.key`, made with 32 random bytes and mode 0600 on first start). Lose the key
//! and the sealed secrets are gone; the rest of the store is unaffected.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("RINGWAY_STORE_KEY must be the base64 of 32 bytes")]
    BadEnv,
    #[error("store key file {path}: {reason}")]
    File { path: String, reason: String },
}

pub struct Keyring {
    key: LessSafeKey,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// The key file of a store.
pub fn key_file(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

impl Keyring {
    fn from_bytes(b: &[u8]) -> Option<Keyring> {
        let key = UnboundKey::new(&AES_256_GCM, b).ok()?;
        Some(Keyring {
            key: LessSafeKey::new(key),
        })
    }

    /// From `env` (the value of `RINGWAY_STORE_KEY`), else the store's key file (made if absent).
    pub fn load(env: Option<String>, store: &Path) -> Result<Keyring, KeyringError> {
        if let Some(v) = env.filter(|v| !v.is_empty()) {
            let b = STANDARD
                .decode(v.trim())
                .map_err(|_| KeyringError::BadEnv)?;
            return Keyring::from_bytes(&b)
                .filter(|_| b.len() == 32)
                .ok_or(KeyringError::BadEnv);
        }
        let path = key_file(store);
        let err = |reason: String| KeyringError::File {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(&path) {
            Ok(b) if b.len() == 32 => Keyring::from_bytes(&b).ok_or_else(|| err("unusable".into())),
            Ok(b) => Err(err(format!("{} bytes, expected 32", b.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let b: [u8; 32] = rand::random();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode_0600()
                    .open(&path)
                    .map_err(|e| err(format!("cannot create: {e}")))?;
                f.write_all(&b)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| err(format!("cannot write: {e}")))?;
                Keyring::from_bytes(&b).ok_or_else(|| err("unusable".into()))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Seals `plain`: base64 of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buf = plain.to_vec();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::empty(),
            &mut buf,
        );
        match sealed {
            Ok(()) => {
                let mut out = nonce_bytes.to_vec();
                out.extend_from_slice(&buf);
                STANDARD.encode(out)
            }
            // Sealing fails only for inputs beyond AES-GCM's size limit (64 GiB).
            Err(_) => String::new(),
        }
    }

    /// Opens what [`Keyring::seal`] made; `None` if it was not sealed with this key.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let mut b = STANDARD.decode(sealed).ok()?;
        if b.len() < NONCE_LEN {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&b[..NONCE_LEN]).ok()?;
        let mut body = b.split_off(NONCE_LEN);
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_makes_its_file_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.db");
        let k = Keyring::load(None, &store).unwrap();
        let sealed = k.seal(b"secret");
        assert!(!sealed.contains("secret"));
        assert_eq!(k.open(&sealed).as_deref(), Some(&b"secret"[..]));
        let again = Keyring::load(None, &store).unwrap();
        assert_eq!(again.open(&sealed).as_deref(), Some(&b"secret"[..]));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_file(&store))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = Keyring::load(Some(STANDARD.encode([7u8; 32])), &store).unwrap();
        assert!(other.open(&sealed).is_none());
        assert!(Keyring::load(Some("short".into()), &store).is_err());
    }
}
