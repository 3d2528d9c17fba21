//! A software passkey authenticator for tests: it makes a P-256 credential
//! (attestation `none`), keeps its signature counter and answers the
//! server's options as a browser's `PublicKeyCredential.toJSON()` would.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// User present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// One credential on one authenticator.
pub struct SoftKey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    pub origin: String,
    pub counter: u32,
    pub user_verified: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url from the server")
}

/// A CBOR byte string's header.
fn bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        n if n < 24 => out.push(0x40 | n as u8),
        n if n < 256 => out.extend([0x58, n as u8]),
        n => out.extend([0x59, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(bytes);
}

impl SoftKey {
    /// A new credential for `origin`, its key from `seed` (any byte but zero).
    pub fn new(origin: &str, seed: u8) -> Self {
        let key = SigningKey::from_slice(&[seed; 32]).expect("a valid P-256 key");
        let rp_id = url::Url::parse(origin).expect("origin").host_str().expect("host").to_owned();
        Self {
            key,
            credential_id: vec![seed; 32],
            user_handle: Vec::new(),
            rp_id,
            origin: origin.trim_end_matches('/').to_owned(),
            counter: 0,
            user_verified: true,
        }
    }

    fn auth_data(&self, flags: u8, attested: bool) -> Vec<u8> {
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(self.counter.to_be_bytes());
        if attested {
            out.extend([0u8; 16]);
            out.extend((self.credential_id.len() as u16).to_be_bytes());
            out.extend(&self.credential_id);
            let point = self.key.verifying_key().to_sec1_bytes();
            assert_eq!(point.len(), 65, "an uncompressed point");
            out.extend([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]);
            bstr(&mut out, &point[1..33]);
            out.push(0x22);
            bstr(&mut out, &point[33..65]);
        }
        out
    }

    fn flags(&self) -> u8 {
        UP | if self.user_verified { UV } else { 0 }
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["publicKey"]["challenge"].as_str().expect("a challenge");
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// The answer to `navigator.credentials.create(options)`.
    pub fn register(&mut self, options: &Value) -> Value {
        self.user_handle = unb64(options["publicKey"]["user"]["id"].as_str().expect("a user id"));
        let client_data = self.client_data("webauthn.create", options);
        let auth_data = self.auth_data(self.flags() | AT, true);
        let mut attestation = vec![0xA3, 0x63];
        attestation.extend(b"fmt");
        attestation.push(0x64);
        attestation.extend(b"none");
        attestation.push(0x67);
        attestation.extend(b"attStmt");
        attestation.push(0xA0);
        attestation.push(0x68);
        attestation.extend(b"authData");
        bstr(&mut attestation, &auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": { "attestationObject": b64(&attestation), "clientDataJSON": b64(&client_data) },
            "extensions": {}
        })
    }

    /// The answer to `navigator.credentials.get(options)`, the counter moved on first.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert_at(options, self.counter)
    }

    /// An answer with the counter at `counter` (a clone's, say).
    pub fn assert_at(&self, options: &Value, counter: u32) -> Value {
        let mut at = Self {
            key: self.key.clone(),
            credential_id: self.credential_id.clone(),
            user_handle: self.user_handle.clone(),
            rp_id: self.rp_id.clone(),
            origin: self.origin.clone(),
            counter,
            user_verified: self.user_verified,
        };
        at.counter = counter;
        let client_data = at.client_data("webauthn.get", options);
        let auth_data = at.auth_data(at.flags(), false);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle)
            },
            "extensions": {}
        })
    }
}
