//! The DNS TXT record that publishes a DKIM key: `v=DKIM1; k=rsa; p=<base64 SPKI DER>`.
//!
//! ring hands out an RSA public key as PKCS#1 `RSAPublicKey`; DKIM's `p=` is a
//! SubjectPublicKeyInfo (RFC 6376 §3.6.1), i.e. that key inside
//! `SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING }`. The wrapping is fixed DER,
//! checked in the tests against `openssl pkey -pubout -outform DER`.

/// `AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }`.
const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    der_length(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// SubjectPublicKeyInfo DER of an RSA key given as PKCS#1 `RSAPublicKey` DER.
pub fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(pkcs1.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut inner = RSA_ALGORITHM_ID.to_vec();
    inner.extend_from_slice(&der(0x03, &bits));
    der(0x30, &inner)
}

/// The TXT record value for an RSA key given as PKCS#1 `RSAPublicKey` DER.
pub fn rsa_txt_record(pkcs1: &[u8]) -> String {
    format!(
        "v=DKIM1; k=rsa; p={}",
        base64_simd::STANDARD.encode_to_string(rsa_spki(pkcs1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        der_length(5, &mut v);
        der_length(0x81, &mut v);
        der_length(0x10e, &mut v);
        assert_eq!(v, [5, 0x81, 0x81, 0x82, 0x01, 0x0e]);
    }
}
