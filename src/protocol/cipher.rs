//! The XOR autokey "cipher" of the port-9999 protocol (PROTOCOL.md §1.1).
//!
//! Every message starts with the key 171; each cipher byte is the previous cipher byte XOR the
//! current plain byte. It hides nothing: it only has to be bit-exact.

/// The initial key of every message.
pub const SEED: u8 = 171;

/// Obfuscates `plain` in place.
pub fn encrypt_in_place(buf: &mut [u8]) {
    let mut key = SEED;
    for b in buf.iter_mut() {
        *b ^= key;
        key = *b;
    }
}

/// De-obfuscates `cipher` in place.
pub fn decrypt_in_place(buf: &mut [u8]) {
    let mut key = SEED;
    for b in buf.iter_mut() {
        let c = *b;
        *b ^= key;
        key = c;
    }
}

/// Returns the obfuscated copy of `plain`.
pub fn encrypt(plain: &[u8]) -> Vec<u8> {
    let mut out = plain.to_vec();
    encrypt_in_place(&mut out);
    out
}

/// Returns the plain copy of `cipher`.
pub fn decrypt(cipher: &[u8]) -> Vec<u8> {
    let mut out = cipher.to_vec();
    decrypt_in_place(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("valid hex")
    }

    // PROTOCOL.md §1.3, computed independently and cross-checked against a user's capture.
    const VECTORS: &[(&str, &str)] = &[
        (
            r#"{"system":{"get_sysinfo":{}}}"#,
            "d0f281f88bff9af7d5ef94b6d1b4c09fec95e68fe187e8caf08bf68bf6",
        ),
        (
            r#"{"emeter":{"get_realtime":{}}}"#,
            "d0f297fa9feb8efcdee49fbddabfcb94e683e28efa93fe9bb983f885f885",
        ),
        (
            r#"{"system":{"get_download_state":{}}}"#,
            "d0f281f88bff9af7d5ef94b6d1b4c09ffb94e38de18eef8bd4a7d3b2c6a381bbc0bdc0bd",
        ),
    ];

    #[test]
    fn encrypts_the_reference_vectors() {
        for (plain, cipher) in VECTORS {
            assert_eq!(encrypt(plain.as_bytes()), unhex(cipher), "{plain}");
        }
    }

    #[test]
    fn decrypts_the_reference_vectors() {
        for (plain, cipher) in VECTORS {
            assert_eq!(decrypt(&unhex(cipher)), plain.as_bytes(), "{plain}");
        }
    }

    #[test]
    fn base64_capture_from_softscheck_106_matches() {
        // AAAAHdDygfiL/5r31e+UttG0wJ/sleaP4YfoyvCL9ov2 decoded by hand to hex:
        let frame = unhex("0000001dd0f281f88bff9af7d5ef94b6d1b4c09fec95e68fe187e8caf08bf68bf6");
        assert_eq!(&frame[..4], &[0, 0, 0, 0x1d]);
        assert_eq!(decrypt(&frame[4..]), br#"{"system":{"get_sysinfo":{}}}"#);
    }

    #[test]
    fn empty_input_is_empty_output() {
        assert!(encrypt(b"").is_empty());
        assert!(decrypt(b"").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn round_trips(data: Vec<u8>) {
            proptest::prop_assert_eq!(decrypt(&encrypt(&data)), data);
        }
    }
}
