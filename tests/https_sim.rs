#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTPS variant of KLAP (`is_support_https` in the UDP 20002 reply) against the simulated
//! `kp125m-us-hw1-smart-https` plug, served over TLS on loopback:
//!
//! - our KLAP client reads it over TLS, and every KLAP fault gives the same typed error as over
//!   HTTP; `tls-hang` (TCP accepted, TLS handshake never answered) is a typed TLS timeout, and
//!   the client wrote nothing but its TLS hello before it (that part is `net::tls`'s unit test);
//! - the poller's link (`NewerLink`) keeps one KLAP session on one TLS connection across polls
//!   and a relay switch;
//! - `plugfleet status --json` reads it with the same fields as the HTTP KP125M; a `tls-hang`
//!   plug is a timeout row while the legacy and HTTP plugs beside it are read;
//! - `plugfleet discover --json` names its transport `klap-smart-https` and its port.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::net::klap::{Credentials, KlapClient, KlapConfig, KlapNetError, KlapStage};
use plugfleet::net::tls::Scheme;
use plugfleet::protocol::klap::{AuthVersion, KlapError};
use plugfleet::sim::klap::{self as simklap, Dialect, KlapFault, KlapFleet, KlapSpec, Transport};
use plugfleet::sim::{self, Fleet, FleetSpec};
use serde_json::{Value, json};

const HTTPS: &str = "kp125m-us-hw1-smart-https";
const HTTP: &str = "kp125m-us-hw1-smart";
const LEGACY: &str = "hs110-eu-hw4";
const TIMEOUT: Duration = Duration::from_millis(500);

/// A distinct 127.x.y.2 base per test (x from the pid, y per test).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 64) as u8;
    Ipv4Addr::new(127, 190 + pid % 50, 20 + n * 4, 2)
}

async fn fleet(profiles: &[&str], faults: &[(usize, KlapFault)]) -> (Fleet, KlapFleet) {
    let b = base();
    let ip = |i: usize| Ipv4Addr::from(u32::from(b) + i as u32);
    let f = sim::start(FleetSpec {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        ..FleetSpec::on_free_port(b, profiles.len())
    })
    .await
    .expect("fleet");
    let k = simklap::serve(
        &f,
        &KlapSpec {
            faults: faults.iter().map(|(i, fault)| (ip(*i), *fault)).collect(),
            ..KlapSpec::default()
        },
    )
    .await
    .expect("KLAP servers");
    (f, k)
}

fn account() -> Credentials {
    Credentials::new(simklap::DEFAULT_USERNAME, simklap::DEFAULT_PASSWORD)
}

fn client(k: &KlapFleet, ip: Ipv4Addr, scheme: Scheme) -> KlapClient {
    let d = k.device(ip).expect("a KLAP device");
    KlapClient::new(KlapConfig {
        timeout: TIMEOUT,
        scheme,
        ..KlapConfig::new(d.addr(), AuthVersion::V2, Some(account()))
    })
}

/// A client call returns by itself (the bound only guards against a hang).
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT * 8 + Duration::from_secs(2), f)
        .await
        .expect("the client call returned by itself (no hang)")
}

fn smart(method: &str) -> Value {
    json!({"method": method, "params": null, "request_time_milis": 0,
        "terminal_uuid": "plugfleet-test"})
}

#[tokio::test]
async fn the_https_plug_is_read_over_tls_and_refuses_plain_http() {
    let (f, k) = fleet(&[HTTPS], &[]).await;
    let ip = f.plugs()[0].ip;
    let d = k.device(ip).expect("device");
    assert!(d.https, "served over TLS");
    assert_eq!(
        (d.transport, d.dialect, d.klap_version),
        (Transport::Klap, Dialect::Smart, 2)
    );
    let mut c = client(&k, ip, Scheme::Https);
    for _ in 0..3 {
        let r = bounded(c.query(&smart("get_device_info")))
            .await
            .expect("over TLS");
        assert_eq!(r["error_code"], 0, "{r}");
        assert_eq!(r["result"]["model"], "KP125M", "{r}");
    }
    // One session, kept across requests, and one kept TLS connection under it.
    assert_eq!((c.handshakes(), d.handshakes()), (1, 1));
    assert_eq!(
        d.tls_handshakes(),
        1,
        "one TLS connection for every request"
    );
    // Plain HTTP to a TLS port is no reply at all, never a reading.
    let mut plain = client(&k, ip, Scheme::Http);
    let e = bounded(plain.query(&smart("get_device_info")))
        .await
        .expect_err("HTTP to the TLS port");
    assert!(
        matches!(e, KlapNetError::Io { .. } | KlapNetError::BadReply { .. }),
        "{e:?}"
    );
    assert_eq!((d.handshakes(), d.tls_handshakes()), (1, 1));
    k.shutdown().await;
    f.shutdown().await;
}

#[tokio::test]
async fn every_klap_fault_is_the_same_typed_error_over_tls() {
    let (f, k) = fleet(
        &[HTTPS, HTTPS, HTTPS, HTTPS],
        &[
            (0, KlapFault::WrongCredentials),
            (1, KlapFault::SessionExpiry),
            (2, KlapFault::HandshakeHang),
            (3, KlapFault::GarbageCiphertext),
        ],
    )
    .await;
    let ip = |i: usize| f.plugs()[i].ip;
    let q = smart("get_current_power");

    let mut c = client(&k, ip(0), Scheme::Https);
    assert_eq!(bounded(c.query(&q)).await, Err(KlapNetError::AuthFailed));

    // Two requests per session: the 3rd meets a 403 and is retried on a fresh handshake.
    let mut c = client(&k, ip(1), Scheme::Https);
    for i in 0..3 {
        bounded(c.query(&q))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
    }
    assert_eq!(c.handshakes(), 2);
    assert_eq!(k.device(ip(1)).expect("device").handshakes(), 2);

    // TLS completes; handshake1 inside it is never answered.
    let mut c = client(&k, ip(2), Scheme::Https);
    assert_eq!(
        bounded(c.query(&q)).await,
        Err(KlapNetError::Timeout {
            stage: KlapStage::Handshake1,
            after: TIMEOUT
        })
    );

    let mut c = client(&k, ip(3), Scheme::Https);
    assert_eq!(
        bounded(c.query(&q)).await,
        Err(KlapNetError::BadCiphertext(KlapError::BadSignature))
    );
    assert_eq!(c.handshakes(), 1, "the handshake itself was fine");
    k.shutdown().await;
    f.shutdown().await;
}

#[tokio::test]
async fn a_tls_hang_is_a_typed_tls_timeout_and_the_next_plug_is_read() {
    let (f, k) = fleet(&[HTTPS, HTTPS], &[(0, KlapFault::TlsHang)]).await;
    let hang = f.plugs()[0].ip;
    let fine = f.plugs()[1].ip;
    let (mut a, mut b) = (
        client(&k, hang, Scheme::Https),
        client(&k, fine, Scheme::Https),
    );
    let q = smart("get_device_info");
    // Both at once: the hanging one does not hold the other up.
    let (ra, rb) = bounded(async { tokio::join!(a.query(&q), b.query(&q)) }).await;
    assert_eq!(ra, Err(KlapNetError::TlsTimeout { after: TIMEOUT }));
    assert_eq!(rb.expect("the other HTTPS plug")["error_code"], 0);
    assert_eq!(a.handshakes(), 0);
    let d = k.device(hang).expect("device");
    assert_eq!((d.handshakes(), d.tls_handshakes()), (0, 0));
    assert_eq!(k.device(fine).expect("device").tls_handshakes(), 1);
    // Typed all the way: the newer-protocol link reports a connect timeout.
    assert!(
        KlapNetError::TlsTimeout { after: TIMEOUT }
            .to_string()
            .contains("TLS handshake timed out")
    );
    k.shutdown().await;
    f.shutdown().await;
}

#[tokio::test]
async fn tls_hang_is_refused_for_a_plain_http_plug() {
    let b = base();
    let f = sim::start(FleetSpec {
        profiles: vec![HTTP.into()],
        ..FleetSpec::on_free_port(b, 1)
    })
    .await
    .expect("fleet");
    let e = simklap::serve(
        &f,
        &KlapSpec {
            faults: vec![(b, KlapFault::TlsHang)],
            ..KlapSpec::default()
        },
    )
    .await
    .expect_err("tls-hang needs an HTTPS plug");
    assert!(e.to_string().contains("not an HTTPS plug"), "{e}");
    f.shutdown().await;
}

fn plugfleet(args: Vec<String>) -> impl FnOnce() -> Output {
    move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_USERNAME")
            .env_remove("PLUGFLEET_PASSWORD")
            .env_remove("PLUGFLEET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent/plugfleet-test")
            .output()
            .unwrap()
    }
}

fn common_args(cmd: &str, fleet: &Fleet, timeout: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        cmd,
        "--json",
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--timeout",
        timeout,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in fleet.plugs() {
        args.extend(["--host".into(), p.ip.to_string()]);
    }
    args
}

async fn status(fleet: &Fleet) -> (Output, HashMap<String, Value>) {
    let mut args = common_args("status", fleet, "2");
    args.extend(
        [
            "--username",
            simklap::DEFAULT_USERNAME,
            "--password",
            simklap::DEFAULT_PASSWORD,
        ]
        .map(String::from),
    );
    let out = tokio::task::spawn_blocking(plugfleet(args)).await.unwrap();
    let devs = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["ip"].as_str().unwrap().to_string(), v)
        })
        .collect();
    (out, devs)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reads_the_https_plug_like_the_http_one() {
    let (fleet, k) = fleet(&[LEGACY, HTTP, HTTPS], &[]).await;
    let (out, devs) = status(&fleet).await;
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(simklap::DEFAULT_PASSWORD));
    let p = fleet.plugs();
    let row = |i: usize| &devs[&p[i].ip.to_string()];
    let (http, https) = (row(1), row(2));
    assert_eq!(keys(https), keys(http), "same fields: {https}");
    assert_eq!(keys(https), keys(row(0)), "as a legacy row's: {https}");
    for (k, want) in [
        ("protocol", json!("klap")),
        ("dialect", json!("smart")),
        ("model", json!("KP125M(US)")),
        ("refusal", Value::Null),
        ("online", json!(true)),
        ("has_emeter", json!(true)),
        ("sw_ver", json!(p[2].sw_ver)),
        ("hw_ver", json!(p[2].hw_ver)),
        ("alias", json!(p[2].alias)),
    ] {
        assert_eq!(https[k], want, "{k}: {https}");
    }
    assert!(https["relay_state"].is_u64(), "{https}");
    assert!(https["emeter"]["power_w"].is_number(), "{https}");
    assert_eq!(https["plausibility"]["verdict"], "ok", "{https}");
    // Read through the TLS server: one TLS connection, one KLAP session; none over TLS for HTTP.
    let d = k.device(p[2].ip).expect("device");
    assert_eq!((d.tls_handshakes(), d.handshakes()), (1, 1));
    assert_eq!(k.device(p[1].ip).expect("device").tls_handshakes(), 0);
    k.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_a_tls_hang_is_a_timeout_row_and_the_others_are_read() {
    let (fleet, k) = fleet(&[LEGACY, HTTPS, HTTP, HTTPS], &[(1, KlapFault::TlsHang)]).await;
    let (out, devs) = status(&fleet).await;
    let p = fleet.plugs();
    let row = |i: usize| &devs[&p[i].ip.to_string()];
    let hang = row(1);
    let err = hang["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("timed out") && err.contains("connect"),
        "a connect (TLS handshake) timeout: {hang}"
    );
    assert_eq!(hang["online"], false, "{hang}");
    assert_eq!(hang["model"], "KP125M(US)", "from discovery: {hang}");
    for i in [0, 2, 3] {
        let d = row(i);
        assert_eq!(d["error"], Value::Null, "{d}");
        assert!(d["emeter"]["power_w"].is_number(), "{d}");
    }
    assert_eq!(k.device(p[1].ip).expect("device").handshakes(), 0);
    assert_eq!(k.device(p[3].ip).expect("device").handshakes(), 1);
    assert_eq!(devs.len(), 4, "{out:?}");
    k.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_json_names_the_https_transport() {
    let (fleet, k) = fleet(&[HTTP, HTTPS], &[]).await;
    let args = common_args("discover", &fleet, "2");
    let out = tokio::task::spawn_blocking(plugfleet(args)).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut by_ip: HashMap<String, Value> = HashMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if let Some(ip) = v["ip"].as_str() {
            by_ip.insert(ip.to_owned(), v);
        }
    }
    let p = fleet.plugs();
    let (http, https) = (&by_ip[&p[0].ip.to_string()], &by_ip[&p[1].ip.to_string()]);
    assert_eq!(http["transport"], "klap-smart", "{http}");
    assert_eq!(https["transport"], "klap-smart-https", "{https}");
    assert_eq!(https["credentials"], "required", "{https}");
    assert_eq!(
        https["http_port"],
        k.port(),
        "the TLS server's port: {https}"
    );
    k.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn the_pollers_link_keeps_one_session_and_one_tls_connection_across_polls() {
    use plugfleet::net::newer::{NewerLink, NewerSpec};
    use plugfleet::protocol::access::{Access, Dialect as AccessDialect, Transport as Via};
    let (f, k) = fleet(&[HTTPS], &[]).await;
    let p = &f.plugs()[0];
    let d = k.device(p.ip).expect("device");
    let access = Access {
        transport: Via::Klap,
        dialect: AccessDialect::Smart,
        version: AuthVersion::V2,
        login_v2: false,
        https: true,
        http_port: d.http_port,
    };
    assert_eq!(access.label(), "klap-smart-https");
    let spec = NewerSpec {
        access,
        model: "KP125M(US)".into(),
        account: Some(account()),
    };
    let mut link = NewerLink::new(p.ip.into(), spec, Duration::from_secs(2));
    for i in 0..4 {
        let polled = bounded(link.poll())
            .await
            .unwrap_or_else(|e| panic!("poll {i}: {e}"));
        assert_eq!(polled.sysinfo.alias, p.alias, "poll {i}");
        assert!(polled.realtime.is_some_and(|r| r.is_ok()), "poll {i}");
    }
    bounded(link.set_relay(false, None))
        .await
        .expect("relay off");
    let polled = bounded(link.poll()).await.expect("after the switch");
    assert_eq!(polled.sysinfo.is_on(), Some(false));
    assert_eq!(link.handshakes(), 1);
    assert_eq!((d.handshakes(), d.tls_handshakes()), (1, 1));
    k.shutdown().await;
    f.shutdown().await;
}
