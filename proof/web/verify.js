// Offline verifier of otpgate proofs: the same checks as proof.Verify in Go.
// Text "OTPG1:" + Base45 (RFC 9285) of zlib of a tagged COSE_Sign1 (RFC 9052)
// signed with Ed25519, whose payload is CBOR claims (see the Go package doc).
'use strict';
(function () {
  const PREFIX = 'OTPG1:';
  const MAX_TEXT = 1024;
  const MAX_INFLATED = 4096;
  const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
  const CLAIM_ISS = 1, CLAIM_EXP = 4, CLAIM_IAT = 6, CLAIM_CTI = 7, CLAIM_PROOF = -65537;
  const STATUS = ['none', 'partial', 'full'];

  const NOT_PROOF = 'not a proof';
  const UNKNOWN_KEY = 'unknown key';
  const BAD_SIGNATURE = 'bad signature';
  const EXPIRED = 'expired';
  const REVOKED = 'revoked';

  class Refusal extends Error {}
  const refuse = (reason) => new Refusal(reason);
  const notProof = () => refuse(NOT_PROOF);

  const $ = (id) => document.getElementById(id);

  // ---- Base45, RFC 9285, as strict as the Go decoder.
  function base45Decode(s) {
    if (s.length % 3 === 1) throw notProof();
    const out = [];
    for (let i = 0; i < s.length; i += 3) {
      const end = Math.min(i + 3, s.length);
      let n = 0, mul = 1;
      for (let j = i; j < end; j++) {
        const v = ALPHABET.indexOf(s[j]);
        if (v < 0) throw notProof();
        n += v * mul;
        mul *= 45;
      }
      if (end - i === 3) {
        if (n > 0xffff) throw notProof();
        out.push(n >> 8, n & 0xff);
      } else {
        if (n > 0xff) throw notProof();
        out.push(n);
      }
    }
    return new Uint8Array(out);
  }

  // ---- zlib (RFC 1950: DecompressionStream's "deflate"), bounded.
  async function inflate(bytes) {
    const ds = new DecompressionStream('deflate');
    const writer = ds.writable.getWriter();
    writer.write(bytes).catch(() => {});
    writer.close().catch(() => {});
    const reader = ds.readable.getReader();
    const chunks = [];
    let total = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > MAX_INFLATED) {
          reader.cancel().catch(() => {});
          throw notProof();
        }
        chunks.push(value);
      }
    } catch (e) {
      throw notProof();
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  // ---- CBOR (RFC 8949), only what a proof holds, in deterministic encoding:
  // integers, byte and text strings, arrays, maps (keys sorted), tags.
  const utf8 = new TextDecoder('utf-8', { fatal: true });

  function compareBytes(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }

  function cborDecode(bytes) {
    let pos = 0;
    const need = (n) => { if (n > bytes.length - pos) throw notProof(); };
    function head() {
      need(1);
      const ib = bytes[pos++];
      const major = ib >> 5, ai = ib & 31;
      let val;
      if (ai < 24) {
        val = ai;
      } else if (ai === 24) {
        need(1);
        val = bytes[pos];
        pos += 1;
        if (val < 24) throw notProof();
      } else if (ai === 25) {
        need(2);
        val = bytes[pos] * 0x100 + bytes[pos + 1];
        pos += 2;
        if (val < 0x100) throw notProof();
      } else if (ai === 26) {
        need(4);
        val = ((bytes[pos] * 0x100 + bytes[pos + 1]) * 0x100 + bytes[pos + 2]) * 0x100 + bytes[pos + 3];
        pos += 4;
        if (val < 0x10000) throw notProof();
      } else if (ai === 27) {
        need(8);
        const hi = ((bytes[pos] * 0x100 + bytes[pos + 1]) * 0x100 + bytes[pos + 2]) * 0x100 + bytes[pos + 3];
        const lo = ((bytes[pos + 4] * 0x100 + bytes[pos + 5]) * 0x100 + bytes[pos + 6]) * 0x100 + bytes[pos + 7];
        pos += 8;
        if (hi === 0 || hi >= 0x200000) throw notProof(); // not shortest, or past 2^53
        val = hi * 0x100000000 + lo;
      } else {
        throw notProof(); // indefinite lengths, reserved values
      }
      return [major, val];
    }
    function item(depth) {
      if (depth > 8) throw notProof();
      const [major, val] = head();
      switch (major) {
        case 0:
          return val;
        case 1:
          return -1 - val;
        case 2: {
          need(val);
          const b = bytes.subarray(pos, pos + val);
          pos += val;
          return b;
        }
        case 3: {
          need(val);
          let s;
          try {
            s = utf8.decode(bytes.subarray(pos, pos + val));
          } catch (e) {
            throw notProof();
          }
          pos += val;
          return s;
        }
        case 4: {
          if (val > 16) throw notProof();
          const a = [];
          for (let i = 0; i < val; i++) a.push(item(depth + 1));
          return a;
        }
        case 5: {
          if (val > 16) throw notProof();
          const m = new Map();
          let prev = null;
          for (let i = 0; i < val; i++) {
            const start = pos;
            const k = item(depth + 1);
            const enc = bytes.subarray(start, pos);
            if (typeof k !== 'number' && typeof k !== 'string') throw notProof();
            if (prev !== null && compareBytes(prev, enc) >= 0) throw notProof(); // unsorted or duplicate
            prev = enc;
            m.set(k, item(depth + 1));
          }
          return m;
        }
        case 6:
          return { tag: val, value: item(depth + 1) };
        default:
          throw notProof(); // floats and simple values never occur in a proof
      }
    }
    const v = item(0);
    if (pos !== bytes.length) throw notProof();
    return v;
  }

  function cborHead(major, n) {
    const m = major << 5;
    if (n < 24) return [m | n];
    if (n < 0x100) return [m | 24, n];
    if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
    return [m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  }

  function concat(parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  // Sig_structure = ["Signature1", body_protected, external_aad = h'', payload]
  function sigStructure(protectedBytes, payload) {
    const context = new TextEncoder().encode('Signature1');
    return concat([
      [0x84],
      cborHead(3, context.length), context,
      cborHead(2, protectedBytes.length), protectedBytes,
      [0x40],
      cborHead(2, payload.length), payload,
    ]);
  }

  // ---- COSE_Sign1: tag 18, [protected {1: -8, 4: kid}, {}, payload, signature].
  function parseCose(raw) {
    const top = cborDecode(raw);
    if (!top || top.tag !== 18 || !Array.isArray(top.value) || top.value.length !== 4) throw notProof();
    const [prot, unprot, payload, sig] = top.value;
    if (!(prot instanceof Uint8Array) || !(unprot instanceof Map) || unprot.size !== 0 ||
        !(payload instanceof Uint8Array) || !(sig instanceof Uint8Array) || sig.length === 0) {
      throw notProof();
    }
    const ph = cborDecode(prot);
    if (!(ph instanceof Map) || ph.size !== 2 || ph.get(1) !== -8) throw notProof();
    const kid = ph.get(4);
    if (!(kid instanceof Uint8Array) || kid.length !== 8) throw notProof();
    return { prot, payload, sig, kid };
  }

  // ---- Claims: exactly the keys Go's decodeClaims accepts.
  function parseClaims(payload) {
    const m = cborDecode(payload);
    const keys = [CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_CTI, CLAIM_PROOF];
    if (!(m instanceof Map) || m.size !== keys.length || !keys.every((k) => m.has(k))) throw notProof();
    const iss = m.get(CLAIM_ISS), exp = m.get(CLAIM_EXP), iat = m.get(CLAIM_IAT), cti = m.get(CLAIM_CTI);
    const p = m.get(CLAIM_PROOF);
    const isUint = (v) => Number.isInteger(v) && v >= 0;
    if (typeof iss !== 'string' || iss === '' || !isUint(iat) || !isUint(exp) || iat >= exp ||
        !(cti instanceof Uint8Array) || cti.length !== 8 || !(p instanceof Map)) {
      throw notProof();
    }
    for (const k of p.keys()) if (![1, 2, 3, 4, 5].includes(k)) throw notProof();
    const status = p.get(1), doses = p.get(2), last = p.get(3), birthYear = p.get(4), initials = p.get(5);
    if (!isUint(status) || status > 2 || !isUint(doses) || doses > 32 ||
        !isUint(birthYear) || birthYear < 1900 || birthYear > 9999 ||
        typeof initials !== 'string' || initials === '' ||
        (doses === 0) !== (status === 0) ||
        (doses === 0) !== (last === undefined) ||
        (last !== undefined && (typeof last !== 'string' || !/^(19|[2-9]\d)\d\d-(0[1-9]|1[0-2])$/.test(last)))) {
      throw notProof();
    }
    return {
      issuer: iss, issuedAt: iat, expires: exp, id: hex(cti),
      status: STATUS[status], doses, lastDose: last || '', birthYear, initials,
    };
  }

  function hex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function base64url(b) {
    return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function fromBase64url(s) {
    if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
    const std = s.replace(/-/g, '+').replace(/_/g, '/');
    try {
      return Uint8Array.from(atob(std + '='.repeat((4 - std.length % 4) % 4)), (c) => c.charCodeAt(0));
    } catch (e) {
      return null;
    }
  }

  // ---- The lists that came with the page.
  function readJSON(id) {
    try {
      return JSON.parse($(id).textContent);
    } catch (e) {
      return null;
    }
  }
  const jwks = readJSON('keys');
  const revocationList = readJSON('revocations');
  const revoked = new Set((revocationList && Array.isArray(revocationList.revoked)) ? revocationList.revoked : []);

  let keysPromise = null;
  // Imports every Ed25519 key of the JWKS, keyed by the kid computed from x
  // (a published kid that disagrees disqualifies the key).
  function loadKeys() {
    if (keysPromise) return keysPromise;
    keysPromise = (async () => {
      const byKid = new Map();
      for (const k of (jwks && Array.isArray(jwks.keys)) ? jwks.keys : []) {
        if (!k || k.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string') continue;
        const x = fromBase64url(k.x);
        if (!x || x.length !== 32) continue;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', x));
        const kid = base64url(digest.subarray(0, 8));
        if (k.kid !== undefined && k.kid !== kid) continue;
        byKid.set(kid, await crypto.subtle.importKey('raw', x, { name: 'Ed25519' }, false, ['verify']));
      }
      return byKid;
    })();
    return keysPromise;
  }

  function cryptoMissing() {
    return !window.isSecureContext || !window.crypto || !window.crypto.subtle || typeof DecompressionStream !== 'function';
  }

  // verify resolves to the claims of a valid proof, or rejects with a
  // Refusal whose message is the reason (or another Error when the browser
  // cannot check at all).
  async function verify(text) {
    text = text.trim();
    if (text === '' || text.length > MAX_TEXT || !text.startsWith(PREFIX)) throw notProof();
    const compressed = base45Decode(text.slice(PREFIX.length));
    const cose = parseCose(await inflate(compressed));
    const key = (await loadKeys()).get(base64url(cose.kid));
    if (!key) throw refuse(UNKNOWN_KEY);
    let ok = false;
    try {
      ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, cose.sig, sigStructure(cose.prot, cose.payload));
    } catch (e) {
      ok = false;
    }
    if (!ok) throw refuse(BAD_SIGNATURE);
    const claims = parseClaims(cose.payload);
    if (revoked.has(claims.id)) throw refuse(REVOKED);
    if (Date.now() / 1000 >= claims.expires) throw refuse(EXPIRED);
    return claims;
  }

  // ---- The page.
  function when(seconds) {
    return new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
  }

  function show(state, verdict, rows) {
    const result = $('result');
    result.dataset.state = state;
    $('verdict').textContent = verdict;
    const dl = $('details');
    dl.replaceChildren();
    for (const [name, value] of rows || []) {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value;
      dd.dataset.field = name;
      dl.append(dt, dd);
    }
  }

  let generation = 0;
  async function check(text) {
    const mine = ++generation;
    if (text.trim() === '') {
      show('', '', []);
      return;
    }
    if (cryptoMissing()) {
      show('error', 'cannot check here: this browser or context lacks WebCrypto (see the note above)', []);
      return;
    }
    let state, verdict, rows = [];
    try {
      const c = await verify(text);
      state = 'valid';
      verdict = 'valid';
      rows = [
        ['Status', c.status],
        ['Doses', String(c.doses)],
        ['Last dose', c.lastDose || '—'],
        ['Initials', c.initials],
        ['Birth year', String(c.birthYear)],
        ['Issued by', c.issuer],
        ['Valid until', when(c.expires)],
        ['Proof id', c.id],
      ];
    } catch (e) {
      if (e instanceof Refusal) {
        state = 'invalid';
        verdict = 'invalid: ' + e.message;
      } else if (e && e.name === 'NotSupportedError') {
        state = 'error';
        verdict = 'cannot check here: this browser does not support Ed25519 in WebCrypto';
      } else {
        state = 'error';
        verdict = 'cannot check here: ' + (e && e.message ? e.message : String(e));
      }
    }
    if (mine === generation) show(state, verdict, rows);
  }

  async function readQRFile(file) {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
    const w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    const img = ctx.getImageData(0, 0, w, h);
    const code = jsQR(img.data, w, h, { inversionAttempts: 'attemptBoth' });
    return code ? code.data : null;
  }

  function init() {
    if (cryptoMissing()) {
      const n = $('notice');
      n.textContent = 'Signatures are checked with the browser\u2019s WebCrypto, which works only in a secure context: ' +
        'open this page over https:// or from http://localhost, in a current browser.';
      n.hidden = false;
    }
    const nKeys = (jwks && Array.isArray(jwks.keys)) ? jwks.keys.length : 0;
    let lists = nKeys + (nKeys === 1 ? ' issuer key' : ' issuer keys') + ', ' +
      revoked.size + (revoked.size === 1 ? ' revoked proof' : ' revoked proofs');
    if (revocationList && typeof revocationList.updated === 'string') lists += ' (list of ' + revocationList.updated + ')';
    $('lists').textContent = 'This page carries ' + lists + '.';

    const textarea = $('text');
    $('check').addEventListener('click', () => check(textarea.value));
    textarea.addEventListener('input', () => check(textarea.value));
    $('image').addEventListener('change', async (ev) => {
      const file = ev.target.files && ev.target.files[0];
      if (!file) return;
      const mine = ++generation;
      let text = null;
      try {
        text = await readQRFile(file);
      } catch (e) {
        text = null;
      }
      if (mine !== generation) return;
      if (text === null) {
        show('invalid', 'invalid: no QR code found in the image', []);
        return;
      }
      textarea.value = text;
      await check(text);
    });
  }

  init();
})();
