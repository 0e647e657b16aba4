//! `rediss://` against a real redis-server serving TLS, with a test CA and a server certificate
//! for `localhost` / 127.0.0.1 made by `openssl`: `#insecure` connects and writes; without it
//! the certificate is checked against the system's roots (refused: the test CA is not one of
//! them), and accepted once `SSL_CERT_FILE` names the test CA. Says SKIPPED when `openssl` is
//! missing or redis-server was built without TLS.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use quantum_local_redis::{free_port, RedisServer};
use quantum_redis::conn::Redis;
use quantum_redis::stats::Stats;

/// Runs `openssl <args>` in `dir`; `None` when openssl is not installed.
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    match Command::new("openssl").current_dir(dir).args(args).output() {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: openssl is not installed ({e}; apt-get install openssl runs this test)"
            );
            None
        }
    }
}

/// A CA (`ca.pem`) and a server certificate it signed (`cert.pem`, `key.pem`).
fn certificates(dir: &Path) -> Option<()> {
    let rsa = ["-newkey", "rsa:2048", "-nodes", "-days", "1"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &rsa,
            &[
                "-subj",
                "/CN=qpc test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            &["req"][..],
            &rsa[..3],
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "req.csr",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    )
}

async fn set_and_read(redis: &mut Redis, server: &RedisServer, key: &str) {
    let mut c = redis.conn().await.expect("a TLS connection");
    let () = redis::cmd("SET")
        .arg(key)
        .arg("1")
        .query_async(&mut c)
        .await
        .unwrap();
    let got: Option<String> = redis::cmd("GET")
        .arg(key)
        .query(&mut server.conn_db(3).unwrap())
        .unwrap();
    assert_eq!(
        got.as_deref(),
        Some("1"),
        "written through TLS, read in plain"
    );
}

#[tokio::test]
async fn rediss_connects_insecure_and_checks_certificates_otherwise() {
    let dir = std::env::temp_dir().join(format!("qpc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if certificates(&dir).is_none() {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let tls_port = free_port();
    let tls_port_s = tls_port.to_string();
    let path = |f: &str| dir.join(f).display().to_string();
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    let server = match RedisServer::launch(
        &quantum_local_redis::binary(),
        false,
        &[
            "--tls-port",
            &tls_port_s,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: redis-server does not serve TLS here ({e})");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };

    let url = format!("rediss://127.0.0.1:{tls_port}/3#insecure");
    let mut insecure = Redis::new(&url, Arc::new(Stats::default())).unwrap();
    assert_eq!(insecure.shown(), format!("rediss://127.0.0.1:{tls_port}/3"));
    set_and_read(&mut insecure, &server, "insecure").await;

    // Checked against the system's roots, the test CA's certificate is refused.
    let strict_url = format!("rediss://localhost:{tls_port}/3");
    let mut strict = Redis::new(&strict_url, Arc::new(Stats::default())).unwrap();
    let e = strict
        .conn()
        .await
        .expect_err("a certificate of an unknown CA is not trusted");
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "the error names the certificate: {e}"
    );

    // With the test CA trusted (read at every connection), the same URL connects.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let mut strict = Redis::new(&strict_url, Arc::new(Stats::default())).unwrap();
    set_and_read(&mut strict, &server, "verified").await;
    std::env::remove_var("SSL_CERT_FILE");

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
