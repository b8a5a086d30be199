//! HMAC-SHA1 (RFC 2104), the signature on every webhook delivery.
//!
//! ```text
//! HMAC(K, m) = H( (K' ^ opad) || H( (K' ^ ipad) || m ) )
//!
//! K'   = K padded with zeros to the hash's block size (64 bytes for SHA-1);
//!        a key longer than a block is first replaced by H(K)
//! ipad = 0x36 repeated 64 times,  opad = 0x5c repeated 64 times
//! ```
//!
//! Why not plain `SHA1(secret || body)`? With Merkle-Damgård hashes like
//! SHA-1 anyone who sees one such digest can extend the message and compute
//! a valid digest for the longer one without the secret. The nested
//! construction closes that hole (RFC 2104 section 6 and Bellare, Canetti,
//! Krawczyk 1996).
//!
//! Checked against the SHA-1 test cases of RFC 2202 section 3.

use sha1::{Digest, Sha1};

/// SHA-1's block size in bytes (RFC 2104 calls it B).
const BLOCK: usize = 64;

/// HMAC-SHA1 of `msg` under `key`: 20 bytes.
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha1::new();
    inner.update(ipad);
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The `X-Pushwire-Signature` value: `sha1=<hex HMAC-SHA1 of the body>`,
/// keyed with the secret's hex text as bytes (API.md section 4).
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha1={}", hex(&hmac_sha1(secret.as_bytes(), body)))
}

/// Compares a received signature with the expected one in time that does
/// not depend on where they first differ, so a forger cannot learn the
/// right signature byte by byte from response times.
pub fn verify(secret: &str, body: &[u8], received: &str) -> bool {
    let expected = signature(secret, body);
    let (a, b) = (expected.as_bytes(), received.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 2202 section 3, test cases 1 to 7 (HMAC-SHA1).
    #[test]
    fn rfc_2202_case_1() {
        assert_eq!(
            hex(&hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
    }

    #[test]
    fn rfc_2202_case_2() {
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn rfc_2202_case_3() {
        assert_eq!(
            hex(&hmac_sha1(&[0xaa; 20], &[0xdd; 50])),
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3"
        );
    }

    #[test]
    fn rfc_2202_case_4() {
        let key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819");
        assert_eq!(
            hex(&hmac_sha1(&key, &[0xcd; 50])),
            "4c9007f4026250c6bc8414f9bf50c86c2d7235da"
        );
    }

    #[test]
    fn rfc_2202_case_5() {
        let mac = hmac_sha1(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex(&mac), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04");
        assert_eq!(hex(&mac[..12]), "4c1a03424b55e07fe7f27be1");
    }

    #[test]
    fn rfc_2202_case_6_key_longer_than_a_block() {
        assert_eq!(
            hex(&hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn rfc_2202_case_7() {
        assert_eq!(
            hex(&hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
            )),
            "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"
        );
    }

    #[test]
    fn signature_and_verify() {
        let sig = signature("00112233445566778899aabbccddeeff", b"{}");
        assert!(sig.starts_with("sha1=") && sig.len() == 45);
        assert!(verify("00112233445566778899aabbccddeeff", b"{}", &sig));
        assert!(!verify("00112233445566778899aabbccddeefe", b"{}", &sig));
        assert!(!verify("00112233445566778899aabbccddeeff", b"{ }", &sig));
        assert!(!verify(
            "00112233445566778899aabbccddeeff",
            b"{}",
            "sha1=00"
        ));
    }
}
