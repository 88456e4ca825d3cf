//! The AES "securePassthrough" transport of older SMART firmware (`encrypt_type: AES`), pure:
//! the RSA key exchange (`handshake` with the client's public key; the device's `key` holds the
//! AES key and IV, RSA PKCS#1 v1.5 encrypted), `login_device` parameters, and wrapping requests
//! in `securePassthrough`. Learnt from python-kasa's `kasa/transports/aestransport.py`.
//!
//! - `handshake`: `{"method":"handshake","params":{"key":"<SPKI PEM of an RSA-1024 key>"}}`
//!   (the PEM as python-kasa writes it: the base64 on one line, so the body is exactly the 314
//!   bytes python-kasa declares as its `Content-Length`) →
//!   `{"error_code":0,"result":{"key":"<base64 RSA(key ‖ iv)>"}}`, plus a `TP_SESSIONID` cookie.
//! - `login_device`: `username` = base64(sha1-hex(e-mail)); `password` = base64(password), or for
//!   login version 2 `password2` = base64(sha1-hex(password)). Answered with a `token`.
//! - every later request: `{"method":"securePassthrough","params":{"request":"<base64
//!   AES-128-CBC(json)>"}}` posted to `/app?token=…`; the reply's `result.response` is the same.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::klap::{aes_cbc_decrypt, aes_cbc_encrypt};

/// RSA key size python-kasa and the devices use (`KeyPair.create_key_pair(key_size=1024)`,
/// public exponent 65537).
pub const RSA_BITS: usize = 1024;

/// The length of a `handshake` body with an RSA-1024 key in python-kasa's PEM form
/// (`AesTransport.KEY_PAIR_CONTENT_LENGTH`).
pub const HANDSHAKE_BODY_LEN: usize = 314;

/// Something wrong in the AES exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AesError {
    #[error("cannot make an RSA key: {0}")]
    KeyGen(String),
    #[error("handshake key is not base64")]
    KeyNotBase64,
    #[error("handshake key does not decrypt with our RSA key")]
    KeyDecrypt,
    #[error("handshake key holds {0} bytes, not 32 (key and IV)")]
    KeyLength(usize),
    #[error("passthrough payload is not base64 or does not decrypt")]
    BadCiphertext,
    #[error("reply is not the expected JSON: {0}")]
    Shape(&'static str),
    #[error("device error_code {0}")]
    Device(i64),
}

/// The client's RSA key pair for one handshake.
pub struct KeyPair {
    private: RsaPrivateKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(…)")
    }
}

impl KeyPair {
    /// A fresh RSA-1024 key.
    pub fn generate() -> Result<Self, AesError> {
        let mut rng = rsa::rand_core::OsRng;
        let private =
            RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(|e| AesError::KeyGen(e.to_string()))?;
        Ok(KeyPair { private })
    }

    /// A key from PKCS#8 DER (tests, and a key kept across sessions).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, AesError> {
        let private =
            RsaPrivateKey::from_pkcs8_der(der).map_err(|e| AesError::KeyGen(e.to_string()))?;
        Ok(KeyPair { private })
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as python-kasa sends it: the
    /// base64 of the DER on one line (not wrapped at 64 columns).
    pub fn public_pem(&self) -> Result<String, AesError> {
        let der = self
            .private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| AesError::KeyGen(e.to_string()))?;
        Ok(format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der.as_bytes())
        ))
    }

    /// Decrypts the device's handshake `key` (base64 of RSA PKCS#1 v1.5) into a session.
    pub fn open_handshake_key(&self, key_b64: &str) -> Result<AesSession, AesError> {
        let ct = B64
            .decode(key_b64.trim())
            .map_err(|_| AesError::KeyNotBase64)?;
        let pt = self
            .private
            .decrypt(Pkcs1v15Encrypt, &ct)
            .map_err(|_| AesError::KeyDecrypt)?;
        if pt.len() != 32 {
            return Err(AesError::KeyLength(pt.len()));
        }
        let mut key = [0u8; 16];
        let mut iv = [0u8; 16];
        key.copy_from_slice(&pt[..16]);
        iv.copy_from_slice(&pt[16..]);
        Ok(AesSession { key, iv })
    }
}

/// The `handshake` request body for `public_pem`.
pub fn handshake_request(public_pem: &str) -> Value {
    json!({"method": "handshake", "params": {"key": public_pem}})
}

/// The `handshake` request body for `public_pem`, as sent.
pub fn handshake_body(public_pem: &str) -> Vec<u8> {
    handshake_request(public_pem).to_string().into_bytes()
}

/// The device's encrypted key from a `handshake` reply.
pub fn handshake_key(reply: &Value) -> Result<&str, AesError> {
    check_error(reply)?;
    reply
        .pointer("/result/key")
        .and_then(Value::as_str)
        .ok_or(AesError::Shape("no result.key in the handshake reply"))
}

fn check_error(reply: &Value) -> Result<(), AesError> {
    match reply.get("error_code").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        Some(code) => Err(AesError::Device(code)),
        None => Err(AesError::Shape("no error_code")),
    }
}

fn sha1_hex(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

/// `login_device` parameters: v1 sends `password` = base64(password), v2 `password2` =
/// base64(sha1-hex(password)); both send `username` = base64(sha1-hex(username)).
pub fn login_params(login_v2: bool, username: &str, password: &str) -> Value {
    let un = B64.encode(sha1_hex(username));
    if login_v2 {
        json!({"username": un, "password2": B64.encode(sha1_hex(password))})
    } else {
        json!({"username": un, "password": B64.encode(password)})
    }
}

/// The `login_device` request.
pub fn login_request(login_v2: bool, username: &str, password: &str, now_ms: u64) -> Value {
    json!({"method": "login_device", "params": login_params(login_v2, username, password),
        "request_time_milis": now_ms})
}

/// The token from a decrypted `login_device` reply (error -1501 = wrong credentials).
pub fn login_token(reply: &Value) -> Result<&str, AesError> {
    check_error(reply)?;
    reply
        .pointer("/result/token")
        .and_then(Value::as_str)
        .ok_or(AesError::Shape("no result.token in the login reply"))
}

/// The error code a device answers to wrong credentials.
pub const LOGIN_ERROR: i64 = -1501;

/// One AES session: the key and IV the device chose.
#[derive(Clone, PartialEq, Eq)]
pub struct AesSession {
    key: [u8; 16],
    iv: [u8; 16],
}

impl std::fmt::Debug for AesSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesSession(…)")
    }
}

impl AesSession {
    pub fn new(key: [u8; 16], iv: [u8; 16]) -> Self {
        AesSession { key, iv }
    }

    /// base64(AES-128-CBC(plaintext)), the same IV for every message (as the devices do).
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        B64.encode(aes_cbc_encrypt(&self.key, &self.iv, plaintext))
    }

    pub fn decrypt(&self, b64: &str) -> Result<Vec<u8>, AesError> {
        let ct = B64
            .decode(b64.trim())
            .map_err(|_| AesError::BadCiphertext)?;
        aes_cbc_decrypt(&self.key, &self.iv, &ct).map_err(|_| AesError::BadCiphertext)
    }

    /// The wire body of a `securePassthrough` request carrying `plaintext` (the same JSON as
    /// [`AesSession::wrap`], written directly: base64 needs no JSON escaping).
    pub fn wrap_body(&self, plaintext: &[u8]) -> Vec<u8> {
        const HEAD: &[u8] = br#"{"method":"securePassthrough","params":{"request":""#;
        const TAIL: &[u8] = br#""}}"#;
        let ct = aes_cbc_encrypt(&self.key, &self.iv, plaintext);
        let mut out = Vec::with_capacity(HEAD.len() + ct.len().div_ceil(3) * 4 + TAIL.len());
        out.extend_from_slice(HEAD);
        let at = out.len();
        out.resize(at + base64::encoded_len(ct.len(), true).unwrap_or(0), 0);
        let n = B64.encode_slice(&ct, &mut out[at..]).unwrap_or(0);
        out.truncate(at + n);
        out.extend_from_slice(TAIL);
        out
    }

    /// The decrypted inner payload of a `securePassthrough` reply body, with the same checks
    /// as [`AesSession::unwrap_reply`] (the outer `error_code` first). The usual reply is read
    /// into a borrowed struct, not a JSON tree; anything else takes the general path.
    pub fn open_body(&self, body: &[u8]) -> Result<Vec<u8>, AesError> {
        #[derive(serde::Deserialize)]
        struct Outer<'a> {
            error_code: i64,
            #[serde(borrow)]
            result: Option<Inner<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow)]
            response: Option<Cow<'a, str>>,
        }
        match serde_json::from_slice::<Outer<'_>>(body) {
            Ok(Outer {
                error_code: 0,
                result: Some(Inner {
                    response: Some(text),
                }),
            }) => self.decrypt(&text),
            Ok(Outer { error_code, .. }) if error_code != 0 => Err(AesError::Device(error_code)),
            _ => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|_| AesError::Shape("passthrough reply is not JSON"))?;
                self.payload(&v)
            }
        }
    }

    /// The decrypted `result.response` of a passthrough reply.
    fn payload(&self, reply: &Value) -> Result<Vec<u8>, AesError> {
        check_error(reply)?;
        let inner = reply
            .pointer("/result/response")
            .and_then(Value::as_str)
            .ok_or(AesError::Shape(
                "no result.response in the passthrough reply",
            ))?;
        self.decrypt(inner)
    }

    /// `request` wrapped for the wire.
    pub fn wrap(&self, request: &Value) -> Value {
        json!({"method": "securePassthrough",
            "params": {"request": self.encrypt(request.to_string().as_bytes())}})
    }

    /// The inner reply of a `securePassthrough` reply.
    pub fn unwrap_reply(&self, reply: &Value) -> Result<Value, AesError> {
        let pt = self.payload(reply)?;
        serde_json::from_slice(&pt).map_err(|_| AesError::Shape("passthrough payload is not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed once with python-kasa 0.12.0 in a throwaway venv
    // (`python3 -m venv /tmp/pk && /tmp/pk/bin/pip install python-kasa`):
    // `AesTransport.hash_credentials(v2, Credentials("user@example.com", "hunter2"))`,
    // `AesEncyptionSession(bytes(range(100,116)), bytes(range(200,216))).encrypt(...)`, and a
    // throwaway RSA-1024 key from `KeyPair.create_key_pair()` with `key ‖ iv` encrypted to it by
    // `public_key.encrypt(..., PKCS1v15())` (the padding is random; decrypting is not).
    const PRIV_DER_B64: &str = "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAK/epm0bWims3GNZQRhQzPZj+arLnMOLbVaJU/OPJRCayHxmKX7HFYLGYk/MrUjVkeeSeJqAjjs0iwCPLNVPR+ooJooQ9YQBDF3VchFjg8XNQq7B6ePuqrSTCp+0ObsWQRPCd+aQ1PJ0hIi3Q/jBgBdATd5CGrK8o35RYRiW7mfPAgMBAAECgYAsJYS7UKliWrz7x1TayLWah+ANKo1QXLh2h4RmWCFiuKfo6jAyXcEdkbTt+R/qb4nviknx5qFNZVQbMNV9Oih/yRUMeSSOdNtBtue1NZi2fo6b6s+tu1s6rAkAAVHt8fgBdrGWkPHG6zItfPTOTQFeEh0HnqeE5h5KpUfZE6Af6QJBAOIIOZJ7WFWe/Hw0oX3LzOw435rMrvPaahZhimAz4FxgVwsbu6hkdAPas7wxszWBUWbBij45YiuBN8YKZzUPT80CQQDHL9vnw9QpYqpIPYtTyQ6hMD0GaQ9mBDgC8dEGP4lHjJ8Ln78fJdkh0/ofps0G62nP+fJTaX/JJt6tyKilH+ILAkEAjCvRmDeJxj88EMKKy3pRcMSsVlFMxcjTNWHz8Ej7gA32rNrb+0egcqtz/udLXYj+tByd4Iyxho0xy0y0SEFgmQJAGGGdU1M/JwmyukD+SvUzWzuiXKSDhANEL+gVo+QnE6D83tlg9ZkWaPOfjDxIoG40d4aqyNcDE0Y0v6TuL7glXQJBAK9CoFOUYNeT5PPf4eWX9v9UGvvYfSflLeTdqLIWmNapF0iW8LWBVcAWXfCJnCKgLUF55JWb5xnw4x1IL+Uqh00=";
    const PUB_DER_B64: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCv3qZtG1oprNxjWUEYUMz2Y/mqy5zDi21WiVPzjyUQmsh8Zil+xxWCxmJPzK1I1ZHnkniagI47NIsAjyzVT0fqKCaKEPWEAQxd1XIRY4PFzUKuwenj7qq0kwqftDm7FkETwnfmkNTydISIt0P4wYAXQE3eQhqyvKN+UWEYlu5nzwIDAQAB";
    const HANDSHAKE_KEY: &str = "ZFGcHgaVYXjmrF8B/SJ8eCJiWZ/9Ep2+2IJIrc+pMxfNPJ9NoEoAM2rr8gDPppE6flhCIbthZ7CtFSbUGMovIl5kokm1BDa/EAPIHDwmV3Si5sDMDTHvHpuU3u02QuQXmkf2o5bEy4fsnzZ/kWX0NuJFQ48AkknPM3fuyAximas=";

    fn key_iv() -> ([u8; 16], [u8; 16]) {
        let mut k = [0u8; 16];
        let mut iv = [0u8; 16];
        for i in 0..16 {
            k[i] = 100 + i as u8;
            iv[i] = 200 + i as u8;
        }
        (k, iv)
    }

    #[test]
    fn login_params_match_python_kasa() {
        let v1 = login_params(false, "user@example.com", "hunter2");
        assert_eq!(
            v1,
            json!({"username": "NjNhNzEwNTY5MjYxYTI0YjM3NjYyNzViNzAwMGNlOGQ3YjMyZTJmNw==",
                "password": "aHVudGVyMg=="})
        );
        let v2 = login_params(true, "user@example.com", "hunter2");
        assert_eq!(
            v2,
            json!({"username": "NjNhNzEwNTY5MjYxYTI0YjM3NjYyNzViNzAwMGNlOGQ3YjMyZTJmNw==",
                "password2": "ZjNiYmJkNjZhNjNkNGJmMTc0Nzk0MDU3OGVjM2QwMTAzNTMwZTIxZA=="})
        );
        let r = login_request(true, "a", "b", 5);
        assert_eq!(r["method"], "login_device");
        assert_eq!(r["request_time_milis"], 5);
    }

    #[test]
    fn passthrough_cipher_matches_python_kasa() {
        let (k, iv) = key_iv();
        let s = AesSession::new(k, iv);
        assert_eq!(
            s.encrypt(br#"{"method":"get_device_info"}"#),
            "cp3dYSkMh0oXRcOd4aJcH8a5mxjtfiOidHJ6f8bvbkk="
        );
        assert_eq!(
            s.decrypt("cp3dYSkMh0oXRcOd4aJcH8a5mxjtfiOidHJ6f8bvbkk=")
                .expect("decrypts"),
            br#"{"method":"get_device_info"}"#
        );
        assert_eq!(s.decrypt("not base64!"), Err(AesError::BadCiphertext));
        assert_eq!(s.decrypt("AAAA"), Err(AesError::BadCiphertext));
    }

    #[test]
    fn rsa_handshake_key_from_python_kasa_opens() {
        let der = B64.decode(PRIV_DER_B64).expect("b64");
        let kp = KeyPair::from_pkcs8_der(&der).expect("key");
        let pem = kp.public_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(body, PUB_DER_B64);
        let s = kp.open_handshake_key(HANDSHAKE_KEY).expect("opens");
        let (k, iv) = key_iv();
        assert_eq!(s, AesSession::new(k, iv));
        assert_eq!(kp.open_handshake_key("%%%"), Err(AesError::KeyNotBase64));
        assert_eq!(kp.open_handshake_key("AAAA"), Err(AesError::KeyDecrypt));
        let req = handshake_request(&pem);
        assert_eq!(req["method"], "handshake");
        assert_eq!(req["params"]["key"], pem.as_str());
    }

    #[test]
    fn the_handshake_body_is_python_kasas_314_bytes() {
        // python-kasa writes the DER's base64 on one line between the PEM markers and declares
        // `Content-Length: 314` (`KEY_PAIR_CONTENT_LENGTH`) for that body.
        let der = B64.decode(PRIV_DER_B64).expect("b64");
        let pem = KeyPair::from_pkcs8_der(&der)
            .expect("key")
            .public_pem()
            .expect("pem");
        assert_eq!(
            pem,
            format!("-----BEGIN PUBLIC KEY-----\n{PUB_DER_B64}\n-----END PUBLIC KEY-----\n")
        );
        let body = handshake_body(&pem);
        assert_eq!(body.len(), HANDSHAKE_BODY_LEN);
        let want = format!(
            r#"{{"method":"handshake","params":{{"key":"-----BEGIN PUBLIC KEY-----\n{PUB_DER_B64}\n-----END PUBLIC KEY-----\n"}}}}"#
        );
        assert_eq!(String::from_utf8(body).expect("utf-8"), want);
    }

    #[test]
    fn wire_bodies_are_the_json_of_wrap() {
        let (k, iv) = key_iv();
        let s = AesSession::new(k, iv);
        for req in [
            json!({"method": "get_device_info"}),
            json!({"method": "multipleRequest", "params": {"requests": [{"method": "a"}]}}),
            json!({}),
        ] {
            let text = req.to_string();
            let body = s.wrap_body(text.as_bytes());
            assert_eq!(
                serde_json::from_slice::<Value>(&body).expect("JSON"),
                s.wrap(&req)
            );
        }
        // The reply path: the usual shape, an escaped `/` in the base64, and errors first.
        let inner = s.encrypt(br#"{"error_code":0}"#);
        let reply = json!({"error_code": 0, "result": {"response": inner}});
        assert_eq!(
            s.open_body(reply.to_string().as_bytes()),
            Ok(br#"{"error_code":0}"#.to_vec())
        );
        let escaped = reply.to_string().replace('/', "\\/");
        assert_eq!(
            s.open_body(escaped.as_bytes()),
            Ok(br#"{"error_code":0}"#.to_vec())
        );
        assert_eq!(
            s.open_body(br#"{"error_code":9999,"result":5}"#),
            Err(AesError::Device(9999))
        );
        assert_eq!(
            s.open_body(b"garbage"),
            Err(AesError::Shape("passthrough reply is not JSON"))
        );
        assert!(matches!(
            s.open_body(br#"{"result":{"response":"AAAA"}}"#),
            Err(AesError::Shape(_))
        ));
    }

    #[test]
    fn passthrough_wrap_round_trips_and_errors_are_typed() {
        let (k, iv) = key_iv();
        let s = AesSession::new(k, iv);
        let req = json!({"method": "get_device_info"});
        let wire = s.wrap(&req);
        assert_eq!(wire["method"], "securePassthrough");
        let inner = wire["params"]["request"].as_str().expect("str");
        let reply = json!({"error_code": 0, "result": {"response": inner}});
        assert_eq!(s.unwrap_reply(&reply).expect("ok"), req);
        assert_eq!(
            s.unwrap_reply(&json!({"error_code": -1501})),
            Err(AesError::Device(-1501))
        );
        assert!(matches!(
            s.unwrap_reply(&json!({"error_code": 0, "result": {}})),
            Err(AesError::Shape(_))
        ));
        assert_eq!(
            login_token(&json!({"error_code": 0, "result": {"token": "T"}})),
            Ok("T")
        );
        assert_eq!(
            login_token(&json!({"error_code": LOGIN_ERROR})),
            Err(AesError::Device(LOGIN_ERROR))
        );
        assert_eq!(
            handshake_key(&json!({"error_code": 0, "result": {"key": "K"}})),
            Ok("K")
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_passthrough_never_panics(text: String) {
            let (k, iv) = key_iv();
            let s = AesSession::new(k, iv);
            let _ = s.decrypt(&text);
            let _ = s.unwrap_reply(&json!({"error_code": 0, "result": {"response": text}}));
        }

        /// The borrowed reply path says what the JSON-tree path says, on any reply.
        #[test]
        fn open_body_agrees_with_unwrap_reply(text: String, code: i64, plain: Vec<u8>, raw: Vec<u8>) {
            let (k, iv) = key_iv();
            let s = AesSession::new(k, iv);
            let good = s.encrypt(&plain);
            for reply in [
                json!({"error_code": 0, "result": {"response": text}}),
                json!({"error_code": 0, "result": {"response": good}}),
                json!({"error_code": code, "result": {"response": good}}),
                json!({"error_code": code}),
                json!({"error_code": 0, "result": {"response": code}}),
                json!({"error_code": 0, "result": text}),
                json!({"error_code": text}),
                json!([code]),
            ] {
                proptest::prop_assert_eq!(
                    s.open_body(reply.to_string().as_bytes()),
                    s.payload(&reply)
                );
            }
            let _ = s.open_body(&raw);
        }
    }
}
