//! HMAC (RFC 2104) over SHA-1 and SHA-256: the signature on every webhook
//! delivery (HMAC-SHA1) and on every access token (HMAC-SHA256, the `HS256`
//! of RFC 7518 section 3.2).
//!
//! ```text
//! HMAC(K, m) = H( (K' ^ opad) || H( (K' ^ ipad) || m ) )
//!
//! K'   = K padded with zeros to the hash's block size B (64 bytes for both
//!        SHA-1 and SHA-256); a key longer than a block is first replaced
//!        by H(K)
//! ipad = 0x36 repeated B times,  opad = 0x5c repeated B times
//! ```
//!
//! Why not plain `SHA1(secret || body)`? With Merkle-Damgård hashes like
//! SHA-1 and SHA-256 anyone who sees one such digest can extend the message
//! and compute a valid digest for the longer one without the secret. The
//! nested construction closes that hole (RFC 2104 section 6 and Bellare,
//! Canetti, Krawczyk 1996).
//!
//! The construction is written once, generic over the hash (`hmac`); the
//! two public functions pick SHA-1 or SHA-256. Checked against the test
//! cases of RFC 2202 section 3 (SHA-1) and RFC 4231 section 4 (SHA-256).

use sha1::digest::{Digest, Output};
use sha1::Sha1;
use sha2::Sha256;

/// The block size in bytes (RFC 2104 calls it B): 64 for SHA-1 and for
/// SHA-256, the only two hashes used here. (SHA-384 and SHA-512 have
/// 128-byte blocks: this constant would be wrong for them, which is why
/// [`hmac`] stays private.)
const BLOCK: usize = 64;

/// RFC 2104 section 2, for a hash `H` with a 64-byte block.
fn hmac<H: Digest>(key: &[u8], msg: &[u8]) -> Output<H> {
    // K': the key, or H(key) if longer than a block, padded with zeros.
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let hashed = H::digest(key);
        k[..hashed.len()].copy_from_slice(&hashed);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = H::new();
    inner.update(ipad);
    inner.update(msg);
    let mut outer = H::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize()
}

/// HMAC-SHA1 of `msg` under `key`: 20 bytes.
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    hmac::<Sha1>(key, msg).into()
}

/// HMAC-SHA256 of `msg` under `key`: 32 bytes.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    hmac::<Sha256>(key, msg).into()
}

/// Are `a` and `b` equal? In time that depends on their lengths only, not
/// on where they first differ, so a forger who measures response times
/// cannot learn a valid MAC byte by byte. (Lengths are public: a MAC's
/// length is fixed by its hash.)
///
/// Every byte pair is XORed and the differences ORed together; there is no
/// early exit. `black_box` keeps the optimizer from turning the fold back
/// into a short-circuiting comparison (best effort: Rust promises no
/// timing).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
/// keyed with the secret's hex text as bytes (docs/api.md section 4).
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha1={}", hex(&hmac_sha1(secret.as_bytes(), body)))
}

/// Does `received` (surrounding whitespace ignored) equal the expected
/// `X-Pushwire-Signature`? Compared with [`ct_eq`], so a forger cannot learn
/// the right signature byte by byte from response times.
pub fn verify(secret: &str, body: &[u8], received: &str) -> bool {
    let expected = signature(secret, body);
    ct_eq(expected.as_bytes(), received.trim().as_bytes())
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

    // RFC 4231 section 4, test cases 1 to 7 (HMAC-SHA256).
    #[test]
    fn rfc_4231_case_1() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn rfc_4231_case_2_key_shorter_than_the_output() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc_4231_case_3() {
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 20], &[0xdd; 50])),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        );
    }

    #[test]
    fn rfc_4231_case_4() {
        let key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819");
        assert_eq!(
            hex(&hmac_sha256(&key, &[0xcd; 50])),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
        );
    }

    #[test]
    fn rfc_4231_case_5_truncated_to_128_bits() {
        let mac = hmac_sha256(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex(&mac[..16]), "a3b6167473100ee06e0c796c2955552b");
    }

    #[test]
    fn rfc_4231_case_6_key_longer_than_a_block() {
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn rfc_4231_case_7_key_and_data_longer_than_a_block() {
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
            )),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        );
    }

    #[test]
    fn key_of_exactly_one_block_is_not_hashed() {
        // 64 bytes is padded (with nothing), not hashed: the same MAC as
        // the key given explicitly, and not the MAC under SHA-256(key).
        let key = [0x42u8; 64];
        let hashed: [u8; 32] = Sha256::digest(key).into();
        assert_ne!(hmac_sha256(&key, b"m"), hmac_sha256(&hashed, b"m"));
        let longer = [0x42u8; 65];
        let hashed: [u8; 32] = Sha256::digest(longer).into();
        assert_eq!(hmac_sha256(&longer, b"m"), hmac_sha256(&hashed, b"m"));
    }

    #[test]
    fn ct_eq_compares_bytes() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"xbc"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
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
