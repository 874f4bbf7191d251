// Package proof issues and verifies otpgate's vaccination proofs: a signed
// statement of vaccination status that states nothing else, which anyone can
// check offline with the issuer's published public keys (SPEC section 9).
//
// A proof says who issued it and when, until when it holds, a random id, the
// status (none, partial, full), the number of doses, the month of the last
// dose, the birth year and the initials of the name. No name, reference id,
// ID number, mobile or date of birth is in it, and the id is 8 random bytes,
// linked to no record.
//
// # Using it
//
// An issuer builds a Signer from its Ed25519 key (ParseSigningKey or
// DeriveSigningKey, then NewSigner), calls Signer.Issue with the Facts of a
// record and hands out the text and its QRCode. It publishes the KeySet of
// its current and former public keys and its Revocations, for instance with
// a Publisher, which serves the JWKS, the revocation list and a verification
// page (VerifyPage) that checks proofs in the browser. Anyone verifies with
// Verify, from the text or from a picture of the QR code (DecodeImage).
//
// # Wire format
//
// The text is the prefix "OTPG1:" ("1" is the format version) followed by
// Base45 (RFC 9285) of a zlib stream (RFC 1950) of a tagged COSE_Sign1
// message (RFC 9052, CBOR tag 18). The layering is that of the EU Digital
// COVID Certificate, with otpgate's own prefix. The QR code is drawn at error
// correction level Q; the whole text is in QR's alphanumeric set.
//
// The COSE_Sign1 message has the protected header {1 (alg): -8 (EdDSA),
// 4 (kid): h'<8 bytes>'}, where the key id is the first 8 bytes of SHA-256 of
// the raw 32-byte Ed25519 public key; an empty unprotected header; the claims
// as payload; and a 64-byte Ed25519 signature over the Sig_structure
// ["Signature1", protected, external_aad, payload] with external_aad the
// empty byte string.
//
// The payload is a CBOR map in core deterministic encoding (RFC 8949
// section 4.2.1) with exactly these claims, the first four from CWT
// (RFC 8392):
//
//	 1  iss  text     issuer, 1 to 64 bytes
//	 4  exp  uint     expiry, seconds since 1970 (NumericDate)
//	 6  iat  uint     issued at, seconds since 1970, before exp
//	 7  cti  bytes    proof id, 8 random bytes (Claims.ID is their hex)
//	-65537   map      the proof itself, with the keys:
//	       1  uint    status: 0 none, 1 partial, 2 full
//	       2  uint    number of doses, 0 to 32; 0 exactly when status is 0
//	       3  text    month of the last dose, "YYYY-MM"; present exactly
//	                  when there are doses
//	       4  uint    birth year, 1900 to 9999
//	       5  text    initials, e.g. "A.V." (see Initials)
//
// -65537 is the first claim key of the range RFC 8392 leaves to private use
// (below -65536), so it collides with no registered claim.
//
// Verify accepts exactly this and nothing more: a claim missing or extra, a
// value of another type or out of range, or an encoding that is not the
// deterministic one makes a text ErrNotProof, even under a valid signature.
// The signature is checked before any claim is read.
//
// A typical proof is 61 bytes of claims, 146 of COSE_Sign1 and 162 of zlib
// (too little to compress: zlib stores it), 249 characters of text: a
// version 11 QR code at level Q.
//
// # Keys
//
// Public keys are published as a JWKS (RFC 7517) of RFC 8037 keys:
// {"kty":"OKP","crv":"Ed25519","x":base64url(key),"kid":base64url(key id),
// "alg":"EdDSA","use":"sig"}. To rotate, add the new key to the published set,
// wait for caches (five minutes with Publisher), sign with it, and keep the
// old public key in the set for as long as the proofs it signed may be
// presented.
//
// # Revocation
//
// Revocations lists revoked proof ids as
// {"revoked":["<16 hex digits>",...],"updated":"<RFC 3339>"}. A verifier that
// works offline knows only the list it last fetched (the page shows its
// date).
package proof
