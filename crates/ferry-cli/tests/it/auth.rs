//! Authentication and TLS, against the real registry in each mode.

use std::process::Stdio;

use ferry_test::{Mode, PASSWORD, Registry, USER, fixtures};
use tokio::io::AsyncWriteExt;

use crate::support::{Env, assert_has_all};

async fn seeded(mode: Mode) -> (Registry, ferry_test::Artifact, String) {
    let reg = Registry::start(mode);
    let image = fixtures::oci_image(100, 4, "amd64");
    reg.seed("secure/app", Some("1"), &image).await;
    let reference = format!("{}/secure/app:1", reg.host());
    (reg, image, reference)
}

#[tokio::test]
async fn basic_auth_with_flags_config_and_errors() {
    let (reg, image, reference) = seeded(Mode::Basic).await;
    let env = Env::new();
    let out = env.path("flags");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "-u",
        USER,
        "-p",
        PASSWORD,
    ])
    .await;
    assert_has_all(&out, &image);

    let err = env
        .fails(&[
            "pull",
            &reference,
            "-o",
            env.path("bad").to_str().unwrap(),
            "--no-cache",
            "-u",
            USER,
            "-p",
            "wrong",
        ])
        .await;
    assert!(
        err.contains("authentication to registry") && err.contains(&reg.host()),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the password never appears: {err}");

    let err = env
        .fails(&[
            "pull",
            &reference,
            "-o",
            env.path("none").to_str().unwrap(),
            "--no-cache",
        ])
        .await;
    assert!(
        err.contains("no credentials") || err.contains("none were found"),
        "{err}"
    );

    // Docker config `auths` entry, as `docker login` writes it.
    let auth = ferry_test::encode::base64(format!("{USER}:{PASSWORD}").as_bytes());
    std::fs::create_dir_all(env.path("home/.docker")).unwrap();
    std::fs::write(
        env.path("home/.docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let out = env.path("config");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--no-cache",
    ])
    .await;
    assert_has_all(&out, &image);
}

#[tokio::test]
async fn credential_helper_and_password_stdin() {
    let (reg, image, reference) = seeded(Mode::Basic).await;
    let env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-ferrytest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\n[ \"$host\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            reg.host()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(env.path("home/.docker")).unwrap();
    std::fs::write(
        env.path("home/.docker/config.json"),
        format!(r#"{{"credHelpers":{{"{}":"ferrytest"}}}}"#, reg.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = env.path("helper");
    let res = env
        .command()
        .env("PATH", &path)
        .args(["pull", &reference, "-o", out.to_str().unwrap(), "-q"])
        .output()
        .await
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);

    let out = env.path("stdin");
    let mut child = env
        .command()
        .args([
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--no-cache",
            "-u",
            USER,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    let res = child.wait_with_output().await.unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
}

#[tokio::test]
async fn token_auth_fetches_one_token_for_many_parallel_requests() {
    let (reg, image, reference) = seeded(Mode::Token).await;
    let env = Env::new();
    let out = env.path("images");
    let issued_before = reg.tokens_issued();
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--oci-concurrency",
        "6",
    ])
    .await;
    assert_has_all(&out, &image);
    assert_eq!(
        reg.tokens_issued() - issued_before,
        1,
        "one scope, one token: {:?}",
        reg.token_scopes()
    );

    let err = env
        .fails(&[
            "pull",
            &reference,
            "-o",
            env.path("bad").to_str().unwrap(),
            "--no-cache",
            "-u",
            USER,
            "-p",
            "nope",
        ])
        .await;
    assert!(
        err.contains("authentication to registry") && err.contains("token service"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_needs_a_trusted_ca_and_never_falls_back_to_http() {
    let (reg, image, reference) = seeded(Mode::Tls).await;
    let env = Env::new();
    let ca = reg.ca_file().unwrap().to_str().unwrap().to_string();
    let out = env.path("ca");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--ca-file",
        &ca,
    ])
    .await;
    assert_has_all(&out, &image);

    let out = env.path("insecure");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--no-cache",
        "--insecure-skip-tls-verify",
    ])
    .await;
    assert_has_all(&out, &image);

    let err = env
        .fails(&[
            "pull",
            &reference,
            "-o",
            env.path("untrusted").to_str().unwrap(),
            "--no-cache",
        ])
        .await;
    assert!(
        err.contains("not trusted") && err.contains("--ca-file"),
        "{err}"
    );
    assert!(!env.path("untrusted").exists());

    let err = env
        .fails(&[
            "pull",
            &reference,
            "-o",
            env.path("bad-ca").to_str().unwrap(),
            "--ca-file",
            "/nonexistent.pem",
        ])
        .await;
    assert!(err.contains("/nonexistent.pem"), "{err}");
}

#[tokio::test]
async fn plain_http_is_negotiated_for_loopback_and_forced_by_flag() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(101, 1, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    // 127.0.0.1 answers plain HTTP after the HTTPS probe fails: negotiated without a flag (shown by every
    // other test); with --plain-http there is no HTTPS probe at all.
    let out = env.path("forced");
    env.ok(&[
        "pull",
        &format!("{}/app:1", reg.host()),
        "--plain-http",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_has_all(&out, &image);
    // The same registry through `localhost`: still local, still negotiated.
    let out = env.path("localhost");
    env.ok(&[
        "pull",
        &format!("localhost:{}/app:1", reg.port()),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_has_all(&out, &image);
}

#[tokio::test]
async fn self_signed_ca_true_certificate_passed_with_ca_file() {
    // `openssl req -x509` as Docker's guide does it: CA:TRUE, a DNS name only.
    let reg = Registry::start(Mode::SelfSigned);
    let image = fixtures::oci_image(101, 2, "amd64");
    reg.seed("secure/app", Some("1"), &image).await;
    let env = Env::new();
    let ca = reg.ca_file().unwrap().to_str().unwrap().to_string();
    let out = env.path("out");
    let by_name = format!("localhost:{}/secure/app:1", reg.port());
    env.ok(&[
        "pull",
        &by_name,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--ca-file",
        &ca,
    ])
    .await;
    assert_has_all(&out, &image);
    // Host names are still checked: the certificate does not name 127.0.0.1.
    let err = env
        .fails(&[
            "pull",
            &format!("{}/secure/app:1", reg.host()),
            "-o",
            env.path("by-ip").to_str().unwrap(),
            "--no-cache",
            "--ca-file",
            &ca,
        ])
        .await;
    assert!(
        err.contains("CN=localhost") && err.contains("not valid for the host name 127.0.0.1"),
        "{err}"
    );
}

/// `dir` as a skopeo/Docker certificate directory for `reg`: the CA and the client pair.
fn write_cert_dir(dir: &std::path::Path, reg: &Registry) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(reg.ca_file().unwrap(), dir.join("ca.crt")).unwrap();
    let (cert, key) = reg.client_identity().unwrap();
    std::fs::copy(cert, dir.join("me.cert")).unwrap();
    std::fs::copy(key, dir.join("me.key")).unwrap();
}

#[tokio::test]
async fn client_certificates_from_certs_d_and_cert_dir() {
    let (reg, image, reference) = seeded(Mode::Mtls).await;
    let env = Env::new();
    let err = env
        .fails(&["pull", &reference, "-o", env.path("none").to_str().unwrap()])
        .await;
    assert!(err.contains("not trusted"), "no CA anywhere yet: {err}");

    let dir = env.path("certs");
    write_cert_dir(&dir, &reg);
    let out = env.path("cert-dir");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--cert-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    assert_has_all(&out, &image);

    write_cert_dir(&env.certs_d().join(reg.host()), &reg);
    let out = env.path("certs-d");
    env.ok(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--no-cache",
    ])
    .await;
    assert_has_all(&out, &image);
    env.ok(&["ls", &format!("{}/secure/app", reg.host())]).await;
}

#[tokio::test]
async fn copy_takes_certificates_per_side() {
    let (src, image, reference) = seeded(Mode::Mtls).await;
    let dest = Registry::start(Mode::Mtls);
    let env = Env::new();
    let (src_dir, dest_dir) = (env.path("src-certs"), env.path("dest-certs"));
    write_cert_dir(&src_dir, &src);
    write_cert_dir(&dest_dir, &dest);
    let target = format!("{}/copied/app:1", dest.host());
    let err = env
        .fails(&[
            "copy",
            &reference,
            &target,
            "--src-cert-dir",
            src_dir.to_str().unwrap(),
        ])
        .await;
    assert!(
        err.contains(&dest.host()),
        "the destination has no certificates: {err}"
    );
    env.ok(&[
        "copy",
        &reference,
        &target,
        "-q",
        "--src-cert-dir",
        src_dir.to_str().unwrap(),
        "--dest-cert-dir",
        dest_dir.to_str().unwrap(),
    ])
    .await;
    let (_, bytes) = dest.get_manifest("copied/app", "1").await.expect("copied");
    assert_eq!(ferry_test::encode::sha256_digest(&bytes), image.digest());
}
