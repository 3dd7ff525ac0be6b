//! Basic authentication against an htpasswd file read the way the CNCF registry reads it: `user:hash`
//! lines, bcrypt hashes only (`$2y$`, `$2a$`, `$2b$`); other entries are refused with a warning.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::ServeError;

/// Larger than any real htpasswd file; a hostile one is not read into memory whole.
const MAX_FILE: u64 = 1 << 20;
/// Successful checks remembered, so a client's every request does not cost a bcrypt (tens of ms).
const REMEMBERED: usize = 256;

pub(crate) struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256 of `user:password` pairs that passed.
    passed: Mutex<HashSet<ferry_oci::Digest>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, ServeError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| ServeError::io(path, e))?;
        let mut text = String::new();
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| ServeError::io(path, e))?;
        if text.len() as u64 > MAX_FILE {
            return Err(ServeError::Invalid(format!(
                "{}: larger than {MAX_FILE} bytes; not an htpasswd file",
                path.display()
            )));
        }
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                tracing::warn!("{}:{}: not user:hash; ignored", path.display(), n + 1);
                continue;
            };
            if !["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                tracing::warn!(
                    "{}:{}: user {user:?} has no bcrypt hash (make one with htpasswd -B); ignored",
                    path.display(),
                    n + 1
                );
                continue;
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(ServeError::Invalid(format!(
                "{}: no user with a bcrypt password (htpasswd -B); nobody could log in",
                path.display()
            )));
        }
        Ok(Htpasswd {
            users,
            passed: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header carries Basic credentials of a user in the file.
    pub async fn check(self: &Arc<Self>, header: Option<&[u8]>) -> bool {
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key = ferry_oci::Digest::of(format!("{user}:{password}").as_bytes());
        if self.passed.lock().expect("auth lock").contains(&key) {
            return true;
        }
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut passed = self.passed.lock().expect("auth lock");
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(key);
        }
        ok
    }
}

fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, value) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = ferry_oci::base64::decode(value.trim())?;
    let pair = String::from_utf8(decoded).ok()?;
    let (user, password) = pair.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_entries_from_htpasswd_pass_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        // Made by Apache's `htpasswd -nbB ferry s3cret` ($2y$), and an MD5 entry the registry refuses too.
        let made = std::process::Command::new("htpasswd")
            .args(["-nbB", "ferry", "s3cret"])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        let mut text = String::from_utf8(made.stdout).unwrap();
        text.push_str("md5user:$apr1$abc$def\n");
        std::fs::write(&file, text).unwrap();
        let auth = Arc::new(Htpasswd::load(&file).unwrap());
        // base64 of ferry:s3cret, ferry:wrong and md5user:x.
        let basic = |b64: &str| format!("Basic {b64}").into_bytes();
        assert!(auth.check(Some(&basic("ZmVycnk6czNjcmV0"))).await);
        assert!(
            auth.check(Some(&basic("ZmVycnk6czNjcmV0"))).await,
            "remembered"
        );
        assert!(!auth.check(Some(&basic("ZmVycnk6d3Jvbmc="))).await);
        assert!(!auth.check(Some(&basic("bWQ1dXNlcjp4"))).await);
        assert!(!auth.check(Some(b"Bearer abc")).await);
        assert!(!auth.check(None).await);
        std::fs::write(&file, "md5user:$apr1$abc$def\n").unwrap();
        assert!(Htpasswd::load(&file).is_err());
    }
}
