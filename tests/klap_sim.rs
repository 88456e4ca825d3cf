#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Our KLAP client (`net::klap`) against the simulated KLAP devices (`sim::klap`) on loopback:
//! each profile is read through its dialect, each KLAP fault gives its typed error, and a
//! misbehaving KLAP plug leaves the legacy plugs of the same fleet alone.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use base64::Engine as _;
use plugfleet::net::aes::{AesClient, AesConfig, AesNetError, AesStage};
use plugfleet::net::klap::{Credentials, KlapClient, KlapConfig, KlapNetError, KlapStage};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::protocol::aes_passthrough::AesError;
use plugfleet::protocol::klap::{AuthVersion, CredentialSource, KlapError};
use plugfleet::protocol::{Realtime, Request, SysInfo};
use plugfleet::sim::klap::{self as simklap, Dialect, KlapFault, KlapFleet, KlapSpec, Transport};
use plugfleet::sim::{self, Fleet, FleetSpec, PlugHandle};
use serde_json::{Value, json};

const IOT: &str = "hs100-uk-hw4-klap";
const SMART: &str = "kp125m-us-hw1-smart";
const AES: &str = "p110-eu-hw1-aes";
const TIMEOUT: Duration = Duration::from_millis(500);

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 118, pid.wrapping_mul(13).wrapping_add(n), 2)
}

async fn fleet(profiles: &[&str], spec: impl FnOnce(Ipv4Addr) -> KlapSpec) -> (Fleet, KlapFleet) {
    let b = base();
    let f = sim::start(FleetSpec {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        time_scale: 0.01,
        ..FleetSpec::on_free_port(b, profiles.len())
    })
    .await
    .expect("fleet");
    let k = simklap::serve(&f, &spec(b)).await.expect("klap servers");
    (f, k)
}

fn account() -> Credentials {
    Credentials::new(simklap::DEFAULT_USERNAME, simklap::DEFAULT_PASSWORD)
}

fn client(
    k: &KlapFleet,
    ip: Ipv4Addr,
    version: AuthVersion,
    acct: Option<Credentials>,
) -> KlapClient {
    let d = k.device(ip).expect("a KLAP device");
    KlapClient::new(KlapConfig {
        timeout: TIMEOUT,
        ..KlapConfig::new(d.addr(), version, acct)
    })
}

/// A client call returns by itself (the bound only guards against a hang).
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT * 6 + Duration::from_secs(2), f)
        .await
        .expect("the client call returned by itself (no hang)")
}

fn smart(method: &str, params: Value) -> Value {
    json!({"method": method, "params": params, "request_time_milis": 0,
        "terminal_uuid": "plugfleet-test"})
}

#[tokio::test]
async fn iot_profile_answers_sysinfo_and_relay_over_klap_v1() {
    let (f, k) = fleet(&[IOT], |_| KlapSpec::default()).await;
    let p: &PlugHandle = &f.plugs()[0];
    let d = k.device(p.ip).expect("device");
    assert_eq!((d.dialect, d.klap_version), (Dialect::Iot, 1));
    let mut c = client(&k, p.ip, AuthVersion::V1, Some(account()));

    let si = SysInfo::from_reply(
        &bounded(c.query(&Request::SysInfo.to_value()))
            .await
            .expect("sysinfo"),
    )
    .expect("parses as the port-9999 sysinfo");
    assert_eq!(si.model, "HS100(UK)");
    assert_eq!(si.hw_ver, "4.1");
    assert_eq!(si.sw_ver, p.sw_ver);
    assert_eq!(si.mac, p.mac);
    assert_eq!(si.device_id, p.device_id);
    assert_eq!(si.alias, p.alias);
    assert_eq!(c.credential_source(), Some(CredentialSource::Account));

    let want = !p.relays()[0];
    bounded(c.query(&Request::set_relay(want, None).to_value()))
        .await
        .expect("relay");
    assert_eq!(p.relays(), vec![want]);
    let si = SysInfo::from_reply(
        &bounded(c.query(&Request::SysInfo.to_value()))
            .await
            .expect("sysinfo"),
    )
    .expect("parses");
    assert_eq!(si.relay_on, Some(want));

    // HS100 has no meter: the plug's own "module not support" comes through KLAP.
    let r = bounded(c.query(&Request::realtime(None).to_value()))
        .await
        .expect("reply");
    assert_eq!(r["emeter"]["err_code"], -1);

    // One session for all of it, on both sides.
    assert_eq!(c.handshakes(), 1);
    assert_eq!(d.handshakes(), 1);
    assert_eq!(d.requests(), 4);
}

#[tokio::test]
async fn smart_profile_answers_device_info_and_energy_over_klap_v2() {
    let (f, k) = fleet(&[SMART], |_| KlapSpec::default()).await;
    let p = &f.plugs()[0];
    let d = k.device(p.ip).expect("device");
    assert_eq!((d.dialect, d.klap_version), (Dialect::Smart, 2));
    let mut c = client(&k, p.ip, AuthVersion::V2, Some(account()));

    let info = bounded(c.query(&smart("get_device_info", Value::Null)))
        .await
        .expect("info");
    assert_eq!(info["error_code"], 0);
    let r = &info["result"];
    assert_eq!(r["model"], "KP125M");
    assert_eq!(r["type"], "SMART.KASAPLUG");
    assert_eq!(r["hw_ver"], "1.0");
    assert_eq!(r["fw_ver"], p.sw_ver.as_str());
    assert_eq!(r["device_id"], p.device_id.as_str());
    assert_eq!(r["mac"], p.mac.replace(':', "-"));
    let nick = base64::engine::general_purpose::STANDARD
        .decode(r["nickname"].as_str().expect("nickname"))
        .expect("base64 nickname");
    assert_eq!(String::from_utf8(nick).expect("utf-8"), p.alias);
    assert_eq!(r["device_on"], json!(p.relays()[0]));

    let e = bounded(c.query(&smart("get_energy_usage", Value::Null)))
        .await
        .expect("energy");
    let mw = e["result"]["current_power"].as_i64().expect("mW integer");
    assert!(mw >= 0);
    assert!(e["result"]["today_energy"].as_i64().is_some());
    assert!(
        e["result"]["month_energy"].as_i64().expect("Wh")
            >= e["result"]["today_energy"].as_i64().expect("Wh")
    );
    let m = bounded(c.query(&smart("get_emeter_data", Value::Null)))
        .await
        .expect("emeter");
    let v = m["result"]["voltage_mv"].as_i64().expect("mV");
    assert!(
        (100_000..=140_000).contains(&v),
        "{v} mV on a 120 V profile"
    );

    let want = !p.relays()[0];
    let set = bounded(c.query(&smart("set_device_info", json!({"device_on": want}))))
        .await
        .expect("set");
    assert_eq!(set["error_code"], 0);
    assert_eq!(p.relays(), vec![want]);
    let multi = smart(
        "multipleRequest",
        json!({"requests": [{"method": "get_device_info"}, {"method": "get_current_power"},
            {"method": "no_such_method"}, {"method": "get_device_info"}]}),
    );
    let m = bounded(c.query(&multi)).await.expect("multi");
    let rs = m["result"]["responses"].as_array().expect("responses");
    // Like real firmware, it stops after the first method it fails.
    assert_eq!(rs.len(), 3, "{rs:?}");
    assert_eq!(rs[0]["method"], "get_device_info");
    assert_eq!(rs[0]["result"]["device_on"], json!(want));
    assert!(rs[1]["result"]["current_power"].as_i64().is_some());
    assert_eq!(rs[2]["error_code"], -1002);
    assert_eq!(c.handshakes(), 1);
    assert_eq!(d.handshakes(), 1);
}

#[tokio::test]
async fn the_wrong_auth_version_does_not_authenticate() {
    let (f, k) = fleet(&[SMART], |_| KlapSpec::default()).await;
    let mut c = client(&k, f.plugs()[0].ip, AuthVersion::V1, Some(account()));
    assert_eq!(bounded(c.handshake()).await, Err(KlapNetError::AuthFailed));
}

#[tokio::test]
async fn default_setup_and_blank_credentials_are_tried_after_the_account() {
    let kasa = |_| KlapSpec {
        username: "kasa@tp-link.net".into(),
        password: "kasaSetup".into(),
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[IOT], kasa).await;
    let ip = f.plugs()[0].ip;
    let mut c = client(&k, ip, AuthVersion::V1, Some(account()));
    assert_eq!(
        bounded(c.handshake()).await,
        Ok(CredentialSource::Default("KASA"))
    );
    let mut c = client(&k, ip, AuthVersion::V1, None);
    assert_eq!(
        bounded(c.handshake()).await,
        Ok(CredentialSource::Default("KASA"))
    );
    drop((f, k));

    let blank = |_| KlapSpec {
        username: String::new(),
        password: String::new(),
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[SMART], blank).await;
    let mut c = client(&k, f.plugs()[0].ip, AuthVersion::V2, None);
    assert_eq!(bounded(c.handshake()).await, Ok(CredentialSource::Blank));
    let r = bounded(c.query(&smart("get_device_info", Value::Null)))
        .await
        .expect("info");
    assert_eq!(r["error_code"], 0);
}

#[tokio::test]
async fn wrong_credentials_are_auth_failed_or_needs_credentials() {
    let spec = |b| KlapSpec {
        faults: vec![(b, KlapFault::WrongCredentials)],
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[IOT], spec).await;
    let ip = f.plugs()[0].ip;
    let mut c = client(&k, ip, AuthVersion::V1, Some(account()));
    assert_eq!(
        bounded(c.query(&Request::SysInfo.to_value())).await,
        Err(KlapNetError::AuthFailed)
    );
    let mut c = client(&k, ip, AuthVersion::V1, None);
    assert_eq!(
        bounded(c.query(&Request::SysInfo.to_value())).await,
        Err(KlapNetError::NeedsCredentials)
    );
    assert_eq!(k.device(ip).expect("device").handshakes(), 0);
}

#[tokio::test]
async fn a_403_mid_session_gets_a_fresh_handshake() {
    let spec = |b| KlapSpec {
        faults: vec![(b, KlapFault::SessionExpiry)],
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[SMART], spec).await;
    let ip = f.plugs()[0].ip;
    let mut c = client(&k, ip, AuthVersion::V2, Some(account()));
    // Two requests per session: the 3rd and 5th meet a 403 and are retried on a new session.
    for i in 0..5 {
        let r = bounded(c.query(&smart("get_current_power", Value::Null)))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r["error_code"], 0);
    }
    assert_eq!(c.handshakes(), 3);
    assert_eq!(k.device(ip).expect("device").handshakes(), 3);

    // Without the retry, the 403 is the typed error.
    let mut c = KlapClient::new(KlapConfig {
        timeout: TIMEOUT,
        renew_on_403: false,
        ..KlapConfig::new(
            k.device(ip).expect("device").addr(),
            AuthVersion::V2,
            Some(account()),
        )
    });
    for _ in 0..simklap::EXPIRY_REQUESTS {
        bounded(c.query(&smart("get_current_power", Value::Null)))
            .await
            .expect("in session");
    }
    assert_eq!(
        bounded(c.query(&smart("get_current_power", Value::Null))).await,
        Err(KlapNetError::SessionExpired)
    );
    // The next call starts a new session by itself.
    bounded(c.query(&smart("get_current_power", Value::Null)))
        .await
        .expect("new session");
}

#[tokio::test]
async fn the_session_is_renewed_before_its_timeout_cookie_lapses() {
    // TIMEOUT=1: the client's renewal margin leaves no usable time, so every request starts
    // with a fresh handshake instead of meeting the device's 403; with the default day, one.
    let short = |_| KlapSpec {
        session_secs: 1,
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[IOT], short).await;
    let ip = f.plugs()[0].ip;
    let mut c = client(&k, ip, AuthVersion::V1, Some(account()));
    for _ in 0..3 {
        bounded(c.query(&Request::SysInfo.to_value()))
            .await
            .expect("sysinfo");
    }
    assert_eq!(c.handshakes(), 3);
    assert_eq!(k.device(ip).expect("device").handshakes(), 3);
}

#[tokio::test]
async fn a_hanging_handshake_is_a_timeout() {
    let spec = |b| KlapSpec {
        faults: vec![(b, KlapFault::HandshakeHang)],
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[IOT], spec).await;
    let mut c = client(&k, f.plugs()[0].ip, AuthVersion::V1, Some(account()));
    assert_eq!(
        bounded(c.query(&Request::SysInfo.to_value())).await,
        Err(KlapNetError::Timeout {
            stage: KlapStage::Handshake1,
            after: TIMEOUT
        })
    );
}

#[tokio::test]
async fn garbage_ciphertext_is_bad_ciphertext() {
    let spec = |b| KlapSpec {
        faults: vec![(b, KlapFault::GarbageCiphertext)],
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&[SMART], spec).await;
    let mut c = client(&k, f.plugs()[0].ip, AuthVersion::V2, Some(account()));
    assert_eq!(
        bounded(c.query(&smart("get_device_info", Value::Null))).await,
        Err(KlapNetError::BadCiphertext(KlapError::BadSignature))
    );
    // The handshake itself was fine.
    assert_eq!(c.handshakes(), 1);
}

#[tokio::test]
async fn a_misbehaving_klap_plug_leaves_the_legacy_plugs_alone() {
    let spec = |b: Ipv4Addr| KlapSpec {
        faults: vec![(Ipv4Addr::from(u32::from(b) + 1), KlapFault::HandshakeHang)],
        ..KlapSpec::default()
    };
    let (f, k) = fleet(&["kp115-us-hw1", IOT, "hs110-eu-hw4"], spec).await;
    let hung = f.plugs()[1].ip;
    let mut c = client(&k, hung, AuthVersion::V1, Some(account()));
    let stuck = tokio::spawn(async move { c.query(&Request::SysInfo.to_value()).await });
    for p in [&f.plugs()[0], &f.plugs()[2]] {
        let legacy = Client::new(
            p.addr(),
            ClientConfig {
                port: p.port,
                ..ClientConfig::default()
            },
        );
        let si = bounded(legacy.sysinfo()).await.expect("legacy sysinfo");
        assert_eq!(si.mac, p.mac);
        let rt = bounded(legacy.realtime(None))
            .await
            .expect("legacy reading");
        assert!(Realtime::from_result(&rt.raw.to_value()).is_ok());
    }
    assert!(matches!(
        bounded(stuck).await.expect("task"),
        Err(KlapNetError::Timeout { .. })
    ));
    // Only the newer-protocol plug got a KLAP server.
    assert_eq!(k.devices().len(), 1);
    assert_eq!(k.devices()[0].ip, hung);
}

#[test]
fn klap_faults_parse_by_name() {
    for f in KlapFault::ALL {
        assert_eq!(f.name().parse::<KlapFault>(), Ok(f));
    }
    assert!("explode".parse::<KlapFault>().is_err());
}

fn aes_client(k: &KlapFleet, ip: Ipv4Addr, acct: Option<Credentials>) -> AesClient {
    let d = k.device(ip).expect("an AES device");
    assert_eq!(d.transport, Transport::Aes);
    AesClient::new(AesConfig {
        timeout: TIMEOUT,
        ..AesConfig::new(d.addr(), acct, d.login_v2)
    })
}

fn aes_fault(f: KlapFault) -> impl FnOnce(Ipv4Addr) -> KlapSpec {
    move |b| KlapSpec {
        faults: vec![(b, f)],
        ..KlapSpec::default()
    }
}

#[tokio::test]
async fn aes_profile_answers_device_info_and_energy_through_secure_passthrough() {
    let (f, k) = fleet(&[AES], |_| KlapSpec::default()).await;
    let p = &f.plugs()[0];
    let d = k.device(p.ip).expect("device");
    assert_eq!((d.transport, d.dialect), (Transport::Aes, Dialect::Smart));
    let mut c = aes_client(&k, p.ip, Some(account()));
    let info = bounded(c.query(&smart("get_device_info", Value::Null)))
        .await
        .expect("info");
    let r = &info["result"];
    assert_eq!(r["model"], "P110");
    assert_eq!(r["type"], "SMART.TAPOPLUG");
    assert_eq!(r["fw_ver"], p.sw_ver.as_str());
    assert_eq!(r["mac"], p.mac.replace(':', "-"));
    let nick = base64::engine::general_purpose::STANDARD
        .decode(r["nickname"].as_str().expect("nickname"))
        .expect("base64 nickname");
    assert_eq!(String::from_utf8(nick).expect("utf-8"), p.alias);
    let m = bounded(c.query(&smart("get_emeter_data", Value::Null)))
        .await
        .expect("emeter");
    let v = m["result"]["voltage_mv"].as_i64().expect("mV");
    assert!(
        (200_000..=260_000).contains(&v),
        "{v} mV on a 230 V profile"
    );
    let want = !p.relays()[0];
    bounded(c.query(&smart("set_device_info", json!({"device_on": want}))))
        .await
        .expect("set");
    assert_eq!(p.relays(), vec![want]);
    // One key exchange and one login for the lot, on one kept-alive connection.
    assert_eq!(c.handshakes(), 1);
    assert_eq!(d.handshakes(), 1);
    assert_eq!(d.requests(), 3);
    assert_eq!(
        c.connects(),
        1,
        "handshake, login and three requests on one connection"
    );
}

#[tokio::test]
async fn aes_wrong_credentials_are_auth_failed_or_needs_credentials() {
    let (f, k) = fleet(&[AES], aes_fault(KlapFault::WrongCredentials)).await;
    let ip = f.plugs()[0].ip;
    let mut c = aes_client(&k, ip, Some(account()));
    assert_eq!(
        bounded(c.query(&smart("get_device_info", Value::Null))).await,
        Err(AesNetError::AuthFailed)
    );
    // The account, then the default TAPO setup credentials: two key exchanges.
    assert_eq!(c.handshakes(), 2);
    let mut c = aes_client(&k, ip, None);
    assert_eq!(
        bounded(c.query(&smart("get_device_info", Value::Null))).await,
        Err(AesNetError::NeedsCredentials)
    );
}

#[tokio::test]
async fn aes_session_expiry_gets_a_fresh_login() {
    let (f, k) = fleet(&[AES], aes_fault(KlapFault::SessionExpiry)).await;
    let ip = f.plugs()[0].ip;
    let mut c = aes_client(&k, ip, Some(account()));
    for i in 0..3 {
        let r = bounded(c.query(&smart("get_current_power", Value::Null)))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r["error_code"], 0);
    }
    assert_eq!(c.handshakes(), 2);
    assert_eq!(k.device(ip).expect("device").handshakes(), 2);
}

#[tokio::test]
async fn aes_faults_are_typed() {
    let (f, k) = fleet(&[AES], aes_fault(KlapFault::HandshakeHang)).await;
    let mut c = aes_client(&k, f.plugs()[0].ip, Some(account()));
    assert_eq!(
        bounded(c.query(&smart("get_device_info", Value::Null))).await,
        Err(AesNetError::Timeout {
            stage: AesStage::Handshake,
            after: TIMEOUT
        })
    );
    drop((f, k));
    let (f, k) = fleet(&[AES], aes_fault(KlapFault::GarbageCiphertext)).await;
    let mut c = aes_client(&k, f.plugs()[0].ip, Some(account()));
    assert_eq!(
        bounded(c.query(&smart("get_device_info", Value::Null))).await,
        Err(AesNetError::BadCiphertext(AesError::BadCiphertext))
    );
}
