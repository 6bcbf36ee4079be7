//! `dreamlog serve` over TLS (rustls): a client that trusts the server's certificate talks
//! HTTPS; plain HTTP and clients that do not trust it get nowhere; bad certificate or key
//! files stop the server before it serves.

mod common;

use common::server::Server;
use serde_json::{json, Value};
use tempfile::tempdir;

fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key, c.cert.pem())
}

#[test]
fn the_server_speaks_https_to_clients_that_trust_it_and_nothing_else() {
    let dir = tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path());
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, json!({"tls": {"cert": cert, "key": key}}).to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let note =
        json!({"stream": "s", "events": [{"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {}}}]});
    let r = trusting.post(server.url("/v1/events")).json(&note).send().unwrap();
    assert_eq!(r.status(), 200);
    let local = server.base.replace("127.0.0.1", "localhost");
    let page: Value = trusting.get(format!("{local}/v1/events")).send().unwrap().json().unwrap();
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));

    // A client with only the public roots refuses the certificate; plain HTTP gets no answer.
    let public = reqwest::blocking::Client::new();
    assert!(public.get(server.url("/v1/health")).send().is_err());
    let plain = server.base.replace("https://", "http://");
    assert!(public.get(format!("{plain}/v1/health")).send().map(|r| !r.status().is_success()).unwrap_or(true));
    // The CLI as a client: refused without the certificate, answered with --ca-cert.
    let db = dir.path().join("unused");
    let cli = |extra: &[&str]| {
        let mut args = vec!["--remote", server.base.as_str(), "--json"];
        args.extend_from_slice(extra);
        args.push("log");
        common::dreamlog_on(&db, &args, None)
    };
    assert!(!cli(&[]).status.success());
    let log = common::json_lines(&common::ok(&cli(&["--ca-cert", cert.to_str().unwrap()])));
    assert_eq!(log.len(), 1, "{log:?}");
    // The server is unharmed.
    assert_eq!(trusting.get(server.url("/v1/health")).send().unwrap().status(), 200);
    assert!(server.stop().success());
}

#[test]
fn bad_certificate_or_key_files_stop_the_server_before_it_serves() {
    let dir = tempdir().unwrap();
    let (cert, _key, _) = certificate(dir.path());
    let other = tempdir().unwrap();
    let (_, wrong_key, _) = certificate(other.path());
    for (tls, says) in [
        (json!({"cert": cert, "key": wrong_key}), "does not go with the certificate"),
        (json!({"cert": dir.path().join("missing.pem"), "key": wrong_key}), "missing.pem"),
    ] {
        let cfg = dir.path().join("server.json");
        std::fs::write(&cfg, json!({ "tls": tls }).to_string()).unwrap();
        let out = common::dreamlog_on(
            &dir.path().join("db"),
            &["serve", "--addr", "127.0.0.1:0", "--config", cfg.to_str().unwrap()],
            None,
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}
